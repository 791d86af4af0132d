"""A history database the server cannot reach: the user is told once, and completions go on.

The real server over stdio, its history on a PostgreSQL address where nothing
listens (connections refused, as when the team's database is down), or on a real
PostgreSQL behind a gate that is closed as the server starts and opened later:
what was recorded meanwhile is written then. And a SQLite history locked by
another process while a review runs: the review lands, its rows follow the lock.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import time
from pathlib import Path

import sqlalchemy as sa
from lsprotocol import types
from pytest_lsp import LanguageClient

from server.history.database import create_engine_for
from tests.e2e.conftest import StartServer, inline, open_document, texts
from tests.support.code_actions import MODULE
from tests.support.scripted_model import Reply, ScriptedModel
from tests.support.tcp_gate import behind, gate_for
from tests.support.waits import PATIENCE_S, rows_until

URI = "file:///work/project/calc.py"
PASSWORD = "s3cret-Pa55word"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _history_messages(client: LanguageClient) -> list[str]:
    return [m.message for m in client.log_messages if "history database" in m.message]


async def test_an_unreachable_history_database_is_told_once_and_completions_go_on(
    start_server: StartServer, scripted_model: ScriptedModel
) -> None:
    scripted_model.reply_with(Reply(text="return a + b"))
    url = f"postgresql://zi:{PASSWORD}@127.0.0.1:{_closed_port()}/zi"
    client = await start_server(ZI_DATABASE_URL=url)
    open_document(client, URI, "def add(a, b):\n    \n\ndef sub(a, b):\n    \n")

    assert texts(await inline(client, URI, 1, 4)) == ["return a + b"]
    deadline = time.monotonic() + PATIENCE_S
    while not _history_messages(client):
        assert time.monotonic() < deadline, "the user was never told"
        await asyncio.sleep(0.05)
    assert texts(await inline(client, URI, 4, 4)) == ["return a + b"]

    [message] = _history_messages(client)  # once, however many attempts fail
    assert "unreachable" in message and "127.0.0.1" in message
    assert PASSWORD not in message


def _completion_rows(url: str) -> dict[str, str]:
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table("completions"):
                return {}
            rows = connection.execute(sa.text("SELECT id, outcome FROM completions")).all()
    finally:
        engine.dispose()
    return {row.id: row.outcome for row in rows}


async def test_completions_made_while_postgres_is_down_at_start_are_written_once_it_is_back(
    start_server: StartServer, scripted_model: ScriptedModel, postgres_url: str
) -> None:
    scripted_model.reply_with(Reply(text="return a + b"))
    gate = gate_for(postgres_url)  # closed: the team's database is down as the editor starts
    try:
        client = await start_server(ZI_DATABASE_URL=behind(gate, postgres_url))
        open_document(client, URI, "def add(a, b):\n    \n")
        assert texts(await inline(client, URI, 1, 4)) == ["return a + b"]
        deadline = time.monotonic() + PATIENCE_S
        while not _history_messages(client):
            assert time.monotonic() < deadline, "the user was never told"
            await asyncio.sleep(0.05)
        assert await asyncio.to_thread(_completion_rows, postgres_url) == {}

        gate.open()

        deadline = time.monotonic() + 4 * PATIENCE_S  # the writer's pauses grow to 30 s
        while not any("reachable again" in m for m in _history_messages(client)):
            assert time.monotonic() < deadline, "the history never came back"
            await asyncio.sleep(0.1)
    finally:
        gate.close()
    written = await asyncio.to_thread(_completion_rows, postgres_url)
    assert list(written.values()) == ["generated"]  # the suggestion made during the outage
    unreachable, back = _history_messages(client)
    assert "unreachable" in unreachable and "reachable again" in back


async def test_a_review_lands_while_sqlite_is_locked_and_its_rows_follow_the_lock(
    start_server: StartServer, scripted_model: ScriptedModel, db_url: str, tmp_path: Path
) -> None:
    finding = {"line_start": 9, "line_end": 9, "severity": "warning", "category": "bug"}
    finding |= {"message": "division by zero when `values` is empty", "fix": None}
    scripted_model.chat_reply_with(json.dumps({"findings": [finding]}))
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "stats.py").write_text(MODULE)
    uri = (workspace / "stats.py").as_uri()
    client = await start_server(
        workspace=workspace, capabilities="neovim", ZI_DIAGNOSTICS__DEBOUNCE_MS="0"
    )
    open_document(client, uri, MODULE)
    await rows_until(db_url, "select name from sqlite_master where name = 'jobs'")
    holder = sqlite3.connect(db_url.removeprefix("sqlite:///"), check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        client.text_document_did_save(
            types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
        deadline = time.monotonic() + 4 * PATIENCE_S
        while not [d for d in client.diagnostics.get(uri, []) if d.source == "zi-review"]:
            assert time.monotonic() < deadline, "the review never landed"
            await asyncio.sleep(0.05)
        # Past the writer's busy timeout (10 s), the lock is an outage, told once.
        while not _history_messages(client):
            assert time.monotonic() < deadline, "the user was never told"
            await asyncio.sleep(0.1)
        assert await rows_until(db_url, "select * from jobs", lambda rows: True) == []
    finally:
        holder.rollback()
        holder.close()

    [job] = await rows_until(
        db_url, "select * from jobs", lambda rows: bool(rows) and rows[0]["status"] != "queued"
    )
    assert (job["kind"], job["status"]) == ("review", "finished")
    assert len(await rows_until(db_url, "select * from model_calls")) == 1
    [locked] = _history_messages(client)[:1]
    assert "locked" in locked and "unreachable" in locked
