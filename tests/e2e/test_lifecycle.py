"""The session's lifecycle as the LSP spec has it, and how the process ends.

Before ``initialize``: -32002. A second ``initialize``: refused. After ``shutdown``:
InvalidRequest. ``exit``: code 0 after ``shutdown``, 1 without. The server also ends
when its stdin closes and when the editor's process (``processId``) dies. Stray
output never reaches stdout, and an internal error reaches the client without its
traceback.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import server_env
from tests.support.raw_lsp import INITIALIZE, RawServer
from tests.support.scripted_model import Reply, ScriptedModel

URI = "file:///work/project/calc.py"
INLINE = {
    "textDocument": {"uri": URI},
    "position": {"line": 1, "character": 4},
    "context": {"triggerKind": 1},
}
DOCUMENT = {"uri": URI, "languageId": "python", "version": 1, "text": "def add(a, b):\n    \n"}


@pytest.fixture
def env(scripted_model: ScriptedModel, tmp_path: Path) -> dict[str, str]:
    scripted_model.reply_with(Reply(text="return a + b"))
    return server_env(
        ZI_INFERENCE__URL=scripted_model.url,
        ZI_DATABASE_URL=f"sqlite:///{tmp_path / 'h.sqlite3'}",
        ZI_COMPLETION__DEBOUNCE_MS="0",
    )


@pytest.fixture
def start(env: dict[str, str], tmp_path: Path) -> Iterator[type[RawServer]]:
    started: list[RawServer] = []

    class Started(RawServer):
        def __init__(self, *args: str) -> None:
            super().__init__(env, tmp_path / f"server-{len(started)}.log", *args)
            started.append(self)

    yield Started
    for server in started:
        server.close()


def open_document(server: RawServer) -> None:
    server.send_json(
        {"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": DOCUMENT}}
    )


def test_requests_before_initialize_get_32002_and_exit_then_ends_with_1(
    start: type[RawServer],
) -> None:
    server = start()
    refused = server.request(1, "textDocument/inlineCompletion", INLINE)
    assert refused["error"]["code"] == -32002
    refused = server.request(2, "shutdown")
    assert refused["error"]["code"] == -32002
    open_document(server)  # a notification: dropped, with a log line
    server.send_json({"jsonrpc": "2.0", "method": "exit"})
    assert server.wait_exit() == 1
    assert "not initialized yet" in server.log_text()


def test_a_second_initialize_is_refused_and_the_session_goes_on(start: type[RawServer]) -> None:
    server = start()
    server.initialize()
    again = server.request(2, "initialize", INITIALIZE["params"])
    assert again["error"]["code"] == -32600
    assert "already initialized" in again["error"]["message"]
    open_document(server)
    answer = server.request(3, "textDocument/inlineCompletion", INLINE)
    assert answer["result"]["items"][0]["insertText"] == "return a + b"


def test_after_shutdown_requests_are_invalid_and_exit_ends_with_0(start: type[RawServer]) -> None:
    server = start()
    server.initialize()
    open_document(server)
    assert server.request(2, "shutdown")["result"] is None
    for msg_id, method, params in [
        (3, "textDocument/inlineCompletion", INLINE),
        (4, "shutdown", None),  # a second shutdown too: answered, not left hanging
        (5, "initialize", INITIALIZE["params"]),
    ]:
        assert server.request(msg_id, method, params)["error"]["code"] == -32600
    server.send_json({"jsonrpc": "2.0", "method": "exit"})
    assert server.wait_exit() == 0
    assert server.stdout_problems == []


def test_exit_without_shutdown_ends_with_1(start: type[RawServer]) -> None:
    server = start()
    server.initialize()
    server.send_json({"jsonrpc": "2.0", "method": "exit"})
    assert server.wait_exit() == 1


@pytest.mark.parametrize("shut_down", [True, False], ids=["after-shutdown", "without-shutdown"])
def test_the_server_ends_when_its_stdin_closes(start: type[RawServer], shut_down: bool) -> None:
    server = start()
    server.initialize()
    if shut_down:
        server.request(2, "shutdown")
    assert server.proc.stdin is not None
    server.proc.stdin.close()
    assert server.wait_exit() == (0 if shut_down else 1)


def test_the_server_ends_when_the_editor_process_dies(start: type[RawServer]) -> None:
    editor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        server = start()
        server.initialize({"processId": editor.pid, "rootUri": None, "capabilities": {}})
        open_document(server)
        assert "result" in server.request(2, "textDocument/inlineCompletion", INLINE)
    finally:
        editor.kill()
        editor.wait()
    # Its stdin stays open: only the watchdog can end it (it looks every 2 s).
    assert server.wait_exit(timeout=30) == 1
    assert f"the editor's process {editor.pid} is gone" in server.log_text()


STRAY_OUTPUT = """
import os, sys
import server.lsp.fast_start as fast_start
import server.lsp.features.completion as completion

answer_initialize = fast_start.initialize_result

def noisy_initialize(params):
    print("stray print from the server")
    os.system("echo stray output from a child process")
    return answer_initialize(params)

async def broken_completion(ls, params):
    raise RuntimeError("secret detail of a bug: /home/someone/.ssh/id_rsa")

fast_start.initialize_result = noisy_initialize
completion.completion = broken_completion  # registered under this name at start
from server.cli import main
sys.exit(main(["serve"]))
"""


def test_stray_output_goes_to_the_log_and_an_internal_error_keeps_its_traceback_there(
    env: dict[str, str], tmp_path: Path
) -> None:
    server = StrayServer(env, tmp_path / "server.log")
    try:
        server.initialize()
        open_document(server)
        params = {"textDocument": {"uri": URI}, "position": {"line": 1, "character": 4}}
        failed = server.request(2, "textDocument/completion", params)
        answer = server.request(3, "textDocument/inlineCompletion", INLINE)
    finally:
        server.close()
    assert server.stdout_problems == []
    log = server.log_text()
    assert "stray print from the server" in log
    assert "stray output from a child process" in log

    assert failed["error"]["code"] == -32603
    assert "log" in failed["error"]["message"]
    assert "secret detail" not in str(failed) and "Traceback" not in str(failed)
    assert "data" not in failed["error"]
    assert "secret detail of a bug" in log and "Traceback" in log
    assert answer["result"]["items"][0]["insertText"] == "return a + b"  # still serving


class StrayServer(RawServer):
    """The real server, started by a script that makes it print and crash on purpose."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.script = STRAY_OUTPUT
        super().__init__(env, log)

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-c", self.script]


def test_an_unreadable_answer_to_our_request_is_not_answered_and_unblocks_it(
    start: type[RawServer],
) -> None:
    server = start()
    capabilities = {"workspace": {"configuration": True}}
    server.initialize({"processId": None, "rootUri": None, "capabilities": capabilities})
    asked = server.wait_for_request("workspace/configuration")
    server.send_json({"jsonrpc": "2.0", "id": asked["id"], "error": {"code": "bad", "message": 5}})
    open_document(server)
    answer = server.request(2, "textDocument/inlineCompletion", INLINE)
    assert answer["result"]["items"][0]["insertText"] == "return a + b"
    # No "answer" to the client's answer, and the server stopped waiting for it.
    assert not [m for m in server.replies() if m.get("id") == asked["id"]]
    assert "workspace/configuration failed" in server.log_text()
