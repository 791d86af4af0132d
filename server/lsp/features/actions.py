"""textDocument/codeAction, codeAction/resolve and zi/explain: AI code actions.

Actions are offered without an edit (no model call while the light bulb opens);
resolving one runs its job with work-done progress. Cancelling the progress or
the request cancels the job. A refusal (a conflicting edit, a rejected answer, a
dead model) is a RequestFailed error whose message says why, also shown to the user.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.uris import to_fs_path

from server.actions.edits import LineEdit, split_lines
from server.actions.types import KINDS, ActionError, ActionRequest, Problem, Progress, Snapshot
from server.lsp import text_sync
from server.lsp.convert import field, position_at
from server.lsp.server import REQUEST_FAILED, ZiLanguageServer
from server.lsp.unicode import encodable
from server.notify import Level

log = logging.getLogger(__name__)

EXPLAIN = "zi/explain"
T = TypeVar("T")


class ActionFailed(JsonRpcException):
    """An action that could not produce its result, for a reason the user should read."""

    CODE = REQUEST_FAILED


def register(server: ZiLanguageServer) -> None:
    options = types.CodeActionOptions(
        code_action_kinds=list(KINDS),
        resolve_provider=True,
    )
    server.feature(types.TEXT_DOCUMENT_CODE_ACTION, options)(code_action)
    server.feature(types.CODE_ACTION_RESOLVE)(resolve)
    server.feature(EXPLAIN)(explain)
    server.feature(types.WINDOW_WORK_DONE_PROGRESS_CANCEL)(progress_cancelled)


def snapshot(ls: ZiLanguageServer, uri: str) -> Snapshot | None:
    """The open document at `uri` as the server holds it now (None if it is not open)."""
    doc = text_sync.opened(ls.workspace, uri)
    if doc is None:
        return None
    path = to_fs_path(uri) if uri.startswith("file:") else None
    if path and "\x00" in path:  # no file has such a name (and subprocess args refuse it)
        path = None
    return Snapshot(
        uri=encodable(uri),
        path=Path(encodable(path)) if path else None,
        language_id=encodable(doc.language_id or ""),  # a string: see protocol.strict_converter
        version=doc.version,
        text=encodable(doc._source or ""),  # never `doc.source`: it reads from disk
    )


def folders(ls: ZiLanguageServer) -> list[Path]:
    found = [to_fs_path(f.uri) for f in ls.workspace.folders.values()]
    if not found and ls.workspace.root_path:
        found = [ls.workspace.root_path]
    return [Path(p) for p in found if p]


def code_action(ls: ZiLanguageServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    services = ls.require_services()
    doc = snapshot(ls, params.text_document.uri)
    if doc is None:
        return []
    diagnostics = list(params.context.diagnostics)
    problems = tuple(_problem(i, d) for i, d in enumerate(diagnostics))
    start, end = params.range.start, params.range.end
    request = ActionRequest(
        document=doc,
        start_line=start.line,
        end_line=end.line - 1 if end.character == 0 and end.line > start.line else end.line,
        empty_selection=(start.line, start.character) == (end.line, end.character),
        problems=problems,
        only=tuple(str(k) for k in params.context.only) if params.context.only else None,
    )
    actions = []
    for offer in services.actions.offers(request):
        attached = [diagnostics[offer.problem_index]] if offer.problem_index is not None else None
        actions.append(
            types.CodeAction(
                title=offer.title, kind=offer.kind, diagnostics=attached, data=offer.data
            )
        )
    return actions


def _problem(index: int, diagnostic: types.Diagnostic) -> Problem:
    start, end = diagnostic.range.start, diagnostic.range.end
    last = end.line - 1 if end.character == 0 and end.line > start.line else end.line
    return Problem(
        index=index,
        start_line=start.line,
        end_line=max(last, start.line),
        message=diagnostic.message,
        source=diagnostic.source,
        code=None if diagnostic.code is None else str(diagnostic.code),
        data=diagnostic.data,
    )


async def resolve(ls: ZiLanguageServer, action: types.CodeAction) -> types.CodeAction:
    data = action.data
    if not isinstance(data, dict) or "zi" not in data:
        return action  # not one of ours: nothing to add
    if not _well_formed(data):  # the client sends back what we offered; this was changed
        raise JsonRpcInvalidParams(
            "codeAction/resolve: the action's data is not as Zi offered it "
            "(zi, uri: strings; start, end: line numbers; version: an integer)"
        )
    services = ls.require_services()
    resolution = await _guarded(
        ls, action.title, lambda progress: services.actions.resolve(data, progress)
    )
    changes: list[Any] = [types.CreateFile(uri=uri) for uri in resolution.create]
    by_uri: dict[str, list[LineEdit]] = {}
    for edit in resolution.edits:
        by_uri.setdefault(edit.uri, []).append(edit)
    for uri, edits in by_uri.items():
        current = snapshot(ls, uri)
        text = current.text if current is not None else ""
        changes.append(
            types.TextDocumentEdit(
                text_document=types.OptionalVersionedTextDocumentIdentifier(
                    uri=uri, version=edits[0].version
                ),
                edits=[_text_edit(text, e, _encoding(ls)) for e in edits],
            )
        )
    if resolution.summary:
        services.notifier.info(resolution.summary)
    action.edit = types.WorkspaceEdit(document_changes=changes)
    return action


async def explain(ls: ZiLanguageServer, params: Any) -> dict[str, str]:
    """``zi/explain`` {textDocument: {uri}, range} -> MarkupContent (Markdown)."""
    services = ls.require_services()
    uri, start, end_line, end_char = _explain_params(params)
    doc = snapshot(ls, uri)
    if doc is None:
        raise ActionFailed("zi/explain needs an open document's uri and a range")
    end = end_line if end_char == 0 and end_line > start else end_line + 1
    markdown = await _guarded(
        ls,
        "Explain selection",
        lambda progress: services.actions.explain(doc, start, end, progress),
    )
    return {"kind": "markdown", "value": markdown}


def _explain_params(params: Any) -> tuple[str, int, int, int]:
    """(uri, start line, end line, end character) of zi/explain's params, or -32602."""
    uri = field(field(params, "text_document", "textDocument"), "uri")
    range_ = field(params, "range")
    start, end = field(range_, "start"), field(range_, "end")
    numbers = (field(start, "line"), field(end, "line"), field(end, "character"))
    if not isinstance(uri, str) or not all(_uinteger(n) for n in numbers):
        raise JsonRpcInvalidParams(
            "zi/explain takes {textDocument: {uri}, range: {start, end}} with positions "
            "of non-negative integers"
        )
    return uri, *numbers


