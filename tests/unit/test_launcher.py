"""The vLLM launcher: command lines, environment, errors before spawning, process groups.

Spawning is exercised with a stand-in ``vllm`` package (``FAKE_VLLM``) that
behaves like vLLM's API server at the process level (binds the port, answers
/health and /v1/models, has a child in its process group, prints vLLM's error
lines); tests/realmodel/test_launcher.py runs the same paths with real vLLM.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inference import launcher, probes
from inference.launcher import (
    LaunchError,
    ModelLoadFailed,
    PortInUse,
    ServeConfig,
    StartTimeout,
    VllmNotInstalled,
    VllmServer,
    cause_line,
    command_for,
    find_vllm_python,
    fit_max_model_len,
    server_env,
)
from inference.probes import free_port
from inference.registry import ModelSpec, Role
from inference.state import (
    LoadedModel,
    group_alive,
    list_loaded,
    read_state,
    remove_state,
    state_path,
    stop_process_group,
    write_state,
)

PY = Path("/venv/bin/python")

FAKE_VLLM = r'''
"""Stand-in for vllm.entrypoints.openai.api_server; FAKE_VLLM_MODE picks the behaviour."""
import http.server, json, os, signal, subprocess, sys, time

mode = os.environ.get("FAKE_VLLM_MODE", "serve")
args = sys.argv[1:]
value = lambda flag: args[args.index(flag) + 1]
print("non-default args:", " ".join(args), flush=True)
if mode == "fail":
    print("(Worker pid=1) ERROR 11-21 13:43:55 [x.py:1] RuntimeError: Cannot find any model "
          "weights with `/m`", flush=True)
    print("RuntimeError: Engine core initialization failed. See root cause above.", flush=True)
    sys.exit(1)
if mode == "port":
    print("OSError: [Errno 98] Address already in use", flush=True)
    sys.exit(1)
if mode == "hang":
    time.sleep(600)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
if mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *_: (child.terminate(), child.wait(), sys.exit(0)))
name = value("--served-model-name")

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b""
        if self.path == "/v1/models":
            body = json.dumps({"data": [{"id": name}]}).encode()
        elif self.path != "/health":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

http.server.HTTPServer((value("--host"), int(value("--port"))), Handler).serve_forever()
'''


def make_fake_vllm(directory: Path) -> Path:
    """An executable "Python with vLLM": this interpreter plus the stand-in package."""
    package = directory / "site" / "vllm" / "entrypoints" / "openai"
    package.mkdir(parents=True)
    for level in (package, package.parent, package.parent.parent):
        (level / "__init__.py").write_text("")
    (package / "api_server.py").write_text(FAKE_VLLM)
    python = directory / "python"
    python.write_text(
        f'#!/bin/sh\nPYTHONPATH="{directory / "site"}" exec "{sys.executable}" "$@"\n'
    )
    python.chmod(0o755)
    return python


@pytest.fixture
def fake_python(tmp_path: Path) -> Path:
    return make_fake_vllm(tmp_path / "fake-vllm")


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    path = tmp_path / "model"
    path.mkdir()
    return path


def config(model_dir: Path, python: Path, tmp_path: Path, **changes: object) -> ServeConfig:
    base = ServeConfig(
        source=str(model_dir),
        served_name="tiny",
        port=free_port(),
        log_file=tmp_path / "vllm.log",
        python=python,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


# -- command lines and environment (pure) --------------------------------------------


def test_command_with_completion_defaults() -> None:
    command = command_for(ServeConfig(source="/m", served_name="tiny"), PY)

    assert command == [
        "/venv/bin/python",
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        "/m",
        "--served-model-name",
        "tiny",
        "--host",
        "127.0.0.1",
        "--port",
        "8000",
        "--max-model-len",
        "2048",
        "--enable-prefix-caching",
        "--disable-uvicorn-access-log",
        "--structured-outputs-config",
        '{"backend": "xgrammar", "disable_any_whitespace": true}',
    ]


def test_structured_output_is_compact_json_by_default() -> None:
    # The review's JSON must not be padded with whitespace until max_tokens (vLLM #38696);
    # vLLM refuses disable_any_whitespace unless the backend is xgrammar or guidance.
    command = command_for(ServeConfig(source="/m", served_name="tiny"), PY, cpu=True)

    flag = command.index("--structured-outputs-config")
    assert json.loads(command[flag + 1]) == {"backend": "xgrammar", "disable_any_whitespace": True}
    assert command.count("--structured-outputs-config") == 1


@pytest.mark.parametrize(
    "extra_args",
    [
        ("--structured-outputs-config", '{"backend": "guidance"}'),
        ('--structured-outputs-config={"backend": "auto"}',),
        # vLLM also takes a config's keys one by one.
        ("--structured-outputs-config.backend", "guidance"),
        (
            "--structured-outputs-config.backend",
            "xgrammar",
            "--structured-outputs-config.disable_any_whitespace",
            "false",
        ),
    ],
)
def test_the_users_structured_outputs_config_replaces_ours(extra_args: tuple[str, ...]) -> None:
    config = ServeConfig(source="/m", served_name="tiny", extra_args=extra_args)
    command = command_for(config, PY)

    assert launcher.COMPACT_JSON not in command
    assert "disable_any_whitespace" not in " ".join(command[: -len(extra_args)])
    assert command[-len(extra_args) :] == list(extra_args)


@pytest.mark.parametrize(
    ("changes", "cpu", "present", "absent"),
    [
        (
            {"prefix_caching": False},
            False,
            ["--no-enable-prefix-caching"],
            ["--enable-prefix-caching"],
        ),
        ({}, True, ["--enforce-eager", "--dtype float32"], []),
        ({"dtype": "bfloat16"}, True, ["--dtype bfloat16", "--enforce-eager"], ["float32"]),
        ({"dtype": "half"}, False, ["--dtype half"], ["--enforce-eager"]),
        ({}, False, [], ["--dtype", "--enforce-eager"]),
        # Flags in the extra arguments are the user's: ours are not added twice.
        ({"extra_args": ("--enforce-eager",)}, True, ["--dtype float32"], []),
        ({"extra_args": ("--dtype=half",)}, True, ["--dtype=half"], ["float32"]),
        (
            {"extra_args": ("--no-enforce-eager",)},
            True,
            ["--no-enforce-eager"],
            ["--enforce-eager"],
        ),
        (
            {"enable_log_requests": True},
            False,
            ["--enable-log-requests"],
            ["--disable-uvicorn-access-log"],
        ),
        (
            {"host": "::1", "port": 9000, "max_model_len": 512},
            False,
            ["--host ::1 --port 9000"],
            [],
        ),
    ],
)
def test_command_flags(
    changes: dict[str, object], cpu: bool, present: list[str], absent: list[str]
) -> None:
    config = ServeConfig(source="/m", served_name="tiny", **changes)  # type: ignore[arg-type]
    command = " ".join(command_for(config, PY, cpu=cpu))

    for flag in present:
        assert flag in command
    for flag in absent:
        assert flag not in command.split(" ")
    if cpu and not config.extra_args:
        assert command.split(" ").count("--enforce-eager") == 1
    assert command.endswith(" ".join(config.extra_args))


def test_extra_args_come_last_so_they_win() -> None:
    config = ServeConfig(source="/m", served_name="t", extra_args=("--max-model-len", "64"))

    assert command_for(config, PY)[-2:] == ["--max-model-len", "64"]


def test_server_env_on_cpu(tmp_path: Path) -> None:
    (tmp_path / "pyvenv.cfg").write_text("home = /usr/bin\n")
    python = tmp_path / "bin" / "python"
    base = {"PATH": "/usr/bin", "PYTHONPATH": "/ours", "VIRTUAL_ENV": "/ours/.venv", "HOME": "/h"}

    env = server_env(ServeConfig("/m", "t"), python, cpu=True, base=base)

    assert env["VLLM_CPU_KVCACHE_SPACE"] == "1"
    assert "PYTHONPATH" not in env  # our venv's paths must not leak into vLLM's Python
    assert env["VIRTUAL_ENV"] == str(tmp_path)
    assert env["PATH"] == f"{tmp_path / 'bin'}:/usr/bin"
    assert env["VLLM_NO_USAGE_STATS"] == "1"
    assert env["HOME"] == "/h"
    assert "HF_HUB_OFFLINE" not in env  # downloads stay the user's choice


def test_server_env_respects_settings() -> None:
    base = {"VLLM_CPU_KVCACHE_SPACE": "4"}
    config = ServeConfig("/m", "t", env={"HF_HUB_OFFLINE": "1"})

    assert server_env(config, PY, cpu=True, base=base)["VLLM_CPU_KVCACHE_SPACE"] == "4"
    assert "VLLM_CPU_KVCACHE_SPACE" not in server_env(config, PY, cpu=False, base={})
    assert server_env(config, PY, cpu=False, base={})["HF_HUB_OFFLINE"] == "1"
    set_in_config = ServeConfig("/m", "t", env={"VLLM_CPU_KVCACHE_SPACE": "8"})
    assert server_env(set_in_config, PY, cpu=True, base=base)["VLLM_CPU_KVCACHE_SPACE"] == "8"


def test_from_spec(tmp_path: Path) -> None:
    spec = ModelSpec(
        name="coder",
        served_name="c",
        source="~/m",
        roles=[Role.COMPLETION],
        max_model_len=1024,
        dtype="half",
        vllm_args=["--seed", "1"],
        env={"A": "b"},
    )
    made = ServeConfig.from_spec(spec, port=9001, log_file=tmp_path / "l", python=PY)

    assert made == ServeConfig(
        source="~/m",
        served_name="c",
        port=9001,
        max_model_len=1024,
        dtype="half",
        extra_args=("--seed", "1"),
        env={"A": "b"},
        log_file=tmp_path / "l",
        python=PY,
    )
    assert made.url == "http://127.0.0.1:9001/v1"
    remote = ModelSpec(name="r", served_name="r", url="http://h:1/v1", roles=[Role.CHAT])
    with pytest.raises(LaunchError, match="served elsewhere"):
        ServeConfig.from_spec(remote, port=1, log_file=tmp_path / "l", python=None)


@pytest.mark.parametrize(
    ("model_config", "env", "expected"),
    [
        ('{"max_position_embeddings": 1024}', {}, 1024),
        ('{"n_positions": 512}', {}, 512),
        ('{"max_position_embeddings": 32768}', {}, 2048),
        ('{"max_position_embeddings": 1024, "rope_scaling": {"factor": 4}}', {}, 2048),
        ('{"max_position_embeddings": 1024}', {"VLLM_ALLOW_LONG_MAX_MODEL_LEN": "1"}, 2048),
        ("not json", {}, 2048),
    ],
)
def test_max_model_len_fits_the_model(
    model_dir: Path, model_config: str, env: dict[str, str], expected: int
) -> None:
    (model_dir / "config.json").write_text(model_config)
    fitted = fit_max_model_len(ServeConfig(str(model_dir), "t", env=env))

    assert fitted.max_model_len == expected


# -- finding vLLM ---------------------------------------------------------------------


def test_a_configured_python_without_vllm(tmp_path: Path) -> None:
    with pytest.raises(VllmNotInstalled) as error:
        find_vllm_python(Path(sys.executable))  # the project venv has no vLLM
    message = str(error.value)
    assert f"vLLM is not installed for {sys.executable}" in message
    for hint in ("zi-coder[gpu]", "zi-coder[cpu]", "make setup", "ZI_VLLM_PYTHON"):
        assert hint in message

    with pytest.raises(VllmNotInstalled, match="does not exist"):
        find_vllm_python(tmp_path / "nope" / "python")


def test_no_vllm_anywhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(launcher, "DEFAULT_VLLM_VENV_PYTHON", tmp_path / "missing")

    with pytest.raises(
        VllmNotInstalled, match=r"^vLLM is not installed: install `zi-coder\[gpu\]`"
    ):
        find_vllm_python()


def test_configured_python_with_vllm(fake_python: Path) -> None:
    assert find_vllm_python(fake_python) == fake_python


# -- checks before spawning -----------------------------------------------------------


def test_a_taken_port_is_refused_without_spawning(
    fake_python: Path, model_dir: Path, tmp_path: Path
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = VllmServer(config(model_dir, fake_python, tmp_path, port=port))

        with pytest.raises(PortInUse, match=f"port {port} on 127.0.0.1 is already in use"):
            server.start()

    assert server.pid is None
    assert not (tmp_path / "vllm.log").exists()


def test_a_missing_model_directory_is_refused_without_spawning(
    fake_python: Path, tmp_path: Path
) -> None:
    server = VllmServer(config(tmp_path / "no-such-model", fake_python, tmp_path))

    with pytest.raises(LaunchError, match=r"model directory .*no-such-model does not exist"):
        server.start()
    assert server.pid is None


def test_a_hugging_face_id_is_passed_as_is(fake_python: Path, tmp_path: Path) -> None:
    assert launcher.resolve_source("Qwen/Qwen2.5-Coder-1.5B") == "Qwen/Qwen2.5-Coder-1.5B"
    assert launcher.resolve_source(str(tmp_path)) == str(tmp_path.resolve())
    with pytest.raises(LaunchError):
        launcher.resolve_source("~/definitely-not-here-zi")


# -- running (with the stand-in) ------------------------------------------------------


def test_start_ready_stop_takes_the_whole_group(
    fake_python: Path, model_dir: Path, tmp_path: Path
) -> None:
    with VllmServer(config(model_dir, fake_python, tmp_path)) as server:
        assert server.alive()
        assert server.pid is not None
        assert os.getpgid(server.pid) == server.pid  # its own group, away from ours
        assert len(_group(server.pid)) >= 2  # with the "engine core" child
        assert probes.http_get(f"{server.url}/models")[1] == b'{"data": [{"id": "tiny"}]}'
        pid = server.pid

    assert not group_alive(pid)
    log = (tmp_path / "vllm.log").read_text()
    assert log.startswith("# zi-coder: ")
    assert "--enable-prefix-caching" in log


def test_sigkill_after_the_grace_period(
    fake_python: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_MODE", "ignore-term")
    server = VllmServer(config(model_dir, fake_python, tmp_path))
    server.start()
    server.wait_ready(30)
    assert server.pid is not None
    started = time.monotonic()

    server.stop(grace_s=1)

    assert 1 <= time.monotonic() - started < 10
    assert not group_alive(server.pid)
    assert server.returncode == -signal.SIGKILL


@pytest.mark.parametrize(
    ("mode", "error", "expected"),
    [
        ("fail", ModelLoadFailed, "cause: RuntimeError: Cannot find any model weights with `/m`"),
        ("port", PortInUse, "already in use (vLLM could not bind it)"),
    ],
)
def test_an_early_exit_explains_itself(
    fake_python: Path,
    model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mode: str,
    error: type[LaunchError],
    expected: str,
) -> None:
    monkeypatch.setenv("FAKE_VLLM_MODE", mode)
    server = VllmServer(config(model_dir, fake_python, tmp_path))
    server.start()

    with pytest.raises(error) as raised:
        server.wait_ready(30)

    assert expected in str(raised.value)
    assert str(tmp_path / "vllm.log") in str(raised.value)


def test_start_timeout(
    fake_python: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_MODE", "hang")
    server = VllmServer(config(model_dir, fake_python, tmp_path))
    server.start()
    try:
        with pytest.raises(StartTimeout, match=r"not become healthy within 1 s: allow more time"):
            server.wait_ready(1)
    finally:
        server.stop()
    assert not server.alive()


def _group(pgid: int) -> list[int]:
    """The live members of process group ``pgid``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if fields[2] == str(pgid) and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


