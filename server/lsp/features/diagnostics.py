"""Diagnostics at the edge: didSave, pull (`textDocument/diagnostic`) and publishing.

Push or pull is decided per client: a client that can pull *and* be asked to
pull again (``workspace/diagnostic/refresh``) gets pull, because a review lands
seconds after the save and only a refresh makes such a client ask for it. Every
other client gets ``publishDiagnostics``; its pulls (Neovim 0.10+ pulls without
refresh support) are answered empty, so nothing shows twice.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from lsprotocol import types

from server.actions.edits import split_lines
from server.diagnostics.types import Diagnostic
from server.lsp.convert import width
from server.lsp.features.actions import snapshot
from server.lsp.server import ZiLanguageServer

log = logging.getLogger(__name__)

IDENTIFIER = "zi"
_UNNECESSARY = [types.DiagnosticTag.Unnecessary]


def register(server: ZiLanguageServer) -> None:
    server.feature(types.TEXT_DOCUMENT_DID_SAVE)(did_save)
    options = types.DiagnosticOptions(
        inter_file_dependencies=False, workspace_diagnostics=False, identifier=IDENTIFIER
    )
    server.feature(types.TEXT_DOCUMENT_DIAGNOSTIC, options)(pull)


def pulls(ls: ZiLanguageServer) -> bool:
    """Whether this client gets its diagnostics by pull (see the module docstring)."""
    services = ls.services
    mode = services.settings.diagnostics.mode if services is not None else "auto"
    if mode != "auto":
        return mode == "pull"
    caps = ls.client_capabilities
    can_pull = caps.text_document is not None and caps.text_document.diagnostic is not None
    refresh = caps.workspace is not None and caps.workspace.diagnostics is not None
    return can_pull and refresh and bool(caps.workspace.diagnostics.refresh_support)  # type: ignore[union-attr]


def opened(ls: ZiLanguageServer, uri: str) -> None:
    current = snapshot(ls, uri)
    if ls.services is not None and current is not None:
        _spawn(ls.services.diagnostics.opened(current))


def did_save(ls: ZiLanguageServer, params: types.DidSaveTextDocumentParams) -> None:
    current = snapshot(ls, params.text_document.uri)
    if ls.services is not None and current is not None:
        _spawn(ls.services.diagnostics.saved(current))


def closed(ls: ZiLanguageServer, uri: str) -> None:
    if ls.services is not None:
        ls.services.diagnostics.closed(uri)


async def pull(
    ls: ZiLanguageServer, params: types.DocumentDiagnosticParams
) -> types.DocumentDiagnosticReport:
    uri = params.text_document.uri
    if ls.services is None or not pulls(ls):
        return types.RelatedFullDocumentDiagnosticReport(items=[])
    result_id, items, text = await ls.services.diagnostics.current(uri)
    if params.previous_result_id == result_id:
        return types.RelatedUnchangedDocumentDiagnosticReport(result_id=result_id)
    return types.RelatedFullDocumentDiagnosticReport(
        items=to_lsp(items, text, _encoding(ls)), result_id=result_id
    )


def publisher(ls: ZiLanguageServer) -> Any:
    """The services' sink: publish (push clients) or ask the client to pull (pull clients)."""
    refresh = _Refresher(ls)

    def publish(uri: str, version: int | None, items: list[Diagnostic]) -> None:
        if pulls(ls):
            refresh.request()
            return
        doc = snapshot(ls, uri)
        diagnostics = to_lsp(items, doc.text, _encoding(ls)) if doc is not None else []
        ls.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics, version=version)
        )

    return publish


class _Refresher:
    """`workspace/diagnostic/refresh`, one at a time: a change while one is in flight
    sends one more after it (one refresh covers every document)."""

    TIMEOUT_S = 10.0  # a client that never answers does not stop later refreshes

    def __init__(self, ls: ZiLanguageServer) -> None:
        self.ls = ls
        self.task: asyncio.Task[None] | None = None
        self.again = False

    def request(self) -> None:
        if self.task is not None and not self.task.done():
            self.again = True
            return
        self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            self.again = False
            try:
                await asyncio.wait_for(
                    self.ls.workspace_diagnostic_refresh_async(None), self.TIMEOUT_S
                )
            except Exception as exc:  # a client that refuses keeps what it pulled last
                log.warning("workspace/diagnostic/refresh failed: %s", exc or type(exc).__name__)
            if not self.again:
                return


def to_lsp(items: list[Diagnostic], text: str, encoding: str) -> list[types.Diagnostic]:
    lines = split_lines(text)
    return [_diagnostic(d, lines, encoding) for d in items]


def _diagnostic(d: Diagnostic, lines: list[str], encoding: str) -> types.Diagnostic:
    return types.Diagnostic(
        range=types.Range(
            start=_position(lines, d.start_line, d.start_col, encoding),
            end=_position(lines, d.end_line, d.end_col, encoding),
        ),
        message=d.message,
        severity=types.DiagnosticSeverity(int(d.severity)),
        source=d.source,
        code=d.code,
        data=d.data,
        tags=_UNNECESSARY if d.unnecessary else None,
    )


def _position(lines: list[str], line: int, col: int, encoding: str) -> types.Position:
    if not lines:
        return types.Position(line=0, character=0)
    line = min(max(line, 0), len(lines) - 1)
    text = lines[line].rstrip("\r\n")
    return types.Position(line=line, character=width(text[: max(col, 0)], encoding))


def _encoding(ls: ZiLanguageServer) -> str:
    return str(ls.workspace.position_encoding or "utf-16")


_tasks: set[asyncio.Task[None]] = set()


def _spawn(coro: Any) -> None:
    task = asyncio.ensure_future(_logged(coro))
    _tasks.add(task)  # keep a reference until done, or the task may vanish mid-way
    task.add_done_callback(_tasks.discard)


async def _logged(coro: Any) -> None:
    try:
        await coro
    except Exception:  # the log has it; the editor keeps its last diagnostics
        log.exception("diagnostics failed")
