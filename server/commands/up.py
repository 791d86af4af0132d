"""``zi-coder up``: the local stack in one command, in the foreground.

Serves every model of the registry that has a role (each in its own vLLM
process, started together), adds an RQ worker when ``ZI_REDIS_URL`` is set, and
prints how to connect an editor. A model that is already served where the
registry says (say, by ``zi-coder models load``) is used as it is, not started
twice. Ctrl-C or SIGTERM stops what ``up`` started; if a model server dies, the
rest is stopped and the cause is printed.

With no ``ZI_MODELS_FILE`` the embedded default registry applies: the tiny
demo model that ``make setup`` builds, served on vLLM's default port.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from inference.launcher import VllmServer
    from inference.registry import ModelSpec, Registry
    from server.settings import Settings

_READY_TIMEOUT_S = 600.0
_POLL_S = 0.5


@dataclass
class _Running:
    spec: ModelSpec
    url: str
    server: VllmServer | None  # None: already served by someone else, not ours to stop


def run(args: argparse.Namespace) -> int:
    from inference.launcher import LaunchError
    from inference.registry import RegistryError, load_registry
    from server.settings import Settings

    settings = Settings()
    models_file = Path(args.models) if getattr(args, "models", None) else settings.models_file
    try:
        registry = load_registry(models_file.expanduser() if models_file else None)
    except (RegistryError, OSError) as exc:
        return _fail(f"model registry: {exc}")
    stop = threading.Event()
    _on_signals(lambda: stop.set())

    running: list[_Running] = []
    worker: subprocess.Popen[bytes] | None = None
    try:
        try:
            running = _serve_models(settings, registry, stop)
        except LaunchError as exc:
            return _fail(str(exc))
        if stop.is_set():
            return 130
        if settings.resolved_queue_url:
            worker = _start_worker()
        _print_banner(settings, models_file, running, worker)
        return _watch(running, worker, stop)
    finally:
        _shutdown(settings, running, worker)


def _serve_models(settings: Settings, registry: Registry, stop: threading.Event) -> list[_Running]:
    """Start (or find) every model with a role; all at once, since each takes a while."""
    from inference.launcher import LaunchError

    specs = [spec for spec in registry.models.values() if spec.roles]
    if not specs:
        raise LaunchError(f"no model with a role in {registry.path or 'the default registry'}")
    started: list[_Running] = []
    lock = threading.Lock()

    def one(spec: ModelSpec) -> None:
        result = _serve_one(settings, spec, stop)
        with lock:
            started.append(result)

    with ThreadPoolExecutor(max_workers=len(specs)) as pool:
        futures = [pool.submit(one, spec) for spec in specs]
        errors = [f.exception() for f in futures]
    failures = [e for e in errors if e is not None]
    if failures:
        _shutdown(settings, started, None)
        started.clear()
        raise failures[0]
    return started


def _serve_one(settings: Settings, spec: ModelSpec, stop: threading.Event) -> _Running:
    from inference.launcher import LaunchError, ServeConfig, VllmServer, find_vllm_python
    from inference.probes import free_port
    from inference.state import LoadedModel, write_state

    if spec.url:
        _say(f"{spec.name}: served elsewhere at {spec.url}")
        return _Running(spec, spec.url, None)
    existing = _already_served(settings, spec)
    if existing is not None:
        _say(f"{spec.name}: already served at {existing}")
        return _Running(spec, existing, None)
    port = spec.port if spec.port is not None else free_port()
    logs = settings.resolved_state_dir() / "logs"
    config = ServeConfig.from_spec(
        spec,
        port=port,
        log_file=logs / f"{spec.name}.log",
        python=find_vllm_python(settings.vllm_python),
    )
    server = VllmServer(config)
    _say(f"{spec.name}: starting vLLM on {server.url} (log: {server.log_file})")
    server.start()
    try:
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while True:
            try:
                server.wait_ready(timeout_s=min(5.0, max(0.1, deadline - time.monotonic())))
                break
            except LaunchError as exc:
                if not server.alive() or time.monotonic() >= deadline:
                    raise
                if stop.is_set():
                    raise LaunchError("interrupted while starting") from exc
        assert server.pid is not None
        write_state(
            settings.resolved_state_dir(),
            LoadedModel(
                name=spec.name, pid=server.pid, url=server.url, port=port, log_file=server.log_file
            ),
        )
    except BaseException:
        server.stop()
        raise
    _say(f"{spec.name}: ready")
    return _Running(spec, server.url, server)


def _already_served(settings: Settings, spec: ModelSpec) -> str | None:
    """The URL where this model already answers (a `models load`, another `up`), if any."""
    from inference.state import read_state

    candidates = []
    loaded = read_state(settings.resolved_state_dir(), spec.name)
    if loaded is not None:
        candidates.append(loaded.url)
    if spec.port is not None:
        candidates.append(f"http://127.0.0.1:{spec.port}/v1")
    for url in candidates:
        if spec.served_name in _served_names(url):
            return url
    return None


def _served_names(url: str) -> list[str]:
    import json

    from inference.probes import http_get

    status, body = http_get(f"{url}/models")
    try:
        models = json.loads(body).get("data") if status == 200 else None
    except (ValueError, AttributeError):
        return []
    if not isinstance(models, list):
        return []
    return [str(m.get("id")) for m in models if isinstance(m, dict)]


def _start_worker() -> subprocess.Popen[bytes]:
    worker = subprocess.Popen(
        [sys.executable, "-m", "server", "worker"], stdin=subprocess.DEVNULL, start_new_session=True
    )
    _say(f"worker: RQ worker started (pid {worker.pid})")
    return worker


def _print_banner(
    settings: Settings,
    models_file: Path | None,
    running: list[_Running],
    worker: subprocess.Popen[bytes] | None,
) -> None:
    lines = ["", "Zi Coder is up."]
    for item in running:
        roles = ", ".join(role.value for role in item.spec.roles)
        lines.append(f"  {item.spec.name:<18} {roles:<18} {item.url}")
    if worker is not None:
        lines.append(
            f"  {'worker':<18} {'jobs':<18} pid {worker.pid}, Redis {settings.resolved_queue_url}"
        )
    env = f"ZI_MODELS_FILE={models_file} " if models_file else ""
    lines += [
        "",
        "Connect an editor (the language server speaks LSP over stdio):",
        f"  command:  {env}zi-coder serve",
        "  Neovim:   vim.lsp.start({ name = 'zi', cmd = { 'zi-coder', 'serve' } })",
        "  other:    any LSP client with inline completion, running the command above",
        "  check:    zi-coder doctor",
        "",
        "Ctrl-C stops everything started here.",
    ]
    sys.stderr.write("\n".join(lines) + "\n")
    sys.stderr.flush()


def _watch(
    running: list[_Running], worker: subprocess.Popen[bytes] | None, stop: threading.Event
) -> int:
    """Wait for a signal; a dead model server or worker ends `up` with its cause."""
    while not stop.wait(_POLL_S):
        for item in running:
            if item.server is not None and not item.server.alive():
                return _fail(f"{item.spec.name}: vLLM exited; see {item.server.log_file}")
        if worker is not None and worker.poll() is not None:
            return _fail(f"the RQ worker exited with code {worker.returncode}")
    return 0


def _shutdown(
    settings: Settings, running: list[_Running], worker: subprocess.Popen[bytes] | None
) -> None:
    from inference.state import remove_state

    if worker is not None and worker.poll() is None:
        worker.send_signal(signal.SIGTERM)  # RQ's warm shutdown: the current job finishes
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    ours = [item for item in running if item.server is not None]
    with ThreadPoolExecutor(max_workers=max(1, len(ours))) as pool:
        for item in ours:
            assert item.server is not None
            pool.submit(item.server.stop)
    for item in ours:
        remove_state(settings.resolved_state_dir(), item.spec.name)
        _say(f"{item.spec.name}: stopped")


def _on_signals(handler: Callable[[], None]) -> None:
    def handle(_signum: int, _frame: FrameType | None) -> None:
        handler()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


def _say(message: str) -> None:
    sys.stderr.write(f"zi-coder up: {message}\n")
    sys.stderr.flush()


def _fail(message: str) -> int:
    _say(f"error: {message}")
    return 1
