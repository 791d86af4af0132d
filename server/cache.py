"""The shared completion cache: Redis when configured, else in-process.

Keys are digests of the rendered prompt, the model and the sampling parameters,
so any editor or server process that renders the same prompt gets the same
completion with no model call. Values live under their own key prefix with a TTL;
job queues (a later feature) use a separate prefix, so cache eviction never drops
jobs. If Redis goes away, the cache falls back to memory with one warning and
tries Redis again after a cool-down; a Redis that restarted is simply reconnected
to (a command that finds its pooled connection closed is sent once more).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, TypeVar

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

KEY_PREFIX = "zi:cache:completion:"

T = TypeVar("T")


class CompletionCache(Protocol):
    async def get(self, key: str) -> str | None: ...

    async def set(self, key: str, value: str, ttl_s: int) -> None: ...

    async def aclose(self) -> None: ...


class MemoryCache:
    def __init__(self, capacity: int = 4096) -> None:
        self._items: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._capacity = capacity

    async def get(self, key: str) -> str | None:
        item = self._items.get(key)
        if item is None:
            return None
        expires, value = item
        if expires < time.monotonic():
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return value

    async def set(self, key: str, value: str, ttl_s: int) -> None:
        self._items[key] = (time.monotonic() + ttl_s, value)
        self._items.move_to_end(key)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    async def aclose(self) -> None:
        self._items.clear()


class RedisCache:
    """Redis-backed cache that degrades to `fallback` while Redis is unreachable."""

    def __init__(
        self,
        url: str,
        *,
        fallback: MemoryCache,
        on_problem: Callable[[str], None],
        on_recovered: Callable[[str], None],
        retry_after_s: float = 15.0,
        timeout_s: float = 0.5,
    ) -> None:
        self.url = url
        self._fallback = fallback
        self._on_problem = on_problem
        self._on_recovered = on_recovered
        self._retry_after_s = retry_after_s
        self._timeout_s = timeout_s
        self._redis: Redis | None = None
        self._down_until = 0.0
        self._down = False

    @property
    def degraded(self) -> bool:
        return self._down

    def _client(self) -> Redis:
        if self._redis is None:
            from redis.asyncio import Redis  # lazy: ~0.4 s of imports, not on the start path

            self._redis = Redis.from_url(
                self.url,
                socket_connect_timeout=self._timeout_s,
                socket_timeout=self._timeout_s,
                decode_responses=True,
            )
        return self._redis

    def _usable(self) -> bool:
        return not self._down or time.monotonic() >= self._down_until

    def _failed(self, exc: Exception) -> None:
        self._down_until = time.monotonic() + self._retry_after_s
        if not self._down:
            self._down = True
            self._on_problem(
                f"Redis at {self.url} is unreachable ({exc.__class__.__name__}: {exc}); "
                "using the in-process cache until it is back"
            )

    def _succeeded(self) -> None:
        if self._down:
            self._down = False
            self._on_recovered(f"Redis at {self.url} is reachable again; shared cache resumed")

    async def _command(self, op: Callable[[Redis], Awaitable[T]]) -> T:
        """`op` on the client, once more on a fresh connection if the pooled one was
        closed under it: after a Redis restart every pooled connection is dead, and
        the first command to find one must not put the cache in memory for a while."""
        from redis.exceptions import ConnectionError as RedisConnectionError

        client = self._client()
        try:
            return await op(client)
        except RedisConnectionError as exc:
            log.debug("redis connection lost (%s); trying a new one", exc)
            return await op(client)

    async def get(self, key: str) -> str | None:
        if self._usable():
            try:
                value = await self._command(lambda r: r.get(KEY_PREFIX + key))
            except Exception as exc:  # RedisError, OSError: all mean "not now"
                self._failed(exc)
            else:
                self._succeeded()
                return value if isinstance(value, str) else None
        return await self._fallback.get(key)

    async def set(self, key: str, value: str, ttl_s: int) -> None:
        await self._fallback.set(key, value, ttl_s)
        if not self._usable():
            return
        try:
            await self._command(lambda r: r.set(KEY_PREFIX + key, value, ex=ttl_s))
        except Exception as exc:
            self._failed(exc)
        else:
            self._succeeded()

    async def aclose(self) -> None:
        if self._redis is not None:
            try:
                await self._redis.aclose()
            except Exception as exc:  # closing a dead connection may fail; nothing to lose
                log.debug("closing redis: %s", exc)
