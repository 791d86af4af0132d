"""``zi-coder inference serve``: vLLM's OpenAI-compatible server, managed, in the foreground.

Code-completion defaults (prefix caching on, a short context, loopback only, CPU
settings when there is no GPU) come from :mod:`inference.launcher`; this module
turns flags into a :class:`~inference.launcher.ServeConfig`, prints where the
log goes and when the server is ready, and stops vLLM's whole process group on
Ctrl-C or SIGTERM. Any failure is one line that says what to do (exit 1).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from server.commands import add_models_option

if TYPE_CHECKING:
    from inference.launcher import ServeConfig
    from server.settings import Settings

DEFAULT_PORT = 8000
DEFAULT_TIMEOUT_S = 600.0


class _Stop(Exception):
    """A signal asked us to stop."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = commands.add_parser("inference", help="run the model server (vLLM)")
    sub = group.add_subparsers(dest="inference_command", required=True, metavar="COMMAND")
    serve = sub.add_parser(
        "serve",
        help="serve a model with vLLM in the foreground until Ctrl-C",
        description="Serve a model with vLLM's OpenAI-compatible server, tuned for code "
        "completion. Arguments after `--` go to vLLM unchanged.",
    )
    serve.add_argument(
        "--model",
        help="Hugging Face id or local model directory; default: the registry's completion model",
    )
    serve.add_argument("--served-model-name", metavar="NAME", help="name clients ask for")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback)")
    serve.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host (vLLM has no authentication unless you add --api-key)",
    )
    serve.add_argument("--port", type=int, help=f"default: the registry's, else {DEFAULT_PORT}")
    serve.add_argument("--max-model-len", type=int, metavar="TOKENS", help="default: 2048")
    serve.add_argument(
        "--no-prefix-caching",
        dest="prefix_caching",
        action="store_false",
        help="turn automatic prefix caching off (on by default: prompts share long prefixes)",
    )
    serve.add_argument("--dtype", help="weights dtype (default: auto; float32 without a GPU)")
    serve.add_argument("--log-file", type=Path, help="vLLM's output (default: user log dir)")
    serve.add_argument(
        "--log-requests", action="store_true", help="log every request (vLLM's own option)"
    )
    serve.add_argument(
        "--vllm-python", type=Path, metavar="PATH", help="Python with vLLM (or ZI_VLLM_PYTHON)"
    )
    serve.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"how long to wait for the server to be healthy (default: {DEFAULT_TIMEOUT_S:.0f})",
    )
    add_models_option(serve)
    serve.set_defaults(run=run, passthrough_ok=True)


def run(args: argparse.Namespace) -> int:
    from inference.launcher import LaunchError, VllmServer
    from inference.probes import is_loopback
    from inference.registry import RegistryError
    from server.commands import configure_cli_logging, fail, say
    from server.settings import Settings

    configure_cli_logging()
    if not is_loopback(args.host) and not args.allow_remote:
        return fail(
            f"--host {args.host} is not a loopback address: anyone who can reach it could use "
            "the model; add --allow-remote to serve it anyway",
            code=2,
        )
    settings = Settings()
    try:
        config = serve_config(args, settings)
    except (RegistryError, LaunchError) as exc:
        return fail(str(exc))
    server = VllmServer(config)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    for sig in previous:
        signal.signal(sig, _raise_stop)
    try:
        server.start()
        say(f"starting vLLM (pid {server.pid}) for {server.config.source}; log: {server.log_file}")
        server.wait_ready(args.timeout)
        sys.stderr.write(f"ready: {server.url} (model {config.served_name})\n")
        sys.stderr.flush()
        code = server.wait()
        return fail(str(server.exit_error(code, starting=False)))
    except (KeyboardInterrupt, _Stop):
        say("stopping vLLM")
        return 0
    except LaunchError as exc:
        return fail(str(exc))
    finally:
        # A second Ctrl-C must not cut the stop short and leave vLLM running.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signal.signal(signal.SIGINT, signal.default_int_handler)


def serve_config(args: argparse.Namespace, settings: Settings) -> ServeConfig:
    """Flags over the registry's completion model (when no --model) over the defaults."""
    from dataclasses import replace

    from inference.launcher import LaunchError, ServeConfig, default_log_file
    from inference.registry import Role
    from server.commands import load_models

    python = args.vllm_python or settings.vllm_python
    if args.model:
        name = args.served_model_name or default_served_name(args.model)
        port = args.port if args.port is not None else DEFAULT_PORT
        config = ServeConfig(source=args.model, served_name=name, port=port)
    else:
        registry = load_models(args, settings)
        spec = registry.for_role(Role.COMPLETION)
        if spec is None or not spec.local:
            raise LaunchError(
                f"no local completion model in {registry.where}: pass --model (a Hugging Face "
                "id or a directory) or add one with `source` to the registry"
            )
        name = args.served_model_name or spec.served_name
        port = args.port if args.port is not None else spec.port or DEFAULT_PORT
        config = ServeConfig.from_spec(
            spec, port=port, log_file=default_log_file(name, port), python=python
        )
    return replace(
        config,
        served_name=name,
        host=args.host,
        max_model_len=args.max_model_len or config.max_model_len,
        prefix_caching=args.prefix_caching,
        dtype=args.dtype or config.dtype,
        extra_args=(*config.extra_args, *args.passthrough),
        log_file=args.log_file.expanduser() if args.log_file else config.log_file,
        python=python,
        enable_log_requests=args.log_requests,
    )


def default_served_name(model: str) -> str:
    """A directory's name for a local model (vLLM would use its full path); else the id."""
    path = Path(model).expanduser()
    if model.startswith(("/", "~", ".")) or path.is_dir():
        return path.resolve().name or model
    return model


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)
