"""Every model call lands in the history: the real server over stdio, a scripted model.

Inline completions record one ``model_calls`` row per request sent, linked to the
suggestion it produced, with the raw answer, the finish reason and the usage the
stream ended with; failed requests are recorded with their error. Code actions
record their job (``jobs``) and the job's model calls, whether the job ran on a
real RQ worker or in process (``runner_env``): the worker has no database, the
calls travel back with the job's result.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcRequestCancelled

from tests.e2e.conftest import StartServer, inline, open_document, texts
from tests.support.code_actions import MODULE, RETURN_LINE, code_actions, diagnostic, one_of_kind
from tests.support.scripted_model import Reply, ScriptedModel, chat_prompt, count_tokens
from tests.support.waits import rows_until, settings_applied, settings_updates

URI = "file:///work/project/calc.py"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"


async def test_an_inline_completion_records_its_model_call(
    start_server: StartServer, scripted_model: ScriptedModel, db_url: str
) -> None:
    scripted_model.reply_with(Reply(text="return a + b\n"))
    client = await start_server(ZI_HISTORY__STORE_PROMPTS="true")
    text = f'KEY = "{AWS_KEY}"\n\ndef add(a, b):\n    \n'
    open_document(client, URI, text)

    assert texts(await inline(client, URI, 3, 4)) == ["return a + b"]

    [request] = scripted_model.requests
    assert request["stream_options"] == {"include_usage": True}
    [completion] = await rows_until(db_url, "select * from completions")
    [call] = await rows_until(db_url, "select * from model_calls")
    assert call["completion_id"] == completion["id"]
    assert (call["kind"], call["model"], call["language"], call["template"]) == (
        "completion",
        "scripted-coder",
        "python",
        "qwen",
    )
    assert call["endpoint"] == scripted_model.url + "/completions"
    # The raw answer, before post-processing; the stream's finish reason and usage.
    assert call["response"] == "return a + b\n"
    assert call["finish_reason"] == "stop"
    assert call["prompt_tokens"] == count_tokens(request["prompt"])
    assert call["completion_tokens"] == count_tokens(call["response"])
    assert call["prompt_chars"] == len(request["prompt"])
    assert call["first_token_ms"] is not None and call["total_ms"] >= call["first_token_ms"]
    assert call["error"] is None and not call["replay"]
    params = json.loads(call["params"])
    assert params["max_tokens"] == request["max_tokens"] and params["stop"] == request["stop"]
    assert "prompt" not in params
    # Stored because store_prompts is on, and redacted on the way.
    assert "def add(a, b):" in call["prompt"] and AWS_KEY not in call["prompt"]
    assert completion["text"] == "return a + b"
    assert completion["prompt"] is None  # stored once: with the call


async def test_a_suggestion_without_a_call_of_its_own_keeps_its_prompt(
    start_server: StartServer, scripted_model: ScriptedModel, db_url: str
) -> None:
    scripted_model.reply_with(Reply(text="return a + b"))
    client = await start_server(ZI_HISTORY__STORE_PROMPTS="true")
    open_document(client, URI, "def add(a, b):\n    \n")
    assert texts(await inline(client, URI, 1, 4)) == ["return a + b"]
    # Closed and opened again (the type-ahead cache forgets it), the same text: the
    # same prompt, answered from the shared cache.
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=URI))
    )
    open_document(client, URI, "def add(a, b):\n    \n")

    assert texts(await inline(client, URI, 1, 4)) == ["return a + b"]

    assert len(scripted_model.requests) == 1  # the second came from the shared cache
    made, cached = await rows_until(
        db_url, "select source, prompt from completions order by created_at", lambda r: len(r) == 2
    )
    [call] = await rows_until(db_url, "select prompt from model_calls")
    assert (made["source"], made["prompt"]) == ("model", None)
    assert cached["source"] == "shared_cache" and cached["prompt"] == call["prompt"]
    assert "def add(a, b):" in cached["prompt"]


async def test_with_history_off_nothing_is_written(
    start_server: StartServer, scripted_model: ScriptedModel, db_url: str
) -> None:
    scripted_model.reply_with(Reply(text="return a + b"))
    client = await start_server(ZI_HISTORY__ENABLED="false")
    open_document(client, URI, "def add(a, b):\n    \n")

    result = await inline(client, URI, 1, 4)
    assert result is not None
    [item] = result.items
    assert item.insert_text == "return a + b"
    assert item.command is not None
    await client.workspace_execute_command_async(
        types.ExecuteCommandParams(command=item.command.command, arguments=item.command.arguments)
    )
    await client.shutdown_session()  # history, when on, is flushed before `shutdown` is answered

    assert not await asyncio.to_thread(Path(db_url.removeprefix("sqlite:///")).exists)


async def test_without_store_prompts_only_lengths_are_recorded(
    start_server: StartServer, scripted_model: ScriptedModel, db_url: str
) -> None:
    scripted_model.reply_with(Reply(text="return a + b"))
    client = await start_server()
    open_document(client, URI, "def add(a, b):\n    \n")

    assert texts(await inline(client, URI, 1, 4)) == ["return a + b"]

    [call] = await rows_until(db_url, "select * from model_calls")
    assert (call["prompt"], call["response"]) == (None, None)
    assert call["response_chars"] == len("return a + b")
    assert call["completion_tokens"] == count_tokens("return a + b")
    [completion] = await rows_until(db_url, "select text, prompt, text_length from completions")
    assert completion == {"text": None, "prompt": None, "text_length": len("return a + b")}


async def test_turning_store_prompts_on_from_the_client_applies_to_the_next_calls(
    start_server: StartServer, scripted_model: ScriptedModel, db_url: str
) -> None:
    scripted_model.reply_with(Reply(text="return a + b"))
    client = await start_server()
    open_document(client, URI, "def add(a, b):\n    \n\ndef sub(a, b):\n    \n")
    assert texts(await inline(client, URI, 1, 4)) == ["return a + b"]

    updates = settings_updates(client)
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"zi": {"history": {"store_prompts": True}}})
    )
    await settings_applied(client, after=updates)
    assert texts(await inline(client, URI, 4, 4)) == ["return a + b"]

    calls = await rows_until(
        db_url, "select prompt from model_calls order by created_at", lambda r: len(r) == 2
    )
    assert calls[0]["prompt"] is None
    assert calls[1]["prompt"] is not None and "def sub(a, b):" in calls[1]["prompt"]


async def test_a_model_error_is_recorded_as_a_failed_call(
    start_server: StartServer, scripted_model: ScriptedModel, db_url: str
) -> None:
    scripted_model.queue(Reply(status=500, text="engine exploded"))
    client = await start_server()
    open_document(client, URI, "def add(a, b):\n    \n")

    assert texts(await inline(client, URI, 1, 4)) == []

    [failed] = await rows_until(db_url, "select * from model_calls")
    assert "HTTP 500" in failed["error"] and "engine exploded" in failed["error"]
    assert failed["completion_id"] is None and failed["response_chars"] == 0
    assert failed["kind"] == "completion" and failed["prompt_chars"] > 0


async def test_a_code_action_records_its_job_and_model_call(
    start_server: StartServer,
    scripted_model: ScriptedModel,
    db_url: str,
    tmp_path: Path,
    runner_env: dict[str, str],
) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "stats.py").write_text(MODULE)
    uri = (workspace / "stats.py").as_uri()
    answer = "```python\nreturn total / len(values) if values else 0.0\n```"
    scripted_model.queue_chat(answer)
    client = await start_server(workspace=workspace, ZI_HISTORY__STORE_PROMPTS="true", **runner_env)
    open_document(client, uri, MODULE)
    problem = diagnostic(RETURN_LINE, "Possible division by zero", "mypy")
    actions = await code_actions(client, uri, (RETURN_LINE, 8), diagnostics=[problem])
    action = one_of_kind(actions, "quickfix")

    await asyncio.wait_for(client.code_action_resolve_async(action), 60)

    runner = "rq" if runner_env else "in-process"
    [job] = await rows_until(
        db_url, "select * from jobs", lambda r: bool(r) and r[0]["status"] != "queued"
    )
    assert (job["status"], job["kind"], job["runner"]) == ("finished", "code_action", runner)
    assert job["function"] == "server.actions.jobs.fix_problem"
    assert (job["uri"], job["language"], job["error"]) == (uri, "python", None)
    assert job["duration_ms"] > 0 and job["finished_at"] is not None
    [call] = await rows_until(db_url, "select * from model_calls")
    [body] = scripted_model.chat_requests
    assert (call["kind"], call["job_id"], call["completion_id"]) == ("code_action", job["id"], None)
    assert call["endpoint"] == scripted_model.url + "/chat/completions"
    assert call["response"] == answer and call["finish_reason"] == "stop"
    assert call["prompt_tokens"] == count_tokens(chat_prompt(body["messages"]))
    assert call["completion_tokens"] == count_tokens(answer)
    assert json.loads(call["prompt"]) == body["messages"]  # the messages, as JSON
    params = json.loads(call["params"])
    assert params["max_tokens"] == body["max_tokens"] and "messages" not in params
    assert call["language"] == "python" and call["error"] is None


async def test_a_failing_job_records_every_attempt(
    start_server: StartServer,
    scripted_model: ScriptedModel,
    db_url: str,
    tmp_path: Path,
    runner_env: dict[str, str],
) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "stats.py").write_text(MODULE)
    uri = (workspace / "stats.py").as_uri()
    scripted_model.chat_reply_with(Reply(status=500, text="engine exploded"))
    client = await start_server(
        workspace=workspace, ZI_JOBS__RETRY_INTERVALS_S="[0, 0]", **runner_env
    )
    open_document(client, uri, MODULE)
    problem = diagnostic(RETURN_LINE, "Possible division by zero", "mypy")
    actions = await code_actions(client, uri, (RETURN_LINE, 8), diagnostics=[problem])
    action = one_of_kind(actions, "quickfix")

    with pytest.raises(JsonRpcException):
        await asyncio.wait_for(client.code_action_resolve_async(action), 60)

    [job] = await rows_until(
        db_url, "select * from jobs", lambda r: bool(r) and r[0]["status"] != "queued"
    )
    assert job["status"] == "failed" and "500" in job["error"]
    calls = await rows_until(db_url, "select * from model_calls", lambda r: len(r) >= 3)
    assert len(calls) == len(scripted_model.chat_requests) == 3  # the first try, two retries
    assert all(c["job_id"] == job["id"] and "HTTP 500" in c["error"] for c in calls)


async def test_a_cancelled_job_records_its_model_call_as_cancelled(
    start_server: StartServer, scripted_model: ScriptedModel, db_url: str, tmp_path: Path
) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "stats.py").write_text(MODULE)
    uri = (workspace / "stats.py").as_uri()
    scripted_model.queue_chat(Reply(text="```python\npass\n```", delay_s=60))
    client = await start_server(workspace=workspace)  # the in-process runner
    open_document(client, uri, MODULE)
    problem = diagnostic(RETURN_LINE, "Possible division by zero", "mypy")
    action = one_of_kind(
        await code_actions(client, uri, (RETURN_LINE, 8), diagnostics=[problem]), "quickfix"
    )
    future = client.protocol.send_request(types.CODE_ACTION_RESOLVE, action, msg_id="resolve-1")
    await asyncio.to_thread(scripted_model.wait_for_chat_requests, 1, 20)

    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="resolve-1"))

    with pytest.raises(JsonRpcRequestCancelled):
        await asyncio.wait_for(asyncio.wrap_future(future), 20)
    # The job's thread stops, closing the stream; its call is recorded then.
    await asyncio.to_thread(scripted_model.wait_for_cancelled, 1, 20)
    [job] = await rows_until(
        db_url, "select * from jobs", lambda r: bool(r) and r[0]["status"] != "queued"
    )
    assert (job["status"], job["error"]) == ("cancelled", "cancelled")
    [call] = await rows_until(db_url, "select * from model_calls")
    assert (call["kind"], call["job_id"], call["error"]) == ("code_action", job["id"], "cancelled")
    assert call["endpoint"] == scripted_model.url + "/chat/completions"
