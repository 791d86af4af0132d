"""Step 8's port: what the pipeline tells the history. Implemented by ``server.history``.

Methods must return at once: writes happen off the latency path, possibly much
later (a batch every 0.2 s, or after an outage of the database). So every event
carries the moment it happened (`at`, stamped when the event is made), and that is
what the history stores, never the moment it was written. `at` is keyword-only
(events are still built positionally as before) and left out of equality (two
events saying the same thing are equal, whenever they were made).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from server.completion.types import Outcome


def now() -> datetime:
    """The time events are stamped with: aware, UTC."""
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class CompletionEvent:
    id: str
    parent_id: str | None
    uri: str
    language: str
    model: str
    template: str
    mode: str
    source: str
    text: str
    prompt_chars: int
    first_token_ms: float | None
    total_ms: float
    # The prompt, only for a suggestion with no model call of its own (a shared-cache
    # hit, a joined request): a model call stores its own. Stored like `text`, only
    # with history.store_prompts, redacted.
    prompt: str | None = None
    at: datetime = field(default_factory=now, kw_only=True, compare=False)


@dataclass(frozen=True, slots=True)
class OutcomeEvent:
    """What the user did with a suggestion (shown, accepted, ...), and when."""

    completion_id: str
    outcome: Outcome
    accepted_length: int | None = None
    at: datetime = field(default_factory=now, kw_only=True, compare=False)


class ModelCallKind(StrEnum):
    COMPLETION = "completion"
    CODE_ACTION = "code_action"
    REVIEW = "review"


@dataclass(frozen=True, slots=True)
class ModelCallEvent:
    """One request to a model. `prompt`/`response` are the full texts; the recorder
    stores them only with history.store_prompts, redacted, and always their lengths."""

    id: str
    kind: ModelCallKind
    model: str
    endpoint: str
    params: dict[str, Any]  # the request body minus the prompt/messages
    prompt: str
    response: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    first_token_ms: float | None
    total_ms: float
    error: str | None = None
    language: str | None = None
    template: str | None = None
    completion_id: str | None = None
    job_id: str | None = None
    replay_of: str | None = None  # set: a replay (zi-coder replay), never live traffic
    # When the call ended (its answer, or its error, was known).
    at: datetime = field(default_factory=now, kw_only=True, compare=False)


def call_error(exc: BaseException) -> str:
    """How a failed model call's `error` reads: "cancelled", "timeout: ...", or the
    exception (an HTTP error says its status: "ModelHTTPError: ... HTTP 500: ...")."""
    from asyncio import CancelledError

    from inference.errors import ModelTimeout

    if isinstance(exc, CancelledError):
        return "cancelled"
    text = str(exc)
    # rq's JobTimeoutException by name: importing rq here would cost every process.
    if isinstance(exc, TimeoutError | ModelTimeout) or type(exc).__name__ == "JobTimeoutException":
        return f"timeout: {text}"[:1000] if text else "timeout"
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:1000]


class JobState(StrEnum):
    QUEUED = "queued"
    FINISHED = "finished"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class JobEvent:
    """A job was submitted (QUEUED) or ended; the recorder upserts by id."""

    id: str
    kind: str  # code_action, review
    function: str
    runner: str  # rq, in-process
    state: JobState
    uri: str | None = None
    language: str | None = None
    duration_ms: float | None = None
    error: str | None = None
    at: datetime = field(default_factory=now, kw_only=True, compare=False)  # queued, or ended


@dataclass(frozen=True, slots=True)
class SurvivalEvent:
    """At `after_s` seconds past acceptance, `kept_chars` of `accepted_chars` remain."""

    completion_id: str
    after_s: int
    accepted_chars: int
    kept_chars: int
    document_closed: bool = False
    at: datetime = field(default_factory=now, kw_only=True, compare=False)  # when checked


class Recorder(Protocol):
    def completion_generated(self, event: CompletionEvent) -> None: ...

    def outcome(
        self, *, completion_id: str, outcome: Outcome, accepted_length: int | None = None
    ) -> None: ...

    def model_call(self, event: ModelCallEvent) -> None: ...

    def job(self, event: JobEvent) -> None: ...

    def survival(self, event: SurvivalEvent) -> None: ...


class NullRecorder:
    """For one-shot commands and tests that do not look at history."""

    def completion_generated(self, event: CompletionEvent) -> None:
        return None

    def outcome(
        self, *, completion_id: str, outcome: Outcome, accepted_length: int | None = None
    ) -> None:
        return None

    def model_call(self, event: ModelCallEvent) -> None:
        return None

    def job(self, event: JobEvent) -> None:
        return None

    def survival(self, event: SurvivalEvent) -> None:
        return None
