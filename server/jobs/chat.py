"""How a job function calls the chat model (code actions, reviews).

Jobs get the chat endpoint as a JSON argument (``ChatEndpoint.as_job_arg()``:
url, model, api_key), so a worker needs no configuration. The answer is streamed
and ``should_stop`` is the job's cancel flag: a cancelled job closes the stream,
which makes vLLM stop generating.

Every call sent is added to the job's outcome as a JSON object
(:func:`~server.jobs.execution.record_model_call`), failed and cancelled ones
included; the server turns them into history events (:func:`model_call_event`)
when it receives the result, so a worker never touches the history database. The
prompt is the messages as a JSON list; the job's kind and id are added by the
server, which knows them.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from server.completion.recorder import ModelCallEvent, ModelCallKind, call_error
from server.jobs.execution import JobCancelled, cancelled, record_model_call, stop_reason

if TYPE_CHECKING:
    from inference.chat import ChatAnswer, ChatRequest

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 60.0  # silence allowed inside a chat stream (a loaded CPU engine is slow)


# url -> (when asked, first served model): jobs in one process (the in-process runner,
# a simple worker) ask the server once a while, not once per job.
_SERVED: dict[str, tuple[float, str]] = {}
SERVED_TTL_S = 30.0


def model_for(endpoint: dict[str, Any]) -> str:
    """The endpoint's model, or the first one its server lists."""
    model = endpoint.get("model")
    if model:
        return str(model)
    url = str(endpoint["url"])
    known = _SERVED.get(url)
    if known is not None and time.monotonic() - known[0] < SERVED_TTL_S:
        return known[1]
    first = _first_served(endpoint)
    _SERVED[url] = (time.monotonic(), first)
    return first


def _first_served(endpoint: dict[str, Any]) -> str:
    import asyncio

    from inference.client import InferenceClient

    async def first_model() -> str:
        client = InferenceClient(endpoint["url"], api_key=endpoint.get("api_key"))
        try:
            models = await client.list_models()
        finally:
            await client.aclose()
        if not models:
            from inference.errors import ModelNotFound

            raise ModelNotFound(f"{endpoint['url']} serves no model", None)
        return models[0].id

    return asyncio.run(first_model())


def chat(
    endpoint: dict[str, Any],
    options: dict[str, Any],
    messages: list[dict[str, str]],
    *,
    extra: dict[str, Any] | None = None,
) -> ChatAnswer:
    """The chat model's whole answer (`extra` joins the request body, e.g. a response_format).

    Raises JobCancelled once the job is cancelled.
    """
    from inference.chat import ChatCancelled, ChatRequest, chat_sync
    from inference.errors import ModelNotFound

    request = ChatRequest(
        model=model_for(endpoint),
        messages=messages,
        max_tokens=int(options.get("max_tokens", 1024)),
        temperature=float(options.get("temperature", 0.2)),
        extra=dict(extra or {}),
    )
    if cancelled():
        raise JobCancelled("cancelled")  # before anything was sent: no model call
    started = time.perf_counter()
    try:
        reply = chat_sync(
            endpoint["url"],
            request,
            api_key=endpoint.get("api_key"),
            read_timeout_s=READ_TIMEOUT_S,
            should_stop=cancelled,
        )
    except ChatCancelled:
        record_model_call(_call(endpoint, request, started, error=stop_reason()))
        raise JobCancelled("cancelled") from None
    except BaseException as exc:  # a model error, or rq's timeout inside the call
        record_model_call(_call(endpoint, request, started, error=call_error(exc)))
        if isinstance(exc, ModelNotFound):
            _SERVED.pop(str(endpoint["url"]), None)  # the server now serves another model
        raise
    record_model_call(_call(endpoint, request, started, reply=reply))
    log.info(
        "chat %s: %s tokens in %.0f ms (%s)",
        request.model,
        reply.completion_tokens,
        reply.total_ms,
        reply.finish_reason,
    )
    return reply


def _call(
    endpoint: dict[str, Any],
    request: ChatRequest,
    started: float,
    *,
    reply: ChatAnswer | None = None,
    error: str | None = None,
) -> dict[str, Any]:
    """One chat call as JSON (what travels back with the job's result)."""
    body = request.body()
    prompt = json.dumps(body.pop("messages"), ensure_ascii=False)
    return {
        "id": uuid.uuid4().hex,
        "model": request.model,
        "endpoint": f"{str(endpoint['url']).rstrip('/')}/chat/completions",
        "params": body,
        "prompt": prompt,
        "response": reply.text if reply else "",
        "finish_reason": reply.finish_reason if reply else None,
        "prompt_tokens": reply.prompt_tokens if reply else None,
        "completion_tokens": reply.completion_tokens if reply else None,
        "first_token_ms": reply.first_token_ms if reply else None,
        "total_ms": reply.total_ms if reply else (time.perf_counter() - started) * 1000.0,
        "error": error,
        # When it ended, in seconds since the epoch: the server records the calls
        # with the job's result, which may come much later.
        "at": time.time(),
    }


def model_call_event(
    call: dict[str, Any], *, kind: ModelCallKind, job_id: str, language: str | None
) -> ModelCallEvent | None:
    """The history event of a call a job reported (None if it is not one: a worker of
    another version, say)."""
    try:
        params = call.get("params")
        ended = _float_or_none(call.get("at"))
        event = ModelCallEvent(
            id=str(call["id"]),
            kind=kind,
            model=str(call["model"]),
            endpoint=str(call["endpoint"]),
            params=params if isinstance(params, dict) else {},
            prompt=str(call.get("prompt") or ""),
            response=str(call.get("response") or ""),
            finish_reason=_str_or_none(call.get("finish_reason")),
            prompt_tokens=_int_or_none(call.get("prompt_tokens")),
            completion_tokens=_int_or_none(call.get("completion_tokens")),
            first_token_ms=_float_or_none(call.get("first_token_ms")),
            total_ms=float(call["total_ms"]),
            error=_str_or_none(call.get("error")),
            language=language,
            job_id=job_id,
        )
        # When the call ended, by the worker's clock (a worker of an older version
        # says nothing: then when its result came).
        return event if ended is None else replace(event, at=datetime.fromtimestamp(ended, UTC))
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        log.warning("job %s reported a malformed model call: %.200r", job_id, call)
        return None


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float_or_none(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
