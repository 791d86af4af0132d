"""Token counting for prompt budgets, in the served model's own tokens.

The latency path cannot wait for an HTTP round trip per keystroke, so counting is
synchronous and per line (lines change one at a time while a user types):

- :class:`LocalTokenCounter`: the model's ``tokenizer.json`` through ``tokenizers``;
  exact and fast. Used when a path is configured or vLLM reports a local model dir.
- :class:`RemoteTokenCounter`: vLLM's ``/tokenize``. Unknown lines get a
  conservative estimate now and an exact count in the background for next time.
- :class:`CharEstimateCounter`: chars/4, only when neither is available.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)


class TokenCounter(Protocol):
    exact: bool

    def count(self, text: str) -> int: ...


class CharEstimateCounter:
    exact = False

    def count(self, text: str) -> int:
        return math.ceil(len(text) / 4)


class _LineCache:
    def __init__(self, capacity: int) -> None:
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._capacity = capacity

    def get(self, line: str) -> int | None:
        n = self._counts.get(line)
        if n is not None:
            self._counts.move_to_end(line)
        return n

    def put(self, line: str, n: int) -> None:
        self._counts[line] = n
        if len(self._counts) > self._capacity:
            self._counts.popitem(last=False)


class LocalTokenCounter:
    exact = True

    def __init__(self, tokenizer_json: Path, cache_lines: int = 20_000) -> None:
        from tokenizers import Tokenizer  # lazy: keeps `initialize` fast

        self.path = tokenizer_json
        self._tokenizer = Tokenizer.from_file(str(tokenizer_json))
        self._cache = _LineCache(cache_lines)

    def count(self, text: str) -> int:
        total = 0
        for line in text.splitlines(keepends=True):
            n = self._cache.get(line)
            if n is None:
                n = len(self._tokenizer.encode(line, add_special_tokens=False).ids)
                self._cache.put(line, n)
            total += n
        return total


class RemoteTokenCounter:
    """Per-line counts from the model server, filled in the background."""

    exact = False
    # Source code averages 3-4 chars per token; assume 3 for unknown lines so a
    # budget built from estimates does not overflow the context window.
    _ESTIMATE_CHARS_PER_TOKEN = 3

    def __init__(
        self,
        tokenize: Callable[[str], Awaitable[int]],
        cache_lines: int = 20_000,
        max_pending: int = 512,
        pause_s: float = 0.005,
    ) -> None:
        self._tokenize = tokenize
        self._cache = _LineCache(cache_lines)
        self._pending: set[str] = set()
        self._in_flight: set[str] = set()
        self._max_pending = max_pending
        self._pause_s = pause_s
        self._filler: asyncio.Task[None] | None = None

    def count(self, text: str) -> int:
        total = 0
        missing: list[str] = []
        for line in text.splitlines(keepends=True):
            n = self._cache.get(line)
            if n is None:
                n = math.ceil(len(line) / self._ESTIMATE_CHARS_PER_TOKEN)
                missing.append(line)
            total += n
        if missing:
            self._schedule(missing)
        return total

    def _schedule(self, lines: list[str]) -> None:
        room = self._max_pending - len(self._pending)
        fresh = [line for line in lines if line not in self._in_flight]
        self._pending.update(fresh[: max(room, 0)])
        if self._filler is None or self._filler.done():
            try:
                self._filler = asyncio.get_running_loop().create_task(self._fill())
            except RuntimeError:  # no loop (sync caller): estimates only
                self._pending.clear()

    async def _fill(self) -> None:
        while self._pending:
            line = self._pending.pop()
            self._in_flight.add(line)
            try:
                self._cache.put(line, await self._tokenize(line))
            except Exception as exc:  # the estimate stays; the model client logs details
                log.debug("tokenize failed, keeping estimates: %s", exc)
                self._pending.clear()
                return
            finally:
                self._in_flight.discard(line)
            # Paced: these requests share the event loop with completions in flight.
            await asyncio.sleep(self._pause_s)