def _well_formed(data: dict[str, Any]) -> bool:
    """Whether an action's `data` has the shape `server.actions.offers` gives it."""
    version = data.get("version")
    return (
        isinstance(data.get("zi"), str)
        and isinstance(data.get("uri"), str)
        and _uinteger(data.get("start"))
        and _uinteger(data.get("end"))
        and (version is None or (type(version) is int and abs(version) < 2**31))
    )


def _uinteger(value: Any) -> bool:
    """An LSP uinteger (0 to 2**31 - 1), not a bool."""
    return type(value) is int and 0 <= value < 2**31


def progress_cancelled(ls: ZiLanguageServer, params: types.WorkDoneProgressCancelParams) -> None:
    task = _RUNNING.pop(str(params.token), None)
    if task is not None and not task.done():
        log.info("progress %s cancelled by the client", params.token)
        task.cancel()


_RUNNING: dict[str, asyncio.Task[Any]] = {}


async def _guarded(ls: ZiLanguageServer, title: str, work: Callable[[Progress], Awaitable[T]]) -> T:
    """Run `work` under work-done progress; an ActionError becomes RequestFailed."""
    token = await _create_progress(ls)
    task = asyncio.current_task()
    if token is not None and task is not None:
        _RUNNING[token] = task
        ls.work_done_progress.begin(
            token, types.WorkDoneProgressBegin(title=f"Zi: {title}", cancellable=True, percentage=0)
        )

    def report(message: str, percentage: int | None) -> None:
        if token is not None:
            ls.work_done_progress.report(
                token, types.WorkDoneProgressReport(message=message, percentage=percentage)
            )

    outcome = "done"
    try:
        return await work(report)
    except ActionError as exc:
        outcome = str(exc)
        ls.show_to_client(Level.WARNING, f"Zi: {title}: {exc}")
        raise ActionFailed(str(exc)) from None
    except asyncio.CancelledError:
        outcome = "cancelled"
        raise
    finally:
        if token is not None:
            _RUNNING.pop(token, None)
            ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message=outcome))


async def _create_progress(ls: ZiLanguageServer) -> str | None:
    capabilities = ls.client_capabilities
    window = capabilities.window if capabilities is not None else None
    if window is None or not window.work_done_progress:
        return None
    token = f"zi-{uuid.uuid4().hex[:12]}"
    try:
        await asyncio.wait_for(ls.work_done_progress.create_async(token), 5.0)
    except Exception as exc:  # a client that does not answer still gets its result
        log.info("window/workDoneProgress/create failed: %s", exc)
        return None
    return token


def _encoding(ls: ZiLanguageServer) -> str:
    return str(ls.workspace.position_encoding or "utf-16")


def _text_edit(text: str, edit: LineEdit, encoding: str) -> types.TextEdit:
    lines = split_lines(text)
    return types.TextEdit(
        range=types.Range(
            start=_line_start(text, lines, edit.start, encoding),
            end=_line_start(text, lines, edit.end, encoding),
        ),
        new_text=edit.new_text,
    )


def _line_start(text: str, lines: list[str], line: int, encoding: str) -> types.Position:
    """Start of `line`; past the last line: the end of the document (no phantom line)."""
    if line < len(lines) or not lines or lines[-1].endswith(("\n", "\r")):
        return types.Position(line=line, character=0)
    end_line, character = position_at(text, len(text), encoding)
    return types.Position(line=end_line, character=character)
