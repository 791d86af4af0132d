"""Chat completions (the model call of code actions) against the scripted model on a socket.

The answer is assembled from the streamed deltas with its finish reason and usage;
a cancel closes the stream (the server sees the client go, as vLLM does when it
aborts a generation), whether the model is talking or silent; failures come out as
the same errors as completions; chat_sync serves plain job threads.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from inference.chat import ChatAnswer, ChatCancelled, ChatRequest, chat, chat_sync
from inference.client import InferenceClient
from inference.errors import (
    ContextTooLong,
    ModelConnectionLost,
    ModelError,
    ModelHTTPError,
    ModelNotFound,
    ModelPaused,
    ModelProtocolError,
    ModelRateLimited,
    ModelTimeout,
    ModelUnavailable,
)
from inference.resilience import Backoff, CircuitBreaker, RetryPolicy
from tests.support.scripted_model import (
    DEFAULT_CHAT_TEXT,
    Reply,
    ScriptedModel,
    chat_prompt,
    count_tokens,
)

CHAT = "/v1/chat/completions"
MESSAGES = [
    {"role": "system", "content": "You write Python."},
    {"role": "user", "content": "Write a docstring for:\ndef add(a, b):\n    return a + b"},
]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ask(model: str = "scripted-coder", **fields: Any) -> ChatRequest:
    return ChatRequest(model=model, messages=MESSAGES, **fields)


@asynccontextmanager
async def make_client(
    url: str, *, read_timeout_s: float = 30.0, retry: RetryPolicy | None = None
) -> AsyncIterator[InferenceClient]:
    client = InferenceClient(
        url,
        read_timeout_s=read_timeout_s,
        retry=retry,
        breaker=CircuitBreaker(cooldown=Backoff(base_s=30.0, cap_s=30.0)),
    )
    try:
        yield client
    finally:
        await client.aclose()


async def chat_once(model: ScriptedModel, request: ChatRequest, **kwargs: Any) -> ChatAnswer:
    async with make_client(model.url) as client:
        return await chat(client, request, **kwargs)


class StopAfter:
    """should_stop() that says True from its n-th call on."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.calls >= self.n


# ------------------------------------------------------------------- the answer


async def test_the_answer_is_assembled_from_the_streamed_deltas(
    scripted_model: ScriptedModel,
) -> None:
    pieces = ["```python\n", 'def add(a, b):\n    """Add', ' two numbers."""\n', "```"]
    scripted_model.chat_reply_with(Reply(chunks=pieces))
    answer = await chat_once(scripted_model, ask(max_tokens=200))
    assert answer.text == "".join(pieces)
    assert answer.finish_reason == "stop"
    assert answer.prompt_tokens == count_tokens(chat_prompt(MESSAGES))
    assert answer.completion_tokens == count_tokens(answer.text)
    assert answer.first_token_ms is not None
    assert 0 < answer.first_token_ms <= answer.total_ms


async def test_the_request_streams_with_usage_and_merges_extra_fields_first(
    scripted_model: ScriptedModel,
) -> None:
    request = ask(
        max_tokens=300,
        temperature=0.0,
        stop=("<|im_end|>",),
        extra={"response_format": {"type": "text"}, "model": "ignored", "seed": 7},
    )
    assert (await chat_once(scripted_model, request)).text == DEFAULT_CHAT_TEXT
    (body,) = scripted_model.chat_requests
    assert body["model"] == "scripted-coder"  # the request's own fields win over `extra`
    assert body["messages"] == MESSAGES
    assert (body["max_tokens"], body["temperature"], body["stop"]) == (300, 0.0, ["<|im_end|>"])
    assert body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert (body["response_format"], body["seed"]) == ({"type": "text"}, 7)
    assert scripted_model.requests == []  # nothing went to /v1/completions


async def test_an_answer_cut_at_max_tokens_says_length(scripted_model: ScriptedModel) -> None:
    scripted_model.chat_reply_with("abcdefghijklmnop")  # 4 tokens of 4 characters
    answer = await chat_once(scripted_model, ask(max_tokens=2))
    assert (answer.text, answer.finish_reason) == ("abcdefgh", "length")
    assert answer.completion_tokens == 2


