"""How features run a job and wait for it: one place for the runner's life cycle.

Code actions and reviews both submit a :class:`~server.jobs.spec.JobSpec` and await
its result while forwarding the job's progress. The runner (RQ or in process) is
built on first use: RQ and redis cost ~200 ms to import, which must not delay
``initialize`` (or a settings change) for a user who never triggers a job. When the
queue's Redis cannot be reached, the job runs here instead, with a warning, as in a
setup without Redis.

History: the gateway records each job (queued when submitted, then how it ended)
and the model calls its result carries (``JobResult.model_calls``, failed ones
included), linked to the job. A result reused by an identical request carries the
same calls, which the history keeps once. A cancelled or timed-out job's calls
are recorded when they can be had: in process, once the job's thread has stopped
(its call in progress included, as cancelled or timed out); on RQ a timed-out
job's calls come with its result, a cancelled worker's are lost with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from server.completion.recorder import (
    JobEvent,
    JobState,
    ModelCallKind,
    NullRecorder,
    Recorder,
)
from server.jobs.chat import model_call_event
from server.jobs.runner import InProcessRunner, JobQueueUnavailable, JobRunner, build_runner
from server.jobs.spec import JobHandle, JobResult, JobSpec, JobStatus
from server.notify import Level, Notifier
from server.settings import Settings

log = logging.getLogger(__name__)

POLL_S = 0.25  # how often a waiting feature looks at the job's progress

Progress = Callable[[str, "int | None"], None]

# A job's kind (jobs.kind, and the kind of its model calls), by its function's package.
_KINDS = {
    "server.actions.": ModelCallKind.CODE_ACTION.value,
    "server.diagnostics.": ModelCallKind.REVIEW.value,
}


@dataclass(frozen=True, slots=True)
class _Where:
    """The document a job is about (for the history)."""

    uri: str | None
    language: str | None


_CALL_KINDS = frozenset(kind.value for kind in ModelCallKind)


def job_kind(function: str) -> str:
    """code_action, review, or the package's name for other job functions."""
    for prefix, kind in _KINDS.items():
        if function.startswith(prefix):
            return kind
    parts = function.split(".")
    return parts[-3] if len(parts) >= 3 else parts[0]


