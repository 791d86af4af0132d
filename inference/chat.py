"""One chat completion, streamed and cancellable: the model call of code actions.

Code actions (write a docstring, write tests, ...) run as jobs, off the keystroke
path, and may take tens of seconds on a loaded engine. So the answer is streamed
even though it is used whole: a job cancelled by the user must stop the
generation, and closing a stream is how vLLM is told to abort (it frees the
sequence's KV-cache blocks at once). ``should_stop`` is polled after every chunk
and every :data:`STOP_POLL_S` while the model is silent (time to first token,
prefill of a long prompt), so a cancel is honoured within a fraction of a second.

Errors are :mod:`inference.errors`' hierarchy, mapped exactly as for completions
by :class:`~inference.client.InferenceClient`, which also owns the policy: the
request is retried only when no connection could be made (a chat is not
idempotent), the circuit breaker and 429 pauses apply. :func:`chat_sync` is the
entry point for job functions, which are plain functions in a worker thread or an
RQ work horse.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from inference.client import InferenceClient

__all__ = ["STOP_POLL_S", "ChatAnswer", "ChatCancelled", "ChatRequest", "chat", "chat_sync"]

# The longest a cancel waits while the model is silent. Polling costs a wake-up and
# a should_stop() call; 0.2 s is well under what a user perceives as "stopped".
STOP_POLL_S = 0.2


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[dict[str, str]]  # OpenAI chat messages {"role", "content"}
    max_tokens: int = 1024
    temperature: float = 0.2
    stop: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)  # merged into the body first

    def body(self) -> dict[str, Any]:
        """The streamed ``POST /chat/completions`` body; usage comes in a last chunk."""
        body: dict[str, Any] = {
            **self.extra,
            "model": self.model,
            "messages": self.messages,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.stop:
            body["stop"] = list(self.stop)
        return body


@dataclass(frozen=True)
class ChatAnswer:
    text: str
    finish_reason: str | None  # "stop", "length" (cut at max_tokens), ...; None if unsaid
    prompt_tokens: int | None  # from the usage chunk, when the server sent one
    completion_tokens: int | None
    first_token_ms: float | None  # to the first non-empty text; None for an empty answer
    total_ms: float


class ChatCancelled(Exception):
    """should_stop() returned True; the stream was closed (the server aborts the generation)."""


async def chat(
    client: InferenceClient,
    request: ChatRequest,
    *,
    should_stop: Callable[[], bool] | None = None,
) -> ChatAnswer:
    """Stream one chat completion and return it whole.

    `should_stop` must be cheap and must not block (it runs on the event loop):
    reading a flag or an event. Raises :class:`ChatCancelled` once it returns True,
    or a :class:`~inference.errors.ModelError`.
    """
    stop = should_stop or _never
    if stop():
        raise ChatCancelled("cancelled before the request was sent")
    started = time.perf_counter()
    answer = _Assembly(started)
    chunks = client.stream_chat(request.body())
    # One task reads the whole stream, so waiting for it can time out (to poll
    # should_stop while the model is silent) without cancelling a read midway; a
    # task per chunk cost ~0.1 ms each on a long answer.
    reader = asyncio.create_task(_read_all(chunks, answer, stop))
    try:
        while True:
            done, _ = await asyncio.wait({reader}, timeout=STOP_POLL_S)
            if done:
                return reader.result()
            if stop():
                raise ChatCancelled("cancelled while waiting for the model")
    finally:
        if not reader.done():
            reader.cancel()  # the read ends with CancelledError: the stream closes
            await asyncio.wait({reader})
        if not reader.cancelled():
            reader.exception()  # retrieved: a late error is not logged as lost
        await chunks.aclose()


async def _read_all(
    chunks: AsyncGenerator[dict[str, Any], None], answer: _Assembly, stop: Callable[[], bool]
) -> ChatAnswer:
    async for chunk in chunks:
        answer.add(chunk)
        if stop():
            raise ChatCancelled("cancelled while the model was answering")
    return answer.finish()


def chat_sync(
    url: str,
    request: ChatRequest,
    *,
    api_key: str | None = None,
    connect_timeout_s: float = 2.0,
    read_timeout_s: float = 60.0,
    should_stop: Callable[[], bool] | None = None,
) -> ChatAnswer:
    """:func:`chat` from synchronous code (a job function), with its own client.

    Runs an event loop in the calling thread, which must not have one running.
    `read_timeout_s` is the longest silence allowed inside the answer; a loaded CPU
    engine can take long to prefill a big prompt.
    """
    from inference.client import InferenceClient

    async def run() -> ChatAnswer:
        client = InferenceClient(
            url,
            api_key=api_key,
            connect_timeout_s=connect_timeout_s,
            read_timeout_s=read_timeout_s,
        )
        try:
            return await chat(client, request, should_stop=should_stop)
        finally:
            await client.aclose()

    return asyncio.run(run())


def _never() -> bool:
    return False


class _Assembly:
    """The answer as its chunks arrive: text deltas, the finish reason, the usage."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.parts: list[str] = []
        self.finish_reason: str | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.first_token_ms: float | None = None

    def add(self, chunk: dict[str, Any]) -> None:
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.prompt_tokens = _count(usage.get("prompt_tokens"))
            self.completion_tokens = _count(usage.get("completion_tokens"))
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta")
            text = delta.get("content") if isinstance(delta, dict) else None
            if isinstance(text, str) and text:
                if self.first_token_ms is None:
                    self.first_token_ms = self._ms()
                self.parts.append(text)
            reason = choice.get("finish_reason")
            if isinstance(reason, str):
                self.finish_reason = reason

    def finish(self) -> ChatAnswer:
        return ChatAnswer(
            text="".join(self.parts),
            finish_reason=self.finish_reason,
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            first_token_ms=self.first_token_ms,
            total_ms=self._ms(),
        )

    def _ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
