"""AI code actions end to end: the real server, real workers on a real Valkey, a scripted model.

Most tests run twice: with ``ZI_REDIS_URL`` and a real ``zi-coder worker`` process
(the job crosses Redis), and without (the in-process runner). The scripted model
answers chat completions the way a small instruct model does: prose around one
fenced block, sometimes code that does not parse, sometimes slowly.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcRequestCancelled
from pytest_lsp import LanguageClient

from server.lsp.convert import offset_at
from tests.e2e.conftest import StartServer, open_document, server_capabilities
from tests.support.code_actions import MODULE, RETURN_LINE
from tests.support.code_actions import code_actions as _actions
from tests.support.code_actions import diagnostic as _diagnostic
from tests.support.code_actions import one_of_kind as _one
from tests.support.generated_tests import FAILING_AND_PASSING, REPAIRED, REPAIRED_FILE
from tests.support.redis_server import RedisServer
from tests.support.scripted_model import Reply, ScriptedModel
from tests.support.workers import WorkerProcess

REQUEST_FAILED = -32803


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "tests").mkdir(parents=True)
    (root / "stats.py").write_text(MODULE)
    return root


@pytest.fixture
async def client(
    start_server: StartServer, workspace: Path, runner_env: dict[str, str]
) -> AsyncIterator[LanguageClient]:
    client = await start_server(workspace=workspace, **runner_env)
    open_document(client, _uri(workspace), MODULE)
    yield client


def _uri(workspace: Path, name: str = "stats.py") -> str:
    return (workspace / name).as_uri()


async def _resolve(client: LanguageClient, action: types.CodeAction) -> types.CodeAction:
    return await asyncio.wait_for(client.code_action_resolve_async(action), 60)


def _applied(text: str, action: types.CodeAction, uri: str) -> tuple[int | None, str]:
    """The version the edit was made for and `text` with the edit applied."""
    assert action.edit is not None and action.edit.document_changes is not None
    for change in action.edit.document_changes:
        if isinstance(change, types.TextDocumentEdit) and change.text_document.uri == uri:
            edits = sorted(
                change.edits,
                key=lambda e: (e.range.start.line, e.range.start.character),
                reverse=True,
            )
            for edit in edits:
                assert isinstance(edit, types.TextEdit)
                start = offset_at(text, edit.range.start.line, edit.range.start.character)
                end = offset_at(text, edit.range.end.line, edit.range.end.character)
                text = text[:start] + edit.new_text + text[end:]
            return change.text_document.version, text
    raise AssertionError(f"no edit for {uri}: {action.edit}")


def _chat_text(body: dict[str, Any]) -> str:
    return "\n".join(str(m.get("content", "")) for m in body["messages"])


def _until(predicate: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


# ------------------------------------------------------------------ offering


async def test_actions_are_offered_at_once_without_edits(
    start_server: StartServer, workspace: Path, scripted_model: ScriptedModel
) -> None:
    client = await start_server(workspace=workspace)
    uri = _uri(workspace)
    open_document(client, uri, MODULE)
    foreign = _diagnostic(RETURN_LINE, "Possible division by zero", "mypy")
    ours = _diagnostic(5, "`total` shadows nothing useful", "zi-review")

    actions = await _actions(client, uri, (RETURN_LINE, 8), diagnostics=[foreign, ours])

    titles = [a.title for a in actions]
    assert titles == [
        "Fix with Zi: Possible division by zero",
        "Fix with Zi: `total` shadows nothing useful",
        "Generate docstring for `mean`",
        "Generate tests for `mean`",
    ]
    assert all(a.edit is None for a in actions)  # computed on resolve
    assert list(actions[0].diagnostics or []) == [foreign]
    assert scripted_model.chat_requests == []  # offering costs no model call

    selected = await _actions(client, uri, (5, 0), (9, 0))
    assert "Improve selection" in [a.title for a in selected]
    only_fixes = await _actions(
        client, uri, (RETURN_LINE, 8), diagnostics=[foreign], only=["quickfix"]
    )
    assert [a.title for a in only_fixes] == ["Fix with Zi: Possible division by zero"]
    refactors = await _actions(client, uri, (RETURN_LINE, 8), only=["refactor"])
    assert [a.kind for a in refactors] == [
        "refactor.rewrite.zi.docstring",
        "refactor.rewrite.zi.tests",
    ]
    provider = server_capabilities(client).code_action_provider
    assert isinstance(provider, types.CodeActionOptions) and provider.resolve_provider


# ------------------------------------------------------------------ resolving


async def test_quick_fix_resolves_through_a_job_to_a_versioned_edit(
    client: LanguageClient, workspace: Path, scripted_model: ScriptedModel
) -> None:
    scripted_model.queue_chat(
        "Sure! The division fails on an empty list:\n\n"
        "```python\nreturn total / len(values) if values else 0.0\n```\n"
        "This returns 0.0 for an empty list."
    )
    uri = _uri(workspace)
    problem = _diagnostic(RETURN_LINE, "Possible division by zero", "mypy")
    action = _one(await _actions(client, uri, (RETURN_LINE, 8), diagnostics=[problem]), "quickfix")

    resolved = await _resolve(client, action)

    version, text = _applied(MODULE, resolved, uri)
    assert version == 1
    assert text == MODULE.replace(
        "    return total / len(values)\n", "    return total / len(values) if values else 0.0\n"
    )
    (body,) = scripted_model.chat_requests
    assert "Possible division by zero (mypy)" in _chat_text(body)
    # The user saw progress for the job, from begin to end.
    kinds = [type(r).__name__ for reports in client.progress_reports.values() for r in reports]
    assert kinds[0] == "WorkDoneProgressBegin" and kinds[-1] == "WorkDoneProgressEnd"


async def test_a_fix_carried_by_the_diagnostic_needs_no_model_call(
    client: LanguageClient, workspace: Path, scripted_model: ScriptedModel
) -> None:
    uri = _uri(workspace)
    fix = "    return total / len(values) if values else 0.0"
    finding = _diagnostic(RETURN_LINE, "Empty input divides by zero", "zi-review", {"fix": fix})
    action = _one(await _actions(client, uri, (RETURN_LINE, 8), diagnostics=[finding]), "quickfix")

    resolved = await _resolve(client, action)

    _, text = _applied(MODULE, resolved, uri)
    assert "if values else 0.0\n" in text
    assert scripted_model.chat_requests == []


async def test_docstring_comes_from_the_model_and_the_code_stays_the_users(
    client: LanguageClient, workspace: Path, scripted_model: ScriptedModel
) -> None:
    # The model also "improved" the code; only its docstring is taken.
    scripted_model.queue_chat(
        "```\ndef mean(values):\n"
        '    """Arithmetic mean of `values`.\n\n    Raises ZeroDivisionError when empty.\n    """\n'
        "    return sum(values) / len(values)\n```"
    )
    uri = _uri(workspace)
    action = _one(await _actions(client, uri, (6, 4)), "refactor.rewrite.zi.docstring")

    _, text = _applied(MODULE, await _resolve(client, action), uri)

    assert text == MODULE.replace(
        "def mean(values):\n",
        'def mean(values):\n    """Arithmetic mean of `values`.\n\n'
        '    Raises ZeroDivisionError when empty.\n    """\n',
    )