async def test_stop_strings_end_the_answer(scripted_model: ScriptedModel) -> None:
    scripted_model.chat_reply_with("x = 1\n```\nmore prose")
    answer = await chat_once(scripted_model, ask(stop=("```",)))
    assert (answer.text, answer.finish_reason) == ("x = 1\n", "stop")


async def test_an_empty_answer(scripted_model: ScriptedModel) -> None:
    scripted_model.chat_reply_with("")
    answer = await chat_once(scripted_model, ask())
    assert (answer.text, answer.finish_reason, answer.first_token_ms) == ("", "stop", None)
    assert answer.completion_tokens == 0


# ----------------------------------------------------------------- cancellation


async def test_a_cancel_mid_answer_closes_the_stream(scripted_model: ScriptedModel) -> None:
    scripted_model.chat_reply_with(Reply(text="word " * 400, chunk_delay_s=0.02))
    stop = StopAfter(4)  # before sending, then after each of the first chunks
    with pytest.raises(ChatCancelled):
        await chat_once(scripted_model, ask(max_tokens=1000), should_stop=stop)
    scripted_model.wait_for_cancelled(1)
    assert scripted_model.completed == 0
    assert stop.calls == 4  # not asked again once it said stop


async def test_a_cancel_is_honoured_while_the_model_is_silent(
    scripted_model: ScriptedModel,
) -> None:
    """A silent model (a long prefill): should_stop is polled, not only after chunks."""
    scripted_model.queue_chat(Reply(hang=True), Reply(delay_s=60.0, text="late"))
    for _ in range(2):
        cancel = threading.Event()
        asked = asyncio.create_task(chat_once(scripted_model, ask(), should_stop=cancel.is_set))
        await asyncio.to_thread(scripted_model.wait_for_chat_requests, 1)
        cancel.set()
        # The read timeout is 30 s: only the polling can end the call this way.
        with pytest.raises(ChatCancelled):
            await asyncio.wait_for(asked, timeout=20)
        scripted_model.chat_requests.clear()
    scripted_model.wait_for_cancelled(2)
    assert scripted_model.completed == 0


async def test_cancelled_before_asking_sends_nothing(scripted_model: ScriptedModel) -> None:
    with pytest.raises(ChatCancelled):
        await chat_once(scripted_model, ask(), should_stop=lambda: True)
    assert scripted_model.hits[CHAT] == 0


async def test_a_cancelled_task_closes_the_stream_too(scripted_model: ScriptedModel) -> None:
    scripted_model.chat_reply_with(Reply(hang=True))
    asked = asyncio.create_task(chat_once(scripted_model, ask()))
    await asyncio.to_thread(scripted_model.wait_for_chat_requests, 1)
    asked.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asked
    await asyncio.to_thread(scripted_model.wait_for_cancelled, 1)


# ------------------------------------------------------------------------ errors


async def test_an_unknown_model_is_model_not_found(scripted_model: ScriptedModel) -> None:
    with pytest.raises(ModelNotFound) as caught:
        await chat_once(scripted_model, ask(model="missing-coder"))
    assert caught.value.model == "missing-coder"
    assert caught.value.lasting
    assert "missing-coder" in str(caught.value)


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply(status=500, text="engine dead"), ModelHTTPError),
        (Reply(status=503, text="no KV cache blocks left"), ModelHTTPError),
        (Reply(status=429, headers={"Retry-After": "5"}), ModelRateLimited),
        (Reply(text="return a + b  # and more", drop_after=2), ModelConnectionLost),
        (Reply(chunks=["a", "b", "c", "d"], broken_json=True), ModelProtocolError),
        (Reply(text="never", hang=True), ModelTimeout),
    ],
    ids=["500", "503", "429", "dropped-mid-stream", "broken-json", "silent"],
)
async def test_failures_raise_the_model_errors_and_are_not_retried(
    scripted_model: ScriptedModel, reply: Reply, error: type[ModelError]
) -> None:
    scripted_model.queue_chat(reply)
    async with make_client(scripted_model.url, read_timeout_s=0.3) as client:
        with pytest.raises(error) as caught:
            await chat(client, ask())
    if reply.status != 200:
        assert isinstance(caught.value, ModelHTTPError)
        assert caught.value.status == reply.status
        assert (reply.text or "") in caught.value.detail
        assert not caught.value.lasting  # a server-side or passing problem
    assert scripted_model.hits[CHAT] == 1


