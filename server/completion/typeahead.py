"""Type-ahead cache: typing the first characters of a suggestion needs no model call.

Each shown completion is remembered with an anchor (the cursor offset and the text
just before it) and the text after it. A later request whose document has exactly
the suggestion's first characters inserted at the anchor gets the rest at once.
Comparisons look at bounded slices, so a lookup costs the same in a 10 MB file.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from server.completion.types import Completion

_TAIL = 256
_HEAD = 256


@dataclass(frozen=True, slots=True)
class _Entry:
    anchor: int
    tail: str
    head: str
    completion: Completion


class TypeAheadCache:
    def __init__(self, per_document: int = 8, documents: int = 256) -> None:
        self._entries: OrderedDict[str, list[_Entry]] = OrderedDict()
        self._per_document = per_document
        self._documents = documents

    def remember(self, uri: str, text: str, offset: int, completion: Completion) -> None:
        entry = _Entry(
            anchor=offset,
            tail=text[max(offset - _TAIL, 0) : offset],
            head=text[offset : offset + _HEAD],
            completion=completion,
        )
        entries = self._entries.pop(uri, [])
        entries.insert(0, entry)
        del entries[self._per_document :]
        self._entries[uri] = entries
        while len(self._entries) > self._documents:
            self._entries.popitem(last=False)

    def lookup(self, uri: str, text: str, offset: int) -> tuple[Completion, str] | None:
        """The remembered completion this position continues, and the part still untyped."""
        for entry in self._entries.get(uri, ()):
            typed = offset - entry.anchor
            suggestion = entry.completion.text
            if not 0 <= typed < len(suggestion):
                continue
            if text[offset : offset + len(entry.head)] != entry.head:
                continue
            if text[entry.anchor : offset] != suggestion[:typed]:
                continue
            if text[max(entry.anchor - len(entry.tail), 0) : entry.anchor] != entry.tail:
                continue
            return entry.completion, suggestion[typed:]
        return None

    def forget(self, uri: str) -> None:
        self._entries.pop(uri, None)
