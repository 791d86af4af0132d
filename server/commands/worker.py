"""``zi-coder worker``: an RQ worker for Zi's queues, on the Redis of ``ZI_REDIS_URL``.

Jobs are JSON-serialised (never pickle: a job is data, not code from whoever can
write to Redis). A worker needs no editor; several workers on several machines
share one Redis.

``--kind`` picks rq's worker class:

- ``fork`` (default): rq's ``Worker`` forks a work horse per job, so a job timeout
  or a cancel (``send_stop_job_command``) kills just that job, and a crash inside a
  job cannot take the worker down.
- ``simple``: ``SimpleWorker`` runs jobs in the worker process itself: no fork per
  job (lower start latency), but a stop command cannot interrupt a running job
  and a job that crashes the interpreter kills the worker.
- ``pool``: ``WorkerPool`` of ``--processes`` forking workers, respawned if they die.

At start the worker warns if Redis's ``maxmemory-policy`` could evict queued jobs
(see :mod:`server.jobs.keyspace`). Every worker also runs rq's scheduler, which
re-enqueues jobs whose transient failure is being retried after an interval.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

log = logging.getLogger(__name__)

KINDS = ("fork", "simple", "pool")


PRELOADED = (
    "server.actions.jobs",
    "server.diagnostics.jobs",
    "inference.chat",
    "inference.client",
    "aiohttp",  # imported lazily by the client: ~300 ms per forked job otherwise
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kind",
        choices=KINDS,
        default="fork",
        help="fork: a work horse per job (default; timeouts and cancel kill only the job); "
        "simple: jobs in this process; pool: --processes forking workers",
    )
    parser.add_argument(
        "--processes", type=int, default=2, help="workers in a --kind pool (default 2)"
    )
    parser.add_argument("--name", default=None, help="worker name (default: rq's)")
    parser.add_argument("--burst", action="store_true", help="exit once the queues are empty")


def run(args: argparse.Namespace) -> int:
    from server.commands import configure_logging
    from server.settings import Settings

    settings = Settings()
    queue_url = settings.resolved_queue_url
    if not queue_url:
        sys.stderr.write(
            "zi-coder worker: set ZI_REDIS_URL (without Redis, jobs run inside the "
            "language server and no worker is needed)\n"
        )
        return 2
    configure_logging(settings.log_level, settings.log_file)  # secrets redacted, as the server's
    import redis
    from rq import Queue, SimpleWorker, Worker
    from rq.serializers import JSONSerializer

    from server.jobs import QUEUES
    from server.jobs.keyspace import eviction_problem

    # A fork worker forks per job: what the parent has imported, every job inherits.
    # Importing the job code here saves each job ~300 ms (measured by bench.diagnostics).
    for module in PRELOADED:
        importlib.import_module(module)
    kind = getattr(args, "kind", "fork")
    burst = bool(getattr(args, "burst", False))
    try:
        connection = redis.Redis.from_url(queue_url)
        connection.ping()
        problem = eviction_problem(connection)
    except redis.RedisError as exc:
        sys.stderr.write(f"zi-coder worker: cannot reach Redis at {queue_url}: {exc}\n")
        return 1
    if problem:
        log.warning("%s", problem)
    if kind == "pool":
        from rq.worker_pool import WorkerPool

        pool = WorkerPool(
            list(QUEUES),
            connection=connection,
            num_workers=max(1, int(getattr(args, "processes", 2))),
            worker_class=Worker,
            serializer=JSONSerializer,
        )
        pool.start(burst=burst, logging_level=settings.log_level.upper())
        return 0
    queues = [Queue(name, connection=connection, serializer=JSONSerializer) for name in QUEUES]
    worker_class = SimpleWorker if kind == "simple" else Worker
    worker = worker_class(
        queues, connection=connection, serializer=JSONSerializer, name=getattr(args, "name", None)
    )
    worker.work(with_scheduler=True, burst=burst)
    return 0
