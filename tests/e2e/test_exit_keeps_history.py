"""A client that sends `shutdown` and closes the pipe at once loses no history.

Neovim 0.11's `:qa` does exactly that: it does not wait for the `shutdown` answer.
The raw pipe is driven by hand here, because a client library waits politely.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import pytest

from tests.e2e.conftest import server_env
from tests.e2e.test_inline_completion import db_rows
from tests.support.scripted_model import Reply, ScriptedModel

URI = "file:///work/project/calc.py"


def _send(pipe: IO[bytes], message: dict[str, Any]) -> None:
    body = json.dumps({"jsonrpc": "2.0", **message}).encode()
    pipe.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    pipe.flush()


def _read(pipe: IO[bytes]) -> dict[str, Any]:
    length = 0
    while (line := pipe.readline().strip()) != b"":
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    message: dict[str, Any] = json.loads(pipe.read(length))
    return message


def _answer(pipe: IO[bytes], request_id: int) -> dict[str, Any]:
    while True:  # skip notifications and the server's own requests
        message = _read(pipe)
        if message.get("id") == request_id and "method" not in message:
            return message


@pytest.mark.parametrize("fast_start", ["true", "false"])
def test_history_survives_a_client_that_quits_without_waiting(
    scripted_model: ScriptedModel, db_url: str, tmp_path: Path, fast_start: str
) -> None:
    scripted_model.reply_with(Reply(text="return a + b"))
    env = server_env(
        ZI_INFERENCE__URL=scripted_model.url,
        ZI_DATABASE_URL=db_url,
        ZI_FAST_START=fast_start,
        ZI_DIAGNOSTICS__REVIEW="false",
    )
    with (tmp_path / "server.log").open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "server", "serve"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
        )
        assert server.stdin is not None and server.stdout is not None
        _send(server.stdin, {"id": 1, "method": "initialize", "params": {"capabilities": {}}})
        _answer(server.stdout, 1)
        _send(server.stdin, {"method": "initialized", "params": {}})
        text = "def add(a, b):\n    \n"
        item = {"uri": URI, "languageId": "python", "version": 1, "text": text}
        _send(server.stdin, {"method": "textDocument/didOpen", "params": {"textDocument": item}})
        position = {"line": 1, "character": 4}
        params = {
            "textDocument": {"uri": URI},
            "position": position,
            "context": {"triggerKind": 1},
        }
        _send(server.stdin, {"id": 2, "method": "textDocument/inlineCompletion", "params": params})
        items = _answer(server.stdout, 2)["result"]["items"]
        completion_id = items[0]["command"]["arguments"][0]
        accept = {"command": "zi.acceptCompletion", "arguments": [completion_id]}
        _send(server.stdin, {"method": "zi/didShowCompletion", "params": {"id": completion_id}})
        _send(server.stdin, {"id": 3, "method": "workspace/executeCommand", "params": accept})
        _send(server.stdin, {"id": 4, "method": "shutdown", "params": None})
        server.stdin.close()  # no wait for the answers, no `exit`
        began = time.monotonic()
        server.wait(timeout=20)

    assert time.monotonic() - began < 10
    rows = db_rows(
        db_url, f"select outcome from completions where id = '{completion_id}'", timeout=2
    )
    assert rows == [("accepted",)], (tmp_path / "server.log").read_text()[-3000:]
