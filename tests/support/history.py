"""Events for history tests: a plain completion, the same wherever a test needs one."""

from __future__ import annotations

from server.completion.recorder import CompletionEvent


def completion_event(ident: str) -> CompletionEvent:
    """A model-served single-line Python suggestion `x = 1` with id `ident`."""
    return CompletionEvent(
        id=ident,
        parent_id=None,
        uri="file:///a.py",
        language="python",
        model="m",
        template="qwen",
        mode="single_line",
        source="model",
        text="x = 1",
        prompt_chars=100,
        first_token_ms=5.0,
        total_ms=9.0,
    )
