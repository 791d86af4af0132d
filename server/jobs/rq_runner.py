"""The RQ runner: jobs on Redis queues, run by ``zi-coder worker`` processes.

Every job is enqueued as a call of :func:`server.jobs.execution.run_job` with the
JSON serializer (never pickle), the spec's timeout, result and failure TTLs, and
``Retry(max=2, interval=[1, 5])``. The wrapper turns non-transient errors into a
recorded failed outcome (RQ sees a finished job and does not retry), and re-raises
transient ones so RQ's retry applies; retries with an interval need the worker's
scheduler (``zi-coder worker`` starts it).

The job id is the spec's digest and enqueueing is ``unique``: an identical request
finds the existing job (queued, running, or finished within its result TTL) and
waits on it. Failed, stopped or cancelled jobs are replaced by a new run.

Redis calls run in threads (``asyncio.to_thread``) with socket timeouts, so the
event loop never blocks and an outage surfaces as :class:`JobQueueUnavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any, TypeVar

from server.jobs.execution import MODEL_CALLS_META, RQ_ENTRY_POINT
from server.jobs.runner import JobQueueUnavailable
from server.jobs.spec import (
    FAILURE_TTL_S,
    RESULT_TTL_S,
    RETRY_INTERVALS_S,
    JobHandle,
    JobResult,
    JobSpec,
    JobStatus,
    model_calls_of,
    result_from_outcome,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from rq import Queue
    from rq.job import Job

log = logging.getLogger(__name__)

T = TypeVar("T")

_GONE = "gone"
_UNREACHABLE = "unreachable"


class RqRunner:
    def __init__(
        self,
        redis_url: str,
        *,
        result_ttl_s: int = RESULT_TTL_S,
        failure_ttl_s: int = FAILURE_TTL_S,
        retry_intervals_s: tuple[int, ...] = RETRY_INTERVALS_S,
        poll_s: float = 0.01,
        max_poll_s: float = 0.25,
        connect_timeout_s: float = 2.0,
        resubmit_lost: bool = True,
    ) -> None:
        import redis

        self.url = redis_url
        self._redis = redis.Redis.from_url(
            redis_url, socket_connect_timeout=connect_timeout_s, socket_timeout=5.0
        )
        self._result_ttl_s = result_ttl_s
        self._failure_ttl_s = failure_ttl_s
        self._retry_intervals_s = retry_intervals_s
        # Polls start fast (a review's job is done in tens of ms) and slow down
        # geometrically, so a job that takes a minute costs a few Redis reads per second.
        self._poll_s = poll_s
        self._max_poll_s = max(poll_s, max_poll_s)
        self._resubmit_lost = resubmit_lost
        self._queues: dict[str, Queue] = {}

    # ------------------------------------------------------------------ helpers

    def _queue(self, name: str) -> Queue:
        from rq import Queue
        from rq.serializers import JSONSerializer

        if name not in self._queues:
            self._queues[name] = Queue(name, connection=self._redis, serializer=JSONSerializer)
        return self._queues[name]

    def _fetch(self, job_id: str) -> Job | None:
        from rq.exceptions import NoSuchJobError
        from rq.job import Job
        from rq.serializers import JSONSerializer

        try:
            return Job.fetch(job_id, connection=self._redis, serializer=JSONSerializer)
        except NoSuchJobError:
            return None

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        import redis

        try:
            return await asyncio.to_thread(fn, *args)
        except redis.RedisError as exc:
            raise JobQueueUnavailable(f"job queue Redis at {self.url} unreachable: {exc}") from exc

    # ------------------------------------------------------------------- submit

    async def submit(self, spec: JobSpec) -> JobHandle:
        await self._call(self._submit_sync, spec)
        return JobHandle(spec)

    def _submit_sync(self, spec: JobSpec) -> None:
        from rq import Retry
        from rq.exceptions import DuplicateJobError
        from rq.job import JobStatus as RqStatus

        queue = self._queue(spec.queue)
        for _ in range(3):
            try:
                queue.enqueue_call(
                    RQ_ENTRY_POINT,
                    kwargs={"function": spec.function, "kwargs": spec.kwargs},
                    timeout=spec.timeout_s,
                    result_ttl=self._result_ttl_s,
                    failure_ttl=self._failure_ttl_s,
                    job_id=spec.job_id,
                    description=spec.function,
                    retry=Retry(max=len(self._retry_intervals_s), interval=self._retry_intervals_s),
                    unique=True,
                )
                return
            except DuplicateJobError:
                job = self._fetch(spec.job_id)
                if job is None:
                    continue  # expired in between: enqueue again
                status = job.get_status(refresh=False)
                replace = status in (RqStatus.FAILED, RqStatus.STOPPED, RqStatus.CANCELED)
                if status == RqStatus.FINISHED:
                    replace = not result_from_outcome(job.return_value()).ok
                if not replace:
                    log.debug("job %s already %s: not run twice", spec.job_id, status)
                    return
                job.delete()
        raise JobQueueUnavailable(f"could not enqueue {spec.job_id}: it keeps reappearing")

    # --------------------------------------------------------------------- wait

    def _poll_sync(self, job_id: str) -> JobResult | JobStatus | str:
        from rq.job import JobStatus as RqStatus

        job = self._fetch(job_id)
        if job is None:
            return _GONE
        status = job.get_status(refresh=False)
        if status == RqStatus.FINISHED:
            return result_from_outcome(job.return_value())
        if status == RqStatus.FAILED:
            result = job.latest_result()
            text = (result.exc_string or "") if result is not None else ""
            calls = model_calls_of(job.meta.get(MODEL_CALLS_META))
            if "AbandonedJobError" in text:
                return JobResult(
                    JobStatus.FAILED,
                    error="abandoned: the worker running it died mid-job",
                    model_calls=calls,
                )
            lines = [line for line in text.strip().splitlines() if line.strip()]
            reason = lines[-1] if lines else "failed (no traceback recorded)"
            return JobResult(
                JobStatus.FAILED, error=f"{reason} (retries exhausted)", model_calls=calls
            )
        if status in (RqStatus.STOPPED, RqStatus.CANCELED):
            return JobResult(JobStatus.CANCELLED, error=f"cancelled ({status.value})")
        if status == RqStatus.STARTED:
            return JobStatus.RUNNING
        return JobStatus.QUEUED  # queued, scheduled (retry pending), deferred, created

    async def wait(self, handle: JobHandle, timeout_s: float | None = None) -> JobResult:
        import redis

        loop = asyncio.get_running_loop()
        bound = timeout_s if timeout_s is not None else handle.spec.wait_bound_s
        deadline = loop.time() + bound
        last: JobStatus | None = None
        problem = ""
        resubmitted = False
        pause = self._poll_s
        while True:
            try:
                state = await asyncio.to_thread(self._poll_sync, handle.job_id)
            except redis.RedisError as exc:
                state, problem = _UNREACHABLE, str(exc)
            if isinstance(state, JobResult):
                return state
            if state == _GONE:
                if last in (None, JobStatus.QUEUED) and self._resubmit_lost and not resubmitted:
                    log.warning("job %s vanished from Redis before it ran: resubmitting", handle)
                    resubmitted = True
                    try:
                        await self.submit(handle.spec)
                    except JobQueueUnavailable as exc:
                        problem = str(exc)
                    continue
                return JobResult(
                    JobStatus.FAILED,
                    error=f"job {handle.job_id} is gone from Redis (Redis restarted without "
                    "persistence, or its key was evicted or expired): submit it again",
                )
            if isinstance(state, JobStatus):
                last = state
            if loop.time() >= deadline:
                return self._gave_up(handle, last, bound, problem if state == _UNREACHABLE else "")
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, self._max_poll_s)

    @staticmethod
    def _gave_up(
        handle: JobHandle, last: JobStatus | None, bound: float, problem: str
    ) -> JobResult:
        if problem:
            error = f"job queue Redis unreachable for the last polls ({problem})"
        elif last is JobStatus.RUNNING:
            error = (
                f"job still marked running {bound:g}s into a {handle.spec.timeout_s}s timeout: "
                "its worker probably died (killed, or lost its Redis); rq marks it abandoned "
                "once a worker cleans the registry"
            )
        else:
            error = f"job still queued after {bound:g}s: is a `zi-coder worker` running?"
        status = JobStatus.FAILED if last is JobStatus.RUNNING else JobStatus.TIMEOUT
        return JobResult(status, error=error)

    # ------------------------------------------------------- cancel and progress

    async def cancel(self, handle: JobHandle) -> None:
        await self._call(self._cancel_sync, handle.job_id)

    def _cancel_sync(self, job_id: str) -> None:
        from rq.command import send_stop_job_command
        from rq.exceptions import InvalidJobOperation
        from rq.job import JobStatus as RqStatus
        from rq.serializers import JSONSerializer

        job = self._fetch(job_id)
        if job is None:
            return
        status = job.get_status(refresh=False)
        if status == RqStatus.STARTED:
            with contextlib.suppress(InvalidJobOperation):  # finished in between
                send_stop_job_command(self._redis, job_id, serializer=JSONSerializer)
        elif status in (RqStatus.QUEUED, RqStatus.SCHEDULED, RqStatus.DEFERRED):
            job.cancel()

    async def progress(self, handle: JobHandle) -> dict[str, Any] | None:
        job = await self._call(self._fetch, handle.job_id)
        if job is None:
            return None
        value = job.meta.get("progress")
        return dict(value) if isinstance(value, dict) else None

    async def aclose(self) -> None:
        await asyncio.to_thread(self._redis.close)
