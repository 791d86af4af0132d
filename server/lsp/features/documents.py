"""didOpen / didChange / didClose: pygls keeps the text; edits make requests stale;
opening a file checks it (see ``diagnostics``)."""

from __future__ import annotations

from lsprotocol import types

from server.lsp.features import diagnostics
from server.lsp.server import ZiLanguageServer


def register(server: ZiLanguageServer) -> None:
    server.feature(types.TEXT_DOCUMENT_DID_OPEN)(did_open)
    server.feature(types.TEXT_DOCUMENT_DID_CHANGE)(did_change)
    server.feature(types.TEXT_DOCUMENT_DID_CLOSE)(did_close)


def did_open(ls: ZiLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
    if ls.services is not None:
        ls.services.completions.document_opened(params.text_document.uri)
        diagnostics.opened(ls, params.text_document.uri)


def did_change(ls: ZiLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
    if ls.services is None:
        return
    uri = params.text_document.uri
    for change in params.content_changes:
        if isinstance(change, types.TextDocumentContentChangePartial):
            start = change.range.start
            ls.services.completions.document_changed(uri, start.line, start.character)
        else:
            ls.services.completions.document_changed(uri, None, None)


def did_close(ls: ZiLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
    if ls.services is not None:
        ls.services.completions.document_closed(params.text_document.uri)
        diagnostics.closed(ls, params.text_document.uri)
