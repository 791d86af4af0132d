"""The CLI over the launcher: `models list|status|load|unload` and `inference serve`.

vLLM's part is played by the stand-in package of test_launcher.py (it binds the
port, answers /health and /v1/models, has a child in its process group); the
real engine goes through the same commands in tests/realmodel/test_launcher.py.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inference.probes import free_port, http_get
from inference.state import group_alive, read_state, state_path
from server.cli import main
from tests.unit.test_launcher import make_fake_vllm

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.upper().startswith("ZI_") or name == "FAKE_VLLM_MODE":
            monkeypatch.delenv(name)
    monkeypatch.setenv("ZI_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture
def fake_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    python = make_fake_vllm(tmp_path / "fake-vllm")
    monkeypatch.setenv("ZI_VLLM_PYTHON", str(python))
    return python


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    (tmp_path / "weights").mkdir()
    path = tmp_path / "models.toml"
    path.write_text(
        f"""
[models.coder]
source = "{tmp_path / "weights"}"
served_name = "coder-served"
roles = ["completion"]
languages = ["python", "rust"]
fim_template = "qwen"
max_model_len = 1024

[models.far-chat]
url = "http://127.0.0.1:{free_port()}/v1"
roles = ["chat"]
""",
        encoding="utf-8",
    )
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def rows(out: str) -> dict[str, list[str]]:
    """A printed table by its first column (cells split on runs of 2+ spaces)."""
    import re

    lines = out.strip().splitlines()
    return {cells[0]: cells for cells in (re.split(r"\s{2,}", line) for line in lines)}


def test_list(capsys: pytest.CaptureFixture[str], registry: Path, tmp_path: Path) -> None:
    code, out, err = run(capsys, "models", "list", "--models", str(registry))

    assert code == 0
    assert f"models from {registry}" in err
    table = rows(out)
    assert table["NAME"] == ["NAME", "ROLES", "SOURCE/URL", "LANGUAGES", "FIM", "MAX_LEN"]
    assert table["coder"] == [
        "coder",
        "completion",
        str(tmp_path / "weights"),
        "python,rust",
        "qwen",
        "1024",
    ]
    assert table["far-chat"][1:2] == ["chat"]
    assert table["far-chat"][3:] == ["any", "auto", "2048"]


def test_the_models_file_setting_is_the_default(
    capsys: pytest.CaptureFixture[str], registry: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZI_MODELS_FILE", str(registry))

    code, out, _ = run(capsys, "models", "list")

    assert code == 0
    assert "far-chat" in rows(out)


def test_a_broken_registry_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  coder:\n    source: x\n    roles: [autocomplete]\n")

    for command in ("list", "status"):
        code, _, err = run(capsys, "models", command, "--models", str(bad))
        assert code == 1
        assert err.startswith(f"zi-coder: {bad}: model 'coder': roles.0: Input should be")


def test_load_status_unload(
    capsys: pytest.CaptureFixture[str], registry: Path, fake_python: Path, tmp_path: Path
) -> None:
    models = ("--models", str(registry))
    code, out, err = run(capsys, "models", "load", "coder", *models)

    assert code == 0, err
    loaded = read_state(tmp_path / "state", "coder")
    assert loaded is not None
    assert out == f"loaded coder: {loaded.url} (pid {loaded.pid})\n"
    assert f"log: {loaded.log_file}" in err
    assert loaded.log_file == tmp_path / "state" / "logs" / "coder.log"
    assert os.getsid(loaded.pid) == loaded.pid  # detached: its own session outlives ours

    code, out, _ = run(capsys, "models", "status", *models)
    assert code == 0
    table = rows(out)
    pid = str(loaded.pid)
    assert table["coder"] == ["coder", "loaded", pid, loaded.url, "healthy", "coder-served"]
    assert table["far-chat"][1] == "remote"
    assert table["far-chat"][4] == "unreachable"

    code, _, err = run(capsys, "models", "load", "coder", *models)
    assert code == 0
    assert f"coder is already loaded: {loaded.url} (pid {loaded.pid})" in err

    code, out, _ = run(capsys, "models", "unload", "coder", *models)
    assert code == 0
    assert out == f"unloaded coder (pid {loaded.pid})\n"
    assert not group_alive(loaded.pid)
    assert not state_path(tmp_path / "state", "coder").exists()

    code, out, _ = run(capsys, "models", "status", *models)
    assert rows(out)["coder"] == ["coder", "not loaded", "-", "-", "-", "-"]
    code, _, err = run(capsys, "models", "unload", "coder", *models)
    assert code == 1
    assert "zi-coder: coder is not loaded" in err


def test_a_failed_load_leaves_no_state(
    capsys: pytest.CaptureFixture[str],
    registry: Path,
    fake_python: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FAKE_VLLM_MODE", "fail")

    code, _, err = run(capsys, "models", "load", "coder", "--models", str(registry))

    assert code == 1
    assert "vLLM exited with code 1 before it was ready" in err
    assert "cause: RuntimeError: Cannot find any model weights" in err
    assert not state_path(tmp_path / "state", "coder").exists()


def test_remote_and_unknown_models(capsys: pytest.CaptureFixture[str], registry: Path) -> None:
    models = ("--models", str(registry))

    code, _, err = run(capsys, "models", "load", "far-chat", *models)
    assert code == 1
    assert "far-chat is a remote model served at http://127.0.0.1:" in err
    assert "nothing to load here" in err

    code, _, err = run(capsys, "models", "unload", "far-chat", *models)
    assert code == 1
    assert "not ours to stop" in err

    code, _, err = run(capsys, "models", "load", "gpt", *models)
    assert code == 1
    assert "no model 'gpt' in" in err
    assert "(models: coder, far-chat)" in err


# -- inference serve ------------------------------------------------------------------


def test_serve_without_vllm(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    monkeypatch.setenv("ZI_VLLM_PYTHON", python)

    code, _, err = run(capsys, "inference", "serve", "--model", str(tmp_path))

    assert code == 1
    assert err.count("\n") == 1
    assert f"vLLM is not installed for {python}: install `zi-coder[gpu]`" in err


def test_serve_refusals_before_spawning(
    capsys: pytest.CaptureFixture[str], fake_python: Path, tmp_path: Path
) -> None:
    log = tmp_path / "vllm.log"
    serve = ("inference", "serve", "--log-file", str(log))

    code, _, err = run(capsys, *serve, "--model", str(tmp_path / "missing"))
    assert (code, err.count("\n")) == (1, 1)
    assert "model directory" in err and "missing does not exist" in err

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        code, _, err = run(capsys, *serve, "--model", str(tmp_path), "--port", port)
    assert code == 1
    assert f"port {port} on 127.0.0.1 is already in use" in err

    code, _, err = run(capsys, *serve, "--model", str(tmp_path), "--host", "0.0.0.0")
    assert code == 2
    assert "--allow-remote" in err
    assert not log.exists()  # nothing was started


def serve_in_background(
    fake_python: Path, tmp_path: Path, *extra: str
) -> tuple[subprocess.Popen[str], int, str]:
    """`zi-coder inference serve` as a subprocess; returns it, vLLM's pid and the ready line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZI_")}
    command = [sys.executable, "-m", "server", "inference", "serve", "--model", str(tmp_path)]
    command += ["--port", str(free_port()), "--vllm-python", str(fake_python)]
    command += ["--log-file", str(tmp_path / "vllm.log"), *extra]
    proc = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    assert proc.stderr is not None
    pid = 0
    for line in proc.stderr:
        if "starting vLLM (pid " in line:
            pid = int(line.split("(pid ")[1].split(")")[0])
        if line.startswith("ready: "):
            return proc, pid, line
    proc.wait()
    pytest.fail(f"no ready line (exit {proc.returncode})")


