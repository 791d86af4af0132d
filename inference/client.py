"""Async client for OpenAI-compatible model servers (vLLM first).

One pooled ``aiohttp`` session per process, created on first use (aiohttp takes
a third of a second to import, which must not delay ``initialize``). aiohttp
rather than httpx: measured here, a streamed completion costs 0.4 ms of client
CPU with aiohttp against 1.5-2 ms with httpx, on a path whose whole budget is
5 ms. Streamed completions, and the chat completions of code actions
(:mod:`inference.chat`), are read as server-sent events; leaving the ``async for``
early (a stale request, a finished block, a cancelled task or job) closes the
connection, which makes vLLM abort the generation instead of finishing tokens
nobody will read.

Failures follow :mod:`inference.resilience`: idempotent calls retry with backoff,
a generation (completion or chat) is retried only when its connection could not
be made, a circuit breaker stops calls to a failing server, and a 429 pauses
generations. State changes the user should hear about (breaker opened or closed,
rate limited or not) go to the ``on_event`` callback, once each; the calls that
fail fast meanwhile raise :class:`ModelPaused` or :class:`ModelRateLimited`, which
callers need not report again. All of it costs a few attribute checks per call
and nothing per streamed chunk.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

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
    is_outage,
)
from inference.resilience import (
    Admission,
    CircuitBreaker,
    Clock,
    RetryPolicy,
    Transition,
    parse_context_overflow,
    parse_retry_after,
)

if TYPE_CHECKING:
    import aiohttp
    from multidict import CIMultiDictProxy

log = logging.getLogger(__name__)


class EventKind(StrEnum):
    BREAKER_OPENED = "breaker-opened"
    BREAKER_CLOSED = "breaker-closed"
    RATE_LIMITED = "rate-limited"
    RATE_LIMIT_ENDED = "rate-limit-ended"


@dataclass(frozen=True, slots=True)
class ClientEvent:
    kind: EventKind
    cause: str = ""
    pause_s: float = 0.0


@dataclass(frozen=True, slots=True)
class ServedModel:
    id: str
    root: str | None = None
    max_model_len: int | None = None


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    model: str
    prompt: str
    max_tokens: int
    stop: tuple[str, ...]
    temperature: float = 0.2
    extra: dict[str, Any] = field(default_factory=dict)
    # Every string that ends the answer; `stop` is what the server is asked to apply.
    stop_all: tuple[str, ...] = ()

    def params(self) -> dict[str, Any]:
        """The request body without the prompt (what the history records)."""
        return {
            **self.extra,
            "model": self.model,
            "max_tokens": self.max_tokens,
            "stop": list(self.stop),
            "temperature": self.temperature,
            "stream": True,
            # vLLM then ends the stream with a chunk of no choices and the token usage.
            "stream_options": {"include_usage": True},
        }

    def body(self) -> dict[str, Any]:
        body = self.params()
        body["prompt"] = self.prompt
        return body


@dataclass(slots=True)
class StreamMeta:
    """What a streamed completion said besides its text, filled in as it runs.

    For the history, not the answer: `sent` once the request was admitted (a call
    refused by the breaker or a 429 pause never reached the server), the finish
    reason of the last chunk that had one, and the usage of vLLM's last chunk (absent
    when the stream was left early).
    """

    sent: bool = False
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


# 502/503/504: a proxy without a backend, a server starting or overloaded. Not 500,
# which vLLM also uses for requests it cannot handle (retrying would not help).
_RETRY_STATUSES = frozenset({502, 503, 504})


class InferenceClient:
    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        connect_timeout_s: float = 2.0,
        read_timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        on_event: Callable[[ClientEvent], None] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._connect_timeout_s = connect_timeout_s
        self._read_timeout_s = read_timeout_s
        self._session: aiohttp.ClientSession | None = None
        self.retry = retry or RetryPolicy()
        self.breaker = breaker or CircuitBreaker(clock=clock)
        self.on_event = on_event
        self._clock = clock
        self.completions_url = f"{self.base_url}/completions"
        self._chat_url = f"{self.base_url}/chat/completions"
        self._paused_until = 0.0  # a 429's Retry-After, on `clock`
        self._rate_told = False  # RATE_LIMITED was emitted and not yet ended

    @property
    def server_root(self) -> str:
        """vLLM serves /tokenize and /health at the root, beside /v1."""
        return self.base_url.removesuffix("/v1")

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            import aiohttp

            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    sock_connect=self._connect_timeout_s,
                    sock_read=self._read_timeout_s,
                ),
                # Idle connections are dropped after 4 s, before vLLM's (uvicorn's) 5 s
                # keep-alive closes them from its side: reusing a connection the server
                # is closing fails a request that was already sent, which a completion
                # must not retry. A new loopback or LAN connection costs under 1 ms.
                connector=aiohttp.TCPConnector(limit=32, keepalive_timeout=4.0),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    # -- idempotent calls: retried -------------------------------------------------

    async def list_models(self) -> list[ServedModel]:
        data = await self._call("GET", f"{self.base_url}/models", None)
        models = data.get("data") if isinstance(data, dict) else None
        if not isinstance(models, list):
            raise ModelProtocolError("GET /models did not return a list of models")
        return [
            ServedModel(
                id=str(m["id"]),
                root=m.get("root") if isinstance(m.get("root"), str) else None,
                max_model_len=_positive_int(m.get("max_model_len")),
            )
            for m in models
            if isinstance(m, dict) and "id" in m
        ]

    async def count_tokens(self, model: str, text: str) -> int:
        """Tokens the served tokenizer makes of `text`, without BOS/EOS additions."""
        body = {"model": model, "prompt": text, "add_special_tokens": False}
        data = await self._call("POST", f"{self.server_root}/tokenize", body)
        if isinstance(data, dict) and isinstance(data.get("count"), int):
            return int(data["count"])
        if isinstance(data, dict) and isinstance(data.get("tokens"), list):
            return len(data["tokens"])
        raise ModelProtocolError("POST /tokenize returned no token count")

    async def health(self) -> None:
        """Returns when GET /health answers 200 (vLLM: the engine is up); raises otherwise."""
        await self._call("GET", f"{self.server_root}/health", None, parse=False)

    # -- completions: on the keystroke path ----------------------------------------

    async def stream_completion(
        self, request: CompletionRequest, meta: StreamMeta | None = None
    ) -> AsyncIterator[str]:
        """Yield text pieces as the model produces them; `meta` gets the rest."""
        if meta is None:
            meta = StreamMeta()
        async with self._open_stream(self.completions_url, request.body(), meta) as response:
            async for raw_line in response.content:
                if not raw_line.startswith(b"data:"):
                    continue  # blank separators, SSE comments, keep-alives
                payload = raw_line[5:].strip()
                if payload == b"[DONE]":
                    return
                text = _chunk_text(payload, meta)
                if text:
                    yield text

    # -- chat: code actions, off the keystroke path ----------------------------------

    async def stream_chat(self, body: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        """Yield the decoded chunks of a streamed ``POST /chat/completions``.

        `body` is the whole request (``stream`` true); :mod:`inference.chat` builds it
        and reads deltas, finish reason and usage from the chunks. Same policy as
        :meth:`stream_completion`. A chunk carrying ``error`` (vLLM's way to report a
        failure once the stream has started) raises :class:`ModelHTTPError`.
        """
        async with self._open_stream(self._chat_url, body) as response:
            async for raw_line in response.content:
                if not raw_line.startswith(b"data:"):
                    continue
                payload = raw_line[5:].strip()
                if payload == b"[DONE]":
                    return
                yield _chat_chunk(payload)

    # -- streamed generations --------------------------------------------------------

    @asynccontextmanager
    async def _open_stream(
        self, url: str, body: dict[str, Any], meta: StreamMeta | None = None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """POST a streamed generation; the response once the server answered 200.

        One call for the breaker, judged when the server answered (a stream that
        breaks later still reports its error). aiohttp's exceptions are translated for
        the whole block, reading included. Leaving the block early closes the
        connection (not back to the pool): that is what makes vLLM abort.
        """
        admission = self._admit(wait_ok=False)
        if meta is not None:
            meta.sent = True
        answered = False
        try:
            with self._translate_errors():
                response = await self._post_stream(url, body)
                async with response:
                    if response.status != 200:
                        data = await response.read()
                        raise self._http_error(
                            response.status, data, response.headers, body, generation=True
                        )
                    answered = True
                    self._outcome(admission, None)
                    try:
                        yield response
                    except BaseException:
                        response.close()
                        raise
        except ModelError as exc:
            self._outcome(admission, exc)
            raise
        except BaseException:
            if not answered:  # cancelled before the server answered: no verdict
                self.breaker.abandoned(admission)
            raise

    async def _post_stream(self, url: str, body: dict[str, Any]) -> aiohttp.ClientResponse:
        """POST once; again after a short pause only if no connection could be made.

        A refused or failed connect means nothing was sent, so the retry cannot run a
        generation twice; anything later (the request may have reached vLLM) is not
        retried. A connect *timeout* is not retried either: it already cost seconds.
        """
        import aiohttp

        session = self._http()
        try:
            return await session.post(url, json=body)
        except aiohttp.ClientConnectorError as exc:
            log.debug("connect to %s failed (%s); one retry", self.base_url, exc)
            await asyncio.sleep(self.retry.completion_connect_retry_s)
            return await session.post(url, json=body)

    # -- policy ----------------------------------------------------------------------

    def _admit(self, *, wait_ok: bool) -> Admission:
        """Fail fast while the breaker is open or a 429 pause runs; else admit the call."""
        admission = self.breaker.admit()
        if not admission:
            remaining = self.breaker.remaining_s()
            raise ModelPaused(
                f"model server at {self.base_url} is failing ({self.breaker.last_cause}); "
                f"next try in {remaining:.1f} s",
                remaining,
            )
        if self._paused_until:
            remaining = self._paused_until - self._clock()
            if remaining > 0 and not (wait_ok and remaining <= self.retry.max_retry_after_s):
                self.breaker.abandoned(admission)
                raise ModelRateLimited(
                    f"rate limited by {self.base_url}; paused for {remaining:.1f} more s",
                    remaining,
                )
        return admission

    def _outcome(self, admission: Admission, exc: ModelError | None) -> None:
        """Tell the breaker how a call ended; emit the events its transitions deserve."""
        if exc is None or not is_outage(exc):
            if isinstance(exc, ModelRateLimited):
                self.breaker.abandoned(admission)  # alive but busy: no verdict
                return
            if (
                self.breaker.failures or admission is not Admission.CALL
            ) and self.breaker.succeeded() is Transition.CLOSED:
                self._emit(ClientEvent(EventKind.BREAKER_CLOSED))
            if self._rate_told and exc is None:
                self._rate_told = False
                self._emit(ClientEvent(EventKind.RATE_LIMIT_ENDED))
            return
        if self.breaker.failed(str(exc)) is Transition.OPENED:
            log.info(
                "model server at %s: %d failed calls, pausing requests for %.0f s: %s",
                self.base_url,
                self.breaker.failures,
                self.breaker.cooldown_s,
                exc,
            )
            self._emit(ClientEvent(EventKind.BREAKER_OPENED, str(exc), self.breaker.cooldown_s))

    def _rate_limited(self, headers: CIMultiDictProxy[str] | None, *, tell: bool) -> float:
        """Start (or extend) the 429 pause; returns its length in seconds."""
        value = headers.get("Retry-After") if headers is not None else None
        pause = parse_retry_after(value)
        if pause is None:
            pause = self.retry.default_retry_after_s
        pause = min(pause, self.retry.longest_pause_s)
        self._paused_until = max(self._paused_until, self._clock() + pause)
        if tell:
            self._tell_rate_limited(pause)
        return pause

    def _tell_rate_limited(self, pause: float) -> None:
        if not self._rate_told:
            self._rate_told = True
            self._emit(ClientEvent(EventKind.RATE_LIMITED, f"HTTP 429 from {self.base_url}", pause))

    def _emit(self, event: ClientEvent) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:  # a listener's bug must not turn into a model error
            log.exception("client event listener failed on %s", event.kind)

    # -- plumbing --------------------------------------------------------------------

    async def _call(
        self, method: str, url: str, body: dict[str, Any] | None, *, parse: bool = True
    ) -> Any:
        """An idempotent request with retries, counted as one call by the breaker."""
        admission = self._admit(wait_ok=True)
        started = self._clock()
        attempt = 0
        try:
            waiting = self._paused_until - started
            if waiting > 0:
                await asyncio.sleep(waiting)
            while True:
                try:
                    data = await self._request_once(method, url, body, parse=parse)
                except ModelError as exc:
                    wait = self._retry_wait(exc, attempt, started)
                    if wait is None:
                        if isinstance(exc, ModelRateLimited):
                            self._tell_rate_limited(exc.retry_in_s)
                        raise
                    log.debug("%s %s failed (%s); retry in %.2f s", method, url, exc, wait)
                    await asyncio.sleep(wait)
                    attempt += 1
                    continue
                self._outcome(admission, None)
                return data
        except ModelError as exc:
            self._outcome(admission, exc)
            raise
        except BaseException:
            self.breaker.abandoned(admission)
            raise

    def _retry_wait(self, exc: ModelError, attempt: int, started: float) -> float | None:
        """Seconds to wait before the next attempt, or None to give up."""
        policy = self.retry
        if attempt + 1 >= policy.attempts:
            return None
        if isinstance(exc, ModelRateLimited):
            if exc.retry_in_s > policy.max_retry_after_s:
                return None
            wait = exc.retry_in_s
        elif isinstance(exc, ModelTimeout | ModelUnavailable | ModelConnectionLost) or (
            isinstance(exc, ModelHTTPError) and exc.status in _RETRY_STATUSES
        ):
            wait = policy.backoff.delay(attempt)
        else:
            return None
        if self._clock() - started + wait > policy.budget_s:
            return None
        return wait

    async def _request_once(
        self, method: str, url: str, body: dict[str, Any] | None, *, parse: bool
    ) -> Any:
        with self._translate_errors():
            async with self._http().request(method, url, json=body) as response:
                data = await response.read()
                if response.status != 200:
                    raise self._http_error(
                        response.status, data, response.headers, body, generation=False
                    )
        if not parse:
            return None
        try:
            return json.loads(data)
        except ValueError as exc:
            raise ModelProtocolError(f"{method} {url} returned invalid JSON") from exc

    def _http_error(
        self,
        status: int,
        data: bytes,
        headers: CIMultiDictProxy[str],
        body: dict[str, Any] | None,
        *,
        generation: bool,
    ) -> ModelHTTPError:
        """The error for a non-200 answer to `body`; `generation`: a completion or a chat."""
        message = _error_message(data)
        model = body.get("model") if body else None
        if status == 429:
            # Generations tell the user now; idempotent calls only if they give up.
            pause = self._rate_limited(headers, tell=generation)
            return ModelRateLimited(message, pause)
        if status == 404 and "does not exist" in message:
            return ModelNotFound(message, model if isinstance(model, str) else None)
        if status == 400:
            overflow = parse_context_overflow(message)
            if overflow is not None:
                limit, requested, prompt = overflow
                max_tokens = body.get("max_tokens") if generation and body else None
                if requested is None and prompt is not None and isinstance(max_tokens, int):
                    requested = prompt + max_tokens
                return ContextTooLong(message, limit, requested)
        return ModelHTTPError(status, message)

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        """aiohttp's exceptions as ModelErrors that say what the user can do about them."""
        import aiohttp

        try:
            yield
        except aiohttp.ClientConnectorError as exc:
            raise ModelUnavailable(f"cannot connect to {self.base_url}: {exc}") from exc
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise ModelTimeout(f"model server at {self.base_url} timed out") from exc
        except aiohttp.ClientPayloadError as exc:
            raise ModelConnectionLost(
                f"model server at {self.base_url} broke off its answer (crashed or "
                f"restarted?): {exc}"
            ) from exc
        except aiohttp.ClientConnectionError as exc:
            raise ModelConnectionLost(
                f"lost the connection to {self.base_url}: {exc.__class__.__name__}: {exc}"
            ) from exc
        except aiohttp.ClientError as exc:
            raise ModelError(f"model server error: {exc.__class__.__name__}: {exc}") from exc


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _chunk_text(payload: bytes, meta: StreamMeta) -> str:
    try:
        data = json.loads(payload)
        choices = data["choices"]
        if not choices:
            # stream_options.include_usage: a last chunk with no choices, only usage.
            usage = data["usage"]
            meta.prompt_tokens = _count(usage.get("prompt_tokens"))
            meta.completion_tokens = _count(usage.get("completion_tokens"))
            return ""
        choice = choices[0]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise ModelProtocolError(f"malformed stream chunk: {payload[:200]!r}") from exc
    if not isinstance(choice, dict):
        raise ModelProtocolError(f"malformed stream chunk: {payload[:200]!r}")
    reason = choice.get("finish_reason")
    if reason:
        meta.finish_reason = reason if isinstance(reason, str) else str(reason)
    text = choice.get("text") or ""
    return text if isinstance(text, str) else ""


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _chat_chunk(payload: bytes) -> dict[str, Any]:
    try:
        data = json.loads(payload)
    except ValueError as exc:
        raise ModelProtocolError(f"malformed stream chunk: {payload[:200]!r}") from exc
    if not isinstance(data, dict):
        raise ModelProtocolError(f"malformed stream chunk: {payload[:200]!r}")
    error = data.get("error")
    if error is not None:
        # vLLM: {"error": {"message", "type", "code"}}; older: the same fields one level up.
        if isinstance(error, dict) and isinstance(error.get("error"), dict):
            error = error["error"]
        code = error.get("code") if isinstance(error, dict) else None
        status = code if isinstance(code, int) and 400 <= code < 600 else 500
        message = error.get("message", error) if isinstance(error, dict) else error
        raise ModelHTTPError(status, f"failed mid-answer: {str(message)[:300]}")
    return data


def _error_message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace")
    if isinstance(data, dict):
        message = data.get("message") or data.get("error") or data
        if isinstance(message, dict):
            message = message.get("message", message)
        return str(message)[:300]
    return str(data)[:300]
