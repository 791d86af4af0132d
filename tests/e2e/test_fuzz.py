"""Fuzzing: random and mutated LSP messages for a bounded time, then a well-formed request.

The fuzzer (tests/support/lsp_fuzz.py) talks to the real server over stdio. The
seed is printed; set ``ZI_TEST_FUZZ_SEED`` to replay one (the traffic is the same,
its interleaving with the server's answers may differ) and ``ZI_TEST_FUZZ_SECONDS``
to fuzz longer. ``python -m bench.fuzz`` runs the same fuzzer for minutes.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tests.e2e.conftest import server_env
from tests.support.lsp_fuzz import FuzzSession
from tests.support.scripted_model import Reply, ScriptedModel

FUZZ_SECONDS = float(os.environ.get("ZI_TEST_FUZZ_SECONDS", "30"))
SEED = int(os.environ.get("ZI_TEST_FUZZ_SEED", "20260909"))


def test_the_server_still_answers_after_random_and_mutated_messages(
    scripted_model: ScriptedModel, tmp_path: Path
) -> None:
    scripted_model.reply_with(Reply(text="return a + b"))
    workspace = tmp_path / "project"
    workspace.mkdir()
    (workspace / "util.py").write_text("def helper():\n    return 1\n")
    env = server_env(
        ZI_INFERENCE__URL=scripted_model.url,
        ZI_DATABASE_URL=f"sqlite:///{tmp_path / 'history.sqlite3'}",
        ZI_LOG_LEVEL="INFO",
    )
    print(f"fuzz seed {SEED} (ZI_TEST_FUZZ_SEED={SEED} replays it), {FUZZ_SECONDS:g} s")
    session = FuzzSession(env, tmp_path / "server.log", SEED, workspace)
    try:
        session.fuzz(FUZZ_SECONDS)
        suggestion = session.completes((workspace / "after_fuzz.py").as_uri(), timeout=20)
        session.settle(timeout=15)  # every owed answer, however slow
        report = session.report()
        alive = session.alive()
    finally:
        exit_code = session.close(timeout=20)
    print(json.dumps(report, indent=1))
    assert report["messages_sent"] > 100  # the fuzzing really happened

    failures = {
        "the well-formed request after the fuzzing": (
            None if suggestion == "return a + b" else f"suggested {suggestion!r}"
        ),
        "the server died": not alive,
        "bytes on stdout that are not JSON-RPC": report["stdout_junk"],
        "requests never answered, by kind": report["unanswered_by_kind"],
        "ids answered twice": report["duplicate_answers"],
        "-32603 internal errors": report["internal_errors"],
        "tracebacks sent to the client": report["tracebacks_to_client"],
        "protocol errors on well-formed requests": report["protocol_errors_on_valid_requests"],
        "crashes in the log": sorted(set(session.stderr_crashes()))[:20],
        "exit code after shutdown, exit": None if exit_code == 0 else f"exited {exit_code}",
    }
    failed = {name: found for name, found in failures.items() if found}
    assert not failed, json.dumps(failed, indent=1)


def test_bad_params_the_fuzzer_found_are_refused_cleanly(
    scripted_model: ScriptedModel, tmp_path: Path
) -> None:
    """Each was a crash or lost history before: now a -32602, a log line, or nothing."""
    scripted_model.reply_with(Reply(text="return a + b"))
    workspace = tmp_path / "project"
    workspace.mkdir()
    env = server_env(
        ZI_INFERENCE__URL=scripted_model.url,
        ZI_DATABASE_URL=f"sqlite:///{tmp_path / 'history.sqlite3'}",
        ZI_LOG_LEVEL="INFO",
    )
    session = FuzzSession(env, tmp_path / "server.log", 0, workspace)
    try:
        uri = (workspace / "calc.py").as_uri()
        item = {"uri": uri, "languageId": "python", "version": 1, "text": "x = 1\n"}
        session.notify("textDocument/didOpen", {"textDocument": item})
        # zi/explain with a null line: was int(None), a -32603.
        bad_range = {"start": {"line": None, "character": 0}, "end": {"line": 0}}
        answer = session.request("zi/explain", {"textDocument": {"uri": uri}, "range": bad_range})
        # An action's data without its lines: was data["start"], a -32603.
        changed = {"zi": "improve", "uri": uri, "version": 1}
        resolved = session.request("codeAction/resolve", {"title": "Improve", "data": changed})
        # A length past SQLite's integers and half a UTF-16 pair as the id: were history
        # events the database refused (and dropped).
        suggestion = session.completes((workspace / "after.py").as_uri())
        shown = session.gen.completion_ids[-1]
        session.notify("zi/didPartiallyAcceptCompletion", {"id": shown, "acceptedLength": 2**64})
        session.notify("zi/didShowCompletion", {"id": "\ud800"})
        # A NUL in a file URI: ruff refused the path ("embedded null byte"), no diagnostics.
        nul = "file:///tmp/a\u0000b.py"
        opened = {"uri": nul, "languageId": "python", "version": 1, "text": "x=\n"}
        session.notify("textDocument/didOpen", {"textDocument": opened})
        session.notify("textDocument/didSave", {"textDocument": {"uri": nul}})
        findings = _pulled_diagnostics(session, nul)
        # A number as the languageId: refused by the strict converter, logged (a notification).
        numbered = {"uri": (workspace / "n.py").as_uri(), "languageId": 5, "version": 1, "text": ""}
        session.notify("textDocument/didOpen", {"textDocument": numbered})
        # Half a UTF-16 pair, escaped in the JSON: the prompt, the history and job ids
        # could not encode it (-32603, or the model request failed).
        half = (workspace / "half.py").as_uri()
        text = "s = '\ud800'\ndef add(a, b):\n    \n"
        item = {"uri": half, "languageId": "python", "version": 1, "text": text}
        session.notify("textDocument/didOpen", {"textDocument": item})
        position = {"line": 2, "character": 4}
        params = {
            "textDocument": {"uri": half},
            "position": position,
            "context": {"triggerKind": 1},
        }
        with_half = session.request("textDocument/inlineCompletion", params)
        explained = session.request(
            "zi/explain",
            {"textDocument": {"uri": half}, "range": {"start": position, "end": position}},
        )
    finally:
        session.close(timeout=20)
    assert answer is not None and answer["error"]["code"] == -32602, answer
    assert resolved is not None and resolved["error"]["code"] == -32602, resolved
    assert with_half is not None
    assert with_half["result"]["items"][0]["insertText"] == "return a + b", with_half
    assert explained is not None and "result" in explained, explained
    assert suggestion == "return a + b"
    log = session.stderr_path.read_text(errors="replace")
    assert "embedded null byte" not in log and "refused and dropped" not in log
    assert session.stderr_crashes() == []
    assert any("syntax error" in f for f in findings), findings


def _pulled_diagnostics(session: FuzzSession, uri: str) -> list[str]:
    """The messages of `uri`'s diagnostics once the checks have run (the fuzzer's client
    pulls), or [] after 20 s."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        answer = session.request("textDocument/diagnostic", {"textDocument": {"uri": uri}})
        items = ((answer or {}).get("result") or {}).get("items") or []
        if items:
            return [str(item.get("message")) for item in items]
        time.sleep(0.2)
    return []