def test_serve_in_the_foreground_until_sigterm(fake_python: Path, tmp_path: Path) -> None:
    proc, pid, ready = serve_in_background(fake_python, tmp_path, "--", "--seed", "3")

    name = tmp_path.name
    assert ready.startswith("ready: http://127.0.0.1:")
    assert ready.endswith(f"/v1 (model {name})\n")
    url = ready.split()[1]
    assert http_get(f"{url}/models")[1] == f'{{"data": [{{"id": "{name}"}}]}}'.encode()
    header = (tmp_path / "vllm.log").read_text().splitlines()[0]
    assert "--max-model-len 2048 --enable-prefix-caching" in header
    assert header.endswith(" --seed 3")  # after `--`: passed through, last

    proc.send_signal(signal.SIGTERM)

    assert proc.wait(30) == 0
    assert not group_alive(pid)


def test_serve_reports_a_server_that_dies(fake_python: Path, tmp_path: Path) -> None:
    proc, pid, _ = serve_in_background(fake_python, tmp_path)

    os.killpg(pid, signal.SIGKILL)

    assert proc.wait(30) == 1
    assert proc.stderr is not None
    assert "vLLM exited with code -9 while serving" in proc.stderr.read()


def test_serve_stops_vllm_on_ctrl_c(fake_python: Path, tmp_path: Path) -> None:
    proc, pid, _ = serve_in_background(fake_python, tmp_path)
    time.sleep(0.1)

    proc.send_signal(signal.SIGINT)

    assert proc.wait(30) == 0
    assert not group_alive(pid)


def test_serve_defaults_to_the_registry_completion_model(registry: Path, tmp_path: Path) -> None:
    from server.cli import build_parser
    from server.commands.inference import serve_config
    from server.settings import Settings

    registry.write_text(registry.read_text() + '\n[models.coder.env]\nA = "b"\n', encoding="utf-8")
    registry.write_text(
        registry.read_text().replace(
            "max_model_len = 1024", 'max_model_len = 1024\nvllm_args = ["--seed", "1"]\nport = 9009'
        ),
        encoding="utf-8",
    )
    args = build_parser().parse_args(["inference", "serve", "--models", str(registry)])
    args.passthrough = ["--swap-space", "1"]

    config = serve_config(args, Settings())

    assert config.source == str(tmp_path / "weights")
    assert config.served_name == "coder-served"
    assert (config.port, config.max_model_len, config.prefix_caching) == (9009, 1024, True)
    assert config.extra_args == ("--seed", "1", "--swap-space", "1")
    assert config.env == {"A": "b"}
    assert config.log_file is not None and config.log_file.name == "vllm-coder-served-9009.log"

    flags = ["--model", "org/Coder-1B", "--no-prefix-caching", "--max-model-len", "512"]
    args = build_parser().parse_args(["inference", "serve", *flags])
    args.passthrough = []
    config = serve_config(args, Settings())
    assert (config.source, config.served_name, config.port) == (
        "org/Coder-1B",
        "org/Coder-1B",
        8000,
    )
    assert (config.max_model_len, config.prefix_caching) == (512, False)
