"""Step 8's port: what the pipeline tells the history. Implemented by ``server.history``.

Methods must return at once: writes happen off the latency path.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from server.completion.types import Outcome


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
    # The prompt sent for it (None: a type-ahead continuation); stored like `text`,
    # only with history.store_prompts, redacted.
    prompt: str | None = None


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


@dataclass(frozen=True, slots=True)
class SurvivalEvent:
    """At `after_s` seconds past acceptance, `kept_chars` of `accepted_chars` remain."""

    completion_id: str
    after_s: int
    accepted_chars: int
    kept_chars: int
    document_closed: bool = False


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
