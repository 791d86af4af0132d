"""How features run a job and wait for it: one place for the runner's life cycle.

Code actions and reviews both submit a :class:`~server.jobs.spec.JobSpec` and await
its result while forwarding the job's progress. The runner (RQ or in process) is
built on first use: RQ and redis cost ~200 ms to import, which must not delay
``initialize`` (or a settings change) for a user who never triggers a job. When the
queue's Redis cannot be reached, the job runs here instead, with a warning, as in a
setup without Redis.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from server.jobs.runner import InProcessRunner, JobQueueUnavailable, JobRunner, build_runner
from server.jobs.spec import JobHandle, JobResult, JobSpec, JobStatus
from server.notify import Level, Notifier
from server.settings import Settings

log = logging.getLogger(__name__)

POLL_S = 0.25  # how often a waiting feature looks at the job's progress

Progress = Callable[[str, "int | None"], None]


class JobGateway:
    def __init__(
        self, settings: Settings, *, notifier: Notifier, runner: JobRunner | None = None
    ) -> None:
        self.settings = settings
        self.notifier = notifier
        self._runner = runner
        self._fallback: InProcessRunner | None = None

    @property
    def runner(self) -> JobRunner:
        if self._runner is None:
            self._runner = build_runner(self.settings)
        return self._runner

    async def run(self, spec: JobSpec, progress: Progress | None = None) -> JobResult:
        """Submit `spec` and wait for its result; cancelling the caller cancels the job."""
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
        waiting = asyncio.ensure_future(runner.wait(handle))
        last: dict[str, Any] | None = None
        try:
            while not waiting.done():
                await asyncio.wait({waiting}, timeout=POLL_S)
                if progress is None:
                    continue
                current = await runner.progress(handle)
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
            await asyncio.shield(_cancel(runner, handle))
            raise
        if result.status is JobStatus.TIMEOUT:
            # Given up on: a job still queued (no worker) must not run for nobody later.
            await _cancel(runner, handle)
        return result

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
