"""Survival of accepted suggestions: how much of the accepted text is still there
30 s, 2 min and 10 min later (``history.survival_checkpoints_s``).

Each acceptance is tracked as a range of LSP positions (line, column in the
client's position units). Edits move it with position arithmetic alone, as
editors move their own marks: no document text is read and no offset computed
per keystroke, and a notification's changes apply one after another, as the
client sent them. The edge (``server.lsp``) reports edits and supplies the
texts and the unit conversions (:class:`DocumentTexts`).

At a checkpoint the range's current text is compared with the accepted text
(difflib's matching blocks, bounded in size). Where the range is not to be
trusted (the whole document was replaced, or the accepted text never showed up
where it was expected), the accepted text is looked for near the range instead.
When a document closes, every checkpoint still ahead of its acceptances is
recorded at once, marked closed and judged on the document's last text, so that
each checkpoint's rows cover every acceptance followed, its document open or
closed by then (``zi-coder stats`` counts the closed ones apart). On shutdown
pending checkpoints are dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from os.path import commonprefix
from typing import Protocol

from server.completion.recorder import Recorder, SurvivalEvent

log = logging.getLogger(__name__)

Position = tuple[int, int]  # (line, column in the client's position units)

MAX_TRACKED = 1000  # acceptances followed at once; the oldest is dropped beyond
SEARCH_RADIUS = 4096  # characters each side of the expected place
_SLACK = 32  # characters of context around where the text should be
_CHAR_BUDGET = 100_000  # accepted x current characters compared one by one (about a millisecond)
_MIN_RUN = 3  # outside the tracked range, shorter runs in common are chance
_MIN_PROBE, _MAX_PROBE = 4, 16  # pieces looked for to place a search window


class DocumentTexts(Protocol):
    """The edge's view of the open documents, in the client's position units."""

    def text(self, uri: str) -> str | None: ...

    def offset(self, text: str, line: int, column: int) -> int: ...

    def position(self, text: str, offset: int) -> Position: ...

    def width(self, segment: str) -> int: ...


# -- positions ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Edit:
    """`start`..`end` replaced by text whose end lands at `new_end`."""

    start: Position
    end: Position
    new_end: Position
    inserted: int  # characters of the new text


def edit_of(start: Position, end: Position, text: str, documents: DocumentTexts) -> Edit:
    newlines = text.count("\n")
    if newlines == 0:
        new_end = (start[0], start[1] + documents.width(text))
    else:
        new_end = (start[0] + newlines, documents.width(text[text.rfind("\n") + 1 :]))
    return Edit(start, end, new_end, len(text))


def _after(p: Position, edit: Edit) -> Position:
    """Where `p`, at or after the edit's end, is once the edit is applied."""
    end, new_end = edit.end, edit.new_end
    if p[0] == end[0]:
        return (new_end[0], new_end[1] + p[1] - end[1])
    return (p[0] + new_end[0] - end[0], p[1])


def shift(
    start: Position, end: Position, edit: Edit, *, growing: bool = False
) -> tuple[Position, Position, bool]:
    """The range after `edit`, and whether the edit was absorbed as the awaited text.

    Text inserted at the range's start moves it; at its end, it is not part of it
    (the user typing on), unless the range is `growing`: still waiting for accepted
    text that the client has not sent yet. Text replacing part of the range joins
    it: the judgment counts only what still matches the accepted text.
    """
    s, e = edit.start, edit.end
    if growing and s <= end <= e:
        return (start if start <= s else s), edit.new_end, True
    if e <= start:
        return _after(start, edit), _after(end, edit), False
    if s >= end:
        return start, end, False
    new_start = start if start <= s else s
    new_end = _after(end, edit) if end >= e else edit.new_end
    return new_start, new_end, False


# -- judgment -----------------------------------------------------------------


def _chars(accepted: str, current: str, min_run: int) -> int:
    blocks = SequenceMatcher(None, accepted, current, autojunk=False).get_matching_blocks()
    return sum(block.size for block in blocks if block.size >= min_run)


def _common_ends(a: str, b: str) -> int:
    prefix = len(commonprefix([a, b]))  # noqa: RUF071 (strings, not paths)
    suffix = len(commonprefix([a[prefix:][::-1], b[prefix:][::-1]]))  # noqa: RUF071
    return prefix + suffix


