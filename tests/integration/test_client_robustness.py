"""Client robustness against a real (scripted) model server and a closed port.

Retries of idempotent calls, no retry of a completion already sent, the circuit
breaker opening, failing fast and recovering after a restart on the same port,
429 pauses told once, and prompts kept within the served context window. Request
counts are read at the server (``ScriptedModel.hits``): failing fast must not touch
the network.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest

from inference.client import ClientEvent, CompletionRequest, EventKind, InferenceClient
from inference.errors import (
    ContextTooLong,
    ModelConnectionLost,
    ModelError,
    ModelHTTPError,
    ModelNotFound,
    ModelPaused,
    ModelRateLimited,
    ModelTimeout,
    ModelUnavailable,
)
from inference.resilience import Backoff, CircuitBreaker, RetryPolicy
from server.completion.backend import ModelBackend, ModelNotReady
from server.completion.context import ContextBuilder
from server.completion.snippets import SnippetIndex
from server.completion.types import CompletionRequest as EditorRequest
from server.completion.types import Document
from server.notify import Level, Notifier
from server.settings import InferenceSettings
from tests.support.scripted_model import Reply, ScriptedModel, count_tokens

COMPLETIONS = "/v1/completions"
COOLDOWN_S = 0.3
FAST_RETRY = RetryPolicy(backoff=Backoff(base_s=0.01, factor=2.0, cap_s=0.05))


def fast_breaker(threshold: int = 3) -> CircuitBreaker:
    return CircuitBreaker(
        failure_threshold=threshold,
        cooldown=Backoff(base_s=COOLDOWN_S, factor=2.0, cap_s=4 * COOLDOWN_S),
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(model: str = "scripted-coder", max_tokens: int = 16, prompt: str = "x = ") -> Any:
    return CompletionRequest(model=model, prompt=prompt, max_tokens=max_tokens, stop=())


async def complete(client: InferenceClient | ModelBackend, req: CompletionRequest) -> str:
    stream = (
        client.stream(req) if isinstance(client, ModelBackend) else client.stream_completion(req)
    )
    return "".join([piece async for piece in stream])


@asynccontextmanager
async def make_client(
    url: str, *, retry: RetryPolicy = FAST_RETRY, read_timeout_s: float = 5.0
) -> AsyncIterator[tuple[InferenceClient, list[ClientEvent]]]:
    events: list[ClientEvent] = []
    client = InferenceClient(
        url,
        read_timeout_s=read_timeout_s,
        retry=retry,
        breaker=fast_breaker(),
        on_event=events.append,
    )
    try:
        yield client, events
    finally:
        await client.aclose()


class Told:
    """A Notifier's two sinks, recorded."""

    def __init__(self) -> None:
        self.shown: list[tuple[Level, str]] = []
        self.logged: list[tuple[Level, str]] = []
        self.notifier = Notifier(log_interval_s=0.0)
        self.notifier.connect(
            log_sink=lambda level, m: self.logged.append((level, m)),
            show_sink=lambda level, m: self.shown.append((level, m)),
        )

    def shown_with(self, text: str) -> list[str]:
        return [m for _, m in self.shown if text in m]

    def logged_with(self, text: str) -> list[str]:
        return [m for _, m in self.logged if text in m]


@asynccontextmanager
async def make_backend(url: str, **settings: Any) -> AsyncIterator[tuple[ModelBackend, Told]]:
    told = Told()
    backend = ModelBackend(
        InferenceSettings(url=url, **settings),
        notifier=told.notifier,
        retry=FAST_RETRY,
        breaker=fast_breaker(),
    )
    try:
        yield backend, told
    finally:
        await backend.aclose()


