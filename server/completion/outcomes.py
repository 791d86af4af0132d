"""What became of each suggestion: shown, accepted, partially accepted, rejected.

Clients report showing and acceptance; rejection is inferred: a suggestion that
was shown and is then replaced by a fresh one (not a type-ahead continuation of
it) was passed over. Accepted text is then followed in its document (see
``server.completion.survival``) when a survival tracker is attached.

Type-ahead: while the user types along a shown suggestion (its *root*), each
keystroke's request is answered with the rest of it, a continuation with an id of
its own. What becomes of the continuation becomes of the root too: shown, accepted,
partially accepted (``accepted_length``: the characters typed along it plus those
accepted of the continuation, the root's text up to where the user took it), or
rejected. So the root carries the user's decision, and the statistics count roots
alone: typing 5 characters of a suggestion, then Tab, is 1 suggestion accepted in
full, not 1 of 6.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from server.completion.recorder import Recorder
from server.completion.types import Outcome

if TYPE_CHECKING:
    from server.completion.survival import Position, SurvivalTracker

_REMEMBERED = 2048


@dataclass(slots=True)
class _Tracked:
    uri: str
    accepted: bool = False
    # Where the suggestion goes (the request's position, client units) and its text,
    # kept until it is accepted or can no longer be: survival needs them.
    text: str | None = None
    line: int = 0
    character: int = 0
    shown: bool = False
    # A type-ahead continuation: the suggestion it continues, and how many of that
    # one's characters the user had typed when it was made.
    root: str | None = None
    typed: int = 0


class OutcomeTracker:
    def __init__(self, recorder: Recorder, survival: SurvivalTracker | None = None) -> None:
        self.recorder = recorder
        self.survival = survival
        self._tracked: OrderedDict[str, _Tracked] = OrderedDict()
        self._last_shown: dict[str, str] = {}

    def produced(
        self, completion_id: str, uri: str, *, parent_id: str | None = None, typed: int = 0
    ) -> None:
        """A suggestion was made; `parent_id`: it is a type-ahead continuation of that
        one, made after the user typed its first `typed` characters."""
        self._tracked[completion_id] = _Tracked(uri=uri, root=parent_id, typed=max(typed, 0))
        while len(self._tracked) > _REMEMBERED:
            self._tracked.popitem(last=False)

    def placed(self, completion_id: str, *, line: int, character: int, text: str) -> None:
        """Where the client will insert the suggestion (the edge decides its range)."""
        tracked = self._tracked.get(completion_id)
        if tracked is not None and self.survival is not None:
            tracked.text, tracked.line, tracked.character = text, line, character

    def replaced(self, uri: str) -> None:
        """A fresh suggestion replaces the one on screen: that one was passed over."""
        shown_id = self._last_shown.pop(uri, None)
        tracked = self._tracked.get(shown_id) if shown_id else None
        if shown_id and tracked is not None and not tracked.accepted:
            tracked.text = None  # it will not be accepted now
            self.recorder.outcome(completion_id=shown_id, outcome=Outcome.REJECTED)
            root = self._root(tracked)
            if root is not None and not root[1].accepted:
                root[1].text = None
                self.recorder.outcome(completion_id=root[0], outcome=Outcome.REJECTED)

    def closed(self, uri: str) -> None:
        self._last_shown.pop(uri, None)
        for tracked in self._tracked.values():
            if tracked.uri == uri and not tracked.accepted:
                tracked.text = None
        if self.survival is not None:
            self.survival.closed(uri)

    def shown(self, completion_id: str) -> None:
        tracked = self._tracked.get(completion_id)
        if tracked is None:
            return  # not ours, or long forgotten
        self._last_shown[tracked.uri] = completion_id
        tracked.shown = True
        self.recorder.outcome(completion_id=completion_id, outcome=Outcome.SHOWN)
        root = self._root(tracked)
        if root is not None and not root[1].shown:  # the rest of it was on screen
            root[1].shown = True
            self.recorder.outcome(completion_id=root[0], outcome=Outcome.SHOWN)

    def accepted(self, completion_id: str, accepted_length: int | None = None) -> None:
        tracked = self._tracked.get(completion_id)
        if tracked is not None:
            tracked.accepted = True
        outcome = Outcome.ACCEPTED if accepted_length is None else Outcome.PARTIALLY_ACCEPTED
        self.recorder.outcome(
            completion_id=completion_id, outcome=outcome, accepted_length=accepted_length
        )
        root = None if tracked is None else self._root(tracked)
        if tracked is not None and root is not None:
            root[1].accepted = True
            root[1].text = None  # its survival is the continuation's
            # Accepting the rest of it after typing the start takes the whole root.
            taken = None if accepted_length is None else tracked.typed + accepted_length
            self.recorder.outcome(completion_id=root[0], outcome=outcome, accepted_length=taken)
        if self.survival is not None and tracked is not None and tracked.text is not None:
            text = tracked.text if accepted_length is None else tracked.text[:accepted_length]
            self.survival.accepted(
                completion_id=completion_id,
                uri=tracked.uri,
                text=text,
                line=tracked.line,
                column=tracked.character,
            )

    def _root(self, tracked: _Tracked) -> tuple[str, _Tracked] | None:
        """The suggestion `tracked` continues (a placeholder once it is forgotten)."""
        if tracked.root is None:
            return None
        return tracked.root, self._tracked.get(tracked.root) or _Tracked(uri=tracked.uri)

    # -- the document's edits, for survival ------------------------------------------

    def edited(self, uri: str, start: Position, end: Position, text: str) -> None:
        if self.survival is not None:
            self.survival.edited(uri, start, end, text)

    def rewritten(self, uri: str) -> None:
        if self.survival is not None:
            self.survival.rewritten(uri)

    def adopt(self, old: OutcomeTracker) -> None:
        """Continue `old`'s bookkeeping (the services were rebuilt for new settings)."""
        for completion_id, tracked in old._tracked.items():
            self._tracked.setdefault(completion_id, tracked)
        for uri, completion_id in old._last_shown.items():
            self._last_shown.setdefault(uri, completion_id)
        if old.survival is not None:
            if self.survival is not None:
                self.survival.adopt(old.survival)
            else:
                old.survival.close()

    def close(self) -> None:
        """Shutdown: pending survival checkpoints are dropped."""
        if self.survival is not None:
            self.survival.close()
