"""`zi-coder up`: the whole local stack from one command, used the way a user would.

One vLLM start: `up` serves a registry model on a port it picks, starts an RQ
worker because Redis is configured, and records where the model runs. Then
`doctor` passes every check, the language server finds the model through the
registry and gets a completion from the engine, and SIGTERM stops all of it.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from inference.state import group_alive, read_state
from tests.e2e.conftest import StartServer, inline, open_document, server_env, texts
from tests.support.redis_server import RedisServer

READY_TIMEOUT_S = 300
URI = "file:///work/project/notes.py"


@pytest.fixture
def stack(
    tmp_path: Path, tiny_model_dir: Path, vllm_python: Path, redis_server: RedisServer
) -> Iterator[dict[str, str]]:
    """`zi-coder up` running; yields the settings a client needs to use it."""
    models = tmp_path / "models.yaml"  # YAML here; the other tests use TOML
    models.write_text(
        "models:\n"
        "  tiny:\n"
        f"    source: {tiny_model_dir}\n"
        "    served_name: tiny-coder\n"
        "    roles: [completion]\n"
        "    max_model_len: 1024\n"
        "    env: {HF_HUB_OFFLINE: '1'}\n",
        encoding="utf-8",
    )
    settings = {
        "ZI_MODELS_FILE": str(models),
        "ZI_STATE_DIR": str(tmp_path / "state"),
        "ZI_REDIS_URL": redis_server.url,
        "ZI_DATABASE_URL": f"sqlite:///{tmp_path / 'history.sqlite3'}",
    }
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        up = subprocess.Popen(
            [sys.executable, "-m", "server", "up"],
            env=server_env(**settings, ZI_VLLM_PYTHON=str(vllm_python)),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while "Zi Coder is up." not in log.read_text(errors="replace"):
            assert up.poll() is None, f"up exited {up.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"up not ready:\n{log.read_text()}"
            time.sleep(0.5)
        yield settings | {"_log": str(log), "_pid": str(up.pid)}
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)
            try:
                up.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(up.pid, signal.SIGKILL)
                up.wait()


def _doctor(settings: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = server_env(**{k: v for k, v in settings.items() if k.startswith("ZI_")})
    return subprocess.run(
        [sys.executable, "-m", "server", "doctor"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_up_serves_the_registry_for_editors_and_stops_on_sigterm(
    stack: dict[str, str], start_server: StartServer
) -> None:
    banner = await asyncio.to_thread(Path(stack["_log"]).read_text)
    assert "zi-coder serve" in banner  # how to connect an editor
    assert "worker" in banner
    loaded = read_state(Path(stack["ZI_STATE_DIR"]), "tiny")
    assert loaded is not None and loaded.url.startswith("http://127.0.0.1:")

    # doctor: every check passes once the worker has registered in Redis.
    for _ in range(60):
        report = await asyncio.to_thread(_doctor, stack)
        if report.returncode == 0 and "1 alive" in report.stdout:
            break
        await asyncio.sleep(0.5)
    assert report.returncode == 0, report.stdout + report.stderr
    assert "tiny (completion): generation" in report.stdout
    assert "1 alive" in report.stdout

    # The language server follows the registry to the model `up` started.
    client = await start_server(
        ZI_INFERENCE__URL=None,
        ZI_MODELS_FILE=stack["ZI_MODELS_FILE"],
        ZI_STATE_DIR=stack["ZI_STATE_DIR"],
        ZI_INFERENCE__EXTRA_BODY=json.dumps({"min_tokens": 3, "repetition_penalty": 1.8}),
    )
    open_document(client, URI, "import os\n\n# Read the configuration file and \nprint(1)\n")
    result = await asyncio.wait_for(inline(client, URI, 2, 34, invoked=True), 60)
    assert texts(result) and texts(result)[0].strip()

    # SIGTERM: everything `up` started is gone, and so is its record.
    await asyncio.to_thread(_stop_and_check, stack, banner, loaded.pid)


def _stop_and_check(stack: dict[str, str], banner: str, vllm_pid: int) -> None:
    found = re.search(r"RQ worker started \(pid (\d+)\)", banner)
    assert found is not None, banner
    worker = int(found.group(1))
    os.kill(int(stack["_pid"]), signal.SIGTERM)
    # Up to 30 s for the worker's warm shutdown plus 20 s for vLLM's, on a busy machine.
    deadline = time.monotonic() + 120
    log = ""
    while time.monotonic() < deadline:
        log = Path(stack["_log"]).read_text(errors="replace")
        if "tiny: stopped" in log and not group_alive(worker) and not group_alive(vllm_pid):
            break
        time.sleep(0.2)
    assert not group_alive(vllm_pid), f"vLLM outlived `up`:\n{log[-3000:]}"
    assert not group_alive(worker), f"the worker outlived `up`:\n{log[-3000:]}"
    assert read_state(Path(stack["ZI_STATE_DIR"]), "tiny") is None, log[-3000:]
    assert "tiny: stopped" in log, log[-3000:]
