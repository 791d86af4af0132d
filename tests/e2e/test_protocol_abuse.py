# ruff: noqa: E501 (the table of cases reads best one case a line)
"""Malformed and hostile input over stdio: each gets a JSON-RPC error when it had an id,
a log line otherwise, and the server goes on serving the next well-formed request.

One server serves every case (a case that broke it would break the ones after it,
and the probe after each case would fail first).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.e2e.conftest import server_env
from tests.support.raw_lsp import RawServer, frame
from tests.support.scripted_model import Reply, ScriptedModel

URI = "file:///work/project/calc.py"
PARAMS = {"textDocument": {"uri": URI}, "position": {"line": 1, "character": 4}}
INLINE = {**PARAMS, "context": {"triggerKind": 1}}


def request(msg_id: object, method: str, params: object) -> dict[str, object]:
    return {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value


@dataclass(frozen=True)
class Case:
    name: str
    data: bytes
    reply: tuple[object, int] | None  # (id, error code), or None: no reply, a log line
    logged: str = ""  # what the log says about it


def framed(message: object) -> bytes:
    return frame(message)


def raw(body: bytes, headers: bytes | None = None) -> bytes:
    return (headers if headers is not None else b"Content-Length: %d\r\n\r\n" % len(body)) + body


CASES = [
    # Not JSON
    Case("truncated JSON with an id", raw(b'{"jsonrpc":"2.0","id":101,"method":"textDocument/hover",'), (101, -32700)),
    Case("garbled JSON without an id", raw(b"{bad}"), None, "malformed JSON"),
    Case("invalid UTF-8", raw(b'{"jsonrpc":"2.0","id":102,"method":"x","params":{"a":"\xff\xfe"}}'), (102, -32700)),
    Case("empty body", raw(b""), None, "malformed JSON"),
    Case("a string id survives a parse error", raw(b'{"jsonrpc":"2.0","id":"s-103","method":"a" "b"}'), ("s-103", -32700)),
    Case("a nested id is not taken for the message's", raw(b'{"jsonrpc":"2.0","params":{"id":104},'), None, "malformed JSON"),
    # Not a JSON-RPC object
    Case("a JSON array (batch)", framed([request(105, "shutdown", None)]), None, "batches"),
    Case("a JSON number", framed(42), None, "not int"),
    Case("a JSON string", framed("initialize"), None, "not str"),
    Case("JSON null", framed(None), None, "not null"),
    Case("no jsonrpc member", framed({"id": 106, "method": "shutdown"}), (106, -32600)),
    Case("jsonrpc 1.0", framed({"jsonrpc": "1.0", "id": 107, "method": "shutdown"}), (107, -32600)),
    Case("an object as id (and no shutdown happens)", framed({"jsonrpc": "2.0", "id": {"x": 1}, "method": "shutdown"}), None, "bad message id"),
    Case("a boolean id", framed({"jsonrpc": "2.0", "id": True, "method": "shutdown"}), None, "bad message id"),
    Case("a float id", framed({"jsonrpc": "2.0", "id": 1.5, "method": "shutdown"}), None, "bad message id"),
    Case("a numeric method", framed({"jsonrpc": "2.0", "id": 108, "method": 5}), (108, -32600)),
    Case("neither method nor result", framed({"jsonrpc": "2.0", "id": 109}), (109, -32600)),
    Case("a response to nothing we asked", framed({"jsonrpc": "2.0", "id": "nobody", "result": None}), None, "unknown message id"),
    # Wrong params
    Case("params a number", framed(request(110, "textDocument/inlineCompletion", 5)), (110, -32602)),
    Case("params missing", framed({"jsonrpc": "2.0", "id": 111, "method": "textDocument/inlineCompletion"}), (111, -32602)),
    Case("a position line as a string", framed(request(112, "textDocument/inlineCompletion", {**INLINE, "position": {"line": "1", "character": 4}})), (112, -32602)),
    Case("a negative position", framed(request(113, "textDocument/completion", {**PARAMS, "position": {"line": -1, "character": 0}})), (113, -32602)),
    Case("a position line as a float", framed(request(125, "textDocument/completion", {**PARAMS, "position": {"line": 1.0, "character": 0}})), (125, -32602)),
    Case("a boolean version", framed({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {"uri": "file:///b.py", "languageId": "python", "version": True, "text": ""}}}), None, "invalid params"),
    Case("a position past 2**31", framed(request(114, "textDocument/completion", {**PARAMS, "position": {"line": 2**40, "character": 0}})), (114, -32602)),
    Case("a uri as a number", framed(request(115, "textDocument/codeAction", {"textDocument": {"uri": 7}, "range": {"start": PARAMS["position"], "end": PARAMS["position"]}, "context": {"diagnostics": []}})), (115, -32602)),
    Case("a range missing its end", framed(request(116, "textDocument/codeAction", {"textDocument": {"uri": URI}, "range": {"start": PARAMS["position"]}, "context": {"diagnostics": []}})), (116, -32602)),
    Case("an executeCommand without a command", framed(request(117, "workspace/executeCommand", {"arguments": []})), (117, -32602)),
    Case("a didChange with a bad change", framed({"jsonrpc": "2.0", "method": "textDocument/didChange", "params": {"textDocument": {"uri": URI, "version": 2}, "contentChanges": [{"range": 5, "text": 1}]}}), None, "invalid params"),
    Case("a cancel with an object id", framed({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": {}}}), None, "invalid params"),
    Case("an id on a notification method", framed(request(126, "textDocument/didSave", {"textDocument": {"uri": URI}})), (126, -32600)),
    Case("a numeric languageId", framed({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {"uri": "file:///c.py", "languageId": 5, "version": 1, "text": ""}}}), None, "invalid params"),
    # Nesting
    Case("params nested 100 deep", framed(request(118, "workspace/executeCommand", {"command": "x", "arguments": [nested(100)]})), (118, -32600)),
    Case("100,000 open brackets", raw(b'{"jsonrpc":"2.0","id":119,"params":' + b"[" * 100_000), (119, -32600)),
    # Unknown methods
    Case("an unknown request", framed(request(120, "zi/noSuchThing", {})), (120, -32601)),
    Case("an unknown $/ request", framed(request(121, "$/noSuchThing", None)), (121, -32601)),
    Case("an unknown $/ notification is ignored", framed({"jsonrpc": "2.0", "method": "$/noSuchThing"}), None, "unknown method '$/noSuchThing'"),
    # Framing
    Case("no Content-Length", raw(json.dumps(request(122, "shutdown", None)).encode(), b"Content-Type: application/json\r\n\r\n"), None, "without a Content-Length"),
    Case("a Content-Length that is not a number", raw(b"{}", b"Content-Length: two\r\n\r\n") + b"{}", None, "bad Content-Length"),
    Case("a negative Content-Length", raw(b"{}", b"Content-Length: -2\r\n\r\n") + b"{}", None, "bad Content-Length"),
    Case("two different Content-Lengths", raw(b"{}", b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n") + b"{}", None, "conflicting"),
    Case("a lower-case header works", raw(json.dumps(request(123, "zi/noSuchThing", {})).encode(), b"content-length: %d\r\n\r\n" % len(json.dumps(request(123, "zi/noSuchThing", {})))), (123, -32601)),
    Case("100 KB without a header end", b"x" * 100_000 + b"\r\n\r\n", None, "without a message header skipped"),
    Case("a body over the 64 MiB cap", raw(b'{"jsonrpc":"2.0","id":124,"method":"x","params":{"p":"' + b"a" * (65 << 20) + b'"}}'), (124, -32600)),
]  # fmt: skip


@pytest.fixture(scope="module")
def model() -> Iterator[ScriptedModel]:
    with ScriptedModel() as scripted:
        scripted.reply_with(Reply(text="return a + b"))
        yield scripted


@pytest.fixture(scope="module")
def server(model: ScriptedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RawServer]:
    tmp = tmp_path_factory.mktemp("abuse")
    env = server_env(
        ZI_INFERENCE__URL=model.url,
        ZI_DATABASE_URL=f"sqlite:///{tmp / 'h.sqlite3'}",
        ZI_COMPLETION__DEBOUNCE_MS="0",
    )
    raw_server = RawServer(env, tmp / "server.log")
    raw_server.initialize()
    document = {"uri": URI, "languageId": "python", "version": 1, "text": "def add(a, b):\n    \n"}
    raw_server.send_json(
        {"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": document}}
    )
    yield raw_server
    raw_server.close()


_probes = iter(range(10_000, 20_000))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_answered_or_logged_and_serving_goes_on(server: RawServer, case: Case) -> None:
    log_before = len(server.log_text())
    server.send(case.data)
    probe = next(_probes)
    answer = server.request(probe, "textDocument/inlineCompletion", INLINE)

    assert answer["result"]["items"][0]["insertText"] == "return a + b"
    if case.reply is not None:
        msg_id, code = case.reply
        assert server.reply(msg_id, timeout=5)["error"]["code"] == code
    log = server.log_text()[log_before:]
    assert case.logged in log
    assert "Traceback" not in log
    assert server.stdout_problems == []
    assert not [r for r in server.replies() if r.get("error", {}).get("code") == -32603]
