"""Running one job function: the wrapper both runners share, progress and cancellation.

:func:`execute` calls a registered job function and returns an *outcome*, a JSON
object ``{"ok": true, "value": ...}`` or ``{"ok": false, "kind": ..., "error": ...}``.
Errors split in two:

- transient ones (connection errors, timeouts, HTTP 5xx/429 from the model,
  :class:`TransientJobError`) are re-raised, so RQ's ``Retry`` (or the in-process
  runner's identical retry loop) runs the job again after a pause;
- everything else is a bug or a request that will fail the same way again: it is
  recorded as a failed outcome at once, without raising into RQ's retry.

On an RQ worker the entry point is :func:`run_job`; job functions report progress
with :func:`report_progress` (stored in ``job.meta``) and may call
:func:`check_cancelled` at safe points (in process it raises once `cancel` was
called; on RQ, cancelling kills the work horse instead).

Model calls a job makes (:func:`record_model_call`, from ``server.jobs.chat``)
travel back with its outcome as JSON (``"model_calls"``), failed ones included,
so the server records them and workers need no database. Across retries they
accumulate: in the in-process runner's context, and in ``job.meta`` on RQ (where
the last failure of a job whose retries ran out is read from, too).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from server.jobs.spec import canonical_json, resolve_job_function

log = logging.getLogger(__name__)


class TransientJobError(Exception):
    """Raised by a job function for a failure worth retrying (RQ's Retry applies)."""


class JobCancelled(Exception):
    """Raised by :func:`check_cancelled` once the job was cancelled."""


def is_transient(exc: BaseException) -> bool:
    """Whether a retry may succeed: outages and overload, not bugs or rejected requests."""
    from inference.errors import (
        ContextTooLong,
        ModelError,
        ModelHTTPError,
        ModelProtocolError,
    )

    if isinstance(exc, TransientJobError):
        return True
    if isinstance(exc, ModelError):
        if isinstance(exc, ContextTooLong | ModelProtocolError):
            return False
        if isinstance(exc, ModelHTTPError):
            return exc.status >= 500 or exc.status == 429
        return not exc.lasting  # unavailable, timeout, connection lost, paused
    return isinstance(exc, ConnectionError | TimeoutError)


@dataclass
class JobContext:
    """Where a running job's progress goes and how it learns it was cancelled."""

    on_progress: Callable[[dict[str, Any]], None]
    cancelled: threading.Event = field(default_factory=threading.Event)
    # Why `cancelled` was set: a model call it stops is recorded with this error, so
    # the history tells a job given up for its time limit from one the user cancelled.
    stop_reason: str = "cancelled"
    # The job's model calls so far, as JSON objects (all attempts').
    model_calls: list[dict[str, Any]] = field(default_factory=list)


_current: ContextVar[JobContext | None] = ContextVar("zi_job_context", default=None)


def report_progress(**data: Any) -> None:
    """Publish the running job's progress (JSON values); a no-op outside a job."""
    context = _current.get()
    if context is not None:
        context.on_progress(data)


def record_model_call(call: dict[str, Any]) -> None:
    """Add a model call (a JSON object) to the running job's outcome; a no-op outside a job."""
    context = _current.get()
    if context is not None:
        context.model_calls.append(call)


def cancelled() -> bool:
    """Whether the running job was cancelled (in-process runner; on RQ the horse is killed)."""
    context = _current.get()
    return context is not None and context.cancelled.is_set()


def stop_reason() -> str:
    """Why the running job was stopped: "cancelled", or "timeout: ..." (in-process runner)."""
    context = _current.get()
    return context.stop_reason if context is not None else "cancelled"


def check_cancelled() -> None:
    """Raise :class:`JobCancelled` if the running job was cancelled (in-process runner)."""
    if cancelled():
        raise JobCancelled("cancelled")


def _message(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def execute(
    function: str,
    kwargs: dict[str, Any],
    context: JobContext,
    *,
    timeout_types: tuple[type[BaseException], ...] = (),
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """Run one job; return its outcome, re-raising only transient errors."""
    token = _current.set(context)
    try:
        fn = resolve_job_function(function)
        value = fn(**kwargs)
        canonical_json(value)  # a result must survive the JSON serializer
        outcome: dict[str, Any] = {"ok": True, "value": value}
    except JobCancelled:
        outcome = {"ok": False, "kind": "cancelled", "error": "cancelled"}
    except Exception as exc:
        if timeout_types and isinstance(exc, timeout_types):
            error = f"job timed out after {timeout_s}s"
            outcome = {"ok": False, "kind": "timeout", "error": error}
        elif is_transient(exc):
            log.warning("job %s: transient error, may be retried: %s", function, _message(exc))
            raise
        else:
            log.warning("job %s failed: %s", function, _message(exc))
            outcome = {"ok": False, "kind": "error", "error": _message(exc)}
    finally:
        _current.reset(token)
    outcome["model_calls"] = list(context.model_calls)
    return outcome


MODEL_CALLS_META = "model_calls"
"""``job.meta`` key of the model calls of a job's failed attempts (RQ)."""


def run_job(function: str, kwargs: dict[str, Any]) -> dict[str, Any]:
    """RQ's entry point: `execute` with progress in ``job.meta`` and rq's job timeout."""
    from rq import get_current_job
    from rq.timeouts import JobTimeoutException

    job = get_current_job()

    def on_progress(data: dict[str, Any]) -> None:
        if job is not None:
            job.meta["progress"] = data
            job.save_meta()  # type: ignore[no-untyped-call]

    earlier = job.meta.get(MODEL_CALLS_META) if job is not None else None
    context = JobContext(
        on_progress=on_progress, model_calls=list(earlier) if isinstance(earlier, list) else []
    )
    try:
        return execute(
            function,
            kwargs,
            context,
            timeout_types=(JobTimeoutException,),
            timeout_s=job.timeout if job is not None else None,
        )
    except Exception:
        # Retried (or, retries exhausted, failed): the next attempt, or the server
        # reading the failure, finds this attempt's calls here.
        if job is not None and context.model_calls:
            job.meta[MODEL_CALLS_META] = context.model_calls
            job.save_meta()  # type: ignore[no-untyped-call]
        raise


RQ_ENTRY_POINT = f"{__name__}.run_job"