async def eventually(check: Callable[[], Any], timeout_s: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return await check()
        except (ModelError, ModelNotReady):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


# ------------------------------------------------------------ idempotent calls


@pytest.mark.parametrize(
    ("path", "faults"),
    [
        ("/v1/models", [Reply(status=503)]),
        ("/v1/models", [Reply(status=503), Reply(status=502)]),
        ("/tokenize", [Reply(status=504), Reply(status=503)]),
        ("/tokenize", [Reply(status=429, headers={"Retry-After": "0.2"})]),
    ],
    ids=["models-503", "models-503-502", "tokenize-504-503", "tokenize-429"],
)
async def test_idempotent_calls_recover_after_transient_failures(
    scripted_model: ScriptedModel, path: str, faults: list[Reply]
) -> None:
    scripted_model.fail(path, *faults)
    async with make_client(scripted_model.url) as (client, events):
        if path == "/v1/models":
            assert [m.id for m in await client.list_models()] == ["scripted-coder"]
        else:
            assert await client.count_tokens("scripted-coder", "def f") == 3
    assert scripted_model.hits[path] == len(faults) + 1
    assert events == []  # recovered within the call: nothing to tell


async def test_idempotent_call_retries_a_silent_server(scripted_model: ScriptedModel) -> None:
    scripted_model.fail("/v1/models", Reply(hang=True))
    async with make_client(scripted_model.url, read_timeout_s=0.3) as (client, _):
        assert [m.id for m in await client.list_models()] == ["scripted-coder"]
    assert scripted_model.hits["/v1/models"] == 2


async def test_idempotent_call_gives_up_after_three_attempts(
    scripted_model: ScriptedModel,
) -> None:
    scripted_model.fail("/v1/models", *[Reply(status=503)] * 5)
    async with make_client(scripted_model.url) as (client, _):
        with pytest.raises(ModelHTTPError) as caught:
            await client.list_models()
    assert caught.value.status == 503
    assert scripted_model.hits["/v1/models"] == 3


@pytest.mark.parametrize("status", [400, 404, 500])
async def test_idempotent_call_does_not_retry_what_a_retry_cannot_fix(
    scripted_model: ScriptedModel, status: int
) -> None:
    scripted_model.fail("/tokenize", Reply(status=status))
    async with make_client(scripted_model.url) as (client, _):
        with pytest.raises(ModelHTTPError):
            await client.count_tokens("scripted-coder", "x")
    assert scripted_model.hits["/tokenize"] == 1


async def test_a_long_retry_after_fails_the_idempotent_call_and_pauses_the_rest(
    scripted_model: ScriptedModel,
) -> None:
    scripted_model.fail("/v1/models", Reply(status=429, headers={"Retry-After": "30"}))
    async with make_client(scripted_model.url) as (client, events):
        started = time.monotonic()
        with pytest.raises(ModelRateLimited):
            await client.list_models()
        with pytest.raises(ModelRateLimited):
            await client.list_models()
        with pytest.raises(ModelRateLimited):
            await complete(client, request())
        assert time.monotonic() - started < 1.0
    assert scripted_model.hits["/v1/models"] == 1
    assert scripted_model.hits[COMPLETIONS] == 0
    assert [e.kind for e in events] == [EventKind.RATE_LIMITED]
    assert events[0].pause_s == 30


# ----------------------------------------------------------------- completions


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (Reply(status=503, text="no KV cache blocks left"), ModelHTTPError),
        (Reply(status=500, text="engine dead"), ModelHTTPError),
        (Reply(text="return a + b  # and more", drop_after=2), ModelConnectionLost),
        (Reply(text="return a + b", hang=True), ModelTimeout),
    ],
    ids=["503", "500", "dropped-mid-stream", "silent"],
)
async def test_a_completion_already_sent_is_not_retried(
    scripted_model: ScriptedModel, reply: Reply, error: type[ModelError]
) -> None:
    scripted_model.queue(reply)
    async with make_client(scripted_model.url, read_timeout_s=0.3) as (client, events):
        with pytest.raises(error):
            await complete(client, request())
    assert scripted_model.hits[COMPLETIONS] == 1
    assert events == []  # one failure does not open the breaker


