"""The completion pipeline: gate → type-ahead → context → prompt → cache → model → clean.

Staleness: each document has at most one request in progress. A newer request
for the same document, or an edit at or before its position, cancels it (the
superseded request answers empty); a client's ``$/cancelRequest`` cancels the
handler task itself. Identical prompts share one model call, which is cancelled,
closing its HTTP stream, only when no caller is left waiting for it.

History: every request sent to the model is recorded as a model call, failed,
timed out and cancelled ones included, with the raw answer (before
post-processing) and the stream's finish reason and token usage. A call that
produced a suggestion is linked to the first suggestion made of it; if no waiter
is left to make one, it is recorded unlinked a moment later. The prompt (stored
only with history.store_prompts) goes with the model call; a suggestion keeps it
only when it has no call of its own (a shared-cache hit, a joined request).
Building the event costs a few microseconds; the writer does the rest off the loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from inference.client import CompletionRequest as ModelRequest
from inference.client import StreamMeta
from inference.errors import ModelError
from server.cache import CompletionCache
from server.completion import gate, model_call, postprocess
from server.completion.backend import ModelBackend, ModelNotReady
from server.completion.context import ContextBuilder
from server.completion.outcomes import OutcomeTracker
from server.completion.recorder import (
    CompletionEvent,
    ModelCallEvent,
    ModelCallKind,
    Recorder,
    call_error,
    now,
)
from server.completion.typeahead import TypeAheadCache
from server.completion.types import (
    Completion,
    CompletionRequest,
    Document,
    Mode,
    Source,
)
from server.routing import ModelRouter
from server.settings import CompletionSettings, InferenceSettings
from server.syntax import Syntax

log = logging.getLogger(__name__)

_ORPHAN_GRACE_S = 0.05
# A model call whose answer no waiter turned into a suggestion is recorded unlinked
# after this long (waiters resume within a loop iteration or two).
_UNCLAIMED_S = 1.0


@dataclass(slots=True)
class _Pending:
    task: asyncio.Task[Completion | None]
    line: int
    character: int
    superseded: bool = False


@dataclass(slots=True)
class _SharedCall:
    task: asyncio.Task[_Generated]
    waiters: int = 0


@dataclass(slots=True)
class _CallDraft:
    """A finished model call, recorded once: by the first suggestion made of it."""

    backend_url: str
    request: ModelRequest
    language: str
    template: str
    meta: StreamMeta
    raw: str
    first_token_ms: float | None
    total_ms: float
    error: str | None = None
    recorded: bool = False
    # When the call ended: an unclaimed one is recorded by a timer a second later.
    ended_at: datetime = field(default_factory=now)

    def record(self, recorder: Recorder, completion_id: str | None) -> None:
        if self.recorded:
            return
        self.recorded = True
        request, meta = self.request, self.meta
        recorder.model_call(
            ModelCallEvent(
                id=uuid.uuid4().hex,
                kind=ModelCallKind.COMPLETION,
                model=request.model,
                endpoint=self.backend_url,
                params=request.params(),
                prompt=request.prompt,
                response=self.raw,
                finish_reason=meta.finish_reason,
                prompt_tokens=meta.prompt_tokens,
                completion_tokens=meta.completion_tokens,
                first_token_ms=self.first_token_ms,
                total_ms=self.total_ms,
                error=self.error,
                language=self.language,
                template=self.template,
                completion_id=completion_id,
                at=self.ended_at,
            )
        )


@dataclass(frozen=True, slots=True)
class _Generated:
    text: str
    first_token_ms: float | None
    model_ms: float
    prompt_chars: int
    call: _CallDraft | None = None  # to link to the suggestion made of `text`


class CompletionService:
    def __init__(
        self,
        *,
        settings: CompletionSettings,
        inference: InferenceSettings,
        models: ModelRouter,
        cache: CompletionCache,
        syntax: Syntax,
        recorder: Recorder,
        other_documents: Callable[[], Iterable[Document]],
        context: ContextBuilder,
    ) -> None:
        self.settings = settings
        self.inference = inference
        self.models = models
        self.cache = cache
        self.syntax = syntax
        self.recorder = recorder
        self.other_documents = other_documents
        self.context = context
        self.typeahead = TypeAheadCache()
        self._pending: dict[str, _Pending] = {}
        self._calls: dict[str, _SharedCall] = {}
        self.outcomes = OutcomeTracker(recorder)

    # -- requests ---------------------------------------------------------------

    async def complete(self, request: CompletionRequest) -> Completion | None:
        if not self.settings.enabled or self.context.excluded(request.document):
            return None  # excluded: .env, keys, .gitignored files (server.context.ignore)
        uri = request.document.uri
        self._cancel_pending(uri)
        self.context.snippets.touch(uri)
        started = time.perf_counter()
        # Mid-word is fine when the user asked explicitly (e.g. the editor's shortcut).
        if not request.invoked and not gate.allows(request.document.text, request.offset):
            return None
        hit = self.typeahead.lookup(uri, request.document.text, request.offset)
        if hit is not None:
            parent, rest = hit
            completion = Completion(
                id=_new_id(),
                text=rest,
                mode=parent.mode,
                source=Source.TYPEAHEAD,
                model=parent.model,
                template=parent.template,
                parent_id=parent.id,
            )
            # Its outcome is the suggestion's too: the user took one suggestion, not two.
            typed = len(parent.text) - len(rest)
            self.outcomes.produced(completion.id, uri, parent_id=parent.id, typed=typed)
            self._record(request, completion, started, None, 0)
            return completion

        task = asyncio.get_running_loop().create_task(self._guarded(request, started))
        mine = _Pending(task, request.line, request.character)
        self._pending[uri] = mine
        try:
            return await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if mine.superseded and current is not None and not current.cancelling():
                return None  # stale: a newer request or an edit replaced this one
            raise
        finally:
            if self._pending.get(uri) is mine:
                del self._pending[uri]

    async def drain(self, timeout_s: float) -> None:
        """Wait (bounded) until no request or model call is in progress."""
        tasks = [p.task for p in self._pending.values()] + [c.task for c in self._calls.values()]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)

    def document_opened(self, uri: str) -> None:
        self.context.snippets.touch(uri)

    def document_changed(self, uri: str, line: int | None, character: int | None) -> None:
        """An edit at or before a pending request's position makes it stale."""
        self.context.snippets.touch(uri)
        pending = self._pending.get(uri)
        if pending is None:
            return
        if (
            line is None
            or character is None
            or (line, character) <= (pending.line, pending.character)
        ):
            self._cancel_pending(uri)

    def document_closed(self, uri: str) -> None:
        self._cancel_pending(uri)
        self.typeahead.forget(uri)
        self.context.snippets.forget(uri)
        self.outcomes.closed(uri)

    def _cancel_pending(self, uri: str) -> None:
        pending = self._pending.pop(uri, None)
        if pending is not None and not pending.task.done():
            pending.superseded = True
            pending.task.cancel()

    async def _guarded(self, request: CompletionRequest, started: float) -> Completion | None:
        try:
            return await self._generate_for(request, started)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug must cost one suggestion, not the session
            log.exception("completion failed for %s", request.document.uri)
            self.models.notifier.problem("internal", f"completion failed: {exc!r}")
            return None

    async def _generate_for(self, request: CompletionRequest, started: float) -> Completion | None:
        if self.settings.debounce_ms:
            await asyncio.sleep(self.settings.debounce_ms / 1000)
        doc, offset = request.document, request.offset
        backend = self.models.completion(doc.language_id)
        if backend is None:
            return None  # not served; the router told the user why
        try:
            info = await backend.info()
        except ModelNotReady:
            return None
        mode = gate.decide_mode(self.syntax, doc.language_id, doc.text, offset)
        ctx = self.context.build(
            request,
            info.counter,
            self.other_documents(),
            max_prompt_tokens=info.prompt_limit(model_call.max_tokens(self.settings, mode)),
        )
        prompt = info.template.render(ctx.full_prefix, ctx.suffix)
        model_request = model_call.model_request(
            info, prompt, mode, completion=self.settings, inference=self.inference
        )
        key = _cache_key(model_request, mode)

        cached = await self.cache.get(key)
        if cached is not None:
            source = Source.SHARED_CACHE
            generated = _Generated(cached, None, 0.0, len(prompt))
        else:
            around = model_call.surroundings(doc.text, offset, doc.language_id)
            generated, source = await self._shared_call(
                backend, key, model_request, mode, around, info.template.name
            )
        if not generated.text:
            return None
        completion = Completion(
            id=_new_id(),
            text=generated.text,
            mode=mode,
            source=source,
            model=info.name,
            template=info.template.name,
        )
        self.outcomes.replaced(doc.uri)
        self.outcomes.produced(completion.id, doc.uri)
        self.typeahead.remember(doc.uri, doc.text, offset, completion)
        # The prompt is stored once: with the model call this suggestion claims, or
        # with the suggestion when it has none of its own (a shared-cache hit, a
        # request that joined another's call).
        claims = generated.call is not None and not generated.call.recorded
        self._record(
            request,
            completion,
            started,
            generated.first_token_ms,
            generated.prompt_chars,
            None if claims else prompt,
        )
        if generated.call is not None:
            generated.call.record(self.recorder, completion.id)
        return completion

    async def _shared_call(
        self,
        backend: ModelBackend,
        key: str,
        request: ModelRequest,
        mode: Mode,
        around: postprocess.Surroundings,
        template: str,
    ) -> tuple[_Generated, Source]:
        call = self._calls.get(key)
        source = Source.JOINED
        if call is None:
            source = Source.MODEL
            task = asyncio.get_running_loop().create_task(
                self._call_model(backend, key, request, mode, around, template)
            )
            call = self._calls[key] = _SharedCall(task)

            def forget(_task: object, mine: _SharedCall = call) -> None:
                if self._calls.get(key) is mine:
                    del self._calls[key]

            task.add_done_callback(forget)
        call.waiters += 1
        try:
            return await asyncio.shield(call.task), source
        finally:
            call.waiters -= 1
            if call.waiters == 0 and not call.task.done():
                # Editors often cancel a request and re-send the same one at once; give
                # the newcomer a moment to join before closing the stream.
                asyncio.get_running_loop().call_later(_ORPHAN_GRACE_S, self._drop_orphan, key, call)

    def _drop_orphan(self, key: str, call: _SharedCall) -> None:
        if call.waiters == 0 and not call.task.done():
            if self._calls.get(key) is call:
                del self._calls[key]  # nobody may join a call that is being cancelled
            call.task.cancel()  # closes the HTTP stream: vLLM stops generating

    async def _call_model(
        self,
        backend: ModelBackend,
        key: str,
        request: ModelRequest,
        mode: Mode,
        around: postprocess.Surroundings,
        template: str,
    ) -> _Generated:
        started = time.perf_counter()
        first: float | None = None
        raw = ""
        meta = StreamMeta()
        # Recorded in `finally` unless a suggestion is to claim it (then set to None).
        draft: _CallDraft | None = None
        try:
            try:
                async for piece in backend.stream(request, meta):
                    if first is None:
                        first = (time.perf_counter() - started) * 1000
                    raw += piece
                    if model_call.answer_complete(raw, mode, around):
                        break  # leaving the loop closes the stream: vLLM stops generating
            except BaseException as exc:
                if meta.sent:  # else refused here (breaker open, 429 pause): never sent
                    draft = _CallDraft(
                        backend.completions_url,
                        request,
                        around.language_id,
                        template,
                        meta,
                        raw,
                        first,
                        _ms_since(started),
                        error=call_error(exc),
                    )
                if not isinstance(exc, ModelError):
                    raise  # cancelled (a newer keystroke), or a bug: recorded all the same
                backend.report(exc)
                return _Generated("", first, _ms_since(started), len(request.prompt))
            backend.succeeded()
            model_ms = _ms_since(started)
            draft = _CallDraft(
                backend.completions_url,
                request,
                around.language_id,
                template,
                meta,
                raw,
                first,
                model_ms,
            )
            text = model_call.suggestion(
                raw, request.stop_all, mode=mode, around=around, syntax=self.syntax
            )
            await self.cache.set(key, text, self.settings.cache_ttl_s)
            log.debug(
                "model %.1f ms (first token %s ms), raw %d chars, kept %d",
                model_ms,
                first and round(first, 1),
                len(raw),
                len(text),
            )
            if not text:
                return _Generated(text, first, model_ms, len(request.prompt))
            claimable, draft = draft, None
            asyncio.get_running_loop().call_later(
                _UNCLAIMED_S, claimable.record, self.recorder, None
            )
            return _Generated(text, first, model_ms, len(request.prompt), claimable)
        finally:
            if draft is not None:
                draft.record(self.recorder, None)

    def _record(
        self,
        request: CompletionRequest,
        completion: Completion,
        started: float,
        first_token_ms: float | None,
        prompt_chars: int,
        prompt: str | None = None,
    ) -> None:
        total_ms = _ms_since(started)
        # DEBUG: this runs before the answer is sent, on every keystroke.
        log.debug(
            "completion %s %s %s %d chars in %.1f ms",
            completion.id[:8],
            completion.source,
            completion.mode,
            len(completion.text),
            total_ms,
        )
        self.recorder.completion_generated(
            CompletionEvent(
                id=completion.id,
                parent_id=completion.parent_id,
                uri=request.document.uri,
                language=request.document.language_id,
                model=completion.model,
                template=completion.template,
                mode=completion.mode.value,
                source=completion.source.value,
                text=completion.text,
                prompt_chars=prompt_chars,
                first_token_ms=first_token_ms,
                total_ms=total_ms,
                prompt=prompt,
            )
        )


def _cache_key(request: ModelRequest, mode: Mode) -> str:
    params = json.dumps(
        [request.model, mode, request.max_tokens, request.temperature, request.stop, request.extra],
        sort_keys=True,
        default=str,
    )
    digest = hashlib.sha256(params.encode())
    digest.update(b"\0")
    digest.update(request.prompt.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


def _new_id() -> str:
    return uuid.uuid4().hex


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
