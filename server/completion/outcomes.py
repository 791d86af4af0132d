"""What became of each suggestion: shown, accepted, partially accepted, rejected.

Clients report showing and acceptance; rejection is inferred: a suggestion that
was shown and is then replaced by a fresh one (not a type-ahead continuation of
it) was passed over.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from server.completion.recorder import Recorder
from server.completion.types import Outcome

_REMEMBERED = 2048


@dataclass(slots=True)
class _Tracked:
    uri: str
    accepted: bool = False


class OutcomeTracker:
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self._tracked: OrderedDict[str, _Tracked] = OrderedDict()
        self._last_shown: dict[str, str] = {}

    def produced(self, completion_id: str, uri: str) -> None:
        self._tracked[completion_id] = _Tracked(uri=uri)
        while len(self._tracked) > _REMEMBERED:
            self._tracked.popitem(last=False)

    def replaced(self, uri: str) -> None:
        """A fresh suggestion replaces the one on screen: that one was passed over."""
        shown_id = self._last_shown.pop(uri, None)
        tracked = self._tracked.get(shown_id) if shown_id else None
        if shown_id and tracked is not None and not tracked.accepted:
            self.recorder.outcome(completion_id=shown_id, outcome=Outcome.REJECTED)

    def closed(self, uri: str) -> None:
        self._last_shown.pop(uri, None)

    def shown(self, completion_id: str) -> None:
        tracked = self._tracked.get(completion_id)
        if tracked is None:
            return  # not ours, or long forgotten
        self._last_shown[tracked.uri] = completion_id
        self.recorder.outcome(completion_id=completion_id, outcome=Outcome.SHOWN)

    def accepted(self, completion_id: str, accepted_length: int | None = None) -> None:
        tracked = self._tracked.get(completion_id)
        if tracked is not None:
            tracked.accepted = True
        outcome = Outcome.ACCEPTED if accepted_length is None else Outcome.PARTIALLY_ACCEPTED
        self.recorder.outcome(
            completion_id=completion_id, outcome=outcome, accepted_length=accepted_length
        )
