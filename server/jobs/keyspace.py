"""Cache and queue in one Redis without eviction dropping jobs.

The cache writes every key with a TTL (``zi:cache:completion:*``); RQ keeps queued
jobs without one. Under a ``noeviction`` or ``volatile-*`` ``maxmemory-policy``
Redis may only evict keys that carry a TTL, so cache pressure can drop cache
entries and expired-soon results, never a queued job. ``allkeys-*`` policies may
evict a queued job: :func:`eviction_problem` says so, and the worker logs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis import Redis

SAFE_POLICIES = frozenset(
    {"noeviction", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"}
)


def eviction_problem(connection: Redis) -> str | None:
    """A warning if this Redis may evict queued jobs under memory pressure, else None."""
    import redis

    try:
        config = connection.config_get("maxmemory*")
    except redis.ResponseError as exc:  # managed Redis often disables CONFIG
        return (
            f"cannot read maxmemory-policy ({exc}); make sure it is noeviction or volatile-*, "
            "or queued jobs may be evicted under memory pressure"
        )
    policy = str(config.get("maxmemory-policy", "noeviction"))
    if policy in SAFE_POLICIES:
        return None
    maxmemory = int(config.get("maxmemory", 0) or 0)
    limit = f"maxmemory {maxmemory} bytes" if maxmemory else "no maxmemory set yet"
    return (
        f"Redis maxmemory-policy is {policy} ({limit}): under memory pressure Redis may evict "
        "queued RQ jobs along with cache keys. Set it to noeviction or volatile-lru (every "
        "cache key has a TTL, queued jobs none), or give the queue a Redis of its own "
        "(ZI_QUEUE_REDIS_URL)"
    )
