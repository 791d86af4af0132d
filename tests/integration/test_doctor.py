"""`zi-coder doctor` against real services: a verdict per line, failures that say why."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.commands.doctor import Check, Verdict, run_checks
from server.history.database import create_engine_for, upgrade_to_head
from server.settings import Settings
from tests.e2e.conftest import server_env
from tests.support.redis_server import RedisServer
from tests.support.scripted_model import Reply, ScriptedModel


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def migrated_sqlite(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    engine = create_engine_for(url)
    upgrade_to_head(engine)
    engine.dispose()
    return url


@pytest.fixture
def rq_worker(redis_server: RedisServer) -> Iterator[subprocess.Popen[bytes]]:
    """`zi-coder worker` on the test Redis, stopped (warm shutdown) after the test."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "server", "worker"],
        env=server_env(ZI_REDIS_URL=redis_server.url),
        stdin=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield worker
    finally:
        worker.terminate()
        worker.wait(timeout=30)


async def test_everything_in_order(
    scripted_model: ScriptedModel,
    redis_server: RedisServer,
    rq_worker: subprocess.Popen[bytes],
    tmp_path: Path,
) -> None:
    scripted_model.reply_with(Reply(text="a + b"))
    settings = Settings(
        inference={"url": scripted_model.url},
        redis_url=redis_server.url,
        database_url=migrated_sqlite(tmp_path),
    )
    deadline = time.monotonic() + 30
    while True:  # the worker registers itself in Redis once it has started
        checks = by_name(await run_checks(settings))
        if checks["workers"].verdict is Verdict.OK or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)

    assert {c.verdict for c in checks.values()} == {Verdict.OK}, checks
    assert "scripted-coder" in checks["model: model"].detail
    assert checks["model: FIM template"].detail.startswith("qwen")
    assert "1 token in" in checks["model: generation"].detail
    generation = scripted_model.requests[-1]
    assert generation["max_tokens"] == 1 and "<|fim_prefix|>" in generation["prompt"]
    assert "1 alive" in checks["workers"].detail
    assert "at migration" in checks["database"].detail


async def test_a_dead_model_server_and_an_unmigrated_database(tmp_path: Path) -> None:
    settings = Settings(
        inference={"url": "http://127.0.0.1:9/v1"},
        database_url=f"sqlite:///{tmp_path / 'absent.sqlite3'}",
    )
    checks = by_name(await run_checks(settings))

    assert checks["model: server"].verdict is Verdict.FAIL
    assert "cannot connect" in checks["model: server"].detail
    assert "model: generation" not in checks  # nothing to try once the server is down
    assert checks["redis"].verdict is Verdict.SKIP
    assert checks["workers"].verdict is Verdict.SKIP
    assert checks["database"].verdict is Verdict.WARN
    assert not (tmp_path / "absent.sqlite3").exists()  # checking must not create it


async def test_an_unknown_model_name_lists_what_is_served(
    scripted_model: ScriptedModel, tmp_path: Path
) -> None:
    settings = Settings(
        inference={"url": scripted_model.url, "model": "qwen-coder-7b"},
        database_url=migrated_sqlite(tmp_path),
    )
    checks = by_name(await run_checks(settings))

    assert checks["model: server"].verdict is Verdict.OK
    assert checks["model: model"].verdict is Verdict.FAIL
    assert "'qwen-coder-7b'" in checks["model: model"].detail
    assert "scripted-coder" in checks["model: model"].detail


async def test_a_model_without_fim_sentinels_fails_the_template_check(tmp_path: Path) -> None:
    with ScriptedModel(model_name="chat-only", vocab=set()) as model:
        settings = Settings(inference={"url": model.url}, database_url=migrated_sqlite(tmp_path))
        checks = by_name(await run_checks(settings))

    assert checks["model: FIM template"].verdict is Verdict.FAIL
    assert "chat-only" in checks["model: FIM template"].detail


def test_the_command_exits_1_on_a_failure_and_prints_one_line_per_check(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server", "doctor"],
        env=server_env(
            ZI_INFERENCE__URL="http://127.0.0.1:9/v1",
            ZI_DATABASE_URL=f"sqlite:///{tmp_path / 'h.sqlite3'}",
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.split()[:1] == ["FAIL"] and "model: server" in line for line in lines)
    assert any(line.split()[:1] == ["skip"] and "redis" in line for line in lines)
    assert "1 check(s) failed" in result.stdout


@pytest.fixture(autouse=True)
def _no_user_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZI_STATE_DIR", str(tmp_path / "state"))


async def test_a_redis_that_may_evict_queued_jobs_is_a_warning(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    import redis

    connection = redis.Redis.from_url(redis_server.url)
    connection.config_set("maxmemory-policy", "allkeys-lru")
    connection.close()
    settings = Settings(
        inference={"url": "http://127.0.0.1:9/v1"},
        redis_url=redis_server.url,
        database_url=migrated_sqlite(tmp_path),
    )
    checks = by_name(await run_checks(settings))

    assert checks["redis"].verdict is Verdict.WARN
    assert "allkeys-lru" in checks["redis"].detail and "noeviction" in checks["redis"].detail
