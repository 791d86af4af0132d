"""What the diagnostics service remembers per document, and the review cache's format.

Each group of diagnostics (static, notices, review) keeps the text it was computed
on, unchanged. Placing a group on the document as it is now maps it from that
text every time (the last mapping is memoised), so a line edited and then put
back gets its diagnostics back, and a mapping can never drift.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from server.diagnostics import changes
from server.diagnostics.types import Diagnostic, Severity

if TYPE_CHECKING:
    from server.actions.types import Snapshot

CACHE_FORMAT = "1"  # bump when Diagnostic's fields change: old entries are then misses


@dataclass(frozen=True)
class Group:
    """Diagnostics and the text they were computed on (None: nothing computed)."""

    items: tuple[Diagnostic, ...] = ()
    text: str | None = None
    _placed: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    def on(self, text: str) -> list[Diagnostic]:
        """The items moved onto `text`: lines that did not change keep theirs."""
        if not self.items or self.text is None or self.text == text:
            return list(self.items)
        with self._lock:  # publishes and pulls place groups from worker threads
            if self._placed.get("text") != text:
                self._placed["items"] = changes.carry_over(list(self.items), self.text, text)
                self._placed["text"] = text
            return list(self._placed["items"])


@dataclass
class DocState:
    static: Group = field(default_factory=Group)
    notices: Group = field(default_factory=Group)
    # The last review applied (positions on its own text): shown, and the base for
    # "what changed" when the next review is asked for.
    review: Group = field(default_factory=Group)
    static_generation: int = 0
    review_generation: int = 0  # one per save that wants a review
    applied_generation: int = 0  # the newest review shown
    debounce: asyncio.Task[None] | None = None
    worker: asyncio.Task[None] | None = None  # reviews of this document, one at a time
    wanted: tuple[Snapshot, int] | None = None  # the newest save waiting for the worker

    def tasks(self) -> list[asyncio.Task[None]]:
        return [t for t in (self.debounce, self.worker) if t is not None and not t.done()]


def merged(state: DocState, text: str, least: Severity, review: bool) -> list[Diagnostic]:
    shown = [d for d in state.review.on(text) if d.severity <= least] if review else []
    return [*state.notices.on(text), *state.static.on(text), *shown]


def cache_key(parts: tuple[str, ...], text: str) -> str:
    digest = hashlib.sha256()
    for part in (CACHE_FORMAT, *parts):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(text.encode("utf-8", "surrogatepass"))
    return f"zi:review:{digest.hexdigest()}"


def encode(items: list[Diagnostic]) -> str:
    return json.dumps([dataclasses.asdict(d) for d in items])


def decode(raw: str) -> list[Diagnostic] | None:
    """The cached items, or None when the entry cannot be read (a miss)."""
    try:
        out = []
        for item in json.loads(raw):
            item["severity"] = Severity(item["severity"])
            out.append(Diagnostic(**item))
        return out
    except (ValueError, TypeError, KeyError):
        return None


def result_id(items: list[Diagnostic]) -> str:
    digest = hashlib.sha256(repr([d.key() for d in items]).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:16]
