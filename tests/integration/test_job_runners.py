"""Job runners against a real Valkey and real ``zi-coder worker`` subprocesses.

The same job functions (tests/support/jobs.py) run on the RQ runner with a worker
and on the in-process runner; they count their runs in files under a temporary
directory, so "ran once", "retried" and "stopped" are observed, not assumed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from server.jobs.keyspace import eviction_problem
from server.jobs.rq_runner import RqRunner
from server.jobs.runner import InProcessRunner, JobRunner
from server.jobs.spec import JobSpec, JobStatus, UnknownJobFunction
from tests.support.redis_server import RedisServer
from tests.support.workers import WorkerProcess

JOBS = "tests.support.jobs"


@pytest.fixture
def worker(redis_server: RedisServer, tmp_path: Path) -> Iterator[WorkerProcess]:
    process = WorkerProcess(redis_server.url, tmp_path / "worker.log")
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(params=["rq", "in-process"])
async def runner(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobRunner]:
    made: JobRunner
    if request.param == "rq":
        server: RedisServer = request.getfixturevalue("redis_server")
        request.getfixturevalue("worker")
        made = RqRunner(server.url)
    else:
        made = InProcessRunner(max_concurrency=2)
    try:
        yield made
    finally:
        await made.aclose()


def _runs(workdir: Path, name: str) -> int:
    path = workdir / name
    return len(path.read_text().splitlines()) if path.exists() else 0


async def _until(path: Path, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(path.exists):
        assert time.monotonic() < deadline, f"{path} never appeared"
        await asyncio.sleep(0.02)


# -------------------------------------------------------------------- specs


def test_job_id_is_deterministic_and_functions_are_allow_listed(tmp_path: Path) -> None:
    a = JobSpec(f"{JOBS}.add", {"workdir": str(tmp_path), "a": 1, "b": 2})
    b = JobSpec(f"{JOBS}.add", {"b": 2, "a": 1, "workdir": str(tmp_path)})
    c = JobSpec(f"{JOBS}.add", {"workdir": str(tmp_path), "a": 1, "b": 3})
    assert a.job_id == b.job_id != c.job_id
    assert a.job_id.startswith("zi-")
    with pytest.raises(UnknownJobFunction):
        JobSpec(f"{JOBS}.not_registered", {"workdir": str(tmp_path)})
    with pytest.raises(UnknownJobFunction):
        JobSpec("os.system", {"command": "true"})
    with pytest.raises(ValueError, match="JSON"):
        JobSpec(f"{JOBS}.add", {"workdir": tmp_path, "a": 1, "b": 2})


# ------------------------------------------------------ both runners, same code


async def test_same_job_same_result_on_both_runners(
    redis_server: RedisServer, worker: WorkerProcess, tmp_path: Path
) -> None:
    results = []
    for name, made in (("rq", RqRunner(redis_server.url)), ("mem", InProcessRunner())):
        workdir = tmp_path / name
        workdir.mkdir()
        handle = await made.submit(
            JobSpec(f"{JOBS}.add", {"workdir": str(workdir), "a": 2, "b": 3})
        )
        result = await made.wait(handle)
        assert result.status is JobStatus.FINISHED, result
        assert await made.progress(handle) == {"done": 1, "total": 1}
        results.append(result.value)
        await made.aclose()
    assert results[0] == results[1] == {"sum": 5, "runs": 1}


async def test_identical_submissions_run_once(runner: JobRunner, tmp_path: Path) -> None:
    spec = JobSpec(f"{JOBS}.slow_count", {"workdir": str(tmp_path), "seconds": 0.5})
    first, second = await asyncio.gather(runner.submit(spec), runner.submit(spec))
    results = await asyncio.gather(runner.wait(first), runner.wait(second))
    again = await runner.wait(await runner.submit(spec))  # finished, within its result TTL
    assert [r.value for r in (*results, again)] == [1, 1, 1]
    assert _runs(tmp_path, "slow.count") == 1


async def test_non_transient_error_fails_at_once(runner: JobRunner, tmp_path: Path) -> None:
    started = time.monotonic()
    handle = await runner.submit(JobSpec(f"{JOBS}.fail_for_good", {"workdir": str(tmp_path)}))
    result = await runner.wait(handle)
    assert result.status is JobStatus.FAILED
    assert result.error == "ValueError: the request is malformed"
    assert time.monotonic() - started < 1.0  # no retry interval waited
    await asyncio.sleep(1.5)  # a retry would have happened by now
    assert _runs(tmp_path, "fail.count") == 1


async def test_transient_error_is_retried(runner: JobRunner, tmp_path: Path) -> None:
    handle = await runner.submit(JobSpec(f"{JOBS}.flaky", {"workdir": str(tmp_path)}))
    result = await runner.wait(handle)
    assert result.status is JobStatus.FINISHED, result
    assert result.value == "ok after 2 attempts"
    assert _runs(tmp_path, "flaky.count") == 2


async def test_job_timeout_is_a_clear_result(runner: JobRunner, tmp_path: Path) -> None:
    spec = JobSpec(f"{JOBS}.sleeper", {"workdir": str(tmp_path), "seconds": 30}, timeout_s=2)
    started = time.monotonic()
    result = await runner.wait(await runner.submit(spec))
    assert result.status is JobStatus.TIMEOUT, result
    assert result.error == "job timed out after 2s"
    assert time.monotonic() - started < 8


async def test_cancel_stops_a_running_job(runner: JobRunner, tmp_path: Path) -> None:
    spec = JobSpec(f"{JOBS}.sleeper", {"workdir": str(tmp_path), "seconds": 5})
    handle = await runner.submit(spec)
    await _until(tmp_path / "started")
    await asyncio.sleep(0.3)
    progress = await runner.progress(handle)
    assert progress is not None and progress["step"] >= 1
    cancelled_at = time.monotonic()
    await runner.cancel(handle)
    result = await runner.wait(handle)
    assert result.status is JobStatus.CANCELLED, result
    assert time.monotonic() - cancelled_at < 3
    await asyncio.sleep(5.5)
    assert not (tmp_path / "started.done").exists()  # the job really stopped


# ------------------------------------------------------------- RQ-only faults


async def test_killed_worker_does_not_hang_wait(
    redis_server: RedisServer, worker: WorkerProcess, tmp_path: Path
) -> None:
    runner = RqRunner(redis_server.url)
    spec = JobSpec(f"{JOBS}.sleeper", {"workdir": str(tmp_path), "seconds": 60}, timeout_s=3)
    handle = await runner.submit(spec)
    await _until(tmp_path / "started")
    # rq's work horse calls setsid(), so killing the worker's group leaves it running
    # (it would finish the job and record the result); kill it too, as a crash would.
    os.kill(int((tmp_path / "started").read_text()), signal.SIGKILL)
    worker.kill(signal.SIGKILL)
    started = time.monotonic()
    result = await runner.wait(handle)
    assert time.monotonic() - started <= spec.wait_bound_s + 2
    assert result.status is JobStatus.FAILED
    assert result.error is not None and "worker probably died" in result.error
    await runner.aclose()


async def test_job_lost_in_a_redis_restart_is_resubmitted(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    runner = RqRunner(redis_server.url)
    spec = JobSpec(f"{JOBS}.add", {"workdir": str(tmp_path), "a": 1, "b": 1})
    handle = await runner.submit(spec)
    redis_server.restart()  # no persistence: the queued job is gone
    assert not redis.Redis.from_url(redis_server.url).exists(f"rq:job:{spec.job_id}")
    process = WorkerProcess(redis_server.url, tmp_path / "worker.log")
    process.start()
    try:
        result = await runner.wait(handle)
    finally:
        process.stop()
    assert result.status is JobStatus.FINISHED, result
    assert result.value == {"sum": 2, "runs": 1}
    await runner.aclose()


async def test_job_lost_in_a_redis_restart_is_reported(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    runner = RqRunner(redis_server.url, resubmit_lost=False)
    spec = JobSpec(f"{JOBS}.add", {"workdir": str(tmp_path), "a": 1, "b": 1})
    handle = await runner.submit(spec)
    redis_server.restart()
    result = await runner.wait(handle)
    assert result.status is JobStatus.FAILED
    assert result.error is not None and "gone from Redis" in result.error
    await runner.aclose()


async def test_redis_down_is_a_clear_error_not_a_hang(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    from server.jobs.runner import JobQueueUnavailable

    runner = RqRunner(redis_server.url)
    redis_server.kill()
    spec = JobSpec(f"{JOBS}.add", {"workdir": str(tmp_path), "a": 1, "b": 1})
    started = time.monotonic()
    with pytest.raises(JobQueueUnavailable, match="unreachable"):
        await runner.submit(spec)
    assert time.monotonic() - started < 5
    await runner.aclose()


@pytest.mark.parametrize("kind", ["fork", "simple", "pool"])
async def test_worker_kinds_run_jobs(redis_server: RedisServer, tmp_path: Path, kind: str) -> None:
    process = WorkerProcess(redis_server.url, tmp_path / "worker.log", kind=kind)
    process.start()
    runner = RqRunner(redis_server.url)
    try:
        handle = await runner.submit(
            JobSpec(f"{JOBS}.add", {"workdir": str(tmp_path), "a": 20, "b": 22})
        )
        result = await runner.wait(handle)
    finally:
        process.stop()
        await runner.aclose()
    assert result.status is JobStatus.FINISHED, (result, (tmp_path / "worker.log").read_text())
    assert result.value == {"sum": 42, "runs": 1}


def test_eviction_policy_check(redis_server: RedisServer) -> None:
    connection = redis.Redis.from_url(redis_server.url)
    assert eviction_problem(connection) is None  # valkey's default: noeviction
    connection.config_set("maxmemory-policy", "volatile-lru")
    assert eviction_problem(connection) is None
    connection.config_set("maxmemory-policy", "allkeys-lru")
    problem = eviction_problem(connection)
    assert problem is not None and "allkeys-lru" in problem and "evict" in problem
