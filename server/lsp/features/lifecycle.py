"""initialize, initialized, workspace/didChangeConfiguration, shutdown.

Client settings (``initializationOptions``, then ``workspace/configuration``
section ``zi``) are validated into the same Settings model as the environment;
an invalid value is reported and the previous settings stay in force.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from lsprotocol import types
from pydantic import ValidationError

from server.app import build_services
from server.completion.types import Document
from server.context.types import NoContext
from server.lsp.server import ZiLanguageServer
from server.notify import Level, Notifier
from server.settings import Settings

log = logging.getLogger(__name__)

MAX_DOCUMENT_CHARS = 2_000_000  # larger documents get no completions (and are not indexed)


def register(server: ZiLanguageServer) -> None:
    server.feature(types.INITIALIZE)(initialize)
    server.feature(types.INITIALIZED)(initialized)
    server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)(did_change_configuration)
    server.feature(types.SHUTDOWN)(shutdown)
    server.feature(types.EXIT)(exit_)


def initialize(ls: ZiLanguageServer, params: types.InitializeParams) -> None:
    notifier = Notifier()
    notifier.connect(log_sink=ls.log_to_client, show_sink=ls.show_to_client)
    settings = _validated(ls.base_settings, _zi_section(params.initialization_options), notifier)
    ls.services = build_services(settings or ls.base_settings, notifier=notifier, **_views(ls))


async def initialized(ls: ZiLanguageServer, params: types.InitializedParams) -> None:
    await _pull_configuration(ls)
    _background(ls.require_services().warm_up())


async def did_change_configuration(
    ls: ZiLanguageServer, params: types.DidChangeConfigurationParams
) -> None:
    settings = params.settings
    # {"zi": {...}} is the new client settings, even {} (every setting back to its
    # default); other keys are the section itself; null or {} mean "changed: ask me".
    pushed = _zi_section(settings)
    if pushed or (isinstance(settings, dict) and isinstance(settings.get("zi"), dict)):
        _apply(ls, pushed or {})
    else:
        await _pull_configuration(ls)


async def shutdown(ls: ZiLanguageServer, params: None) -> None:
    """Drain and close everything (history flushed) before answering: clients send
    `exit` only after this answer, and the read loop ends on `exit` at once."""
    if ls.services is not None and ls.closing is None:
        # Let answers already in progress go out before their HTTP client closes.
        ls.closing = asyncio.ensure_future(ls.services.aclose(drain_s=5))
    if ls.closing is not None:
        await ls.closing


def exit_(ls: ZiLanguageServer, params: None) -> None:
    """A client that sends `exit` without `shutdown` still loses no history and leaves
    no MCP server running (after `shutdown`, there is nothing left to do).

    Synchronous on purpose: the read loop ends as soon as `exit` has been handled
    (``ZiProtocol.lsp_exit``), so an async handler might not run to its end.
    """
    if ls.services is not None:
        ls.services.close_at_exit()


async def _pull_configuration(ls: ZiLanguageServer) -> None:
    caps = ls.client_capabilities.workspace
    if caps is None or not caps.configuration:
        return
    try:
        result = await ls.workspace_configuration_async(
            types.ConfigurationParams(items=[types.ConfigurationItem(section="zi")])
        )
    except Exception as exc:  # a client that fails this request keeps the current settings
        log.warning("workspace/configuration failed: %s", exc)
        return
    if result and isinstance(result[0], dict):
        _apply(ls, result[0])  # even {}: the client cleared its settings


def _apply(ls: ZiLanguageServer, overrides: dict[str, Any]) -> None:
    services = ls.require_services()
    # Client settings layer over the environment, not over the previous client settings.
    settings = _validated(ls.base_settings, overrides, services.notifier)
    if settings is None or settings == services.settings:
        return
    keep_history = (
        settings.history.enabled
        and settings.resolved_database_url() == services.settings.resolved_database_url()
    )
    # The MCP servers' connections (and their processes) outlive a change elsewhere.
    keep_context = settings.mcp == services.settings.mcp
    old = services
    ls.services = build_services(
        settings,
        notifier=old.notifier,
        history=old.history if keep_history and old.history else True,
        syntax=old.completions.syntax,
        context=old.context if keep_context else None,
        **_views(ls),
    )
    if keep_history:  # acceptances recorded in another database stay there
        ls.services.completions.outcomes.adopt(old.completions.outcomes)
    old.history = old.history if not keep_history else None
    if keep_context:
        old.context = NoContext()  # the new services own it now
    _background(old.aclose(drain_s=30))
    _background(ls.services.diagnostics.adopt(old.diagnostics))
    old.notifier.info("settings updated from the client")


_tasks: set[asyncio.Task[None]] = set()


def _background(coro: Coroutine[Any, Any, None]) -> None:
    task = asyncio.get_running_loop().create_task(coro)
    _tasks.add(task)  # keep a reference until done, or the task may vanish mid-way
    task.add_done_callback(_tasks.discard)


def _validated(
    base: Settings, overrides: dict[str, Any] | None, notifier: Notifier
) -> Settings | None:
    try:
        return base.merged(overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"zi.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        notifier.problem(
            "settings", f"invalid settings ignored: {problems}", lasting=True, level=Level.ERROR
        )
        return None


def _zi_section(options: Any) -> dict[str, Any] | None:
    if not isinstance(options, dict):
        return None
    section = options.get("zi", options)
    return section if isinstance(section, dict) else None


def _views(ls: ZiLanguageServer) -> dict[str, Any]:
    """How the services see the editor's documents and workspace folders."""
    from server.lsp.features import actions, diagnostics
    from server.lsp.features.documents import open_texts

    return {
        "other_documents": lambda: _open_documents(ls),
        "documents": lambda uri: actions.snapshot(ls, uri),
        "folders": lambda: actions.folders(ls),
        "publish": diagnostics.publisher(ls),
        "texts": open_texts(ls),
    }


def _open_documents(ls: ZiLanguageServer) -> list[Document]:
    out = []
    for doc in list(ls.workspace.text_documents.values()):
        source = doc._source or ""  # never `doc.source`: it reads unopened files from disk
        if len(source) <= MAX_DOCUMENT_CHARS:
            out.append(Document(doc.uri, doc.language_id or "", doc.version or 0, source))
    return out
