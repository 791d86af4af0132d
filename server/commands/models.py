"""``zi-coder models list | status | load NAME | unload NAME``: the registry's models.

``list`` shows what the registry declares; ``status`` what actually runs (the
state files of ``load``, then a 2-second ``/health`` and ``/v1/models`` probe of
each); ``load`` starts a local model with vLLM *detached* (it outlives this
command: its own session, output to its log file) and records it; ``unload``
stops it. Remote models (``url``) are someone else's to start and stop.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from server.commands import add_models_option

if TYPE_CHECKING:
    from inference.registry import ModelSpec, Registry
    from server.settings import Settings

DEFAULT_LOAD_TIMEOUT_S = 600.0
STOP_GRACE_S = 20.0
PROBE_TIMEOUT_S = 2.0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser("models", help="list, load and unload the registry's models")
    sub = group.add_subparsers(dest="models_command", required=True, metavar="COMMAND")

    listing = sub.add_parser("list", help="the registry's models and their settings")
    add_models_option(listing)
    listing.set_defaults(run=run_list)

    status = sub.add_parser("status", help="which models run, and whether they answer")
    add_models_option(status)
    status.set_defaults(run=run_status)

    load = sub.add_parser("load", help="start a local model with vLLM in the background")
    load.add_argument("name", help="model name (a key of the registry)")
    load.add_argument("--port", type=int, help="default: the registry's port, else a free one")
    load.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_LOAD_TIMEOUT_S,
        metavar="SECONDS",
        help=f"how long to wait for it to be healthy (default: {DEFAULT_LOAD_TIMEOUT_S:.0f})",
    )
    load.add_argument(
        "--vllm-python", type=Path, metavar="PATH", help="Python with vLLM (or ZI_VLLM_PYTHON)"
    )
    add_models_option(load)
    load.set_defaults(run=run_load)

    unload = sub.add_parser("unload", help="stop a model started by `models load`")
    unload.add_argument("name", help="model name")
    add_models_option(unload)
    unload.set_defaults(run=run_unload)


def run_list(args: argparse.Namespace) -> int:
    context = _context(args)
    if isinstance(context, int):
        return context
    _settings, registry = context
    rows = [
        [
            spec.name,
            ",".join(role.value for role in spec.roles),
            spec.source or spec.url or "",
            ",".join(spec.languages) or "any",
            spec.fim_template,
            str(spec.max_model_len),
        ]
        for spec in registry.models.values()
    ]
    sys.stderr.write(f"models from {registry.where}\n")
    _table(["NAME", "ROLES", "SOURCE/URL", "LANGUAGES", "FIM", "MAX_LEN"], rows)
    return 0


def run_status(args: argparse.Namespace) -> int:
    from inference.state import list_loaded, read_state

    context = _context(args)
    if isinstance(context, int):
        return context
    settings, registry = context
    state_dir = settings.resolved_state_dir()
    rows: list[list[str]] = []
    for spec in registry.models.values():
        if not spec.local:
            assert spec.url is not None
            rows.append([spec.name, "remote", "-", spec.url, *_probe(spec.url)])
            continue
        loaded = read_state(state_dir, spec.name)
        if loaded is None:
            rows.append(_not_loaded(spec))
        else:
            rows.append([spec.name, "loaded", str(loaded.pid), loaded.url, *_probe(loaded.url)])
    for loaded in list_loaded(state_dir):
        if loaded.name not in registry.models:
            row = [loaded.name, "loaded (not in registry)", str(loaded.pid), loaded.url]
            rows.append([*row, *_probe(loaded.url)])
    _table(["NAME", "STATE", "PID", "URL", "HEALTH", "SERVED"], rows)
    return 0


def run_load(args: argparse.Namespace) -> int:
    from inference.launcher import LaunchError, ServeConfig, VllmServer
    from inference.probes import free_port, http_ok
    from inference.probes import server_root as root
    from inference.state import LoadedModel, read_state, remove_state, write_state
    from server.commands import configure_cli_logging, fail, say

    configure_cli_logging()
    context = _context(args)
    if isinstance(context, int):
        return context
    settings, registry = context
    spec = _spec(registry, args.name)
    if spec is None:
        return 1
    if not spec.local:
        return fail(
            f"{spec.name} is a remote model served at {spec.url}: there is nothing to load "
            "here (`zi-coder models status` checks that it answers)"
        )
    state_dir = settings.resolved_state_dir()
    loaded = read_state(state_dir, spec.name)
    if loaded is not None:
        if http_ok(f"{root(loaded.url)}/health", PROBE_TIMEOUT_S):
            say(f"{spec.name} is already loaded: {loaded.url} (pid {loaded.pid})")
            return 0
        return fail(
            f"{spec.name} is loaded (pid {loaded.pid}) but does not answer at {loaded.url}: "
            f"it may still be starting; else `zi-coder models unload {spec.name}` and load it "
            f"again (log: {loaded.log_file})"
        )
    port = args.port or spec.port or free_port()
    log_file = state_dir / "logs" / f"{_file_name(spec.name)}.log"
    python = args.vllm_python or settings.vllm_python
    try:
        server = VllmServer(
            ServeConfig.from_spec(spec, port=port, log_file=log_file, python=python)
        )
        server.start()
    except LaunchError as exc:
        return fail(str(exc))
    assert server.pid is not None
    # Recorded before it is healthy: if this command dies while waiting, `unload` still
    # finds the process.
    write_state(
        state_dir,
        LoadedModel(name=spec.name, pid=server.pid, url=server.url, port=port, log_file=log_file),
    )
    say(f"loading {spec.name} (pid {server.pid}) on {server.url}; log: {log_file}")
    try:
        server.wait_ready(args.timeout)
    except (LaunchError, KeyboardInterrupt) as exc:
        server.stop(STOP_GRACE_S)
        remove_state(state_dir, spec.name)
        return fail(str(exc)) if isinstance(exc, LaunchError) else 130
    sys.stdout.write(f"loaded {spec.name}: {server.url} (pid {server.pid})\n")
    return 0


def run_unload(args: argparse.Namespace) -> int:
    from inference.state import looks_like_vllm, read_state, remove_state, stop_process_group
    from server.commands import configure_cli_logging, fail

    configure_cli_logging()
    context = _context(args)
    if isinstance(context, int):
        return context
    settings, registry = context
    state_dir = settings.resolved_state_dir()
    loaded = read_state(state_dir, args.name)
    if loaded is None:
        spec = registry.models.get(args.name)
        if spec is not None and not spec.local:
            return fail(f"{spec.name} is a remote model served at {spec.url}: not ours to stop")
        if spec is None:
            known = ", ".join(registry.models)
            return fail(f"{args.name} is not loaded (and not in {registry.where}: {known})")
        return fail(f"{args.name} is not loaded (`zi-coder models status` shows what is)")
    if not looks_like_vllm(loaded.pid):
        remove_state(state_dir, loaded.name)
        return fail(
            f"{loaded.name} was not running (pid {loaded.pid} is now another program); "
            "its record is removed"
        )
    stop_process_group(loaded.pid, STOP_GRACE_S)
    remove_state(state_dir, loaded.name)
    sys.stdout.write(f"unloaded {loaded.name} (pid {loaded.pid})\n")
    return 0


def _not_loaded(spec: ModelSpec) -> list[str]:
    """A model not loaded here may still be served on its fixed port (`inference serve`)."""
    if spec.port is not None:
        url = f"http://127.0.0.1:{spec.port}/v1"
        health, served = _probe(url)
        if health == "healthy" and spec.served_name in served.split(","):
            return [spec.name, "served (not by `models load`)", "-", url, health, served]
    return [spec.name, "not loaded", "-", "-", "-", "-"]


def _context(args: argparse.Namespace) -> tuple[Settings, Registry] | int:
    """Settings and registry, or the exit status after reporting why they are unusable."""
    from inference.registry import RegistryError
    from server.commands import fail, load_models
    from server.settings import Settings

    settings = Settings()
    try:
        return settings, load_models(args, settings)
    except RegistryError as exc:
        return fail(str(exc))


def _spec(registry: Registry, name: str) -> ModelSpec | None:
    from inference.registry import RegistryError
    from server.commands import fail

    try:
        return registry.get(name)
    except RegistryError as exc:
        fail(str(exc))
        return None


def _file_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def _probe(url: str) -> list[str]:
    """[health, served models] of an OpenAI-compatible server, within 2 s each."""
    from inference.probes import http_get, server_root

    status, _ = http_get(f"{server_root(url)}/health", PROBE_TIMEOUT_S)
    models_status, body = http_get(f"{url.rstrip('/')}/models", PROBE_TIMEOUT_S)
    served = _model_ids(body) if models_status == 200 else []
    if status == 200 or (status == 404 and models_status == 200):
        health = "healthy"  # a server without /health (not vLLM) that lists its models
    elif status == 0:
        health = "unreachable"
    else:
        health = f"unhealthy (HTTP {status})"
    return [health, ",".join(served) or "-"]


def _model_ids(body: bytes) -> list[str]:
    try:
        data = json.loads(body)
    except ValueError:
        return []
    models = data.get("data") if isinstance(data, dict) else None
    if not isinstance(models, list):
        return []
    return [str(m["id"]) for m in models if isinstance(m, dict) and "id" in m]


def _table(headers: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, *rows]:
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        sys.stdout.write(line.rstrip() + "\n")
