"""Job queue benchmark: enqueue→start latency and jobs/s for each RQ worker kind.

    uv run python -m bench.jobs [--kinds fork,simple,pool] [--workers 1,4] [--jobs 200]

For each worker kind (``zi-coder worker --kind``) and worker count, against a real
Valkey started here: ``--latency-jobs`` no-op jobs submitted one at a time through
``RqRunner`` (the language server's path), each awaited before the next, give the
enqueue→start latency from RQ's own timestamps (``enqueued_at`` → ``started_at``:
queue pickup, plus the fork for ``fork`` and ``pool``); then ``--jobs`` no-op jobs
submitted at once give jobs/s (first enqueue to last end). ``pool`` is one
``WorkerPool`` process with N workers; the others are N worker processes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from server.jobs.spec import job_function

ROOT = Path(__file__).resolve().parent.parent


@job_function
def noop(i: int) -> int:
    """The job measured: nothing, so the figures are the queue's own cost."""
    return i


def _start_workers(kind: str, count: int, url: str, log: Path) -> list[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZI_")}
    env.update({"ZI_REDIS_URL": url, "ZI_LOG_LEVEL": "WARNING"})
    command = [sys.executable, "-m", "server", "worker", "--kind", kind]
    commands = [[*command, "--processes", str(count)]] if kind == "pool" else [command] * count
    with log.open("ab") as out:
        return [
            subprocess.Popen(
                c, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
            for c in commands
        ]


def _stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
    for worker in workers:
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def _wait_registered(url: str, count: int, timeout_s: float = 60) -> None:
    import redis
    from rq import Worker

    connection = redis.Redis.from_url(url)
    deadline = time.monotonic() + timeout_s
    while len(Worker.all(connection=connection)) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{count} workers did not register in {timeout_s:.0f} s")
        time.sleep(0.1)
    connection.close()


def _timestamps(url: str, job_ids: list[str]) -> list[tuple[float, float, float]]:
    import redis
    from rq.job import Job
    from rq.serializers import JSONSerializer

    connection = redis.Redis.from_url(url)
    out = []
    for job in Job.fetch_many(job_ids, connection=connection, serializer=JSONSerializer):
        assert job is not None and job.enqueued_at and job.started_at and job.ended_at
        out.append(
            (job.enqueued_at.timestamp(), job.started_at.timestamp(), job.ended_at.timestamp())
        )
    connection.close()
    return out


async def _measure(url: str, latency_jobs: int, jobs: int) -> dict[str, float]:
    from server.jobs.rq_runner import RqRunner
    from server.jobs.runner import JobStatus
    from server.jobs.spec import JobSpec

    runner = RqRunner(url, poll_s=0.002, max_poll_s=0.002)
    function = "bench.jobs.noop"  # not __name__: run with -m, this module is __main__
    ids = []
    for i in range(latency_jobs):
        spec = JobSpec(function=function, kwargs={"i": i})  # a fresh Redis per run: ids unique
        handle = await runner.submit(spec)
        result = await runner.wait(handle, 60)
        if result.status is not JobStatus.FINISHED:
            raise RuntimeError(f"job failed: {result}")
        ids.append(spec.job_id)
    latencies = [(s - e) * 1000 for e, s, _ in _timestamps(url, ids)]

    specs = [
        JobSpec(function=function, kwargs={"i": i})
        for i in range(latency_jobs, latency_jobs + jobs)
    ]
    handles = [await runner.submit(spec) for spec in specs]
    for handle in handles:
        await runner.wait(handle, 120)
    stamps = _timestamps(url, [s.job_id for s in specs])
    span = max(end for _, _, end in stamps) - min(enq for enq, _, _ in stamps)
    await runner.aclose()
    latencies.sort()
    return {
        "latency_median_ms": statistics.median(latencies),
        "latency_p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        "jobs_per_s": jobs / span,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.jobs", description=__doc__)
    parser.add_argument("--kinds", default="fork,simple,pool")
    parser.add_argument("--workers", default="1,4")
    parser.add_argument("--latency-jobs", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=200)
    args = parser.parse_args(argv)

    from tests.support.redis_server import RedisServer

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "workers.log"
        for kind in args.kinds.split(","):
            for count in (int(n) for n in args.workers.split(",")):
                server = RedisServer()
                server.start()
                workers = _start_workers(kind, count, server.url, log)
                try:
                    _wait_registered(server.url, count)
                    figures = asyncio.run(_measure(server.url, args.latency_jobs, args.jobs))
                finally:
                    _stop(workers)
                    server.stop()
                rows.append((kind, count, figures))
                sys.stderr.write(f"… {kind} x {count}: {figures}\n")

    lines = [
        "| Worker kind | Workers | Enqueue→start median | p99 | Jobs/s (no-op) |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, count, f in rows:
        lines.append(
            f"| {kind} | {count} | {f['latency_median_ms']:.1f} ms | "
            f"{f['latency_p99_ms']:.1f} ms | {f['jobs_per_s']:.0f} |"
        )
    sys.stdout.write("\n".join(lines) + f"\n\n{os.cpu_count()} CPUs\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