async def test_an_answer_that_does_not_parse_is_refused_with_a_reason(
    client: LanguageClient, workspace: Path, scripted_model: ScriptedModel
) -> None:
    scripted_model.queue_chat(
        "```python\n    total = sum(values\n    return total / len(values)\n```"
    )
    uri = _uri(workspace)
    action = _one(await _actions(client, uri, (5, 0), (9, 0)), "refactor.rewrite.zi.improve")

    with pytest.raises(JsonRpcException) as refused:
        await _resolve(client, action)

    assert refused.value.code == REQUEST_FAILED
    assert "pars" in refused.value.message.lower() or "syntax" in refused.value.message.lower()
    shown = [m.message for m in client.messages]
    assert any("Improve selection" in m for m in shown), shown


async def test_improve_rewrites_the_selection(
    client: LanguageClient, workspace: Path, scripted_model: ScriptedModel
) -> None:
    scripted_model.queue_chat("```python\n    return sum(values) / len(values)\n```")
    uri = _uri(workspace)
    action = _one(await _actions(client, uri, (5, 0), (9, 0)), "refactor.rewrite.zi.improve")

    _, text = _applied(MODULE, await _resolve(client, action), uri)

    assert text.endswith("def mean(values):\n    return sum(values) / len(values)\n")


async def test_explain_returns_markdown(
    client: LanguageClient, workspace: Path, scripted_model: ScriptedModel
) -> None:
    scripted_model.queue_chat("`mean` adds the values and **divides** by their count.")
    params = {
        "textDocument": {"uri": _uri(workspace)},
        "range": {"start": {"line": 4, "character": 0}, "end": {"line": 9, "character": 0}},
    }
    result = await asyncio.wait_for(client.protocol.send_request_async("zi/explain", params), 60)
    assert (result.kind, result.value) == (
        "markdown",
        "`mean` adds the values and **divides** by their count.",
    )
    assert "def mean(values):" in _chat_text(scripted_model.chat_requests[0])