def _windows(accepted: str, current: str) -> list[str]:
    """Parts of `current` of about `accepted`'s size where a piece of it (a line, else
    a few characters) is found, at most three: where what is left of it would be."""
    n = len(accepted)
    lines = sorted(accepted.splitlines(keepends=True), key=len, reverse=True)[:4]
    size = min(_MAX_PROBE, max(_MIN_PROBE, n // 8))
    probes = [line.strip() for line in lines]
    probes += [accepted[i : i + size] for i in range(0, n, max(size, n // 8))]
    starts: list[int] = []
    for probe in probes:
        if len(probe) < min(n, _MIN_PROBE):
            continue
        found = current.find(probe)
        if found >= 0:
            start = max(0, found - accepted.find(probe) - _SLACK)
            if all(abs(start - other) > _SLACK for other in starts):
                starts.append(start)
                if len(starts) == 3:
                    break
    return [current[start : start + n + 2 * _SLACK] for start in starts]


def _matched(accepted: str, current: str, min_run: int = 1) -> int:
    """Characters of `accepted` found in order in `current`: difflib's matching blocks.

    Character matching is quadratic (a 1,000-character suggestion would hold the
    event loop for a tenth of a second), so large texts are narrowed to where the
    accepted text lines up, and long ones are compared by lines first.
    """
    n = len(accepted)
    if len(current) > 2 * n + 2 * _SLACK:
        return max((_matched(accepted, w, min_run) for w in _windows(accepted, current)), default=0)
    if n * len(current) <= _CHAR_BUDGET:
        return _chars(accepted, current, min_run)
    a = accepted.splitlines(keepends=True)
    c = current.splitlines(keepends=True)
    total = 0
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, a, c, autojunk=False).get_opcodes():
        if tag == "equal":
            total += sum(map(len, a[i1:i2]))
        elif tag == "replace":
            a_part, c_part = "".join(a[i1:i2]), "".join(c[j1:j2])
            if len(a_part) * len(c_part) <= _CHAR_BUDGET:
                total += _chars(a_part, c_part, min_run)
            else:  # long edited lines: what each kept at its ends
                pairs = zip(a[i1:i2], c[j1:j2], strict=False)
                total += sum(_common_ends(x, y) for x, y in pairs)
    return total


def kept_chars(accepted: str, current: str) -> int:
    """How many of `accepted`'s characters `current` (the tracked range) still holds."""
    if not accepted or not current:
        return 0
    if accepted in current:
        return len(accepted)
    # Far more text than was accepted (pasted over it, say): runs, not chance letters.
    large = len(current) > 2 * len(accepted) + 2 * _SLACK
    return _matched(accepted, current, _MIN_RUN if large else 1)


def nearest(text: str, accepted: str, center: int, radius: int = SEARCH_RADIUS) -> int | None:
    """Offset of the copy of `accepted` closest to `center`, within `radius`."""
    lo = max(0, center - radius)
    hi = min(len(text), center + len(accepted) + radius)
    best: int | None = None
    found = text.find(accepted, lo, hi)
    while found >= 0:
        if best is None or abs(found - center) < abs(best - center):
            best = found
        if found >= center:
            break  # later copies are farther away
        found = text.find(accepted, found + 1, hi)
    return best


def judge_near(accepted: str, text: str, center: int) -> tuple[int, int | None]:
    """Kept characters judged by searching near `center`, and the exact copy's offset."""
    if not accepted:
        return 0, None
    found = nearest(text, accepted, center)
    if found is not None:
        return len(accepted), found
    # Not there as it was: what is left of it where it should be, in runs, since
    # single letters of the code around it match by chance.
    n = len(accepted)
    window = text[max(0, center - n - _SLACK) : center + 2 * n + _SLACK]
    return _matched(accepted, window, min(n, _MIN_RUN)), None


# -- tracking -----------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _Acceptance:
    completion_id: str
    uri: str
    text: str  # what has been accepted so far
    start: Position
    end: Position
    checkpoints: list[int]  # seconds after acceptance still to judge, ascending
    accepted_at: float  # loop time
    missing: int = 0  # accepted characters not yet seen arriving at the range's end
    floating: bool = False  # the document was replaced wholesale: the range is a guess
    timer: asyncio.TimerHandle | None = None


@dataclass(eq=False, slots=True)
class _Document:
    acceptances: list[_Acceptance] = field(default_factory=list)
    text: str | None = None  # the last text seen (a reference): judged on close
    last: Position = (0, 0)  # at or after every range's end


class SurvivalTracker:
    def __init__(
        self,
        checkpoints_s: Sequence[int],
        *,
        recorder: Recorder,
        documents: DocumentTexts,
        max_tracked: int = MAX_TRACKED,
    ) -> None:
        # Validated by the settings (history.survival_checkpoints_s); 0 serves tests.
        if any(c < 0 for c in checkpoints_s):
            raise ValueError(f"survival checkpoints must be >= 0 s, not {list(checkpoints_s)}")
        self.checkpoints = sorted(set(checkpoints_s))
        self.recorder = recorder
        self.documents = documents
        self.max_tracked = max_tracked
        self._by_id: OrderedDict[str, _Acceptance] = OrderedDict()
        self._by_uri: dict[str, _Document] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    # -- events from the outcome tracker and the edge ------------------------------

    def accepted(self, *, completion_id: str, uri: str, text: str, line: int, column: int) -> None:
        """`text` (all accepted so far) was inserted at (line, column), or is about to be."""
        if not text or not self.checkpoints:
            return
        acc = self._by_id.get(completion_id)
        if acc is not None:
            if len(text) > len(acc.text):  # a further step of a partial acceptance
                grown = len(text) - len(acc.text)
                acc.text = text
                self._place(acc, grown)
            return
        doc = self.documents.text(uri)
        if doc is None:
            return
        loop = asyncio.get_running_loop()
        acc = _Acceptance(
            completion_id,
            uri,
            text,
            start=(line, column),
            end=(line, column),
            checkpoints=list(self.checkpoints),
            accepted_at=loop.time(),
        )
        self._place(acc, len(text), doc)
        self._by_id[completion_id] = acc
        document = self._by_uri.setdefault(uri, _Document())
        document.acceptances.append(acc)
        document.text = doc
        document.last = max(document.last, acc.end)
        self._schedule(acc, loop)
        while len(self._by_id) > self.max_tracked:
            self._forget(next(iter(self._by_id.values())))

    def edited(self, uri: str, start: Position, end: Position, text: str) -> None:
        """One incremental change; called per change, in the order the client sent them."""
        document = self._by_uri.get(uri)
        if document is None:
            return
        if start > document.last:  # below every range: the common case, typing on
            document.text = self.documents.text(uri)
            return
        edit: Edit | None = None
        lines_added: int | None = None
        last = (0, 0)
        for acc in document.acceptances:
            if start < acc.end or (acc.missing and start == acc.end):
                if end[0] < acc.start[0]:  # on lines above it: only line numbers may move
                    if lines_added is None:
                        lines_added = text.count("\n") - (end[0] - start[0])
                    if lines_added:
                        acc.start = (acc.start[0] + lines_added, acc.start[1])
                        acc.end = (acc.end[0] + lines_added, acc.end[1])
                else:
                    if edit is None:
                        edit = edit_of(start, end, text, self.documents)
                    acc.start, acc.end, absorbed = shift(
                        acc.start, acc.end, edit, growing=acc.missing > 0
                    )
                    if absorbed:
                        acc.missing = max(0, acc.missing - edit.inserted)
            if acc.end > last:
                last = acc.end
        document.last = last
        document.text = self.documents.text(uri)

    def rewritten(self, uri: str) -> None:
        """The client sent the whole document: positions are guesses from now on."""
        document = self._by_uri.get(uri)
        if document is None:
            return
        for acc in document.acceptances:
            acc.floating = True
            acc.missing = 0
        document.text = self.documents.text(uri)

    def closed(self, uri: str) -> None:
        """Record every checkpoint still ahead of each acceptance of `uri` as closed,
        judged on the last text: were only the next one recorded, a document closed
        within 30 s would be missing from the 2 and 10 min samples."""
        document = self._by_uri.pop(uri, None)
        if document is None:
            return
        for acc in document.acceptances:
            self._by_id.pop(acc.completion_id, None)
            if acc.timer is not None:
                acc.timer.cancel()
                acc.timer = None
            if acc.checkpoints:
                kept = self._judge(acc, document.text) if document.text is not None else 0
                for after_s in acc.checkpoints:
                    self._record(acc, after_s, kept, closed=True)
                acc.checkpoints.clear()

    def close(self) -> None:
        """Shutdown: drop pending checkpoints without recording them."""
        for acc in self._by_id.values():
            if acc.timer is not None:
                acc.timer.cancel()
        self._by_id.clear()
        self._by_uri.clear()

    def adopt(self, old: SurvivalTracker) -> None:
        """Take over `old`'s acceptances (new settings), keeping their schedules."""
        loop = asyncio.get_running_loop()
        pending = list(old._by_id.values())
        old.close()
        for acc in pending:
            acc.timer = None
            self._by_id[acc.completion_id] = acc
            self._by_uri.setdefault(acc.uri, _Document()).acceptances.append(acc)
            self._reaches(acc)
            self._schedule(acc, loop)
        for uri, document in self._by_uri.items():
            document.text = self.documents.text(uri)
        while len(self._by_id) > self.max_tracked:
            self._forget(next(iter(self._by_id.values())))

    def kept(self, completion_id: str) -> int | None:
        """How many accepted characters are there now (None: not tracked)."""
        acc = self._by_id.get(completion_id)
        doc = None if acc is None else self.documents.text(acc.uri)
        return None if acc is None or doc is None else self._judge(acc, doc)

    # -- internals ------------------------------------------------------------------

    def _place(self, acc: _Acceptance, grown: int, doc: str | None = None) -> None:
        """Fit the range to the accepted text if it is where expected; else await it."""
        doc = self.documents.text(acc.uri) if doc is None else doc
        if doc is None:
            return
        offset = self.documents.offset(doc, *acc.start)
        if not acc.floating and doc.startswith(acc.text, offset):
            acc.end = self.documents.position(doc, offset + len(acc.text))
            acc.missing = 0
            self._reaches(acc)
        else:
            # E.g. Neovim sends the partial acceptance before its (debounced) didChange.
            acc.missing += grown

    def _schedule(self, acc: _Acceptance, loop: asyncio.AbstractEventLoop) -> None:
        if not acc.checkpoints:
            self._forget(acc)
            return
        due = acc.accepted_at + acc.checkpoints[0]
        acc.timer = loop.call_at(due, self._due, acc)

    def _due(self, acc: _Acceptance) -> None:
        acc.timer = None
        if self._by_id.get(acc.completion_id) is not acc:
            return
        try:
            doc = self.documents.text(acc.uri)
            if doc is None:  # closed without our hearing of it
                self.closed(acc.uri)
                return
            after_s = acc.checkpoints.pop(0)
            self._record(acc, after_s, self._judge(acc, doc), closed=False)
        except Exception:  # a bug must cost one measurement, not the session
            log.exception("survival check of %s failed", acc.completion_id)
            self._forget(acc)
            return
        self._schedule(acc, asyncio.get_running_loop())

    def _judge(self, acc: _Acceptance, doc: str) -> int:
        if acc.floating or acc.missing:
            center = self.documents.offset(doc, *acc.start)
            kept, found = judge_near(acc.text, doc, center)
            if found is not None:  # relocated: track it from here again
                acc.start = self.documents.position(doc, found)
                acc.end = self.documents.position(doc, found + len(acc.text))
                acc.floating = False
                acc.missing = 0
                self._reaches(acc)
            return kept
        start = self.documents.offset(doc, *acc.start)
        end = max(start, self.documents.offset(doc, *acc.end))
        return kept_chars(acc.text, doc[start:end])

    def _record(self, acc: _Acceptance, after_s: int, kept: int, *, closed: bool) -> None:
        accepted = len(acc.text)
        self.recorder.survival(
            SurvivalEvent(
                completion_id=acc.completion_id,
                after_s=after_s,
                accepted_chars=accepted,
                kept_chars=min(kept, accepted),
                document_closed=closed,
            )
        )

    def _reaches(self, acc: _Acceptance) -> None:
        """Keep the document's `last` at or after `acc`'s (moved) end."""
        document = self._by_uri.get(acc.uri)
        if document is not None and acc.end > document.last:
            document.last = acc.end

    def _forget(self, acc: _Acceptance) -> None:
        if acc.timer is not None:
            acc.timer.cancel()
            acc.timer = None
        self._by_id.pop(acc.completion_id, None)
        document = self._by_uri.get(acc.uri)
        if document is not None:
            if acc in document.acceptances:
                document.acceptances.remove(acc)
            if not document.acceptances:
                del self._by_uri[acc.uri]
