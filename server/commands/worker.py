"""``zi-coder worker``: an RQ worker for Zi's queues, on the Redis of ``ZI_REDIS_URL``.

Jobs are JSON-serialised (never pickle: a job is data, not code from whoever can
write to Redis). A worker needs no editor; several workers on several machines
share one Redis.
"""

from __future__ import annotations

import argparse
import logging
import sys

log = logging.getLogger(__name__)


def run(args: argparse.Namespace) -> int:
    from server.settings import Settings

    settings = Settings()
    if not settings.redis_url:
        sys.stderr.write(
            "zi-coder worker: set ZI_REDIS_URL (without Redis, jobs run inside the "
            "language server and no worker is needed)\n"
        )
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    import redis
    from rq import Queue, Worker
    from rq.serializers import JSONSerializer

    from server.jobs import QUEUES

    try:
        connection = redis.Redis.from_url(settings.redis_url)
        connection.ping()
    except redis.RedisError as exc:
        sys.stderr.write(f"zi-coder worker: cannot reach Redis at {settings.redis_url}: {exc}\n")
        return 1
    queues = [Queue(name, connection=connection, serializer=JSONSerializer) for name in QUEUES]
    worker = Worker(
        queues, connection=connection, serializer=JSONSerializer, name=getattr(args, "name", None)
    )
    worker.work(with_scheduler=True, burst=bool(getattr(args, "burst", False)))
    return 0
