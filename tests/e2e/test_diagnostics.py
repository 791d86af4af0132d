"""Diagnostics end to end: static checks on open and save, the AI review, push and pull.

The real server over stdio, a scripted chat model answering the review's JSON,
and (for the review tests that take ``runner_env``) both job runners: RQ with a
real Valkey and a real ``zi-coder worker``, and in process.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient, client_capabilities

from server.lsp.convert import offset_at
from tests.e2e.conftest import StartServer, open_document, server_capabilities
from tests.support.scripted_model import Reply, ScriptedModel

MODULE = """\
import os


def mean(values):
    total = 0
    for v in values:
        total += v
    return total / len(values)
"""
RETURN_LINE = 7  # 0-based: "    return total / len(values)"
FAST = {"ZI_DIAGNOSTICS__DEBOUNCE_MS": "0"}


def finding(
    line_start: int,
    line_end: int | None = None,
    *,
    severity: str = "warning",
    category: str = "bug",
    message: str = "division by zero when `values` is empty",
    fix: str | None = None,
) -> dict[str, Any]:
    return {
        "line_start": line_start,
        "line_end": line_end if line_end is not None else line_start,
        "severity": severity,
        "category": category,
        "message": message,
        "fix": fix,
    }


def review_json(*findings: dict[str, Any]) -> str:
    return json.dumps({"findings": list(findings)})


DIVISION_FIX = "    return total / len(values) if values else 0.0\n"


# ------------------------------------------------------------------ harness


class Published:
    """Every publishDiagnostics the client received, in order (pytest-lsp keeps the last)."""

    def __init__(self, client: LanguageClient) -> None:
        self.client = client
        self.all: list[types.PublishDiagnosticsParams] = []

        def record(params: types.PublishDiagnosticsParams) -> None:
            self.all.append(params)
            client.diagnostics[params.uri] = params.diagnostics

        # pytest-lsp registered its own handler (it keeps the last list, not the version).
        client.protocol.fm.features[types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = record

    def last(self, uri: str) -> types.PublishDiagnosticsParams | None:
        mine = [p for p in self.all if p.uri == uri]
        return mine[-1] if mine else None

    async def wait(
        self,
        uri: str,
        predicate: Callable[[list[types.Diagnostic]], bool],
        timeout_s: float = 30.0,
    ) -> types.PublishDiagnosticsParams:
        deadline = time.monotonic() + timeout_s
        while True:
            last = self.last(uri)
            if last is not None and predicate(list(last.diagnostics)):
                return last
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching diagnostics for {uri}; last: {last}")
            await asyncio.sleep(0.02)


def by_source(diagnostics: list[types.Diagnostic], source: str) -> list[types.Diagnostic]:
    return [d for d in diagnostics if d.source == source]


def has_review(diagnostics: list[types.Diagnostic]) -> bool:
    return bool(by_source(diagnostics, "zi-review"))


async def launch(
    start_server: StartServer, workspace: Path, **env: Any
) -> tuple[LanguageClient, Published]:
    client = await start_server(workspace=workspace, capabilities="neovim", **{**FAST, **env})
    return client, Published(client)


def save(client: LanguageClient, uri: str) -> None:
    client.text_document_did_save(
        types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )


def replace_all(client: LanguageClient, uri: str, version: int, text: str) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "stats.py").write_text(MODULE)
    return root


def uri_of(workspace: Path, name: str = "stats.py") -> str:
    return (workspace / name).as_uri()


# ------------------------------------------------------------------ static checks


async def test_a_save_publishes_a_syntax_error_within_one_second(
    start_server: StartServer, workspace: Path, scripted_model: ScriptedModel
) -> None:
    client, published = await launch(start_server, workspace, ZI_DIAGNOSTICS__REVIEW="false")
    uri = uri_of(workspace)
    open_document(client, uri, MODULE)
    await published.wait(uri, lambda ds: by_source(ds, "ruff") != [])  # checked on open

    broken = MODULE.replace("for v in values:", "for v in values")
    replace_all(client, uri, 2, broken)
    began = time.monotonic()
    save(client, uri)
    params = await published.wait(uri, lambda ds: by_source(ds, "tree-sitter") != [], 1.0)
    elapsed = time.monotonic() - began

    assert elapsed < 1.0
    assert params.version == 2
    (error,) = by_source(list(params.diagnostics), "tree-sitter")
    assert error.severity == types.DiagnosticSeverity.Error
    assert error.range.start.line == 5  # the `for` line that lost its colon
    assert scripted_model.chat_requests == []  # review off: no model call


async def test_python_linter_findings_have_source_code_range_and_tags(
    start_server: StartServer, workspace: Path
) -> None:
    client, published = await launch(start_server, workspace, ZI_DIAGNOSTICS__REVIEW="false")
    uri = uri_of(workspace)
    open_document(client, uri, MODULE + "\nprint(undefined_name)\n")
    params = await published.wait(uri, lambda ds: len(by_source(ds, "ruff")) == 2)

    unused, undefined = sorted(by_source(list(params.diagnostics), "ruff"), key=lambda d: d.code)
    assert unused.code == "F401" and "os" in unused.message
    assert unused.range.start == types.Position(line=0, character=7)
    assert unused.severity == types.DiagnosticSeverity.Warning
    assert list(unused.tags or ()) == [types.DiagnosticTag.Unnecessary]
    assert undefined.code == "F821" and undefined.severity == types.DiagnosticSeverity.Error
    assert undefined.range.start.line == 9


async def test_pyflakes_serves_when_ruff_is_not_wanted(
    start_server: StartServer, workspace: Path
) -> None:
    client, published = await launch(
        start_server, workspace, ZI_DIAGNOSTICS__REVIEW="false", ZI_DIAGNOSTICS__LINTER="pyflakes"
    )
    uri = uri_of(workspace)
    open_document(client, uri, MODULE)
    params = await published.wait(uri, lambda ds: by_source(ds, "pyflakes") != [])
    (unused,) = by_source(list(params.diagnostics), "pyflakes")
    assert "'os' imported but unused" in unused.message and unused.range.start.line == 0


async def test_syntax_errors_in_other_languages_and_non_ascii_columns(
    start_server: StartServer, workspace: Path
) -> None:
    client, published = await launch(start_server, workspace, ZI_DIAGNOSTICS__REVIEW="false")
    uri = uri_of(workspace, "app.js")
    text = 'const s = "ñ😀";\nfunction f( {\n  return 1;\n}\n'
    open_document(client, uri, text, language="javascript")
    params = await published.wait(uri, lambda ds: by_source(ds, "tree-sitter") != [])
    errors = by_source(list(params.diagnostics), "tree-sitter")
    assert all(e.severity == types.DiagnosticSeverity.Error for e in errors)
    assert {e.range.start.line for e in errors} <= {1, 2, 3}


@pytest.mark.parametrize(("capabilities", "units"), [("neovim", 12), ("visual-studio-code", 10)])
async def test_columns_are_in_the_clients_position_encoding(
    start_server: StartServer, workspace: Path, capabilities: str, units: int
) -> None:
    client = await start_server(
        workspace=workspace, capabilities=capabilities, ZI_DIAGNOSTICS__REVIEW="false"
    )
    published = Published(client)
    uri = uri_of(workspace, "emoji.py")
    open_document(client, uri, 'x = "😀" +\n')  # Neovim: UTF-8 (😀 is 4); VS Code: UTF-16 (2)
    params = await published.wait(uri, lambda ds: by_source(ds, "tree-sitter") != [])
    (error,) = by_source(list(params.diagnostics), "tree-sitter")
    assert error.range.end == types.Position(line=0, character=units)


async def test_binary_and_odd_text_are_handled_without_a_crash(
    start_server: StartServer,
    workspace: Path,
    scripted_model: ScriptedModel,
    runner_env: dict[str, str],
) -> None:
    scripted_model.chat_reply_with(review_json(finding(2, message="odd import")))
    client, published = await launch(start_server, workspace, **runner_env)
    binary = uri_of(workspace, "blob.py")
    open_document(client, binary, "\x00\x01\x02PK\x03\x04" * 500)
    odd = uri_of(workspace, "odd.py")
    open_document(client, odd, "x = '\udcff\ufffd'\nimport os\n")  # invalid UTF-8 remnants
    await published.wait(odd, lambda ds: by_source(ds, "ruff") != [])
    save(client, binary)
    save(client, odd)

    # Reviewed; the lone surrogate became U+FFFD as the message was read (server.lsp.wire).
    params = await published.wait(odd, has_review)
    (finding_,) = by_source(list(params.diagnostics), "zi-review")
    assert finding_.range.start.line == 1
    assert "x = '\ufffd\ufffd'" in scripted_model.chat_requests[0]["messages"][-1]["content"]
    assert len(scripted_model.chat_requests) == 1  # the binary file is not reviewed
    last = published.last(binary)
    assert last is None or list(last.diagnostics) == []


async def test_a_huge_file_is_not_reviewed_and_says_why(
    start_server: StartServer, workspace: Path, scripted_model: ScriptedModel
) -> None:
    client, published = await launch(start_server, workspace, ZI_DIAGNOSTICS__MAX_FILE_CHARS="2000")
    uri = uri_of(workspace, "big.py")
    text = "".join(f"value_{i} = {i}\n" for i in range(400))
    open_document(client, uri, text)
    save(client, uri)
    params = await published.wait(uri, lambda ds: by_source(ds, "zi") != [])
    (notice,) = by_source(list(params.diagnostics), "zi")
    assert notice.severity == types.DiagnosticSeverity.Information
    assert "did not review" in notice.message and "max_file_chars" in notice.message
    await asyncio.sleep(0.5)
    assert scripted_model.chat_requests == []


# ------------------------------------------------------------------ the AI review


async def test_review_findings_arrive_as_zi_review_diagnostics_on_the_right_lines(
    start_server: StartServer,
    workspace: Path,
    scripted_model: ScriptedModel,
    runner_env: dict[str, str],
) -> None:
    scripted_model.chat_reply_with(
        review_json(
            finding(8, severity="error", fix=DIVISION_FIX),
            finding(4, 7, severity="information", category="style", message="use sum()"),
        )
    )
    client, published = await launch(start_server, workspace, **runner_env)
    uri = uri_of(workspace)
    open_document(client, uri, MODULE)
    save(client, uri)
    params = await published.wait(uri, has_review)

    assert params.version == 1
    review = sorted(by_source(list(params.diagnostics), "zi-review"), key=lambda d: d.range.start)
    style, bug = review
    assert (bug.range.start.line, bug.range.end.line) == (RETURN_LINE, RETURN_LINE)
    assert bug.range.start.character == 4  # from the first non-blank character
    assert bug.severity == types.DiagnosticSeverity.Error and bug.code == "bug"
    assert bug.data == {
        "fix": DIVISION_FIX,
        "category": "bug",
        "replaces": "    return total / len(values)\n",
    }
    assert (style.range.start.line, style.range.end.line) == (3, 6)
    assert style.severity == types.DiagnosticSeverity.Information and "fix" not in style.data
    assert by_source(list(params.diagnostics), "ruff") != []  # merged, not replaced

    (request,) = scripted_model.chat_requests
    schema = request["response_format"]["json_schema"]["schema"]
    assert request["response_format"]["type"] == "json_schema"
    assert schema["properties"]["findings"]["items"]["required"]
    assert "    return total / len(values)" in json.dumps(request["messages"])


async def test_saving_unchanged_content_again_makes_no_model_call(
    start_server: StartServer,
    workspace: Path,
    scripted_model: ScriptedModel,
    runner_env: dict[str, str],
) -> None:
    scripted_model.chat_reply_with(review_json(finding(8)))
    client, published = await launch(start_server, workspace, **runner_env)
    uri = uri_of(workspace)
    open_document(client, uri, MODULE)
    save(client, uri)
    await published.wait(uri, has_review)
    before = len(published.all)

    save(client, uri)
    await published.wait(uri, lambda ds: len(published.all) > before and has_review(ds))
    await asyncio.sleep(0.5)  # the review's path (the cache) has run by now
    assert has_review(list(published.all[-1].diagnostics))  # republished ...
    assert len(scripted_model.chat_requests) == 1  # ... with no model call

    # Back to content reviewed before, through an edit: the cache answers.
    replace_all(client, uri, 2, MODULE + "\n")
    save(client, uri)
    scripted_model.wait_for_chat_requests(2, timeout=20)
    replace_all(client, uri, 3, MODULE)
    save(client, uri)
    await published.wait(uri, lambda ds: has_review(ds) and published.last(uri).version == 3)  # type: ignore[union-attr]
    await asyncio.sleep(0.5)
    assert len(scripted_model.chat_requests) == 2


@pytest.mark.parametrize("runner_env", ["rq"], indirect=True)  # the cache is shared in Redis
async def test_a_shared_cache_spares_another_editor_the_model_call(
    start_server: StartServer,
    workspace: Path,
    scripted_model: ScriptedModel,
    runner_env: dict[str, str],
) -> None:
    scripted_model.chat_reply_with(review_json(finding(8)))
    uri = uri_of(workspace)
    for _editor in range(2):
        client, published = await launch(start_server, workspace, **runner_env)
        open_document(client, uri, MODULE)
        save(client, uri)
        await published.wait(uri, has_review)
    assert len(scripted_model.chat_requests) == 1


async def test_a_quick_fix_built_from_a_finding_applies_its_fix_without_a_model_call(
    start_server: StartServer,
    workspace: Path,
    scripted_model: ScriptedModel,
) -> None:
    scripted_model.chat_reply_with(review_json(finding(8, fix=DIVISION_FIX)))
    client, published = await launch(start_server, workspace)
    uri = uri_of(workspace)
    open_document(client, uri, MODULE)
    save(client, uri)
    params = await published.wait(uri, has_review)
    (diagnostic,) = by_source(list(params.diagnostics), "zi-review")

    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=diagnostic.range,
            context=types.CodeActionContext(diagnostics=[diagnostic], only=["quickfix"]),
        )
    )
    assert actions is not None
    (action,) = [a for a in actions if isinstance(a, types.CodeAction)]
    assert action.title.startswith("Fix with Zi: division by zero")
    resolved = await client.code_action_resolve_async(action)

    assert resolved.edit is not None and resolved.edit.document_changes is not None
    (change,) = resolved.edit.document_changes
    assert isinstance(change, types.TextDocumentEdit)
    text = MODULE
    for edit in change.edits:
        assert isinstance(edit, types.TextEdit)
        start = offset_at(text, edit.range.start.line, edit.range.start.character)
        end = offset_at(text, edit.range.end.line, edit.range.end.character)
        text = text[:start] + edit.new_text + text[end:]
    assert text == MODULE.replace("    return total / len(values)\n", DIVISION_FIX)
    assert len(scripted_model.chat_requests) == 1  # the review's only


async def test_a_finding_fix_is_not_applied_over_lines_that_changed(
    start_server: StartServer, workspace: Path, scripted_model: ScriptedModel
) -> None:
    scripted_model.chat_reply_with(review_json(finding(8, fix=DIVISION_FIX)))
    client, published = await launch(start_server, workspace)
    uri = uri_of(workspace)
    open_document(client, uri, MODULE)
    save(client, uri)
    params = await published.wait(uri, has_review)
    (diagnostic,) = by_source(list(params.diagnostics), "zi-review")
    # The user rewrites the line; a push client keeps showing the old diagnostic.
    replace_all(
        client, uri, 2, MODULE.replace("total / len(values)", "total / max(len(values), 1)")
    )

    actions = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=diagnostic.range,
            context=types.CodeActionContext(diagnostics=[diagnostic], only=["quickfix"]),
        )
    )
    assert actions is not None
    (action,) = [a for a in actions if isinstance(a, types.CodeAction)]
    with pytest.raises(JsonRpcException, match="these lines changed since the review"):
        await client.code_action_resolve_async(action)


async def test_a_stale_review_never_overwrites_a_newer_one(
    start_server: StartServer,
    workspace: Path,
    scripted_model: ScriptedModel,
    runner_env: dict[str, str],
) -> None:
    def reply(body: dict[str, Any]) -> Reply:
        if "OLD_MARKER" in json.dumps(body["messages"]):
            return Reply(review_json(finding(1, message="stale finding")), delay_s=3.0)
        return Reply(review_json(finding(8, message="fresh finding")))

    scripted_model.chat_reply_with(reply)
    client, published = await launch(start_server, workspace, **runner_env)
    uri = uri_of(workspace)
    open_document(client, uri, MODULE)
    save(client, uri)  # v1 reviewed at once: "fresh finding"
    await published.wait(uri, has_review)
    replace_all(client, uri, 2, "# OLD_MARKER\n" + MODULE)
    save(client, uri)  # v2 reviewed slowly
    scripted_model.wait_for_chat_requests(2, timeout=20)
    replace_all(client, uri, 3, MODULE)
    save(client, uri)  # v3 = v1's content: its review comes from the cache, at once

    fresh = await published.wait(uri, lambda ds: published.last(uri).version == 3)  # type: ignore[union-attr]
    shown_from = published.all.index(fresh)
    await asyncio.sleep(5.0)  # v2's review (3 s of model time) has come back by now
    assert len(scripted_model.chat_requests) == 2
    last = published.last(uri)
    assert last is not None and last.version == 3
    assert [d.message for d in by_source(list(last.diagnostics), "zi-review")] == ["fresh finding"]
    later = [d.message for p in published.all[shown_from:] for d in p.diagnostics]
    assert "stale finding" not in later


async def test_reviews_keep_landing_while_the_user_keeps_saving(
    start_server: StartServer, workspace: Path, scripted_model: ScriptedModel
) -> None:
    scripted_model.chat_reply_with(Reply(review_json(finding(8)), delay_s=1.0))
    client, published = await launch(start_server, workspace)
    uri = uri_of(workspace)
    open_document(client, uri, MODULE)
    version = 1
    landed_at = None
    deadline = time.monotonic() + 60
    while landed_at is None:  # a save every 0.3 s, each review takes 1 s of model time
        assert time.monotonic() < deadline, "no review landed while the saves went on"
        version += 1
        replace_all(client, uri, version, MODULE + "\n" * version)
        save(client, uri)
        await asyncio.sleep(0.3)
        shown = [p.version for p in published.all if has_review(list(p.diagnostics))]
        if shown:
            landed_at = version  # saves keep coming below: the review was not held back
    for _ in range(3):
        version += 1
        replace_all(client, uri, version, MODULE + "\n" * version)
        save(client, uri)
        await asyncio.sleep(0.3)
    final = version
    await published.wait(uri, lambda ds: has_review(ds) and published.last(uri).version == final)  # type: ignore[union-attr]

    # One review at a time, the newest save next: far fewer model calls than saves.
    assert len(scripted_model.chat_requests) < final - 1


async def test_only_changed_regions_are_reviewed_and_other_findings_stay(
    start_server: StartServer, workspace: Path, scripted_model: ScriptedModel
) -> None:
    scripted_model.queue_chat(
        review_json(
            finding(1, severity="hint", category="style", message="unused import os"), finding(8)
        ),
        review_json(finding(3, category="style", message="name the helper")),
    )
    client, published = await launch(start_server, workspace)
    uri = uri_of(workspace)
    open_document(client, uri, MODULE)
    save(client, uri)
    await published.wait(uri, lambda ds: len(by_source(ds, "zi-review")) == 2)

    edited = MODULE.replace("\n\ndef mean", "\nhelper = 1\n\ndef mean")  # line 3 changes
    replace_all(client, uri, 2, edited)
    save(client, uri)
    params = await published.wait(uri, lambda ds: len(by_source(ds, "zi-review")) == 3)

    first_ask = scripted_model.chat_requests[0]["messages"][-1]["content"]
    second_ask = scripted_model.chat_requests[1]["messages"][-1]["content"]
    assert "Review the whole file." in first_ask
    assert "Review only the changed lines: 3." in second_ask and "\n3| helper = 1" in second_ask
    review = by_source(list(params.diagnostics), "zi-review")
    lines = {d.message: d.range.start.line for d in review}
    assert lines == {
        "unused import os": 0,
        "division by zero when `values` is empty": RETURN_LINE + 1,  # moved down with its line
        "name the helper": 2,
    }


async def test_an_invalid_answer_is_retried_once_then_only_static_diagnostics_show(
    start_server: StartServer, workspace: Path, scripted_model: ScriptedModel
) -> None:
    scripted_model.queue_chat("not json at all", review_json(finding(8)))
    client, published = await launch(start_server, workspace)
    uri = uri_of(workspace)
    open_document(client, uri, MODULE)
    save(client, uri)
    await published.wait(uri, has_review)
    assert len(scripted_model.chat_requests) == 2  # one retry, then valid

    scripted_model.chat_reply_with('{"findings": [{"line_start": "eight"}]}')
    replace_all(client, uri, 2, MODULE + "\n\n")
    save(client, uri)
    scripted_model.wait_for_chat_requests(4, timeout=20)
    await asyncio.sleep(1.0)
    assert len(scripted_model.chat_requests) == 4  # retried once, then given up
    last = published.last(uri)
    assert last is not None and by_source(list(last.diagnostics), "ruff") != []
    assert any("AI review failed" in m.message for m in client.log_messages)


async def test_line_numbers_outside_the_file_are_clamped_or_dropped(
    start_server: StartServer, workspace: Path, scripted_model: ScriptedModel
) -> None:
    scripted_model.chat_reply_with(
        review_json(
            finding(7, 500, message="runs past the end"),
            finding(400, message="after the end"),
            finding(0, message="before the start"),
        )
    )
    client, published = await launch(start_server, workspace)
    uri = uri_of(workspace)
    open_document(client, uri, MODULE)
    save(client, uri)
    params = await published.wait(uri, has_review)
    review = by_source(list(params.diagnostics), "zi-review")
    assert [(d.message, d.range.start.line, d.range.end.line) for d in review] == [
        ("runs past the end", 6, 7)
    ]


async def test_a_dead_model_server_leaves_the_static_diagnostics_and_a_clear_message(
    start_server: StartServer, workspace: Path
) -> None:
    client, published = await launch(
        start_server, workspace, ZI_INFERENCE__URL="http://127.0.0.1:9/v1"
    )
    uri = uri_of(workspace)
    open_document(client, uri, MODULE)
    save(client, uri)
    params = await published.wait(uri, lambda ds: by_source(ds, "ruff") != [])
    deadline = time.monotonic() + 30
    while not any("AI review failed" in m.message for m in client.log_messages):
        assert time.monotonic() < deadline, [m.message for m in client.log_messages]
        await asyncio.sleep(0.1)
    assert not has_review(list(params.diagnostics))


# ------------------------------------------------------------------ settings


async def test_settings_review_off_languages_min_severity_and_debounce(
    start_server: StartServer, workspace: Path, scripted_model: ScriptedModel
) -> None:
    scripted_model.chat_reply_with(
        review_json(finding(8), finding(1, severity="hint", message="a hint"))
    )
    client, published = await launch(
        start_server,
        workspace,
        ZI_DIAGNOSTICS__MIN_SEVERITY="warning",
        ZI_DIAGNOSTICS__LANGUAGES='["python"]',
        ZI_DIAGNOSTICS__DEBOUNCE_MS="400",
    )
    uri = uri_of(workspace)
    open_document(client, uri, MODULE)
    for version in range(2, 5):  # three saves in quick succession: one review
        replace_all(client, uri, version, MODULE + "\n" * version)
        save(client, uri)
        await asyncio.sleep(0.05)
    params = await published.wait(uri, has_review)
    await asyncio.sleep(1.0)
    assert len(scripted_model.chat_requests) == 1
    assert params.version == 4
    assert [d.message for d in by_source(list(params.diagnostics), "zi-review")] == [
        "division by zero when `values` is empty"
    ]  # the hint is below min_severity

    js = uri_of(workspace, "app.js")
    open_document(client, js, "let x = 1;\n", language="javascript")
    save(client, js)
    await asyncio.sleep(1.0)
    assert len(scripted_model.chat_requests) == 1  # not in `languages`

    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"zi": {"diagnostics": {"review": False}}})
    )
    await published.wait(uri, lambda ds: not has_review(ds) and by_source(ds, "ruff") != [])
    replace_all(client, uri, 5, MODULE + "\n\n\n\n\n\n")
    save(client, uri)
    await published.wait(uri, lambda ds: published.last(uri).version == 5)  # type: ignore[union-attr]
    await asyncio.sleep(1.0)
    assert len(scripted_model.chat_requests) == 1  # review turned off


# ------------------------------------------------------------------ pull diagnostics


def pull_capabilities() -> types.ClientCapabilities:
    caps = client_capabilities("neovim")
    assert caps.text_document is not None and caps.workspace is not None
    caps.text_document.diagnostic = types.DiagnosticClientCapabilities(dynamic_registration=False)
    caps.workspace.diagnostics = types.DiagnosticWorkspaceClientCapabilities(refresh_support=True)
    return caps


async def pull(
    client: LanguageClient, uri: str, previous: str | None = None
) -> types.DocumentDiagnosticReport:
    return await client.text_document_diagnostic_async(
        types.DocumentDiagnosticParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            identifier="zi",
            previous_result_id=previous,
        )
    )


async def test_pull_diagnostics_with_refresh_when_the_review_lands(
    start_server: StartServer, workspace: Path, scripted_model: ScriptedModel
) -> None:
    scripted_model.chat_reply_with(review_json(finding(8)))
    client = await start_server(workspace=workspace, capabilities=pull_capabilities(), **FAST)
    published = Published(client)
    provider = server_capabilities(client).diagnostic_provider
    assert isinstance(provider, types.DiagnosticOptions) and provider.identifier == "zi"
    uri = uri_of(workspace)
    open_document(client, uri, MODULE)

    first = await pull(client, uri)
    assert isinstance(first, types.RelatedFullDocumentDiagnosticReport)
    assert [d.code for d in first.items] == ["F401"]
    unchanged = await pull(client, uri, first.result_id)
    assert isinstance(unchanged, types.RelatedUnchangedDocumentDiagnosticReport)

    save(client, uri)
    scripted_model.wait_for_chat_requests(1, timeout=20)
    deadline = time.monotonic() + 30
    while True:  # the client pulls when asked to (a refresh per publish)
        assert time.monotonic() < deadline
        if client.diagnostic_refresh_count:
            report = await pull(client, uri, first.result_id)
            full = isinstance(report, types.RelatedFullDocumentDiagnosticReport)
            if full and {d.source for d in report.items} == {"ruff", "zi-review"}:  # type: ignore[union-attr]
                break
        await asyncio.sleep(0.05)
    assert published.all == []  # a pull client is never pushed to


async def test_a_client_that_cannot_be_refreshed_is_pushed_to_and_pulls_nothing(
    start_server: StartServer, workspace: Path
) -> None:
    client, published = await launch(start_server, workspace, ZI_DIAGNOSTICS__REVIEW="false")
    uri = uri_of(workspace)
    open_document(client, uri, MODULE)
    await published.wait(uri, lambda ds: by_source(ds, "ruff") != [])
    report = await pull(client, uri)  # Neovim 0.11 pulls, but cannot be told to pull again
    assert isinstance(report, types.RelatedFullDocumentDiagnosticReport)
    assert list(report.items) == []
