"""How a job function calls the chat model (code actions, reviews).

Jobs get the chat endpoint as a JSON argument (``ChatEndpoint.as_job_arg()``:
url, model, api_key), so a worker needs no configuration. The answer is streamed
and ``should_stop`` is the job's cancel flag: a cancelled job closes the stream,
which makes vLLM stop generating.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from server.jobs.execution import JobCancelled, cancelled

if TYPE_CHECKING:
    from inference.chat import ChatAnswer

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
    try:
        reply = chat_sync(
            endpoint["url"],
            request,
            api_key=endpoint.get("api_key"),
            read_timeout_s=READ_TIMEOUT_S,
            should_stop=cancelled,
        )
    except ChatCancelled:
        raise JobCancelled("cancelled") from None
    except ModelNotFound:
        _SERVED.pop(str(endpoint["url"]), None)  # the server now serves another model
        raise
    log.info(
        "chat %s: %s tokens in %.0f ms (%s)",
        request.model,
        reply.completion_tokens,
        reply.total_ms,
        reply.finish_reason,
    )
    return reply