async def test_a_dropped_stream_yields_some_text_then_raises(
    scripted_model: ScriptedModel,
) -> None:
    scripted_model.queue(Reply(chunks=["ret", "urn", " a", " + b"], drop_after=2))
    pieces: list[str] = []
    async with make_client(scripted_model.url) as (client, _):
        with pytest.raises(ModelConnectionLost, match="broke off"):
            async for piece in client.stream_completion(request()):
                pieces.append(piece)
    assert pieces == ["ret", "urn"]  # partial: the caller discards it
    scripted_model._wait(lambda: scripted_model.dropped == 1, 2, "a dropped stream")


async def test_a_completion_whose_connection_was_refused_is_retried_once() -> None:
    port = closed_port()
    model = ScriptedModel(port=port)
    model.reply_with("return 1")
    retry = RetryPolicy(backoff=FAST_RETRY.backoff, completion_connect_retry_s=0.5)

    async def start_soon() -> None:
        await asyncio.sleep(0.1)
        await asyncio.to_thread(model.start)

    starter = asyncio.create_task(start_soon())
    try:
        async with make_client(f"http://127.0.0.1:{port}/v1", retry=retry) as (client, _):
            assert await complete(client, request()) == "return 1"
        assert model.hits[COMPLETIONS] == 1
    finally:
        await starter
        model.stop()


async def test_a_completion_to_a_closed_port_fails_after_one_quick_retry() -> None:
    async with make_client(f"http://127.0.0.1:{closed_port()}/v1") as (client, events):
        started = time.monotonic()
        with pytest.raises(ModelUnavailable, match="cannot connect"):
            await complete(client, request())
        elapsed = time.monotonic() - started
    assert 0.05 <= elapsed < 1.0
    assert events == []


# ------------------------------------------------------------------ the breaker


async def test_breaker_opens_after_three_failures_fails_fast_and_recovers(
    scripted_model: ScriptedModel,
) -> None:
    scripted_model.reply_with(Reply(status=503, text="overloaded"))
    async with make_client(scripted_model.url) as (client, events):
        for _ in range(3):
            with pytest.raises(ModelHTTPError):
                await complete(client, request())
        assert [e.kind for e in events] == [EventKind.BREAKER_OPENED]
        assert "overloaded" in events[0].cause
        assert events[0].pause_s == COOLDOWN_S

        # Open: nothing reaches the server, whatever the call.
        for _ in range(5):
            with pytest.raises(ModelPaused):
                await complete(client, request())
        with pytest.raises(ModelPaused):
            await client.list_models()
        assert scripted_model.hits[COMPLETIONS] == 3
        assert scripted_model.hits["/v1/models"] == 0

        # After the cool-down one trial goes through; the server is well again.
        scripted_model.reply_with("return a + b")
        await asyncio.sleep(COOLDOWN_S)
        assert await complete(client, request()) == "return a + b"
        assert [e.kind for e in events] == [EventKind.BREAKER_OPENED, EventKind.BREAKER_CLOSED]
        assert await complete(client, request()) == "return a + b"
    assert scripted_model.hits[COMPLETIONS] == 5


async def test_a_failed_trial_reopens_for_longer(scripted_model: ScriptedModel) -> None:
    scripted_model.reply_with(Reply(status=503))
    async with make_client(scripted_model.url) as (client, events):
        for _ in range(3):
            with pytest.raises(ModelHTTPError):
                await complete(client, request())
        await asyncio.sleep(COOLDOWN_S)
        with pytest.raises(ModelHTTPError):  # the trial
            await complete(client, request())
        with pytest.raises(ModelPaused) as caught:
            await complete(client, request())
    assert [e.pause_s for e in events] == [COOLDOWN_S, 2 * COOLDOWN_S]
    assert caught.value.retry_in_s > COOLDOWN_S
    assert scripted_model.hits[COMPLETIONS] == 4


