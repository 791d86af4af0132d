"""Asking the server for code actions, for end-to-end tests: the module the tests
fix, the diagnostic they pass in, the request and picking one action by kind."""

from __future__ import annotations

from typing import Any

from lsprotocol import types
from pytest_lsp import LanguageClient

MODULE = """\
def add(a, b):
    return a + b


def mean(values):
    total = 0
    for v in values:
        total += v
    return total / len(values)
"""
RETURN_LINE = 8  # "    return total / len(values)"


def diagnostic(line: int, message: str, source: str, data: Any = None) -> types.Diagnostic:
    return types.Diagnostic(
        range=types.Range(
            start=types.Position(line=line, character=4),
            end=types.Position(line=line, character=30),
        ),
        message=message,
        source=source,
        data=data,
    )


async def code_actions(
    client: LanguageClient,
    uri: str,
    start: tuple[int, int],
    end: tuple[int, int] | None = None,
    diagnostics: list[types.Diagnostic] | None = None,
    only: list[str] | None = None,
) -> list[types.CodeAction]:
    end = end or start
    result = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(
                start=types.Position(line=start[0], character=start[1]),
                end=types.Position(line=end[0], character=end[1]),
            ),
            context=types.CodeActionContext(
                diagnostics=diagnostics or [],
                only=[types.CodeActionKind(k) if k == "quickfix" else k for k in only]
                if only
                else None,
            ),
        )
    )
    assert result is not None
    return [a for a in result if isinstance(a, types.CodeAction)]


def one_of_kind(actions: list[types.CodeAction], kind: str) -> types.CodeAction:
    found = [a for a in actions if str(a.kind) == kind or a.kind == kind]
    assert len(found) == 1, [(a.title, a.kind) for a in actions]
    return found[0]
