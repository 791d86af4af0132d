"""Inline completions through the real server: what an editor user sees."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

import pytest
from lsprotocol import types

from server.cli import main
from tests.e2e.conftest import (
    StartServer,
    inline,
    open_document,
    server_capabilities,
    texts,
    type_text,
)
from tests.support.scripted_model import Reply, ScriptedModel

URI = "file:///work/project/calc.py"


def db_rows(db_url: str, sql: str, timeout: float = 5.0) -> list[tuple[object, ...]]:
    """Poll the history database until the query returns rows (writes are async)."""
    path = db_url.removeprefix("sqlite:///")
    deadline = time.monotonic() + timeout
    while True:
        rows: list[tuple[object, ...]] = []
        if Path(path).exists():
            try:
                with sqlite3.connect(path) as conn:
                    rows = conn.execute(sql).fetchall()
            except sqlite3.OperationalError:
                rows = []  # table not migrated yet
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.05)


async def test_initialize_advertises_completion_features(start_server: StartServer) -> None:
    client = await start_server()
    caps = server_capabilities(client)
    assert caps.inline_completion_provider is not None
    assert caps.completion_provider is not None
    assert caps.execute_command_provider is not None
    assert "zi.acceptCompletion" in caps.execute_command_provider.commands


async def test_ghost_text_for_an_empty_function_body(
    start_server: StartServer, scripted_model: ScriptedModel
) -> None:
    scripted_model.reply_with(Reply(text="return a + b\n\ndef unrelated():\n    pass\n"))
    client = await start_server()
    open_document(client, URI, "def add(a, b):\n    \n")

    result = await inline(client, URI, 1, 4)

    assert texts(result) == ["return a + b"]
    item = result.items[0]  # type: ignore[union-attr]
    assert item.command is not None and item.command.command == "zi.acceptCompletion"
    assert isinstance(item.command.arguments[0], str)  # type: ignore[index]
    assert item.range == types.Range(
        start=types.Position(line=1, character=4), end=types.Position(line=1, character=4)
    )
    # The model saw a Qwen fill-in-the-middle prompt rendered by us (no `suffix` field).
    request = scripted_model.requests[-1]
    assert "suffix" not in request
    prompt = request["prompt"]
    assert prompt.startswith("<|fim_prefix|>")
    assert prompt.endswith("<|fim_suffix|>\n<|fim_middle|>")
    assert "# Path: /work/project/calc.py\ndef add(a, b):\n    <|fim_suffix|>" in prompt
    assert "<|endoftext|>" in request["stop"] and "\n" not in request["stop"]  # multi-line
    assert request["stream"] is True


async def test_single_line_inside_call_balances_against_suffix(
    start_server: StartServer, scripted_model: ScriptedModel
) -> None:
    scripted_model.reply_with(Reply(text="1, 2)"))
    client = await start_server()
    open_document(client, URI, "total = max()\n")

    result = await inline(client, URI, 0, 12)

    assert texts(result) == ["1, 2"]
    assert "\n" in scripted_model.requests[-1]["stop"]  # single-line mode


async def test_no_request_in_the_middle_of_a_word(
    start_server: StartServer, scripted_model: ScriptedModel
) -> None:
    client = await start_server()
    open_document(client, URI, "value = compute_total(x)\n")

    result = await inline(client, URI, 0, 12)

    assert texts(result) == []
    assert scripted_model.requests == []

    # Asked for explicitly, the user gets a suggestion even there.
    scripted_model.reply_with(Reply(text="_all"))
    assert texts(await inline(client, URI, 0, 12, invoked=True)) == ["_all"]


async def test_typing_into_a_suggestion_needs_no_model_call(
    start_server: StartServer, scripted_model: ScriptedModel
) -> None:
    scripted_model.reply_with(Reply(text="return a + b"))
    client = await start_server()
    open_document(client, URI, "def add(a, b):\n    \n")
    assert texts(await inline(client, URI, 1, 4)) == ["return a + b"]
    assert len(scripted_model.requests) == 1

    type_text(client, URI, 2, 1, 4, "ret")
    result = await inline(client, URI, 1, 7)

    assert texts(result) == ["urn a + b"]
    assert len(scripted_model.requests) == 1


async def test_plain_completion_offers_the_suggestion_as_one_item(
    start_server: StartServer, scripted_model: ScriptedModel
) -> None:
    scripted_model.reply_with(Reply(text="(a, b)"))
    client = await start_server()
    open_document(client, URI, "result = add\n")

    result = await client.text_document_completion_async(
        types.CompletionParams(
            text_document=types.TextDocumentIdentifier(uri=URI),
            position=types.Position(line=0, character=12),
        )
    )

    assert isinstance(result, types.CompletionList)
    assert len(result.items) == 1
    item = result.items[0]
    assert isinstance(item.text_edit, types.TextEdit)
    assert item.text_edit.new_text == "add(a, b)"
    assert item.text_edit.range.start == types.Position(line=0, character=9)
    assert item.command is not None and item.command.command == "zi.acceptCompletion"


async def test_outcomes_reach_the_history_database(
    start_server: StartServer, scripted_model: ScriptedModel, db_url: str
) -> None:
    scripted_model.reply_with(Reply(text="return a + b"))
    client = await start_server()
    open_document(client, URI, "def add(a, b):\n    \n")
    first = (await inline(client, URI, 1, 4)).items[0]  # type: ignore[union-attr]
    first_id = first.command.arguments[0]  # type: ignore[union-attr,index]

    client.protocol.notify("zi/didShowCompletion", {"id": first_id})
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="zi.acceptCompletion", arguments=[first_id])
    )

    rows = db_rows(
        db_url,
        f"select outcome, model, source, mode from completions "
        f"where id = '{first_id}' and outcome = 'accepted'",
    )
    assert rows == [("accepted", "scripted-coder", "model", "multi_line")]

    open_document(client, "file:///work/project/other.py", "def sub(a, b):\n    \n")
    scripted_model.reply_with(Reply(text="return a - b"))
    second = (await inline(client, "file:///work/project/other.py", 1, 4)).items[0]  # type: ignore[union-attr]
    second_id = second.command.arguments[0]  # type: ignore[union-attr,index]
    client.protocol.notify(
        "zi/didPartiallyAcceptCompletion", {"id": second_id, "acceptedLength": 6}
    )
    rows = db_rows(
        db_url,
        f"select outcome, accepted_length from completions "
        f"where id = '{second_id}' and outcome = 'partially_accepted'",
    )
    assert rows == [("partially_accepted", 6)]


async def test_a_new_suggestion_marks_the_shown_one_rejected(
    start_server: StartServer, scripted_model: ScriptedModel, db_url: str
) -> None:
    client = await start_server()
    open_document(client, URI, "def add(a, b):\n    \n")
    scripted_model.reply_with(Reply(text="return a + b"))
    first = (await inline(client, URI, 1, 4)).items[0]  # type: ignore[union-attr]
    first_id = first.command.arguments[0]  # type: ignore[union-attr,index]
    client.protocol.notify("zi/didShowCompletion", {"id": first_id})

    type_text(client, URI, 2, 1, 4, "x")  # not what was suggested
    scripted_model.reply_with(Reply(text=" = a * b"))
    assert texts(await inline(client, URI, 1, 5)) == [" = a * b"]

    rows = db_rows(
        db_url, f"select outcome from completions where id = '{first_id}' and outcome = 'rejected'"
    )
    assert rows == [("rejected",)]


@pytest.mark.parametrize("fast_start", ["true", "false"])
async def test_initialize_answer_is_the_same_with_and_without_fast_start(
    start_server: StartServer, fast_start: str
) -> None:
    client = await start_server(ZI_FAST_START=fast_start)
    caps = server_capabilities(client)
    assert caps.position_encoding == types.PositionEncodingKind.Utf16
    assert caps.inline_completion_provider is not None
    # The fast path logs an error if pygls' own answer differed from the early one.
    await asyncio.sleep(0.2)
    assert not [m for m in client.log_messages if "differs" in m.message]


async def test_a_suggestion_typed_along_then_accepted_is_one_accepted_suggestion(
    start_server: StartServer,
    scripted_model: ScriptedModel,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    scripted_model.reply_with(Reply(text="return a + b"))
    client = await start_server()
    open_document(client, URI, "def add(a, b):\n    \n")
    first = (await inline(client, URI, 1, 4)).items[0]  # type: ignore[union-attr]
    first_id = first.command.arguments[0]  # type: ignore[union-attr,index]
    client.protocol.notify("zi/didShowCompletion", {"id": first_id})

    # The user types the suggestion's first three characters: type-ahead answers the
    # rest without the model, and they take it.
    type_text(client, URI, 2, 1, 4, "ret")
    rest = (await inline(client, URI, 1, 7)).items[0]  # type: ignore[union-attr]
    assert rest.insert_text == "urn a + b"
    rest_id = rest.command.arguments[0]  # type: ignore[union-attr,index]
    client.protocol.notify("zi/didShowCompletion", {"id": rest_id})
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="zi.acceptCompletion", arguments=[rest_id])
    )

    rows = db_rows(
        db_url,
        "select source, outcome, accepted_length from completions "
        f"where id = '{first_id}' and outcome = 'accepted'",
    )
    assert rows == [("model", "accepted", None)]  # accepted in full: typed + the rest
    assert len(scripted_model.requests) == 1
    await client.shutdown_session()  # the history is flushed before `shutdown` is answered
    monkeypatch.setenv("ZI_DATABASE_URL", db_url)
    assert await asyncio.to_thread(main, ["stats", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["shown"], report["accepted"], report["answered_by_typeahead"]) == (1, 1, 1)
    assert report["characters_accepted"] == len("return a + b")
