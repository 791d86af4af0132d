"""Job runners: the `JobRunner` protocol and the in-process runner.

Features submit a :class:`~server.jobs.spec.JobSpec` and wait on the handle; they
never know whether the job runs on an RQ worker (:class:`~server.jobs.rq_runner.RqRunner`,
when ``ZI_REDIS_URL`` is set) or here, in threads of the language server
(:class:`InProcessRunner`). Both run the same job functions through
:func:`~server.jobs.execution.execute`, with the same id dedup, retry policy,
timeouts and progress API.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from server.jobs.execution import JobContext, execute
from server.jobs.spec import (
    RESULT_TTL_S,
    RETRY_INTERVALS_S,
    JobHandle,
    JobResult,
    JobSpec,
    JobStatus,
    result_from_outcome,
)

if TYPE_CHECKING:
    from server.settings import Settings

log = logging.getLogger(__name__)


class JobRunner(Protocol):
    async def submit(self, spec: JobSpec) -> JobHandle:
        """Start `spec`, or return the handle of the identical job already queued, running
        or finished (and not expired): identical requests run once."""
        ...

    async def wait(self, handle: JobHandle, timeout_s: float | None = None) -> JobResult:
        """The job's result; never blocks longer than `timeout_s` (default: the job
        timeout plus a margin), answering TIMEOUT or FAILED with a reason instead."""
        ...

    async def cancel(self, handle: JobHandle) -> None: ...

    async def progress(self, handle: JobHandle) -> dict[str, Any] | None: ...

    async def aclose(self) -> None: ...


class JobQueueUnavailable(RuntimeError):
    """The job queue's Redis cannot be reached."""


def build_runner(settings: Settings) -> JobRunner:
    """RQ on the queue's Redis when one is configured, else the in-process runner."""
    jobs = settings.jobs
    if settings.resolved_queue_url:
        from server.jobs.rq_runner import RqRunner

        return RqRunner(
            settings.resolved_queue_url,
            result_ttl_s=jobs.result_ttl_s,
            failure_ttl_s=jobs.failure_ttl_s,
            retry_intervals_s=jobs.retry_intervals_s,
        )
    return InProcessRunner(
        jobs.concurrency,
        result_ttl_s=jobs.result_ttl_s,
        retry_intervals_s=jobs.retry_intervals_s,
    )


@dataclass
class _Entry:
    spec: JobSpec
    context: JobContext
    status: JobStatus = JobStatus.QUEUED
    result: JobResult | None = None
    progress: dict[str, Any] | None = None
    finished_at: float = 0.0
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    # The current attempt: done when its thread has returned, which may be after the
    # job was answered (cancelled, timed out).
    attempt: asyncio.Future[dict[str, Any]] | None = field(default=None, repr=False)


