"""A failing model behind the heavy path: code actions on both runners, reviews in process.

The real server over stdio, a scripted chat model that fails in each way a vLLM
server does (down, HTTP 500, 429, a stream cut mid-answer, an answer that never comes),
and, for code actions, each job runner (``runner_env``: a real RQ worker on a real
Valkey, or in process). For each: the user is told in words (a log message for a review, an
error reply and a shown message for a code action), the request ends, and the
history keeps the job and its model calls with how they failed. Last, the RQ
worker itself killed mid-job: the same, its job's row saying the worker died.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

from tests.e2e.conftest import StartServer, open_document
from tests.support.code_actions import MODULE, RETURN_LINE, code_actions, diagnostic, one_of_kind
from tests.support.redis_server import RedisServer
from tests.support.scripted_model import Reply, ScriptedModel
from tests.support.waits import rows_until
from tests.support.workers import WorkerProcess

REQUEST_FAILED = -32803
PATIENCE_S = 60.0  # only a failing test waits this long (a review on a loaded machine: ~10 s)
ANSWER = "```python\nreturn total / len(values) if values else 0.0\n```"
# No pause between a job's attempts; a job may take 3 s (the "slow" model takes longer).
FAST_JOBS = {
    "ZI_JOBS__RETRY_INTERVALS_S": "[0]",
    "ZI_JOBS__TIMEOUT_S": "3",
    "ZI_DIAGNOSTICS__DEBOUNCE_MS": "0",
}

# (the model's reply, what the job's error says, what the failed call's error says);
# no reply: the model server is down (stopped: connections refused).
FAULTS = [
    pytest.param(None, "cannot connect", "cannot connect", id="down"),
    pytest.param(Reply(status=500, text="engine exploded"), "HTTP 500", "HTTP 500", id="http-500"),
    pytest.param(
        Reply(status=429, text="slow down", headers={"Retry-After": "1"}),
        "HTTP 429",
        "HTTP 429",
        id="http-429",
    ),
    pytest.param(
        Reply(text=ANSWER, drop_after=2), "ModelConnectionLost", "ConnectionLost", id="cut"
    ),
    pytest.param(Reply(text=ANSWER, delay_s=60), "too long", "timeout", id="slow"),
]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "stats.py").write_text(MODULE)
    return root


def _model(scripted_model: ScriptedModel, reply: Reply | None) -> dict[str, str]:
    """Script the chat model's `reply` (None: stop it); the server's settings for it."""
    if reply is None:
        scripted_model.stop()
        # Named, so that no job needs the model list first (the call is what fails).
        return {**FAST_JOBS, "ZI_INFERENCE__MODEL": "scripted-coder"}
    scripted_model.chat_reply_with(reply)
    return FAST_JOBS


async def _job_ended(db_url: str) -> dict[str, object]:
    [job] = await rows_until(
        db_url, "select * from jobs", lambda rows: bool(rows) and rows[0]["status"] != "queued"
    )
    return job


async def _told(client: LanguageClient, text: str) -> list[str]:
    """Messages (logged or shown) containing `text`, once there is one."""
    deadline = asyncio.get_running_loop().time() + PATIENCE_S
    while True:
        said = [m.message for m in client.log_messages if text in m.message]
        said += [m.message for m in client.messages if text in m.message]
        if said or asyncio.get_running_loop().time() > deadline:
            return said
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(("reply", "job_error", "call_error"), FAULTS)
async def test_a_failing_model_fails_the_code_action_in_words_and_the_history_keeps_it(
    start_server: StartServer,
    scripted_model: ScriptedModel,
    workspace: Path,
    db_url: str,
    runner_env: dict[str, str],
    reply: Reply | None,
    job_error: str,
    call_error: str,
) -> None:
    client = await start_server(workspace=workspace, **_model(scripted_model, reply), **runner_env)
    uri = (workspace / "stats.py").as_uri()
    open_document(client, uri, MODULE)
    problem = diagnostic(RETURN_LINE, "Possible division by zero", "mypy")
    action = one_of_kind(
        await code_actions(client, uri, (RETURN_LINE, 8), diagnostics=[problem]), "quickfix"
    )

    # Bounded only to catch a hang: the job's own timeout (3 s) ends the slowest case.
    with pytest.raises(JsonRpcException) as refused:
        await asyncio.wait_for(client.code_action_resolve_async(action), 60)

    assert refused.value.code == REQUEST_FAILED
    assert job_error in refused.value.message
    assert "Traceback" not in refused.value.message
    [shown] = [m.message for m in client.messages if m.type == types.MessageType.Warning]
    assert shown.startswith("Zi: ") and job_error in shown
    job = await _job_ended(db_url)
    assert job["kind"] == "code_action" and job["status"] in ("failed", "timeout")
    assert job_error in str(job["error"]) or job["status"] == "timeout"
    calls = await rows_until(db_url, "select * from model_calls")
    assert calls, "the failed model call was not recorded"
    assert all(c["job_id"] == job["id"] and c["error"] for c in calls)
    assert any(call_error in str(c["error"]) for c in calls), [c["error"] for c in calls]


@pytest.mark.parametrize(("reply", "job_error", "call_error"), FAULTS)
async def test_a_failing_model_fails_the_review_in_words_and_the_history_keeps_it(
    start_server: StartServer,
    scripted_model: ScriptedModel,
    workspace: Path,
    db_url: str,
    reply: Reply | None,
    job_error: str,
    call_error: str,
) -> None:
    # In process only: the review is the same job on either runner, and the code-action
    # matrix above already runs every fault through a real RQ worker.
    client = await start_server(
        workspace=workspace, capabilities="neovim", **_model(scripted_model, reply)
    )
    uri = (workspace / "stats.py").as_uri()
    open_document(client, uri, MODULE)
    client.text_document_did_save(
        types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )

    [told] = await _told(client, "AI review failed")
    assert told.startswith("Zi: ") and "Traceback" not in told
    assert job_error in told or (job_error == "too long" and "timed out" in told)
    job = await _job_ended(db_url)
    assert job["kind"] == "review" and job["status"] in ("failed", "timeout")
    calls = await rows_until(db_url, "select * from model_calls")
    assert calls and all(c["job_id"] == job["id"] and c["error"] for c in calls)
    assert any(call_error in str(c["error"]) for c in calls), [c["error"] for c in calls]
    # The static checks were published all the same.
    assert client.diagnostics.get(uri) is not None


async def test_a_worker_killed_mid_job_ends_the_action_in_words_and_in_the_history(
    start_server: StartServer,
    scripted_model: ScriptedModel,
    workspace: Path,
    db_url: str,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    scripted_model.chat_reply_with(Reply(text=ANSWER, delay_s=60))
    worker = WorkerProcess(redis_server.url, tmp_path / "worker.log")
    worker.start()
    try:
        client = await start_server(workspace=workspace, ZI_REDIS_URL=redis_server.url, **FAST_JOBS)
        uri = (workspace / "stats.py").as_uri()
        open_document(client, uri, MODULE)
        problem = diagnostic(RETURN_LINE, "Possible division by zero", "mypy")
        action = one_of_kind(
            await code_actions(client, uri, (RETURN_LINE, 8), diagnostics=[problem]), "quickfix"
        )
        pending = asyncio.ensure_future(client.code_action_resolve_async(action))
        await asyncio.to_thread(scripted_model.wait_for_chat_requests, 1, PATIENCE_S)

        worker.kill_all()  # the worker and its work horse, as an OOM kill would

        # Bounded only to catch a hang: the job's timeout (3 s) plus the wait margin.
        with pytest.raises(JsonRpcException) as refused:
            await asyncio.wait_for(pending, PATIENCE_S)
    finally:
        worker.stop()
    assert refused.value.code == REQUEST_FAILED
    assert "worker" in refused.value.message and "Traceback" not in refused.value.message
    job = await _job_ended(db_url)
    assert job["status"] == "failed" and "worker probably died" in str(job["error"])