async def test_restarted_server_recovers_and_the_model_is_resolved_again(
    scripted_model: ScriptedModel,
) -> None:
    async with make_backend(scripted_model.url) as (backend, told):
        info = await backend.info()
        assert (info.name, info.max_model_len) == ("scripted-coder", 4096)
        scripted_model.stop()  # crashed: connections refused from now on
        for _ in range(3):
            # A pooled connection may still look alive for the first request.
            with pytest.raises((ModelUnavailable, ModelConnectionLost)) as caught:
                await complete(backend, request())
            backend.report(caught.value)
        assert len(told.shown_with("is failing (cannot connect")) == 1
        assert told.shown_with("pausing requests for 0.3 s")
        with pytest.raises(ModelNotReady):  # open: fails fast, no resolution attempt
            await backend.info()

        scripted_model.model_name = "restarted-coder"
        scripted_model.max_model_len = 2048
        scripted_model.start()  # the same port
        info = await eventually(backend.info)
        assert (info.name, info.max_model_len) == ("restarted-coder", 2048)
        assert await complete(backend, request("restarted-coder")) == ""
    assert len(told.shown) == 1  # told once that it failed...
    assert told.logged_with("answers again")  # ...and that it is back


async def test_model_gone_after_a_restart_is_resolved_again(
    scripted_model: ScriptedModel,
) -> None:
    async with make_backend(scripted_model.url) as (backend, told):
        assert (await backend.info()).name == "scripted-coder"
        scripted_model.model_name = "another-coder"
        with pytest.raises(ModelNotFound) as caught:
            await complete(backend, request("scripted-coder"))
        backend.report(caught.value)
        assert (await backend.info()).name == "another-coder"
    assert told.shown == []


# ------------------------------------------------------------ what users hear


@pytest.mark.parametrize("fault", ["refused", "503"])
async def test_a_server_still_starting_is_reported_as_not_ready_yet(fault: str) -> None:
    port = closed_port()
    model = ScriptedModel(port=port)
    if fault == "503":
        model.outage = Reply(status=503, text="the engine is loading")
        model.start()
    try:
        async with make_backend(f"http://127.0.0.1:{port}/v1") as (backend, told):
            with pytest.raises(ModelNotReady):
                await backend.info()
            (message,) = told.shown_with("not ready yet")
            assert ("cannot connect" if fault == "refused" else "loading") in message
            if fault == "503":
                model.outage = None
            else:
                model.start()
            info = await eventually(backend.info)
            assert info.name == "scripted-coder"
        assert len(told.shown) == 1
        assert told.logged_with("answers again")
        assert told.logged_with("using model 'scripted-coder'")
    finally:
        model.stop()


async def test_a_model_that_is_not_served_is_named_with_the_served_ones(
    scripted_model: ScriptedModel,
) -> None:
    async with make_backend(scripted_model.url, model="missing-coder") as (backend, told):
        for _ in range(5):
            with pytest.raises(ModelNotReady):
                await backend.info()
    ((level, message),) = told.shown
    assert level is Level.ERROR
    assert "'missing-coder' is not served" in message
    assert "scripted-coder" in message
    # A lasting failure is not looked up again on every keystroke.
    assert scripted_model.hits["/v1/models"] == 1


async def test_rate_limit_pauses_completions_and_the_user_is_told_once(
    scripted_model: ScriptedModel,
) -> None:
    scripted_model.queue(Reply(status=429, text="slow down", headers={"Retry-After": "1"}))
    scripted_model.reply_with("return 2")
    async with make_backend(scripted_model.url) as (backend, told):
        await backend.info()
        for _ in range(6):  # keystrokes
            with pytest.raises(ModelRateLimited):
                await complete(backend, request())
            await asyncio.sleep(0.05)
        assert scripted_model.hits[COMPLETIONS] == 1
        (message,) = told.shown_with("rate-limiting")
        assert "pausing completions for 1 s" in message
        await asyncio.sleep(1.0)
        assert await complete(backend, request()) == "return 2"
        backend.succeeded()
    assert scripted_model.hits[COMPLETIONS] == 2
    assert told.logged_with("accepts requests again")
    assert len(told.shown) == 1


