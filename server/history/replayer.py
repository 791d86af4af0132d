"""Sending recorded model calls again, as the server would send them today (``zi-coder replay``).

- completions: the recorded FIM prompt is split back into prefix and suffix with
  the recorded template's sentinels (:meth:`~inference.fim.FimTemplate.split`)
  and rendered with the template of the model the server would use for the
  call's language today (:class:`~server.routing.ModelRouter`, resolved as the
  server resolves it). Request, reading and post-processing are the server's own
  (:mod:`server.completion.model_call`): the request carries today's completion
  settings, the stream is read where the server stops reading, and both answers
  become suggestions as the server makes them, around a cursor rebuilt from the
  prompt.
- code actions and reviews: the recorded messages (a JSON list) go to today's
  chat model with the recorded request parameters (``response_format`` included).

Each replay that reached a model server is recorded, failed ones too, as a model
call with ``replay_of`` set (live statistics leave those out). Failures are the
result's one-line ``error``, never an exception. What is replayed and how it
compares is :mod:`server.history.replay`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from server.completion import model_call
from server.completion.recorder import ModelCallEvent, ModelCallKind, call_error
from server.completion.types import Mode
from server.errors import describe
from server.history.replay import CallResult, RecordedCall, review_validates
from server.notify import Level, Notifier

if TYPE_CHECKING:
    from inference.client import InferenceClient
    from inference.fim import FimTemplate
    from server.completion.postprocess import Surroundings
    from server.settings import Settings
    from server.syntax import Syntax

log = logging.getLogger(__name__)

# Request fields that a replay sets itself rather than copying from the recording.
_CHAT_OWN_FIELDS = ("model", "messages", "prompt", "stream", "stream_options")


# -- replaying ---------------------------------------------------------------------------------


class _QuietNotifier(Notifier):
    """Keeps the backend's user messages, to explain a failure in one line."""

    def __init__(self) -> None:
        super().__init__()
        self.last: str | None = None

    def problem(
        self, key: str, message: str, *, lasting: bool = False, level: Level = Level.WARNING
    ) -> None:
        log.debug("%s: %s", key, message)
        self.last = message

    def resolved(self, key: str, message: str) -> None:
        log.debug("%s: %s", key, message)

    def info(self, message: str) -> None:
        log.debug("%s", message)


