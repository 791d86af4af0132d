"""Step 8's port: what the pipeline tells the history. Implemented by ``server.history``.

Methods must return at once: writes happen off the latency path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

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


class Recorder(Protocol):
    def completion_generated(self, event: CompletionEvent) -> None: ...

    def outcome(
        self, *, completion_id: str, outcome: Outcome, accepted_length: int | None = None
    ) -> None: ...


class NullRecorder:
    """For one-shot commands and tests that do not look at history."""

    def completion_generated(self, event: CompletionEvent) -> None:
        return None

    def outcome(
        self, *, completion_id: str, outcome: Outcome, accepted_length: int | None = None
    ) -> None:
        return None
