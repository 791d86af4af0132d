"""What a job is, as data: the allow-list of job functions, `JobSpec`, handles and results.

A job is a call of a function registered with :func:`job_function`, with
JSON-serialisable keyword arguments. Workers only run registered functions, so a
job read from Redis names code Zi already ships; it never carries code itself.
The job id is a digest of the function and its canonical JSON arguments: two
identical requests get the same id, and the runners run it once.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from server.jobs import INTERACTIVE_QUEUE, QUEUES

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_TIMEOUT_S = 120
"""A job's own time limit; `wait` gives up a little after it (WAIT_MARGIN_S)."""
WAIT_MARGIN_S = 10.0
"""Time `wait` allows on top of the job timeout (queueing, result write-back)."""
RESULT_TTL_S = 600
"""How long a finished job's result stays: identical requests within it reuse it."""
FAILURE_TTL_S = 86_400
"""How long a failed job stays inspectable (rq's default is a year)."""

_REGISTRY: dict[str, Callable[..., Any]] = {}


def job_function(fn: F) -> F:
    """Register `fn` as a Zi job function (the allow-list workers consult)."""
    _REGISTRY[f"{fn.__module__}.{fn.__qualname__}"] = fn
    return fn


class UnknownJobFunction(LookupError):
    """The dotted path does not name a function registered with `job_function`."""


def resolve_job_function(path: str) -> Callable[..., Any]:
    """The registered function at `path`, importing its module first (as a worker must)."""
    if path not in _REGISTRY:
        module, _, _name = path.rpartition(".")
        if module:
            try:
                importlib.import_module(module)
            except ImportError as exc:
                raise UnknownJobFunction(f"{path}: cannot import {module}: {exc}") from exc
    try:
        return _REGISTRY[path]
    except KeyError:
        raise UnknownJobFunction(f"{path} is not a registered Zi job function") from None


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces: equal arguments give equal text (and job ids)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class JobSpec:
    """One job request: function path, JSON kwargs, queue and time limit."""

    function: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    queue: str = INTERACTIVE_QUEUE
    timeout_s: int = DEFAULT_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.queue not in QUEUES:
            raise ValueError(f"unknown queue {self.queue!r}; Zi's queues are {QUEUES}")
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        resolve_job_function(self.function)
        try:
            canonical_json(self.kwargs)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"job arguments must be JSON-serialisable: {exc}") from exc

    @property
    def job_id(self) -> str:
        """``zi-`` + a short digest of (function, canonical kwargs): equal requests, equal id."""
        digest = hashlib.sha256(
            canonical_json([self.function, self.kwargs]).encode("utf-8")
        ).hexdigest()
        return f"zi-{digest[:24]}"

    @property
    def wait_bound_s(self) -> float:
        return self.timeout_s + WAIT_MARGIN_S


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"


TERMINAL = frozenset({JobStatus.FINISHED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.TIMEOUT})


@dataclass(frozen=True)
class JobHandle:
    """What `submit` returns: the job id and the spec it was submitted with."""

    spec: JobSpec

    @property
    def job_id(self) -> str:
        return self.spec.job_id


@dataclass(frozen=True)
class JobResult:
    status: JobStatus
    value: Any = None
    error: str | None = None
    # The job's model calls as JSON objects (``server.jobs.chat``), for the history.
    model_calls: tuple[dict[str, Any], ...] = ()

    @property
    def ok(self) -> bool:
        return self.status is JobStatus.FINISHED


RETRY_INTERVALS_S = (1, 5)
"""Pauses before the retries of a transient failure (so at most three attempts)."""


def result_from_outcome(outcome: Any) -> JobResult:
    """The `JobResult` for an outcome object returned by `execution.execute`."""
    if not isinstance(outcome, dict) or "ok" not in outcome:
        return JobResult(JobStatus.FAILED, error=f"malformed job outcome: {outcome!r}")
    calls = model_calls_of(outcome.get("model_calls"))
    if outcome["ok"]:
        return JobResult(JobStatus.FINISHED, value=outcome.get("value"), model_calls=calls)
    kind = outcome.get("kind")
    status = {"timeout": JobStatus.TIMEOUT, "cancelled": JobStatus.CANCELLED}.get(
        str(kind), JobStatus.FAILED
    )
    return JobResult(status, error=str(outcome.get("error") or kind), model_calls=calls)


def model_calls_of(value: Any) -> tuple[dict[str, Any], ...]:
    """The model calls in an outcome's (or ``job.meta``'s) JSON; anything else: none."""
    if not isinstance(value, list):
        return ()
    return tuple(call for call in value if isinstance(call, dict))