# ------------------------------------------------------------------ generated tests


async def test_generated_tests_are_repaired_until_they_pass_and_written_in_the_workspace(
    client: LanguageClient, workspace: Path, scripted_model: ScriptedModel
) -> None:
    scripted_model.queue_chat(FAILING_AND_PASSING, REPAIRED)
    uri = _uri(workspace)
    action = _one(await _actions(client, uri, (6, 4)), "refactor.rewrite.zi.tests")

    resolved = await _resolve(client, action)

    test_uri = (workspace / "tests" / "test_stats.py").as_uri()
    assert resolved.edit is not None and resolved.edit.document_changes is not None
    created = [c for c in resolved.edit.document_changes if isinstance(c, types.CreateFile)]
    assert [c.uri for c in created] == [test_uri]
    _, text = _applied("", resolved, test_uri)
    assert text == REPAIRED_FILE
    _generate, repair = scripted_model.chat_requests
    assert "ZeroDivisionError" in _chat_text(repair)  # the failure went back to the model


async def test_tests_that_never_pass_are_dropped(
    start_server: StartServer, workspace: Path, scripted_model: ScriptedModel
) -> None:
    client = await start_server(workspace=workspace, ZI_ACTIONS__TEST_ROUNDS="2")
    uri = _uri(workspace)
    open_document(client, uri, MODULE)
    scripted_model.chat_reply_with(FAILING_AND_PASSING)
    action = _one(await _actions(client, uri, (6, 4)), "refactor.rewrite.zi.tests")

    resolved = await _resolve(client, action)

    _, text = _applied("", resolved, (workspace / "tests" / "test_stats.py").as_uri())
    assert "def test_mean_of_two" in text
    assert "test_mean_of_empty_is_zero" not in text
    assert len(scripted_model.chat_requests) == 2


# ------------------------------------------------------------------ edits and the document


async def test_an_edit_above_the_region_during_the_job_is_rebased(
    client: LanguageClient, workspace: Path, scripted_model: ScriptedModel
) -> None:
    scripted_model.queue_chat(
        Reply(text="```python\n    return sum(values) / len(values)\n```", delay_s=1.5)
    )
    uri = _uri(workspace)
    action = _one(await _actions(client, uri, (8, 0), (9, 0)), "refactor.rewrite.zi.improve")
    pending = asyncio.ensure_future(_resolve(client, action))
    await asyncio.to_thread(_until, lambda: len(scripted_model.chat_requests) == 1)
    header = "import math\n"
    _insert(client, uri, 2, 0, 0, header)

    version, text = _applied(header + MODULE, await pending, uri)

    assert version == 2
    assert text == header + MODULE.replace(
        "    return total / len(values)\n", "    return sum(values) / len(values)\n"
    )


async def test_an_edit_inside_the_region_during_the_job_refuses_the_edit(
    client: LanguageClient, workspace: Path, scripted_model: ScriptedModel
) -> None:
    scripted_model.queue_chat(
        Reply(text="```python\n    return sum(values) / len(values)\n```", delay_s=1.5)
    )
    uri = _uri(workspace)
    action = _one(await _actions(client, uri, (8, 0), (9, 0)), "refactor.rewrite.zi.improve")
    pending = asyncio.ensure_future(_resolve(client, action))
    await asyncio.to_thread(_until, lambda: len(scripted_model.chat_requests) == 1)
    _insert(client, uri, 2, RETURN_LINE, 11, "-")  # the line being rewritten changes

    with pytest.raises(JsonRpcException) as refused:
        await pending
    assert refused.value.code == REQUEST_FAILED
    assert "not applied" in refused.value.message