class JobGateway:
    def __init__(
        self,
        settings: Settings,
        *,
        notifier: Notifier,
        runner: JobRunner | None = None,
        recorder: Recorder | None = None,
    ) -> None:
        self.settings = settings
        self.notifier = notifier
        self._runner = runner
        self._fallback: InProcessRunner | None = None
        self.recorder: Recorder = recorder or NullRecorder()

    @property
    def runner(self) -> JobRunner:
        if self._runner is None:
            self._runner = build_runner(self.settings)
        return self._runner

    async def run(
        self,
        spec: JobSpec,
        progress: Progress | None = None,
        *,
        uri: str | None = None,
        language: str | None = None,
    ) -> JobResult:
        """Submit `spec` and wait for its result; cancelling the caller cancels the job.

        `uri` and `language` (default: the job's ``language_id`` argument): the
        document the job is about, for the history.
        """
        if language is None and isinstance(spec.kwargs.get("language_id"), str):
            language = spec.kwargs["language_id"]
        where = _Where(uri, language)
        runner = self.runner
        try:
            handle = await runner.submit(spec)
        except JobQueueUnavailable as exc:
            self.notifier.problem(
                "job-queue",
                f"job queue unreachable ({exc}); running the job here",
                level=Level.WARNING,
            )
            runner = self._local_runner()
            handle = await runner.submit(spec)
        submitted = time.perf_counter()
        self._record_job(spec, runner, JobState.QUEUED, where)
        waiting = asyncio.ensure_future(runner.wait(handle))
        last: dict[str, Any] | None = None
        progress_lost = False
        try:
            while not waiting.done():
                await asyncio.wait({waiting}, timeout=POLL_S)
                if progress is None:
                    continue
                try:
                    current = await runner.progress(handle)
                except JobQueueUnavailable as exc:
                    # The queue's Redis went away mid-job: `wait` gives up on it in
                    # words, within its bound; progress is only shown while it can be.
                    if not progress_lost:
                        log.info("no progress for job %s: %s", handle.job_id, exc)
                    progress_lost = True
                    continue
                if current and current != last:
                    last = current
                    percentage = current.get("percentage")
                    progress(
                        str(current.get("message") or "working"),
                        int(percentage) if isinstance(percentage, int | float) else None,
                    )
            result = waiting.result()
        except asyncio.CancelledError:
            waiting.cancel()
            log.info("cancelling job %s", handle.job_id)
            cancelled = JobResult(JobStatus.CANCELLED, error="cancelled")
            self._record_end(spec, runner, cancelled, where, submitted)
            self._record_calls_when_stopped(spec, runner, handle, where)
            await asyncio.shield(_cancel(runner, handle))
            raise
        self._record_end(spec, runner, result, where, submitted)
        if result.status in (JobStatus.CANCELLED, JobStatus.TIMEOUT):
            # Cancelled by another request waiting for it, or given up on: the call in
            # progress is recorded once the job's thread has closed its stream.
            self._record_calls_when_stopped(spec, runner, handle, where)
        if result.status is JobStatus.TIMEOUT:
            # Given up on: a job still queued (no worker) must not run for nobody later.
            await _cancel(runner, handle)
        return result

    # -- history ----------------------------------------------------------------------

    def _record_job(
        self,
        spec: JobSpec,
        runner: JobRunner,
        state: JobState,
        where: _Where,
        *,
        duration_ms: float | None = None,
        error: str | None = None,
    ) -> None:
        self.recorder.job(
            JobEvent(
                id=spec.job_id,
                kind=job_kind(spec.function),
                function=spec.function,
                runner="in-process" if isinstance(runner, InProcessRunner) else "rq",
                state=state,
                uri=where.uri,
                language=where.language,
                duration_ms=duration_ms,
                error=error,
            )
        )

    def _record_end(
        self,
        spec: JobSpec,
        runner: JobRunner,
        result: JobResult,
        where: _Where,
        submitted: float,
    ) -> None:
        try:
            state = JobState(result.status.value)
        except ValueError:  # not an end (cannot happen with a runner's result)
            state = JobState.FAILED
        self._record_job(
            spec,
            runner,
            state,
            where,
            duration_ms=(time.perf_counter() - submitted) * 1000.0,
            error=result.error,
        )
        self._record_calls(spec, result.model_calls, where)

    def _record_calls(
        self, spec: JobSpec, calls: tuple[dict[str, Any], ...], where: _Where
    ) -> None:
        kind = job_kind(spec.function)
        for call in calls:
            event = model_call_event(
                call,
                kind=ModelCallKind(kind) if kind in _CALL_KINDS else ModelCallKind.CODE_ACTION,
                job_id=spec.job_id,
                language=where.language,
            )
            if event is not None:
                self.recorder.model_call(event)

    def _record_calls_when_stopped(
        self, spec: JobSpec, runner: JobRunner, handle: JobHandle, where: _Where
    ) -> None:
        """A cancelled job's calls, once it has stopped (in process only: an RQ work
        horse is killed, its calls with it)."""
        if isinstance(runner, InProcessRunner):
            runner.when_stopped(handle, lambda calls: self._record_calls(spec, calls, where))

    def _local_runner(self) -> InProcessRunner:
        if self._fallback is None:
            jobs = self.settings.jobs
            self._fallback = InProcessRunner(
                jobs.concurrency,
                result_ttl_s=jobs.result_ttl_s,
                retry_intervals_s=jobs.retry_intervals_s,
            )
        return self._fallback

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.aclose()
        if self._fallback is not None:
            await self._fallback.aclose()


async def _cancel(runner: JobRunner, handle: JobHandle) -> None:
    try:
        await runner.cancel(handle)
    except Exception as exc:  # Redis gone: the job ends by its own timeout
        log.warning("could not cancel job %s: %s", handle.job_id, exc)
