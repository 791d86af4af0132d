"""Snippets from other open documents that look like the code around the cursor.

Jaccard similarity of identifier sets over sliding windows of lines. Windows are
indexed once per document version, and the answer for a query is remembered, so a
user typing along one line gets the same snippets every time (a stable prompt
head keeps vLLM's prefix cache hitting). Work stops at a deadline: snippets are
a bonus, never a reason to be late.

A document is redacted (``server.redact``) once per version, when it is indexed, so a
secret never becomes a snippet and a key block is found whole, not cut into windows.
Which documents may be searched at all is the caller's business (``ContextBuilder``
leaves out the files the context rules exclude).
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from server.completion.types import Document
from server.redact import redact

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")
_WINDOW = 12
_STEP = 6
_MIN_SCORE = 0.12
_MAX_LINES_INDEXED = 5_000  # a huge generated file says little per window


@dataclass(frozen=True, slots=True)
class Snippet:
    path: str
    start_line: int
    text: str
    score: float


@dataclass(frozen=True, slots=True)
class _Window:
    start_line: int
    text: str
    idents: frozenset[str]


def identifiers(text: str) -> frozenset[str]:
    return frozenset(_IDENT.findall(text))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a or not b:
        return 0.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)


class SnippetIndex:
    """Windows of the most recently used documents, like an editor's neighbouring tabs.

    Only the `max_documents` documents touched last (opened, edited, completed in)
    and in the same language are searched: that bounds the work per request and
    the memory, and recent documents are the relevant ones.
    """

    def __init__(self, max_documents: int = 20) -> None:
        self._windows: dict[str, tuple[int, list[_Window]]] = {}
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._max_documents = max_documents
        self._last_key: tuple[object, ...] | None = None
        self._last: list[Snippet] = []

    def touch(self, uri: str) -> None:
        self._recent[uri] = None
        self._recent.move_to_end(uri)
        while len(self._recent) > 4 * self._max_documents:
            self._recent.popitem(last=False)

    def forget(self, uri: str) -> None:
        self._windows.pop(uri, None)
        self._recent.pop(uri, None)

    def best(
        self,
        query: str,
        documents: Iterable[Document],
        *,
        exclude_uri: str,
        max_chars: int,
        language_id: str | None = None,
        time_limit_s: float,
    ) -> list[Snippet]:
        by_uri = {
            d.uri: d
            for d in documents
            if d.uri != exclude_uri and (language_id is None or d.language_id == language_id)
        }
        recent = [u for u in reversed(self._recent) if u in by_uri]
        others = [u for u in by_uri if u not in self._recent]
        docs = [by_uri[u] for u in (recent + others)[: self._max_documents]]
        if not docs or max_chars <= 0:
            return []
        key = (query, max_chars, tuple((d.uri, d.version) for d in docs))
        if key == self._last_key:
            return self._last
        deadline = time.perf_counter() + time_limit_s
        wanted = identifiers(query)
        scored: list[tuple[float, str, _Window]] = []
        complete = True
        for doc in docs:
            if time.perf_counter() > deadline:
                complete = False
                break
            for window in self._index(doc):
                score = jaccard(wanted, window.idents)
                if score >= _MIN_SCORE:
                    scored.append((score, doc.path, window))
        scored.sort(key=lambda item: -item[0])
        chosen: list[Snippet] = []
        used = 0
        for score, path, window in scored:
            if used + len(window.text) > max_chars:
                continue
            if any(
                c.path == path and abs(c.start_line - window.start_line) < _WINDOW for c in chosen
            ):
                continue
            chosen.append(Snippet(path, window.start_line, window.text, round(score, 3)))
            used += len(window.text)
        if complete:  # a partial answer is not worth remembering
            self._last_key, self._last = key, chosen
        return chosen

    def _index(self, doc: Document) -> list[_Window]:
        cached = self._windows.get(doc.uri)
        if cached is not None and cached[0] == doc.version:
            return cached[1]
        lines = doc.text.split("\n", _MAX_LINES_INDEXED)[:_MAX_LINES_INDEXED]
        lines = redact("\n".join(lines)).split("\n")
        windows = []
        starts = list(range(0, max(len(lines) - _WINDOW, 0) + 1, _STEP))
        if starts[-1] + _WINDOW < len(lines):
            starts.append(len(lines) - _WINDOW)  # the end of the file deserves a window too
        for start in starts:
            text = "\n".join(lines[start : start + _WINDOW]).strip("\n")
            if text.strip():
                windows.append(_Window(start, text, identifiers(text)))
        self._windows[doc.uri] = (doc.version, windows)
        # Keep the index to about the documents that can be searched (memory bound).
        while len(self._windows) > 2 * self._max_documents:
            stale = next(
                (u for u in self._recent if u in self._windows and u != doc.uri),
                next(iter(self._windows)),
            )
            del self._windows[stale]
        return windows
