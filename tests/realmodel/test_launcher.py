"""`zi-coder inference serve` and `zi-coder models load|status|unload` with real vLLM.

Each vLLM start costs 30-90 s on two cores, so each test starts one server and
checks everything that server can show: the ready line, the served name, the
context length fitted to the model, prefix caching (the engine's config line
and a cache hit in /metrics), and a clean stop of the whole process group.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from inference.probes import free_port
from inference.state import group_alive

ZI_CODER = Path(sys.executable).with_name("zi-coder")  # what `uv run zi-coder` runs
START_TIMEOUT_S = 400
NAME = "tiny-launched"


def cli_env(vllm_python: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZI_")}
    env.update(
        HF_HUB_OFFLINE="1",  # no hub here: the tests load local directories only
        TRANSFORMERS_OFFLINE="1",
        ZI_VLLM_PYTHON=str(vllm_python),
        **extra,
    )
    return env


def read_until_ready(proc: subprocess.Popen[str], timeout_s: float) -> tuple[list[str], int]:
    """stderr lines up to the ready line, and vLLM's pid from the starting line."""
    assert proc.stderr is not None
    lines: list[str] = []
    pid = 0
    deadline = time.monotonic() + timeout_s
    for line in proc.stderr:
        lines.append(line)
        if match := re.search(r"starting vLLM \(pid (\d+)\)", line):
            pid = int(match.group(1))
        if line.startswith("ready: ") or time.monotonic() > deadline:
            break
    return lines, pid


def metric(metrics: str, name: str) -> float:
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith(f"{name}{{") or line.startswith(f"{name} ")
    ]
    return sum(values)


@pytest.mark.timeout(600)
def test_inference_serve_until_sigterm(
    vllm_python: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    log_file = tmp_path / "vllm.log"
    command = [str(ZI_CODER), "inference", "serve", "--model", str(tiny_model_dir)]
    command += ["--served-model-name", NAME, "--port", str(port), "--log-file", str(log_file)]
    command += ["--timeout", str(START_TIMEOUT_S)]
    started = time.monotonic()
    proc = subprocess.Popen(
        command, stderr=subprocess.PIPE, text=True, env=cli_env(vllm_python), cwd=tmp_path
    )
    try:
        lines, pid = read_until_ready(proc, START_TIMEOUT_S)
        ready_s = time.monotonic() - started
        assert lines[-1] == f"ready: http://127.0.0.1:{port}/v1 (model {NAME})\n", (
            "".join(lines) + log_file.read_text(errors="replace")[-3000:]
        )
        print(f"inference serve ready in {ready_s:.1f} s")
        assert pid > 0
        assert any(f"log: {log_file}" in line for line in lines)
        # The model has 1024 positions: the default 2048 is fitted, with a note.
        assert any("supports 1024 positions" in line for line in lines)

        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, trust_env=False) as http:
            served = http.get("/v1/models").json()["data"]
            assert [(m["id"], m["max_model_len"]) for m in served] == [(NAME, 1024)]

            log = log_file.read_text(errors="replace")
            assert "enable_prefix_caching=True" in log  # the engine's effective config
            assert "--enable-prefix-caching" in log.splitlines()[0]
            prompt = _prompt_of_about(http, 600)
            body = {"model": NAME, "prompt": prompt, "max_tokens": 1, "temperature": 0}
            for _ in range(2):
                assert http.post("/v1/completions", json=body).status_code == 200
            hits = 0.0
            for _ in range(20):  # the counters are updated by the engine's stats loop
                hits = metric(http.get("/metrics").text, "vllm:prefix_cache_hits_total")
                if hits > 0:
                    break
                time.sleep(0.5)
            assert hits > 0, "the repeated prompt did not hit the prefix cache"

        stopping = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        print(f"stopped in {time.monotonic() - stopping:.1f} s")
        assert not group_alive(pid)  # the engine core and workers went too
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _prompt_of_about(http: httpx.Client, tokens: int) -> str:
    """Python source of at least ``tokens`` tokens (longer than a KV block or two)."""
    source = Path(json.__file__).read_text(encoding="utf-8")
    text = source[:1000]
    while True:
        count = http.post("/tokenize", json={"model": NAME, "prompt": text}).json()["count"]
        if count >= tokens or len(text) >= len(source):
            return text
        text = source[: len(text) + 500]


@pytest.mark.timeout(300)
def test_a_model_that_cannot_load_is_one_clear_error(vllm_python: Path, tmp_path: Path) -> None:
    model = tmp_path / "broken-model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "qwen2", "hidden_size": ')
    command = [str(ZI_CODER), "inference", "serve", "--model", str(model)]
    command += ["--port", str(free_port()), "--log-file", str(tmp_path / "vllm.log")]

    done = subprocess.run(
        command, capture_output=True, text=True, env=cli_env(vllm_python), timeout=280
    )

    assert done.returncode == 1
    assert "vLLM exited with code 1 before it was ready" in done.stderr
    assert f"full log: {tmp_path / 'vllm.log'}" in done.stderr
    assert "cause: OSError: It looks like the config file at" in done.stderr, done.stderr
    assert "is not a valid JSON file" in done.stderr


@pytest.mark.timeout(600)
def test_models_load_status_unload(vllm_python: Path, tiny_model_dir: Path, tmp_path: Path) -> None:
    registry = tmp_path / "models.toml"
    registry.write_text(
        f'[models.tiny]\nsource = "{tiny_model_dir}"\nserved_name = "{NAME}"\n'
        'roles = ["completion"]\nmax_model_len = 1024\n',
        encoding="utf-8",
    )
    env = cli_env(vllm_python, ZI_STATE_DIR=str(tmp_path / "state"), ZI_MODELS_FILE=str(registry))

    def zi(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ZI_CODER), "models", *args], capture_output=True, text=True, env=env, timeout=500
        )

    started = time.monotonic()
    load = zi("load", "tiny", "--timeout", str(START_TIMEOUT_S))
    print(f"models load returned in {time.monotonic() - started:.1f} s")
    assert load.returncode == 0, load.stderr
    match = re.fullmatch(r"loaded tiny: (http://127\.0\.0\.1:\d+/v1) \(pid (\d+)\)\n", load.stdout)
    assert match, load.stdout
    url, pid = match.group(1), int(match.group(2))
    try:
        status = zi("status")
        assert status.returncode == 0
        row = status.stdout.splitlines()[1].split()
        assert row == ["tiny", "loaded", str(pid), url, "healthy", NAME]

        again = zi("load", "tiny")
        assert again.returncode == 0
        assert "tiny is already loaded" in again.stderr

        unload = zi("unload", "tiny")
        assert unload.returncode == 0, unload.stderr
        assert unload.stdout == f"unloaded tiny (pid {pid})\n"
        assert not group_alive(pid)

        status = zi("status")
        assert status.stdout.splitlines()[1].split() == [
            "tiny",
            "not",
            "loaded",
            "-",
            "-",
            "-",
            "-",
        ]
    finally:
        if group_alive(pid):
            os.killpg(pid, signal.SIGKILL)
