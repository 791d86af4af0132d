"""Survival of accepted suggestions through the real server: the editor inserts and
accepts them, the user edits or closes the document, and the history database gets
one row per checkpoint (here 1 s and 2 s after acceptance)."""

from __future__ import annotations

from lsprotocol import types
from pytest_lsp import LanguageClient

from tests.e2e.conftest import StartServer, inline, open_document, type_text
from tests.support.scripted_model import Reply, ScriptedModel
from tests.support.waits import rows_until, settings_applied, settings_updates

SURVIVAL_SQL = (
    "select c.uri, s.after_s, s.accepted_chars, s.kept_chars, s.document_closed "
    "from completion_survival s join completions c on c.id = s.completion_id "
    "order by c.uri, s.after_s"
)


async def survival_rows(db_url: str, count: int) -> list[tuple[object, ...]]:
    """(uri, after_s, accepted, kept, closed) once `count` checks are recorded."""
    rows = await rows_until(db_url, SURVIVAL_SQL, lambda rows: len(rows) >= count)
    return [tuple(row.values()) for row in rows]


SUGGESTION = "return a + b"


async def suggest_and_insert(client: LanguageClient, uri: str, inserted: str = SUGGESTION) -> str:
    """Open `uri`, get the suggestion at (1, 4) and insert `inserted` of it, as an editor
    does before it reports the acceptance; the suggestion's id."""
    open_document(client, uri, "def f(a, b):\n    \n")
    result = await inline(client, uri, 1, 4)
    assert result is not None and [i.insert_text for i in result.items] == [SUGGESTION]
    command = result.items[0].command
    assert command is not None and command.arguments
    type_text(client, uri, 2, 1, 4, inserted)
    return str(command.arguments[0])


async def accept(client: LanguageClient, completion_id: str) -> None:
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="zi.acceptCompletion", arguments=[completion_id])
    )


async def test_accepted_text_is_checked_at_each_checkpoint(
    start_server: StartServer, scripted_model: ScriptedModel, db_url: str
) -> None:
    scripted_model.reply_with(Reply(text=SUGGESTION))
    client = await start_server(ZI_HISTORY__SURVIVAL_CHECKPOINTS_S="[1, 2]")

    kept = "file:///work/project/kept.py"
    await accept(client, await suggest_and_insert(client, kept))
    type_text(client, kept, 3, 0, 0, "import math\n")  # above it: it only moves

    halved = "file:///work/project/halved.py"
    await accept(client, await suggest_and_insert(client, halved))
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=halved, version=3),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(
                        start=types.Position(line=1, character=10),
                        end=types.Position(line=1, character=16),
                    ),
                    text="",
                )
            ],
        )
    )  # "return a + b" → "return"

    partial = "file:///work/project/partial.py"
    partial_id = await suggest_and_insert(client, partial, "return")  # the next word only
    client.protocol.notify(
        "zi/didPartiallyAcceptCompletion", {"id": partial_id, "acceptedLength": 6}
    )

    closed = "file:///work/project/closed.py"
    await accept(client, await suggest_and_insert(client, closed))
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=closed))
    )

    # All the checks there are: each acceptance has one per checkpoint.
    rows = await survival_rows(db_url, count=8)

    assert rows == [
        # Closed before its first check: at every checkpoint, as closed, judged on
        # the text it had when closed.
        (closed, 1, 12, 12, 1),
        (closed, 2, 12, 12, 1),
        (halved, 1, 12, 6, 0),
        (halved, 2, 12, 6, 0),
        (kept, 1, 12, 12, 0),
        (kept, 2, 12, 12, 0),
        (partial, 1, 6, 6, 0),
        (partial, 2, 6, 6, 0),
    ]


async def test_no_survival_checks_when_turned_off(
    start_server: StartServer, scripted_model: ScriptedModel, db_url: str
) -> None:
    scripted_model.reply_with(Reply(text=SUGGESTION))
    checks = {"survival_checkpoints_s": [1]}
    client = await start_server(initialization_options={"history": {"survival": False, **checks}})
    off = "file:///work/project/off.py"
    await accept(client, await suggest_and_insert(client, off))

    # Turned on: a later acceptance is checked, 1 s after it, so after the first one's
    # check would have been. Checks are written in the order they are made: had the
    # first acceptance been followed, its row would be there by then.
    updates = settings_updates(client)
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(
            settings={"zi": {"history": {"survival": True, **checks}}}
        )
    )
    await settings_applied(client, after=updates)
    on = "file:///work/project/on.py"
    await accept(client, await suggest_and_insert(client, on))

    assert await survival_rows(db_url, count=1) == [(on, 1, 12, 12, 0)]