def _insert(client: LanguageClient, uri: str, version: int, line: int, ch: int, text: str) -> None:
    here = types.Position(line=line, character=ch)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=here, end=here), text=text
                )
            ],
        )
    )


# ------------------------------------------------------------------ cancellation


async def test_cancelling_the_request_cancels_the_job_and_its_model_call(
    client: LanguageClient, workspace: Path, scripted_model: ScriptedModel
) -> None:
    scripted_model.queue_chat(Reply(text="```python\npass\n```", delay_s=60))
    uri = _uri(workspace)
    action = _one(await _actions(client, uri, (8, 0), (9, 0)), "refactor.rewrite.zi.improve")
    future = client.protocol.send_request(types.CODE_ACTION_RESOLVE, action, msg_id="resolve-1")
    await asyncio.to_thread(_until, lambda: len(scripted_model.chat_requests) == 1)

    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="resolve-1"))

    with pytest.raises(JsonRpcRequestCancelled):
        await asyncio.wait_for(asyncio.wrap_future(future), 20)
    await asyncio.to_thread(scripted_model.wait_for_cancelled, 1, 20)  # the stream was closed


async def test_cancelling_the_progress_cancels_the_job_and_its_model_call(
    client: LanguageClient, workspace: Path, scripted_model: ScriptedModel
) -> None:
    scripted_model.queue_chat(Reply(text="```python\npass\n```", delay_s=60))
    uri = _uri(workspace)
    action = _one(await _actions(client, uri, (8, 0), (9, 0)), "refactor.rewrite.zi.improve")
    pending = asyncio.ensure_future(_resolve(client, action))
    await asyncio.to_thread(_until, lambda: len(scripted_model.chat_requests) == 1)
    (token,) = client.progress_reports

    client.protocol.notify(
        types.WINDOW_WORK_DONE_PROGRESS_CANCEL, types.WorkDoneProgressCancelParams(token=token)
    )

    with pytest.raises(JsonRpcRequestCancelled):
        await pending
    await asyncio.to_thread(scripted_model.wait_for_cancelled, 1, 20)
    assert isinstance(client.progress_reports[token][-1], types.WorkDoneProgressEnd)


# ------------------------------------------------------------------ faults


async def test_a_job_that_times_out_is_a_clear_error(
    start_server: StartServer,
    workspace: Path,
    scripted_model: ScriptedModel,
    runner_env: dict[str, str],
) -> None:
    client = await start_server(workspace=workspace, ZI_JOBS__TIMEOUT_S="2", **runner_env)
    uri = _uri(workspace)
    open_document(client, uri, MODULE)
    scripted_model.chat_reply_with(Reply(text="```python\npass\n```", delay_s=60))
    action = _one(await _actions(client, uri, (8, 0), (9, 0)), "refactor.rewrite.zi.improve")

    with pytest.raises(JsonRpcException) as refused:
        await _resolve(client, action)
    assert refused.value.code == REQUEST_FAILED
    assert "too long" in refused.value.message


async def test_a_dead_model_server_is_a_clear_error(
    start_server: StartServer, workspace: Path, runner_env: dict[str, str]
) -> None:
    client = await start_server(
        workspace=workspace,
        ZI_INFERENCE__URL="http://127.0.0.1:9/v1",  # nothing listens on the discard port
        ZI_INFERENCE__MODEL="scripted-coder",
        ZI_JOBS__RETRY_INTERVALS_S="[0]",
        **runner_env,
    )
    uri = _uri(workspace)
    open_document(client, uri, MODULE)
    action = _one(await _actions(client, uri, (8, 0), (9, 0)), "refactor.rewrite.zi.improve")

    with pytest.raises(JsonRpcException) as refused:
        await _resolve(client, action)
    assert refused.value.code == REQUEST_FAILED
    assert "127.0.0.1:9" in refused.value.message