class Replayer:
    """Sends recorded calls again, the way the server would send them today.

    `record` writes a replay's :class:`ModelCallEvent` (blocking; run in a thread).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        record: Callable[[ModelCallEvent], None],
        syntax: Syntax | None = None,
    ) -> None:
        from server.routing import ModelRouter
        from server.syntax import Syntax

        self.settings = settings
        self.notifier = _QuietNotifier()
        self.router = ModelRouter(settings, notifier=self.notifier)
        self.syntax = syntax or Syntax()
        self._record = record
        self._chat_clients: dict[str, InferenceClient] = {}
        self._chat_models: dict[str, str] = {}
        self._unresolved: dict[int, str] = {}  # backend id -> why it could not be resolved

    async def aclose(self) -> None:
        await self.router.aclose()
        for client in self._chat_clients.values():
            await client.aclose()

    async def replay(self, call: RecordedCall) -> CallResult:
        """One call replayed and recorded; failures are in the result, never raised."""
        from inference.errors import ModelError

        try:
            if call.kind is ModelCallKind.COMPLETION:
                return await self._completion(call)
            return await self._chat(call)
        except (ModelError, ValueError) as exc:
            return CallResult(call, error=describe(exc))
        except Exception as exc:  # a bug costs one call, never the report
            log.debug("replay of %s failed", call.id, exc_info=True)
            return CallResult(call, error=f"internal error: {exc!r}")

    # -- completions ------------------------------------------------------------------

    async def _completion(self, call: RecordedCall) -> CallResult:
        from inference.client import StreamMeta
        from inference.errors import ModelError
        from server.completion import gate
        from server.completion.backend import ModelNotReady

        recorded_template = _template_of(call)
        prefix, suffix = recorded_template.split(call.prompt)
        language = call.language or ""
        backend = self.router.completion(language)
        if backend is None:
            raise ValueError(self.notifier.last or f"no completion model for {language!r}")
        try:
            info = await backend.info()
        except ModelNotReady as exc:  # the first reason, again for the calls that follow
            reason = self._unresolved.setdefault(id(backend), str(exc))
            raise ValueError(f"model not ready: {reason}") from None
        text, offset = document(prefix, suffix, language)
        around = model_call.surroundings(text, offset, language)
        mode = (
            call.mode
            or _mode_of(call.params)
            or gate.decide_mode(self.syntax, language, text, offset)
        )
        request = model_call.model_request(
            info,
            info.template.render(prefix, suffix),
            mode,
            completion=self.settings.completion,
            inference=self.settings.inference,
        )
        meta = StreamMeta()
        started = time.perf_counter()
        first: float | None = None
        raw, error, stored_error = "", None, None
        try:
            raw, first = await _read(backend.stream(request, meta), mode, around, started)
        except ModelError as exc:
            error, stored_error = describe(exc), call_error(exc)
        total = _ms_since(started)
        replay_id = None
        if meta.sent:  # else refused before sending (breaker open, 429 pause): no call made
            replay_id = await self._write(
                call,
                model=info.name,
                endpoint=backend.completions_url,
                params=request.params(),
                prompt=request.prompt,
                response=raw,
                template=info.template.name,
                first_token_ms=first,
                total_ms=total,
                error=stored_error,
                finish_reason=meta.finish_reason,
                prompt_tokens=meta.prompt_tokens,
                completion_tokens=meta.completion_tokens,
            )
        result = CallResult(
            call,
            replay_id=replay_id,
            model=info.name,
            template=info.template.name,
            mode=mode,
            error=error,
            first_token_ms=first,
            total_ms=total,
        )
        recorded = model_call.suggestion(
            call.response,
            model_call.end_strings(mode, recorded_template),
            mode=mode,
            around=around,
            syntax=self.syntax,
        )
        if error is not None:
            return replace(result, recorded_suggestion=recorded, recorded_pass=bool(recorded))
        new = model_call.suggestion(
            raw, request.stop_all, mode=mode, around=around, syntax=self.syntax
        )
        return replace(
            result,
            new_text=raw,
            recorded_suggestion=recorded,
            new_suggestion=new,
            recorded_pass=bool(recorded),
            new_pass=bool(new),
        )

    # -- chat: code actions and reviews ------------------------------------------------

    async def _chat(self, call: RecordedCall) -> CallResult:
        from inference.chat import ChatRequest, chat
        from inference.errors import ModelError, ModelPaused

        messages = chat_messages(call.prompt)
        endpoint = self.router.chat(call.language or "")
        if endpoint is None:
            raise ValueError(self.notifier.last or "no chat model")
        client = self._chat_client(endpoint.url, endpoint.api_key)
        model = endpoint.model or await self._first_model(client)
        params = {k: v for k, v in call.params.items() if k not in _CHAT_OWN_FIELDS}
        defaults = (
            self.settings.diagnostics
            if call.kind is ModelCallKind.REVIEW
            else self.settings.actions
        )
        stop = params.pop("stop", None) or ()
        request = ChatRequest(
            model=model,
            messages=messages,
            max_tokens=int(params.pop("max_tokens", defaults.max_tokens)),
            temperature=float(params.pop("temperature", defaults.temperature)),
            stop=(stop,) if isinstance(stop, str) else tuple(stop),
            extra=params,
        )
        error, stored_error, text, finish, first, total = None, None, "", None, None, 0.0
        prompt_tokens = completion_tokens = None
        sent = True
        started = time.perf_counter()
        try:
            answer = await chat(client, request)
        except ModelError as exc:
            error, stored_error, total = describe(exc), call_error(exc), _ms_since(started)
            sent = not isinstance(exc, ModelPaused)  # the breaker refused it: never sent
        else:
            text, finish, first, total = (
                answer.text,
                answer.finish_reason,
                answer.first_token_ms,
                answer.total_ms,
            )
            prompt_tokens, completion_tokens = answer.prompt_tokens, answer.completion_tokens
        replay_id = None
        if sent:
            replay_id = await self._write(
                call,
                model=model,
                endpoint=f"{client.base_url}/chat/completions",
                params={k: v for k, v in request.body().items() if k != "messages"},
                prompt=json.dumps(messages, ensure_ascii=False),
                response=text,
                template=None,
                first_token_ms=first,
                total_ms=total,
                error=stored_error,
                finish_reason=finish,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
            )
        review = call.kind is ModelCallKind.REVIEW
        return CallResult(
            call,
            replay_id=replay_id,
            model=model,
            error=error,
            new_text=text,
            recorded_pass=review_validates(call.response, call.finish_reason) if review else None,
            new_pass=review_validates(text, finish) if review and error is None else None,
            first_token_ms=first,
            total_ms=total,
        )

    def _chat_client(self, url: str, api_key: str | None) -> InferenceClient:
        from inference.client import InferenceClient
        from server.jobs.chat import READ_TIMEOUT_S

        client = self._chat_clients.get(url)
        if client is None:
            client = self._chat_clients[url] = InferenceClient(
                url,
                api_key=api_key,
                connect_timeout_s=self.settings.inference.connect_timeout_s,
                read_timeout_s=READ_TIMEOUT_S,
            )
        return client

    async def _first_model(self, client: InferenceClient) -> str:
        known = self._chat_models.get(client.base_url)
        if known is None:
            served = await client.list_models()
            if not served:
                raise ValueError(f"the model server at {client.base_url} serves no model")
            known = self._chat_models[client.base_url] = served[0].id
        return known

    # -- recording ------------------------------------------------------------------------

    async def _write(
        self,
        call: RecordedCall,
        *,
        model: str,
        endpoint: str,
        params: dict[str, Any],
        prompt: str,
        response: str,
        template: str | None,
        first_token_ms: float | None,
        total_ms: float,
        error: str | None,
        finish_reason: str | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
    ) -> str:
        event = ModelCallEvent(
            id=uuid.uuid4().hex,
            kind=call.kind,
            model=model,
            endpoint=endpoint,
            params=params,
            prompt=prompt,
            response=response,
            finish_reason=finish_reason,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            first_token_ms=first_token_ms,
            total_ms=total_ms,
            error=error,
            language=call.language,
            template=template,
            replay_of=call.id,
        )
        await asyncio.to_thread(self._record, event)
        return event.id


async def _read(
    stream: AsyncIterator[str], mode: Mode, around: Surroundings, started: float
) -> tuple[str, float | None]:
    """The raw answer and its first token's time, read where the server stops reading."""
    raw, first = "", None
    try:
        async for piece in stream:
            if first is None:
                first = _ms_since(started)
            raw += piece
            if model_call.answer_complete(raw, mode, around):
                break
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()  # closes the HTTP stream: the engine stops generating
    return raw, first


