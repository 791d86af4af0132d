"""didOpen / didChange / didClose: the text is kept by ``text_sync.SyncedDocument``
(swapped in for pygls' document on open, edited by pygls' didChange); edits make requests stale
and move accepted suggestions (survival); opening a file checks it (see ``diagnostics``)."""

from __future__ import annotations

from collections.abc import Callable

from lsprotocol import types

from server.lsp import text_sync
from server.lsp.convert import BadPosition, offset_at, position_at, width
from server.lsp.features import diagnostics
from server.lsp.server import ZiLanguageServer


def register(server: ZiLanguageServer) -> None:
    server.feature(types.TEXT_DOCUMENT_DID_OPEN)(did_open)
    server.feature(types.TEXT_DOCUMENT_DID_CHANGE)(did_change)
    server.feature(types.TEXT_DOCUMENT_DID_CLOSE)(did_close)


def did_open(ls: ZiLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
    text_sync.adopt(ls.workspace, params.text_document.uri)  # before any change arrives
    if ls.services is not None:
        ls.services.completions.document_opened(params.text_document.uri)
        diagnostics.opened(ls, params.text_document.uri)


def did_change(ls: ZiLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
    if ls.services is None:
        return
    uri = params.text_document.uri
    outcomes = ls.services.completions.outcomes
    for change in params.content_changes:
        if isinstance(change, types.TextDocumentContentChangePartial):
            start, end = change.range.start, change.range.end
            ls.services.completions.document_changed(uri, start.line, start.character)
            outcomes.edited(
                uri, (start.line, start.character), (end.line, end.character), change.text
            )
        else:
            ls.services.completions.document_changed(uri, None, None)
            outcomes.rewritten(uri)


def did_close(ls: ZiLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
    if ls.services is not None:
        ls.services.completions.document_closed(params.text_document.uri)
        diagnostics.closed(ls, params.text_document.uri)


class OpenTexts:
    """Open documents' texts in the client's position units, for survival checks
    (``server.completion.survival.DocumentTexts``)."""

    def __init__(self, text_of: Callable[[str], str | None], encoding: Callable[[], str]) -> None:
        self.text = text_of
        self._encoding = encoding

    def offset(self, text: str, line: int, column: int) -> int:
        try:
            return offset_at(text, line, column, self._encoding())
        except BadPosition:  # a line past the end (the client's edits and ours disagree)
            return len(text)

    def position(self, text: str, offset: int) -> tuple[int, int]:
        return position_at(text, offset, self._encoding())

    def width(self, segment: str) -> int:
        return width(segment, self._encoding())


def open_texts(ls: ZiLanguageServer) -> OpenTexts:
    def text_of(uri: str) -> str | None:
        doc = text_sync.opened(ls.workspace, uri)
        return None if doc is None else doc._source  # `doc.source` would read the disk

    return OpenTexts(text_of, lambda: str(ls.workspace.position_encoding or "utf-16"))
