"""textDocument/inlineCompletion (ghost text) and textDocument/completion (one AI item).

Both run the same pipeline (``server.completion.service``). Items carry the command
``zi.acceptCompletion`` with the completion id, so acceptance reaches the history.
"""

from __future__ import annotations

import logging
import re

from lsprotocol import types

from server.completion.types import Completion, CompletionRequest, Document
from server.lsp import text_sync
from server.lsp.convert import BadPosition, offset_at
from server.lsp.features.lifecycle import MAX_DOCUMENT_CHARS
from server.lsp.server import ZiLanguageServer
from server.lsp.unicode import encodable

log = logging.getLogger(__name__)

ACCEPT_COMMAND = "zi.acceptCompletion"
_WORD_BEFORE = re.compile(r"[A-Za-z0-9_]*$")


def register(server: ZiLanguageServer) -> None:
    server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())(
        inline_completion
    )
    server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions())(completion)


async def inline_completion(
    ls: ZiLanguageServer, params: types.InlineCompletionParams
) -> types.InlineCompletionList:
    invoked = params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
    request = _request(ls, params.text_document.uri, params.position, invoked=invoked)
    if request is None:
        return types.InlineCompletionList(items=[])
    result = await ls.require_services().completions.complete(request)
    if result is None:
        return types.InlineCompletionList(items=[])
    _placed(ls, result, params.position)
    here = types.Range(start=params.position, end=params.position)
    return types.InlineCompletionList(
        items=[
            types.InlineCompletionItem(
                insert_text=result.text, range=here, command=_accept_command(result)
            )
        ]
    )


async def completion(ls: ZiLanguageServer, params: types.CompletionParams) -> types.CompletionList:
    """The same suggestion as one item, replacing the word before the cursor."""
    invoked = (
        params.context is not None
        and params.context.trigger_kind == types.CompletionTriggerKind.Invoked
    )
    request = _request(ls, params.text_document.uri, params.position, invoked=invoked)
    empty = types.CompletionList(is_incomplete=True, items=[])
    if request is None:
        return empty
    result = await ls.require_services().completions.complete(request)
    if result is None:
        return empty
    _placed(ls, result, params.position)  # `typed` is the user's; the suggestion starts here
    text = request.document.text
    line_start = text.rfind("\n", 0, request.offset) + 1
    word = _WORD_BEFORE.search(text[line_start : request.offset])
    typed = word.group(0) if word else ""
    start = types.Position(
        line=params.position.line, character=params.position.character - len(typed)
    )
    new_text = typed + result.text
    label = new_text.split("\n", 1)[0].strip() or new_text.strip()
    item = types.CompletionItem(
        label=label[:80],
        kind=types.CompletionItemKind.Text,
        detail="Zi",
        documentation=types.MarkupContent(
            kind=types.MarkupKind.Markdown,
            value=f"```{request.document.language_id}\n{new_text}\n```",
        ),
        sort_text="0",
        filter_text=new_text,
        preselect=True,
        insert_text_format=types.InsertTextFormat.PlainText,
        text_edit=types.TextEdit(
            range=types.Range(start=start, end=params.position), new_text=new_text
        ),
        command=_accept_command(result),
    )
    # Incomplete: the client asks again as the user types instead of filtering stale text.
    return types.CompletionList(is_incomplete=True, items=[item])


def _placed(ls: ZiLanguageServer, result: Completion, position: types.Position) -> None:
    """Tell the outcome tracker where the suggestion's text goes (survival follows it)."""
    ls.require_services().completions.outcomes.placed(
        result.id, line=position.line, character=position.character, text=result.text
    )


def _accept_command(result: Completion) -> types.Command:
    return types.Command(
        title="Accept Zi completion", command=ACCEPT_COMMAND, arguments=[result.id]
    )


def _request(
    ls: ZiLanguageServer, uri: str, position: types.Position, *, invoked: bool
) -> CompletionRequest | None:
    """The domain request, or None (with a log message) when there is nothing to complete."""
    services = ls.require_services()
    doc = text_sync.opened(ls.workspace, uri)
    if doc is None:
        services.notifier.problem(f"unknown:{uri}", f"completion for unknown document {uri}")
        return None
    text = doc._source or ""  # `doc.source` would read an unopened file from disk
    if len(text) > MAX_DOCUMENT_CHARS:
        services.notifier.problem(
            f"large:{uri}",
            f"{uri} has {len(text):,} characters; completions are off above {MAX_DOCUMENT_CHARS:,}",
        )
        return None
    if "\x00" in text:
        services.notifier.problem(f"binary:{uri}", f"{uri} looks binary; no completions")
        return None
    try:
        offset = offset_at(
            text, position.line, position.character, str(ls.workspace.position_encoding or "utf-16")
        )
    except BadPosition as exc:
        services.notifier.problem(f"position:{uri}", f"bad position in {uri}: {exc}")
        return None
    language = doc.language_id or ""  # a string: the strict converter refuses others
    # The uri goes to the history: half a UTF-16 pair in it would fail the whole batch.
    document = Document(
        uri=encodable(uri), language_id=language, version=doc.version or 0, text=text
    )
    return CompletionRequest(
        document=document,
        offset=offset,
        line=position.line,
        character=position.character,
        invoked=invoked,
    )