async def replay_all(
    replayer: Replayer,
    calls: list[RecordedCall],
    *,
    concurrency: int,
    on_done: Callable[[CallResult], None] | None = None,
) -> list[CallResult]:
    """Every call replayed, at most `concurrency` at once; results in the calls' order."""
    gate = asyncio.Semaphore(max(concurrency, 1))

    async def one(call: RecordedCall) -> CallResult:
        async with gate:
            result = await replayer.replay(call)
        if on_done is not None:
            on_done(result)
        return result

    return list(await asyncio.gather(*(one(call) for call in calls)))


# -- rebuilding what the server had ------------------------------------------------------------


def document(prefix: str, suffix: str, language: str) -> tuple[str, int]:
    """The document and cursor offset rebuilt from a prompt's prefix and suffix.

    The prompt's head (snippets from other files and the path line, all comments)
    is not the document: it is left out. The document is approximated by the code
    the prompt carried, which the server cut to its token budgets.
    """
    code = prefix[len(prompt_head(prefix, language)) :]
    return code + suffix, len(code)


def prompt_head(prefix: str, language: str) -> str:
    """The leading comment lines the context builder put before the code, through its
    ``Path:`` line; '' when there is none."""
    from server.completion.context import comment_prefix

    mark = comment_prefix(language)
    start = 0
    while (end := prefix.find("\n", start)) >= 0:
        line = prefix[start:end]
        if not line.startswith(mark):
            break
        if line.startswith(f"{mark} Path: "):
            return prefix[: end + 1]
        start = end + 1
    return ""


def chat_messages(prompt: str) -> list[dict[str, str]]:
    """The chat messages a recorded prompt holds (a JSON list); ValueError otherwise."""
    try:
        data = json.loads(prompt)
    except ValueError:
        data = None
    if not isinstance(data, list) or not data:
        raise ValueError("the recorded prompt is not a JSON list of chat messages")
    messages = []
    for item in data:
        if not isinstance(item, dict) or not isinstance(item.get("role"), str):
            raise ValueError("the recorded prompt is not a JSON list of chat messages")
        content = item.get("content")
        messages.append(
            {"role": item["role"], "content": content if isinstance(content, str) else ""}
        )
    return messages


def _template_of(call: RecordedCall) -> FimTemplate:
    """The recorded template; when unrecorded, the first whose sentinels frame the prompt."""
    from inference.fim import TEMPLATES, template_by_name

    if call.template:
        return template_by_name(call.template)
    for template in TEMPLATES.values():
        with contextlib.suppress(ValueError):
            template.split(call.prompt)
            return template
    raise ValueError("the recorded prompt has no known FIM template's sentinels")


def _mode_of(params: dict[str, Any]) -> Mode | None:
    """The mode a recorded request's stop strings show (single-line stops at a newline)."""
    stop = params.get("stop")
    if isinstance(stop, list):
        if "\n" in stop:
            return Mode.SINGLE_LINE
        if any(end in stop for end in model_call.MULTI_LINE_STOPS):
            return Mode.MULTI_LINE
    return None


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