class InProcessRunner:
    """Jobs in worker threads of this process, at most `max_concurrency` at a time.

    Threads cannot be killed: a job that times out or is cancelled is answered at
    once, and its thread stops at the job's next :func:`check_cancelled` (or when
    the function returns; its late result is dropped).
    """

    def __init__(
        self,
        max_concurrency: int = 2,
        *,
        result_ttl_s: float = RESULT_TTL_S,
        retry_intervals_s: tuple[float, ...] = RETRY_INTERVALS_S,
    ) -> None:
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._result_ttl_s = result_ttl_s
        self._retry_intervals_s = retry_intervals_s
        self._jobs: dict[str, _Entry] = {}

    async def submit(self, spec: JobSpec) -> JobHandle:
        self._prune()
        entry = self._jobs.get(spec.job_id)
        if entry is not None and (entry.result is None or entry.result.ok):
            return JobHandle(spec)
        context = JobContext(on_progress=lambda data: None)
        entry = _Entry(spec=spec, context=context)
        context.on_progress = lambda data: setattr(entry, "progress", dict(data))
        self._jobs[spec.job_id] = entry
        entry.task = asyncio.create_task(self._run(entry), name=f"zi-job {spec.job_id}")
        return JobHandle(spec)

    async def _run(self, entry: _Entry) -> None:
        async with self._semaphore:
            entry.status = JobStatus.RUNNING
            result = await self._attempts(entry)
        self._finish(entry, result)

    async def _attempts(self, entry: _Entry) -> JobResult:
        spec = entry.spec
        for attempt in range(len(self._retry_intervals_s) + 1):
            call = entry.attempt = asyncio.ensure_future(
                asyncio.to_thread(execute, spec.function, dict(spec.kwargs), entry.context)
            )
            done, _ = await asyncio.wait({call}, timeout=spec.timeout_s)
            if not done:
                entry.context.stop_reason = f"timeout: job timed out after {spec.timeout_s}s"
                entry.context.cancelled.set()  # the thread stops at its next check
                # Not cancelled: `when_stopped` waits on it for the call in progress,
                # which reports itself (as timed out) once its stream is closed.
                call.add_done_callback(_retrieved)
                return JobResult(
                    JobStatus.TIMEOUT,
                    error=f"job timed out after {spec.timeout_s}s",
                    model_calls=tuple(entry.context.model_calls),
                )
            try:
                return result_from_outcome(call.result())
            except Exception as exc:  # execute re-raises only transient errors
                if attempt == len(self._retry_intervals_s):
                    return JobResult(
                        JobStatus.FAILED,
                        error=f"{type(exc).__name__}: {exc} (after {attempt + 1} attempts)",
                        model_calls=tuple(entry.context.model_calls),
                    )
                await asyncio.sleep(self._retry_intervals_s[attempt])
        raise AssertionError("unreachable")

    def _finish(self, entry: _Entry, result: JobResult) -> None:
        if entry.result is None:  # a cancel may have answered already
            entry.result = result
            entry.status = result.status
            entry.finished_at = time.monotonic()

    def _prune(self) -> None:
        cutoff = time.monotonic() - self._result_ttl_s
        for job_id in [k for k, e in self._jobs.items() if e.result and e.finished_at < cutoff]:
            del self._jobs[job_id]

    async def wait(self, handle: JobHandle, timeout_s: float | None = None) -> JobResult:
        entry = self._jobs.get(handle.job_id)
        if entry is None:
            return JobResult(JobStatus.FAILED, error=f"unknown or expired job {handle.job_id}")
        bound = timeout_s if timeout_s is not None else handle.spec.wait_bound_s
        if entry.task is not None and entry.result is None:
            await asyncio.wait({entry.task}, timeout=bound)
        if entry.result is not None:
            return entry.result
        return JobResult(
            JobStatus.TIMEOUT, error=f"job still {entry.status.value} after waiting {bound:g}s"
        )

    async def cancel(self, handle: JobHandle) -> None:
        entry = self._jobs.get(handle.job_id)
        if entry is None or entry.result is not None:
            return
        entry.context.cancelled.set()
        self._finish(entry, JobResult(JobStatus.CANCELLED, error="cancelled"))
        if entry.task is not None:
            entry.task.cancel()

    def when_stopped(
        self, handle: JobHandle, callback: Callable[[tuple[dict[str, Any], ...]], None]
    ) -> None:
        """Call `callback` with the job's model calls (all attempts') once its thread has
        returned: at once if it has, or never ran.

        For a cancelled job: its thread stops at its next check, and a chat call in
        progress closes its stream and reports itself (error "cancelled") first.
        """
        entry = self._jobs.get(handle.job_id)
        if entry is None:
            callback(())
            return
        context = entry.context
        attempt = entry.attempt
        if attempt is None or attempt.done():
            callback(tuple(context.model_calls))
            return

        def stopped(future: asyncio.Future[dict[str, Any]]) -> None:
            if not future.cancelled():
                future.exception()  # retrieved: the late end of an answered job is no news
            callback(tuple(context.model_calls))

        attempt.add_done_callback(stopped)

    async def progress(self, handle: JobHandle) -> dict[str, Any] | None:
        entry = self._jobs.get(handle.job_id)
        return None if entry is None else entry.progress

    async def aclose(self) -> None:
        for entry in list(self._jobs.values()):
            if entry.result is None:
                await self.cancel(JobHandle(entry.spec))


def _retrieved(future: asyncio.Future[Any]) -> None:
    """Mark the late end of an answered attempt as seen (no "never retrieved" warning)."""
    if not future.cancelled():
        future.exception()
