"""The AI review as the language server asks for it: the job and its cache key.

Pure functions of the settings, shared by the review on save and the MCP
``review_file`` tool (``DiagnosticsService``); the job itself runs in
``server.diagnostics.jobs``. Reference data from MCP servers is in both only when
there is some, so jobs and keys without it are what they were before MCP context.
"""

from __future__ import annotations

from typing import Any

from server.context.gather import with_context
from server.context.types import ContextItem
from server.diagnostics import review, state
from server.jobs import BACKGROUND_QUEUE
from server.jobs.spec import JobSpec, canonical_json
from server.settings import Settings

REVIEW_JOB = "server.diagnostics.jobs.review_document"


def review_spec(
    settings: Settings,
    endpoint: dict[str, Any],
    language_id: str,
    path: str,
    text: str,
    regions: list[tuple[int, int]],
    context: list[ContextItem],
) -> JobSpec:
    """The review job of `regions` (1-based, inclusive; none: all) of `text`."""
    d = settings.diagnostics
    options: dict[str, Any] = {
        "max_tokens": d.max_tokens,
        "temperature": d.temperature,
        "max_chars": d.max_file_chars,
    }
    kwargs: dict[str, Any] = {
        "endpoint": endpoint,
        "options": options,
        "language_id": language_id,
        "path": path,
        "document": sendable(text),
        "regions": [list(r) for r in regions],
    }
    return JobSpec(
        function=REVIEW_JOB,
        kwargs=with_context(kwargs, context, max_context_chars=settings.mcp.max_context_chars),
        queue=BACKGROUND_QUEUE,
        timeout_s=settings.jobs.timeout_s,
    )


def review_cache_key(
    settings: Settings,
    endpoint_parts: tuple[str, ...],
    language_id: str,
    text: str,
    context: list[ContextItem],
) -> str:
    """What a review of `text` depends on: the prompt, the model, the limits and the
    reference data; the same key is the same review."""
    d = settings.diagnostics
    parts: tuple[str, ...] = (
        review.PROMPT_VERSION,
        *endpoint_parts,
        language_id,
        str(d.max_file_chars),
        str(d.max_tokens),
    )
    if context:  # without, the key is what it was before MCP context existed
        data = canonical_json([item.as_job_arg() for item in context])
        parts += ("mcp", str(settings.mcp.max_context_chars), data)
    return state.cache_key(parts, text)


def sendable(text: str) -> str:
    """`text` with lone surrogates (undecodable bytes an editor passed through) as `?`.

    They cannot be encoded as UTF-8, so neither Redis nor the model server could take
    them; one character for one keeps every line and column where it was.
    """
    return text.encode("utf-8", "replace").decode("utf-8")