async def test_a_worker_killed_mid_job_is_an_error_not_a_hang(
    start_server: StartServer,
    workspace: Path,
    scripted_model: ScriptedModel,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    worker = WorkerProcess(redis_server.url, tmp_path / "worker.log")
    worker.start()
    client = await start_server(
        workspace=workspace, ZI_REDIS_URL=redis_server.url, ZI_JOBS__TIMEOUT_S="3"
    )
    uri = _uri(workspace)
    open_document(client, uri, MODULE)
    scripted_model.chat_reply_with(Reply(text="```python\npass\n```", delay_s=60))
    action = _one(await _actions(client, uri, (8, 0), (9, 0)), "refactor.rewrite.zi.improve")
    pending = asyncio.ensure_future(_resolve(client, action))
    await asyncio.to_thread(_until, lambda: len(scripted_model.chat_requests) == 1)

    worker.kill_all()  # the worker and its work horse, as a crash or OOM kill would

    with pytest.raises(JsonRpcException) as refused:
        await asyncio.wait_for(pending, 40)
    assert refused.value.code == REQUEST_FAILED
    assert "worker" in refused.value.message or "too long" in refused.value.message


async def test_a_job_lost_in_a_redis_restart_is_run_once_a_worker_comes(
    start_server: StartServer,
    workspace: Path,
    scripted_model: ScriptedModel,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    import redis

    client = await start_server(workspace=workspace, ZI_REDIS_URL=redis_server.url)
    uri = _uri(workspace)
    open_document(client, uri, MODULE)
    scripted_model.queue_chat("```python\n    return sum(values) / len(values)\n```")
    action = _one(await _actions(client, uri, (8, 0), (9, 0)), "refactor.rewrite.zi.improve")
    pending = asyncio.ensure_future(_resolve(client, action))
    queued = redis.Redis.from_url(redis_server.url)
    await asyncio.to_thread(_until, lambda: queued.llen("rq:queue:zi-interactive") == 1)

    redis_server.restart()  # no persistence: the queued job is gone
    worker = WorkerProcess(redis_server.url, tmp_path / "worker.log")
    worker.start()
    try:
        _, text = _applied(MODULE, await asyncio.wait_for(pending, 40), uri)
    finally:
        worker.stop()
    assert "return sum(values) / len(values)" in text


# ------------------------------------------------------------------ secrets and excluded files


async def test_the_model_never_sees_a_secret_and_the_fix_keeps_it(
    client: LanguageClient, workspace: Path, scripted_model: ScriptedModel
) -> None:
    token = "gh" + "p_" + "Zq4T7kLm2Xv9Rb8Nc3Wd6Yf1Hj5Gs0Ka7PeU"
    source = f'def connect():\n    token = "{token}"\n    return client(token, retries=tries)\n'
    uri = _uri(workspace, "net.py")
    open_document(client, uri, source)
    # The model rewrites both lines, keeping the placeholder it was shown.
    scripted_model.queue_chat(
        '```python\n    token = "<redacted:github-token:1>"\n'
        "    return client(token, retries=3)\n```"
    )
    problem = types.Diagnostic(
        range=types.Range(
            start=types.Position(line=1, character=4), end=types.Position(line=2, character=40)
        ),
        message="Undefined name `tries`",
        source="ruff",
    )
    action = _one(await _actions(client, uri, (2, 8), diagnostics=[problem]), "quickfix")

    resolved = await _resolve(client, action)

    _, text = _applied(source, resolved, uri)
    assert text == source.replace("retries=tries", "retries=3")  # the token is still there
    (body,) = scripted_model.chat_requests
    assert token not in json.dumps(body)
    assert "<redacted:github-token:1>" in _chat_text(body)


async def test_an_excluded_file_gets_no_actions(
    client: LanguageClient, workspace: Path, scripted_model: ScriptedModel
) -> None:
    uri = _uri(workspace, ".env")
    open_document(client, uri, "API_URL=http://localhost\nDEBUG=1\n")
    problem = _diagnostic(0, "Possible division by zero", "mypy")
    assert await _actions(client, uri, (0, 2), diagnostics=[problem]) == []
    assert await _actions(client, uri, (0, 2), only=["refactor"]) == []
    assert scripted_model.chat_requests == []
