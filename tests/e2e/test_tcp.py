"""`zi-coder serve --tcp`: loopback only, a token, no HTTP, one client at a time."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import stat
import struct
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.e2e.conftest import server_env
from tests.support.raw_lsp import INITIALIZE, frame
from tests.support.scripted_model import Reply, ScriptedModel

TOKEN = "s3cret-test-token"
URI = "file:///work/project/calc.py"


class TcpServer:
    def __init__(self, proc: asyncio.subprocess.Process, log: Path, port: int) -> None:
        self.proc, self.log, self.port = proc, log, port

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


async def start(env: dict[str, str], log: Path) -> TcpServer:
    out = log.open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server", "serve", "--tcp", "127.0.0.1:0", env=env, stderr=out
    )
    out.close()
    server = TcpServer(proc, log, 0)
    for _ in range(600):  # the server builds itself (a few seconds), then listens
        match = re.search(r"LSP over TCP at 127\.0\.0\.1:(\d+)", server.log_text())
        if match:
            server.port = int(match.group(1))
            return server
        assert proc.returncode is None, server.log_text()
        await asyncio.sleep(0.1)
    raise AssertionError(f"the server never listened:\n{server.log_text()}")


@pytest_asyncio.fixture
async def tcp_server(scripted_model: ScriptedModel, tmp_path: Path) -> AsyncIterator[TcpServer]:
    env = server_env(
        ZI_INFERENCE__URL=scripted_model.url,
        ZI_DATABASE_URL=f"sqlite:///{tmp_path / 'h.sqlite3'}",
        ZI_LSP_TOKEN=TOKEN,
    )
    server = await start(env, tmp_path / "server.log")
    yield server
    if server.proc.returncode is None:
        server.proc.kill()
        await server.proc.wait()


async def read_message(reader: asyncio.StreamReader) -> dict[str, Any]:
    header = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 20)
    length = int(re.search(rb"Content-Length: (\d+)", header).group(1))  # type: ignore[union-attr]
    message: dict[str, Any] = json.loads(await reader.readexactly(length))
    return message


async def answer_to(reader: asyncio.StreamReader, msg_id: Any) -> dict[str, Any]:
    while True:
        message = await read_message(reader)
        if message.get("id") == msg_id and "method" not in message:
            return message


def initialize(token: str | None) -> bytes:
    params: dict[str, Any] = dict(INITIALIZE["params"])  # type: ignore[arg-type]
    if token is not None:
        params["initializationOptions"] = {"token": token, "completion": {"debounce_ms": 0}}
    return frame({**INITIALIZE, "params": params})


async def closed(reader: asyncio.StreamReader) -> bool:
    """Whether the server closed the connection (without sending anything more). A
    close with our bytes still unread arrives as a reset: closed all the same."""
    try:
        return await asyncio.wait_for(reader.read(), 10) == b""
    except ConnectionResetError:
        return True


async def test_a_session_with_the_token_completes_and_ends_the_process_with_its_code(
    tcp_server: TcpServer, scripted_model: ScriptedModel
) -> None:
    scripted_model.reply_with(Reply(text="return a + b"))
    reader, writer = await tcp_server.connect()
    writer.write(initialize(TOKEN))
    answer = await answer_to(reader, "init")
    assert "inlineCompletionProvider" in answer["result"]["capabilities"]
    writer.write(frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
    document = {"uri": URI, "languageId": "python", "version": 1, "text": "def add(a, b):\n    \n"}
    writer.write(
        frame(
            {
                "jsonrpc": "2.0",
                "method": "textDocument/didOpen",
                "params": {"textDocument": document},
            }
        )
    )
    position = {"line": 1, "character": 4}
    params = {"textDocument": {"uri": URI}, "position": position, "context": {"triggerKind": 1}}
    writer.write(
        frame(
            {"jsonrpc": "2.0", "id": 2, "method": "textDocument/inlineCompletion", "params": params}
        )
    )
    completion = await answer_to(reader, 2)
    assert completion["result"]["items"][0]["insertText"] == "return a + b"
    # The token is the transport's: it never reaches the settings (no "invalid settings").
    assert "invalid settings" not in tcp_server.log_text()

    writer.write(frame({"jsonrpc": "2.0", "id": 3, "method": "shutdown"}))
    await answer_to(reader, 3)
    writer.write(frame({"jsonrpc": "2.0", "method": "exit"}))
    assert await asyncio.wait_for(tcp_server.proc.wait(), 30) == 0


BAD_TOKENS = [None, "wrong-token", "", TOKEN[:-1], TOKEN + " ", "\ud800", 12345]
HTTP_REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"POST /rpc HTTP/1.1\r\nHost: evil.example\r\nContent-Length: 2\r\n\r\n{}",
    b"OPTIONS * HTTP/1.1\r\nOrigin: http://evil.example\r\n\r\n",
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
]


async def test_a_missing_or_wrong_token_is_refused_and_the_server_waits_for_the_next(
    tcp_server: TcpServer,
) -> None:
    # One server for every case: a refused connection is no session.
    for token in BAD_TOKENS:
        reader, writer = await tcp_server.connect()
        writer.write(initialize(token))
        refusal = await read_message(reader)
        assert refusal["id"] == "init", token
        assert refusal["error"]["code"] == -32001
        assert "token" in refusal["error"]["message"]
        assert await closed(reader)
    reader, writer = await tcp_server.connect()
    writer.write(initialize(TOKEN))
    assert "result" in await answer_to(reader, "init")
    assert tcp_server.proc.returncode is None


async def test_http_looking_first_bytes_get_a_400_and_are_closed(tcp_server: TcpServer) -> None:
    for request in HTTP_REQUESTS:
        reader, writer = await tcp_server.connect()
        writer.write(request)
        reply = await asyncio.wait_for(reader.read(), 10)
        assert reply.startswith(b"HTTP/1.1 400 Bad Request"), request
        assert b"jsonrpc" not in reply
    assert tcp_server.log_text().count("refused an HTTP request") == len(HTTP_REQUESTS)
    reader, writer = await tcp_server.connect()
    writer.write(initialize(TOKEN))
    assert "result" in await answer_to(reader, "init")


async def test_a_second_client_is_turned_away_while_a_session_runs(tcp_server: TcpServer) -> None:
    reader, writer = await tcp_server.connect()
    writer.write(initialize(TOKEN))
    await answer_to(reader, "init")

    other_reader, other_writer = await tcp_server.connect()
    other_writer.write(initialize(TOKEN))
    assert await closed(other_reader)
    assert "a session is already running" in tcp_server.log_text()

    # The first session is untouched.
    writer.write(frame({"jsonrpc": "2.0", "id": 5, "method": "shutdown"}))
    assert (await answer_to(reader, 5))["result"] is None


async def test_a_client_that_says_nothing_is_not_a_session(tcp_server: TcpServer) -> None:
    reader, writer = await tcp_server.connect()
    writer.write(b"not an LSP frame at all\r\n\r\n")
    assert await closed(reader)
    # A connection reset half-way through its first message ends that connection only.
    with socket.create_connection(("127.0.0.1", tcp_server.port)) as rude:
        rude.sendall(b"Content-Length: 500\r\n\r\n{")
        rude.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # A connection that stays silent does not hold the one slot either: the right
    # client gets in while it is still open.
    _silent_reader, silent = await tcp_server.connect()
    reader, writer = await tcp_server.connect()
    writer.write(initialize(TOKEN))
    assert "result" in await answer_to(reader, "init")
    silent.close()


async def test_without_a_token_variable_one_is_kept_for_the_user_alone(
    scripted_model: ScriptedModel, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    env = server_env(
        ZI_INFERENCE__URL=scripted_model.url,
        ZI_DATABASE_URL=f"sqlite:///{tmp_path / 'h.sqlite3'}",
        ZI_STATE_DIR=str(state),
    )
    server = await start(env, tmp_path / "server.log")
    try:
        token_file = state / "lsp-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert str(token_file) in server.log_text() and token not in server.log_text()
        reader, writer = await server.connect()
        writer.write(initialize(token))
        assert "result" in await answer_to(reader, "init")
    finally:
        server.proc.kill()
        await server.proc.wait()


@pytest.mark.parametrize("address", ["0.0.0.0:7000", "192.0.2.1:7000", "example.com:7000", "7000x"])
def test_only_a_loopback_address_is_accepted(address: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "server", "serve", "--tcp", address],
        capture_output=True,
        text=True,
        timeout=30,
        env=dict(os.environ),
    )
    assert proc.returncode == 2
    assert "loopback" in proc.stderr
