"""A history database the server cannot reach: the user is told once, and completions go on.

The real server over stdio, its history on a PostgreSQL address where nothing
listens (connections refused, as when the team's database is down).
"""

from __future__ import annotations

import asyncio
import socket
import time

from pytest_lsp import LanguageClient

from tests.e2e.conftest import StartServer, inline, open_document, texts
from tests.support.scripted_model import Reply, ScriptedModel
from tests.support.waits import PATIENCE_S

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