async def test_a_prompt_over_the_context_window_is_context_too_long() -> None:
    with ScriptedModel(max_model_len=300) as model, pytest.raises(ContextTooLong) as caught:
        await chat_once(model, ask(max_tokens=256))
    assert caught.value.limit == 300
    assert caught.value.requested == count_tokens(chat_prompt(MESSAGES)) + 256


async def test_a_server_that_is_down_is_model_unavailable() -> None:
    url = f"http://127.0.0.1:{closed_port()}/v1"
    async with make_client(url) as client:
        with pytest.raises(ModelUnavailable, match=f"cannot connect to {url}"):
            await chat(client, ask())


async def test_a_refused_connection_is_retried_once() -> None:
    port = closed_port()
    model = ScriptedModel(port=port)
    model.chat_reply_with("done")
    retry = RetryPolicy(completion_connect_retry_s=0.5)

    async def start_soon() -> None:
        await asyncio.sleep(0.1)
        await asyncio.to_thread(model.start)

    starter = asyncio.create_task(start_soon())
    try:
        async with make_client(f"http://127.0.0.1:{port}/v1", retry=retry) as client:
            assert (await chat(client, ask())).text == "done"
        assert model.hits[CHAT] == 1
    finally:
        await starter
        model.stop()


async def test_failing_chats_open_the_breaker_shared_with_completions(
    scripted_model: ScriptedModel,
) -> None:
    scripted_model.chat_reply_with(Reply(status=503, text="overloaded"))
    async with make_client(scripted_model.url) as client:
        for _ in range(3):
            with pytest.raises(ModelHTTPError):
                await chat(client, ask())
        with pytest.raises(ModelPaused, match="overloaded"):
            await chat(client, ask())
        with pytest.raises(ModelPaused):
            await client.list_models()
    assert scripted_model.hits[CHAT] == 3


# --------------------------------------------------------------------- chat_sync


def run_in_thread(fn: Callable[[], ChatAnswer]) -> ChatAnswer | BaseException:
    """fn() in a plain thread, as a job function runs: its result or its exception."""
    outcome: list[ChatAnswer | BaseException] = []

    def target() -> None:
        try:
            outcome.append(fn())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    return outcome[0]


def test_chat_sync_from_a_plain_thread(scripted_model: ScriptedModel) -> None:
    scripted_model.chat_reply_with(Reply(chunks=["def f():\n", "    pass\n"], delay_s=0.05))
    answer = run_in_thread(lambda: chat_sync(scripted_model.url, ask(), api_key="secret"))
    assert isinstance(answer, ChatAnswer)
    assert (answer.text, answer.finish_reason) == ("def f():\n    pass\n", "stop")
    assert answer.prompt_tokens == count_tokens(chat_prompt(MESSAGES))


def test_chat_sync_cancelled_from_another_thread(scripted_model: ScriptedModel) -> None:
    scripted_model.chat_reply_with(Reply(hang=True))
    cancel = threading.Event()

    def cancel_once_asked() -> None:
        scripted_model.wait_for_chat_requests(1)
        cancel.set()

    canceller = threading.Thread(target=cancel_once_asked)
    canceller.start()
    outcome = run_in_thread(lambda: chat_sync(scripted_model.url, ask(), should_stop=cancel.is_set))
    canceller.join()
    assert isinstance(outcome, ChatCancelled)
    scripted_model.wait_for_cancelled(1)


def test_chat_sync_reports_model_errors(scripted_model: ScriptedModel) -> None:
    outcome = run_in_thread(lambda: chat_sync(scripted_model.url, ask(model="missing-coder")))
    assert isinstance(outcome, ModelNotFound)
    outcome = run_in_thread(lambda: chat_sync(f"http://127.0.0.1:{closed_port()}/v1", ask()))
    assert isinstance(outcome, ModelUnavailable)
