"""Redis restarted or gone while the server uses it: for the shared cache and the job queue.

The real server over stdio, a real Valkey (restarted without persistence, as a
plain ``redis-server`` is, or killed), a real ``zi-coder worker`` and the scripted
model. Completions go on through a restart and the shared cache is used again at
once (not after the in-process fallback's cool-down); a code action whose queue
dies under its running job ends with an error in words, and its job's row in the
history says how it ended.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from pygls.exceptions import JsonRpcException

from tests.e2e.conftest import StartServer, inline, open_document, texts
from tests.support.code_actions import MODULE, RETURN_LINE, code_actions, diagnostic, one_of_kind
from tests.support.redis_server import RedisServer
from tests.support.scripted_model import Reply, ScriptedModel
from tests.support.waits import rows_until
from tests.support.workers import WorkerProcess

REQUEST_FAILED = -32803
PATIENCE_S = 60.0  # only a failing test waits this long
CACHE_KEYS = "zi:cache:completion:*"


async def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not await asyncio.to_thread(condition):
        assert time.monotonic() < deadline, f"never: {what}"
        await asyncio.sleep(0.05)


async def test_a_redis_restart_costs_no_completion_and_the_shared_cache_resumes_at_once(
    start_server: StartServer, scripted_model: ScriptedModel, redis_server: RedisServer
) -> None:
    scripted_model.reply_with(Reply(text="return a + b"))
    client = await start_server(ZI_REDIS_URL=redis_server.url)
    open_document(client, "file:///work/project/a.py", "def add(a, b):\n    \n")
    assert texts(await inline(client, "file:///work/project/a.py", 1, 4)) == ["return a + b"]
    shared = redis.Redis.from_url(redis_server.url)
    assert len(shared.keys(CACHE_KEYS)) == 1

    redis_server.restart()  # no persistence: the cached completion is gone
    shared = redis.Redis.from_url(redis_server.url)
    assert shared.keys(CACHE_KEYS) == []
    scripted_model.reply_with(Reply(text="return a * b"))
    open_document(client, "file:///work/project/b.py", "def mul(a, b):\n    \n")

    result = await asyncio.wait_for(inline(client, "file:///work/project/b.py", 1, 4), 20)

    assert texts(result) == ["return a * b"]
    # Written to the restarted Redis: another editor's server gets it from there.
    await _until(lambda: len(shared.keys(CACHE_KEYS)) == 1, "the completion cached in Redis")
    # A restart is not an outage: nothing falls back to memory, so nothing to tell.
    assert not [m.message for m in client.log_messages if "unreachable" in m.message]


async def test_a_queue_killed_under_a_running_code_action_ends_it_in_words_and_in_the_history(
    start_server: StartServer,
    scripted_model: ScriptedModel,
    redis_server: RedisServer,
    tmp_path: Path,
    db_url: str,
) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "stats.py").write_text(MODULE)
    uri = (workspace / "stats.py").as_uri()
    worker = WorkerProcess(redis_server.url, tmp_path / "worker.log")
    worker.start()
    try:
        client = await start_server(
            workspace=workspace, ZI_REDIS_URL=redis_server.url, ZI_JOBS__TIMEOUT_S="3"
        )
        open_document(client, uri, MODULE)
        scripted_model.chat_reply_with(Reply(text="```python\npass\n```", delay_s=60))
        problem = diagnostic(RETURN_LINE, "Possible division by zero", "mypy")
        action = one_of_kind(
            await code_actions(client, uri, (RETURN_LINE, 8), diagnostics=[problem]), "quickfix"
        )
        pending = asyncio.ensure_future(client.code_action_resolve_async(action))
        await asyncio.to_thread(scripted_model.wait_for_chat_requests, 1, PATIENCE_S)

        redis_server.kill()  # the queue is gone while the worker runs the job

        # Bounded only to catch a hang: the job's timeout (3 s) plus the wait margin.
        with pytest.raises(JsonRpcException) as refused:
            await asyncio.wait_for(pending, PATIENCE_S)
    finally:
        worker.kill_all()
    assert refused.value.code == REQUEST_FAILED, refused.value
    assert "Redis" in refused.value.message and "Traceback" not in refused.value.message
    [job] = await rows_until(
        db_url, "select * from jobs", lambda rows: bool(rows) and rows[0]["status"] != "queued"
    )
    assert job["status"] in ("failed", "timeout") and "Redis" in job["error"]


async def test_a_queue_down_when_the_action_is_asked_runs_it_here_and_says_so(
    start_server: StartServer, scripted_model: ScriptedModel, tmp_path: Path, db_url: str
) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "stats.py").write_text(MODULE)
    uri = (workspace / "stats.py").as_uri()
    down = RedisServer()
    down.start()
    down.kill()  # a Redis address where nothing answers now
    url = down.url
    down.stop()  # its directory removed; the port stays closed
    client = await start_server(workspace=workspace, ZI_REDIS_URL=url)
    open_document(client, uri, MODULE)
    scripted_model.chat_reply_with("```python\nreturn total / len(values) if values else 0.0\n```")
    problem = diagnostic(RETURN_LINE, "Possible division by zero", "mypy")
    action = one_of_kind(
        await code_actions(client, uri, (RETURN_LINE, 8), diagnostics=[problem]), "quickfix"
    )

    resolved = await asyncio.wait_for(client.code_action_resolve_async(action), PATIENCE_S)

    assert resolved.edit is not None
    [told] = [m.message for m in client.log_messages if "job queue unreachable" in m.message]
    assert "running the job here" in told and "Traceback" not in told
    [job] = await rows_until(
        db_url, "select * from jobs", lambda rows: bool(rows) and rows[0]["status"] != "queued"
    )
    assert (job["status"], job["runner"]) == ("finished", "in-process")