# -- vLLM's log: the cause line -------------------------------------------------------

ULIMIT = (
    "(APIServer pid=5) WARNING 11-21 13:42:15 [system_utils.py:255] Found ulimit of 20000 ... "
    "This can cause fd limit errors like `OSError: [Errno 24] Too many open files`."
)


@pytest.mark.parametrize(
    ("log", "expected"),
    [
        (
            f"{ULIMIT}\n  File 'x.py', line 1\n"
            "(Worker pid=9) ERROR 11-21 13:43:55 [multiproc_executor.py:953] RuntimeError: "
            "Cannot find any model weights with `/tmp/m`\n"
            "(EngineCore pid=8) ERROR 11-21 13:43:58 [core.py:1510] Exception: WorkerProc "
            "initialization failed due to an exception in a background process. See stack "
            "trace for root cause.\n"
            "RuntimeError: Engine core initialization failed. See root cause above. Failed "
            "core proc(s): {}\n",
            "RuntimeError: Cannot find any model weights with `/tmp/m`",
        ),
        (
            "json.decoder.JSONDecodeError: Expecting value: line 1 column 31 (char 30)\n"
            "During handling of the above exception, another exception occurred:\n"
            "OSError: It looks like the config file at '/m/c.json' is not a valid JSON file.\n",
            "OSError: It looks like the config file at '/m/c.json' is not a valid JSON file.",
        ),
        (
            "pydantic_core._pydantic_core.ValidationError: 1 validation error for ModelConfig\n"
            "  Value error, User-specified max_model_len (2048) is greater than the derived\n"
            "    For further information visit https://errors.pydantic.dev/2.14/v/value_error\n",
            "pydantic_core._pydantic_core.ValidationError: 1 validation error for ModelConfig: "
            "Value error, User-specified max_model_len (2048) is greater than the derived",
        ),
        (
            f"{ULIMIT}\n(APIServer pid=5) ERROR 11-21 13:42:16 [x.py:1] something broke\nbye\n",
            "(APIServer pid=5) ERROR 11-21 13:42:16 [x.py:1] something broke",
        ),
        ("INFO starting\nKilled\n", "Killed"),
        ("", "(the log is empty)"),
    ],
)
def test_cause_line(log: str, expected: str) -> None:
    assert cause_line(log) == expected


