"""Wiring: one Settings object in, the process's services out (`build_services`).

Nothing here talks LSP; the edge (``server.lsp``) and the one-shot CLI both use it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from server.actions.service import ActionService
from server.actions.types import Snapshot
from server.cache import CompletionCache, MemoryCache, RedisCache
from server.completion.context import ContextBuilder
from server.completion.recorder import NullRecorder, Recorder
from server.completion.service import CompletionService
from server.completion.snippets import SnippetIndex
from server.completion.survival import DocumentTexts, SurvivalTracker
from server.completion.types import Document
from server.context.types import ContextSource, NoContext
from server.diagnostics.service import DiagnosticsService, Publish
from server.history.writer import HistoryWriter
from server.jobs.gateway import JobGateway
from server.notify import Level, Notifier
from server.routing import ModelRouter
from server.settings import Settings
from server.syntax import Syntax

log = logging.getLogger(__name__)

REDIS_PROBLEM = "redis"
HISTORY_PROBLEM = "history"


@dataclass
class Services:
    settings: Settings
    notifier: Notifier
    models: ModelRouter
    cache: CompletionCache
    completions: CompletionService
    recorder: Recorder
    history: HistoryWriter | None
    jobs: JobGateway
    actions: ActionService
    diagnostics: DiagnosticsService
    # MCP servers drawn on by actions and reviews (never by completions); its owner closes it.
    context: ContextSource = field(default_factory=NoContext)

    async def warm_up(self) -> None:
        """Pay one-time costs (imports, model discovery) before the user types."""
        if self.settings.redis_url:
            import importlib

            await asyncio.to_thread(importlib.import_module, "redis.asyncio")
        await self.models.warm_up()

    async def aclose(self, drain_s: float = 0.0) -> None:
        """Release resources; with `drain_s`, first let requests in progress finish."""
        if drain_s:
            await self.completions.drain(drain_s)
        self.completions.outcomes.close()  # pending survival checkpoints are dropped
        await self.diagnostics.aclose()
        await self.context.aclose()  # after the reviews that use it: they were cancelled
        await self.jobs.aclose()
        await self.models.aclose()
        await self.cache.aclose()
        if self.history is not None:
            # Both block (flush waits for the writer, close joins it): not on the loop,
            # which keeps serving while old services close after a settings change.
            await asyncio.to_thread(self.history.flush, 5)
            await asyncio.to_thread(self.history.close)

    def close_at_exit(self) -> None:
        """What must not be lost or left behind when the process ends without `aclose`
        (LSP `exit` without `shutdown`, stdin closed, a `shutdown` cut short): the
        history's last rows (its writer is a daemon thread, often holding the acceptance
        just made) and the MCP servers, whose own process groups no signal of ours would
        reach. Blocks (seconds at most); harmless after `aclose`."""
        try:
            if self.history is not None:
                self.history.flush(timeout=5)
        except Exception:
            log.exception("could not flush the history at exit")
        try:
            self.context.close()
        except Exception:
            log.exception("could not stop the MCP servers at exit")


def build_cache(settings: Settings, notifier: Notifier) -> CompletionCache:
    memory = MemoryCache()
    if not settings.redis_url:
        return memory
    return RedisCache(
        settings.redis_url,
        fallback=memory,
        on_problem=lambda message: notifier.problem(REDIS_PROBLEM, message, level=Level.WARNING),
        on_recovered=lambda message: notifier.resolved(REDIS_PROBLEM, message),
    )


def build_context_source(settings: Settings, notifier: Notifier) -> ContextSource:
    """The MCP servers of ``mcp.servers_file`` as a context source, or none configured.

    ``server.mcp`` is imported only then: it is the one package that uses the MCP SDK,
    and nothing of it loads on the default path.
    """
    if settings.mcp.servers_file is None:
        return NoContext()
    from server.mcp.client.manager import build_context_source as build_mcp_context

    return build_mcp_context(settings, notifier)


def build_services(
    settings: Settings,
    *,
    notifier: Notifier,
    other_documents: Callable[[], Iterable[Document]] = tuple,
    history: HistoryWriter | bool | None = True,
    syntax: Syntax | None = None,
    documents: Callable[[str], Snapshot | None] = lambda uri: None,
    folders: Callable[[], Sequence[Path]] = tuple,
    publish: Publish = lambda uri, version, items: None,
    texts: DocumentTexts | None = None,
    context: ContextSource | None = None,
) -> Services:
    """Build everything; `history` may be an existing writer to keep, or False for none;
    `context` an existing context source to keep (None: built from ``settings.mcp``).

    `texts` (the open documents, from the edge) lets accepted suggestions be followed
    for survival (``history.survival``); without it they are not.
    """
    writer: HistoryWriter | None
    if not settings.history.enabled:
        writer = None  # a writer passed in stays its owner's to close
    elif isinstance(history, HistoryWriter):
        writer = history  # kept across a settings change, which may turn store_prompts
        writer.set_store_prompts(settings.history.store_prompts)
    elif history:
        writer = HistoryWriter(
            settings.resolved_database_url(),
            store_prompts=settings.history.store_prompts,
            on_problem=lambda message: notifier.problem(
                HISTORY_PROBLEM, message, level=Level.WARNING
            ),
            on_recovered=lambda message: notifier.resolved(HISTORY_PROBLEM, message),
        )
        writer.start()
    else:
        writer = None
    recorder: Recorder = writer if writer is not None else NullRecorder()
    models = ModelRouter(settings, notifier=notifier)
    cache = build_cache(settings, notifier)
    syntax = syntax or Syntax()
    c = settings.completion
    completions = CompletionService(
        settings=c,
        inference=settings.inference,
        models=models,
        cache=cache,
        syntax=syntax,
        recorder=recorder,
        other_documents=other_documents,
        context=ContextBuilder(
            prefix_tokens=c.prefix_tokens,
            suffix_tokens=c.suffix_tokens,
            snippet_tokens=c.snippet_tokens,
            snippet_time_limit_s=c.snippet_time_limit_ms / 1000,
            snippets=SnippetIndex(),
            rules=settings.context.rules(),
        ),
    )
    if texts is not None and settings.history.survival:
        completions.outcomes.survival = SurvivalTracker(
            settings.history.survival_checkpoints_s, recorder=recorder, documents=texts
        )
    jobs = JobGateway(settings, notifier=notifier, recorder=recorder)
    if context is None:
        context = build_context_source(settings, notifier)
    actions = ActionService(
        settings,
        models=models,
        jobs=jobs,
        notifier=notifier,
        documents=documents,
        folders=folders,
        syntax=syntax,
        context=context,
    )
    diagnostics = DiagnosticsService(
        settings,
        jobs=jobs,
        models=models,
        # Without Redis, reviews get their own memory: typing must not evict them.
        cache=cache if settings.redis_url else MemoryCache(capacity=512),
        notifier=notifier,
        documents=documents,
        publish=publish,
        syntax=syntax,
        context=context,
        folders=folders,
    )
    return Services(
        settings,
        notifier,
        models,
        cache,
        completions,
        recorder,
        writer,
        jobs,
        actions,
        diagnostics,
        context,
    )