async def test_a_broken_stream_is_logged_not_shown(scripted_model: ScriptedModel) -> None:
    scripted_model.queue(Reply(text="return a + b", drop_after=1))
    async with make_backend(scripted_model.url) as (backend, told):
        await backend.info()
        with pytest.raises(ModelConnectionLost) as caught:
            await complete(backend, request())
        backend.report(caught.value)
    assert told.shown == []
    assert told.logged_with("broke off")


# ------------------------------------------------------------- context window


class ScriptedCounter:
    """The scripted model's own tokenizer, as an exact local counter."""

    exact = True

    def count(self, text: str) -> int:
        return count_tokens(text)


def big_document() -> tuple[EditorRequest, list[Document]]:
    lines = [
        f"    total_{i} = compute(values[{i}], weight={i} * 0.5)  # step {i}\n" for i in range(600)
    ]
    text = (
        "def run(values):\n" + "".join(lines[:400]) + "    result = " + "\n" + "".join(lines[400:])
    )
    offset = text.index("    result = ") + len("    result = ")
    doc = Document("file:///w/run.py", "python", 1, text)
    helper = Document("file:///w/helper.py", "python", 1, "".join(lines).replace("total", "acc"))
    return EditorRequest(document=doc, offset=offset, line=401, character=13), [doc, helper]


def builder() -> ContextBuilder:
    return ContextBuilder(
        prefix_tokens=1536,
        suffix_tokens=512,
        snippet_tokens=384,
        snippet_time_limit_s=1.0,
        snippets=SnippetIndex(),
    )


@pytest.mark.parametrize("max_tokens", [16, 64, 256])
async def test_prompts_are_capped_to_the_served_context_window(max_tokens: int) -> None:
    with ScriptedModel(max_model_len=700) as model:
        model.reply_with("value")
        async with make_backend(model.url) as (backend, told):
            info = await backend.info()
            assert info.max_model_len == 700
            editor_request, documents = big_document()
            ctx = builder().build(
                editor_request,
                ScriptedCounter(),
                documents,
                max_prompt_tokens=info.prompt_limit(max_tokens),
            )
            prompt = info.template.render(ctx.full_prefix, ctx.suffix)
            assert await complete(backend, request(info.name, max_tokens, prompt)) == "value"
        assert count_tokens(prompt) + max_tokens <= 700
        assert ctx.prefix.endswith("    result = ")
        assert len(ctx.prefix) > 200
        assert told.shown == []


async def test_a_prompt_over_the_window_is_reported_and_the_next_ones_shrink() -> None:
    """The server's 400 names the window: the backend shrinks what it sends next."""
    with ScriptedModel(max_model_len=700) as model:
        model.reply_with("value")
        async with make_backend(model.url) as (backend, told):
            info = await backend.info()
            editor_request, documents = big_document()
            # Uncapped: far over 700 tokens.
            ctx = builder().build(editor_request, ScriptedCounter(), documents)
            prompt = info.template.render(ctx.full_prefix, ctx.suffix)
            with pytest.raises(ContextTooLong) as caught:
                await complete(backend, request(info.name, 64, prompt))
            assert caught.value.limit == 700
            assert caught.value.requested == count_tokens(prompt) + 64
            backend.report(caught.value)
            assert told.logged_with("too long for the model's context window")
            assert told.shown == []

            # A counter that underestimates (as the estimates do), capped by the window
            # and corrected by what the server said.
            class HalfCounter:
                exact = False

                def count(self, text: str) -> int:
                    return count_tokens(text) // 2

            counter = HalfCounter()
            rejected = 0
            for _ in range(3):
                info = await backend.info()
                ctx = builder().build(
                    editor_request, counter, documents, max_prompt_tokens=info.prompt_limit(64)
                )
                prompt = info.template.render(ctx.full_prefix, ctx.suffix)
                try:
                    assert await complete(backend, request(info.name, 64, prompt)) == "value"
                    break
                except ContextTooLong as exc:
                    rejected += 1
                    backend.report(exc)
            else:
                pytest.fail("prompts never fit the window")
        assert rejected <= 1
        assert count_tokens(prompt) + 64 <= 700