def test_cause_line_is_bounded() -> None:
    assert len(cause_line("ValueError: " + "x" * 1000, limit=100)) == 100


# -- state files ----------------------------------------------------------------------


def loaded(name: str, pid: int, tmp_path: Path) -> LoadedModel:
    return LoadedModel(
        name=name, pid=pid, url="http://127.0.0.1:1/v1", port=1, log_file=tmp_path / "l"
    )


def test_state_round_trip(tmp_path: Path) -> None:
    state = tmp_path / "state"
    model = loaded("org/coder", os.getpid(), tmp_path)

    path = write_state(state, model)

    assert path == state_path(state, "org/coder") == state / "org_coder.json"
    assert read_state(state, "org/coder") == model
    assert list_loaded(state) == [model]
    assert remove_state(state, "org/coder")
    assert read_state(state, "org/coder") is None
    assert not remove_state(state, "org/coder")
    assert list_loaded(tmp_path / "nowhere") == []


def test_a_stale_pid_reads_as_not_loaded(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    write_state(tmp_path, loaded("coder", gone.pid, tmp_path))

    assert read_state(tmp_path, "coder") is None
    assert not state_path(tmp_path, "coder").exists()  # forgotten


def test_a_corrupt_state_file_reads_as_not_loaded(tmp_path: Path) -> None:
    state_path(tmp_path, "coder").write_text("{not json")

    assert read_state(tmp_path, "coder") is None
    assert list_loaded(tmp_path) == []


def test_stop_process_group_by_pid(tmp_path: Path) -> None:
    proc = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60"], start_new_session=True)
    time.sleep(0.2)
    assert len(_group(proc.pid)) >= 2

    # By pid alone, as `models unload` does (it reaps the leader if it is its child).
    assert stop_process_group(proc.pid, grace_s=5)

    assert not group_alive(proc.pid)
    assert proc.poll() is not None
