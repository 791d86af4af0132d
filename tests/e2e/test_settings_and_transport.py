"""Client settings, transports, and the stdout contract."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

from lsprotocol import types

from tests.e2e.conftest import StartServer, inline, open_document, server_env, texts
from tests.support.scripted_model import STARCODER_FIM_VOCAB, Reply, ScriptedModel
from tests.support.waits import settings_applied

URI = "file:///work/project/calc.py"
BODY = "def add(a, b):\n    \n"


def frame(message: dict[str, object]) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def read_frames(data: bytes) -> list[dict[str, object]]:
    """Parse a byte stream that must consist only of framed JSON-RPC messages."""
    messages = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, f"junk on stdout: {data[:200]!r}"
        headers = dict(line.split(": ", 1) for line in head.decode("ascii").split("\r\n") if line)
        length = int(headers["Content-Length"])
        messages.append(json.loads(rest[:length]))
        data = rest[length:]
    return messages


def read_frames_complete(data: bytes) -> list[dict[str, object]]:
    """The complete frames at the start of `data` (a partial last one is left out)."""
    messages = []
    while b"\r\n\r\n" in data:
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        if len(rest) < length:
            break
        messages.append(json.loads(rest[:length]))
        data = rest[length:]
    return messages


async def test_initialization_options_override_the_environment(
    start_server: StartServer, scripted_model: ScriptedModel
) -> None:
    client = await start_server(initialization_options={"zi": {"completion": {"enabled": False}}})
    open_document(client, URI, BODY)
    assert texts(await inline(client, URI, 1, 4)) == []
    assert scripted_model.requests == []


async def test_workspace_configuration_overrides_and_bad_values_are_reported(
    start_server: StartServer, scripted_model: ScriptedModel
) -> None:
    scripted_model.reply_with(Reply(text="return a + b"))
    client = await start_server(
        configuration={
            "inference": {"temperature": 0.0},
            "completion": {"max_tokens_multi_line": 40},
        }
    )
    # The server asks for workspace/configuration after initialized.
    await settings_applied(client, after=0)
    open_document(client, URI, BODY)
    assert texts(await inline(client, URI, 1, 4)) == ["return a + b"]
    assert scripted_model.requests[-1]["max_tokens"] == 40
    assert scripted_model.requests[-1]["temperature"] == 0.0

    from lsprotocol import types

    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"zi": {"inference": {"fim_template": "nope"}}})
    )
    await asyncio.sleep(0.3)
    shown = "\n".join(m.message for m in client.messages)
    assert "zi.inference.fim_template" in shown
    # The previous settings stay in force.
    open_document(client, "file:///work/project/b.py", BODY)
    assert texts(await inline(client, "file:///work/project/b.py", 1, 4)) == ["return a + b"]


async def test_fim_template_is_detected_from_the_served_tokenizer(
    start_server: StartServer,
) -> None:
    with ScriptedModel(model_name="star", vocab=set(STARCODER_FIM_VOCAB)) as model:
        model.reply_with(Reply(text="return a + b"))
        client = await start_server(ZI_INFERENCE__URL=model.url)
        open_document(client, URI, BODY)
        assert texts(await inline(client, URI, 1, 4)) == ["return a + b"]
        prompt = model.requests[-1]["prompt"]
        assert prompt.startswith("<fim_prefix>") and prompt.endswith("<fim_middle>")
        assert model.requests[-1]["model"] == "star"


async def test_a_model_without_fim_sentinels_is_a_clear_error(start_server: StartServer) -> None:
    with ScriptedModel(model_name="chatty-instruct", vocab=set()) as model:
        client = await start_server(ZI_INFERENCE__URL=model.url)
        open_document(client, URI, BODY)
        assert texts(await inline(client, URI, 1, 4)) == []
        await asyncio.sleep(0.2)
        shown = [m.message for m in client.messages]
        assert any("chatty-instruct" in m and "fill-in-the-middle" in m for m in shown)
        assert model.requests == []


def test_stdout_carries_only_json_rpc(scripted_model: ScriptedModel, tmp_path: Path) -> None:
    scripted_model.reply_with(Reply(text="return a + b"))
    messages = [
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {"processId": None, "rootUri": None, "capabilities": {}},
        },
        {"jsonrpc": "2.0", "method": "initialized", "params": {}},
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didOpen",
            "params": {
                "textDocument": {"uri": URI, "languageId": "python", "version": 1, "text": BODY}
            },
        },
        {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "textDocument/inlineCompletion",
            "params": {
                "textDocument": {"uri": URI},
                "position": {"line": 1, "character": 4},
                "context": {"triggerKind": 1},
            },
        },
        {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "textDocument/inlineCompletion",
            "params": {
                "textDocument": {"uri": "file:///missing.py"},
                "position": {"line": 0, "character": 0},
                "context": {"triggerKind": 1},
            },
        },
        {"jsonrpc": "2.0", "id": 4, "method": "no/such/method", "params": {}},
    ]
    env = server_env(
        ZI_INFERENCE__URL=scripted_model.url,
        ZI_LOG_LEVEL="DEBUG",
        ZI_DATABASE_URL=f"sqlite:///{tmp_path / 'h.sqlite3'}",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdin is not None
    for message in messages:
        proc.stdin.write(frame(message))
    proc.stdin.write(b"Content-Length: 5\r\n\r\n{bad}")  # malformed JSON must not kill it
    proc.stdin.flush()
    assert proc.stdout is not None
    raw = b""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # every request answered before we shut down
        raw += proc.stdout.read1(65536)
        if {1, 2, 3, 4} <= {m.get("id") for m in read_frames_complete(raw)}:
            break
    proc.stdin.write(frame({"jsonrpc": "2.0", "id": 9, "method": "shutdown"}))
    proc.stdin.flush()
    while 9 not in {m.get("id") for m in read_frames_complete(raw)}:  # as clients do
        raw += proc.stdout.read1(65536)
    proc.stdin.write(frame({"jsonrpc": "2.0", "method": "exit"}))
    proc.stdin.flush()
    rest, stderr = proc.communicate(timeout=20)
    stdout = raw + rest
    assert proc.returncode == 0

    replies = {m.get("id"): m for m in read_frames(stdout) if "id" in m}
    assert replies[2]["result"]["items"][0]["insertText"] == "return a + b"  # type: ignore[index]
    assert replies[3]["result"] == {"items": []}
    assert replies[4]["error"]["code"] == -32601  # type: ignore[index]
    assert 9 in replies
    assert b"DEBUG" in stderr  # the log went to stderr, not stdout


def test_complete_command_runs_the_whole_pipeline(
    scripted_model: ScriptedModel, tmp_path: Path
) -> None:
    scripted_model.reply_with(Reply(text="return a + b\n"))
    source = tmp_path / "calc.py"
    source.write_text(BODY)
    env = server_env(
        ZI_INFERENCE__URL=scripted_model.url, ZI_DATABASE_URL=f"sqlite:///{tmp_path / 'h.sqlite3'}"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "server", "complete", f"{source}:2:5"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "return a + b\n"

    down = server_env(
        ZI_INFERENCE__URL="http://127.0.0.1:9/v1",
        ZI_DATABASE_URL=f"sqlite:///{tmp_path / 'h.sqlite3'}",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "server", "complete", f"{source}:2:5"],
        capture_output=True,
        text=True,
        timeout=60,
        env=down,
    )
    assert proc.returncode == 1
    assert "cannot connect" in proc.stderr


async def test_clearing_the_client_settings_puts_the_defaults_back(
    start_server: StartServer, scripted_model: ScriptedModel
) -> None:
    scripted_model.reply_with(Reply(text="return a + b"))
    client = await start_server()
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"zi": {"completion": {"enabled": False}}})
    )
    uri = "file:///work/project/cleared.py"
    open_document(client, uri, "def add(a, b):\n    \n")
    await asyncio.sleep(0.5)
    off = await inline(client, uri, 1, 4)
    assert off is None or not off.items

    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"zi": {}})
    )
    await asyncio.sleep(0.5)
    result = await inline(client, uri, 1, 4)
    assert result is not None and result.items  # completions are on again
