"""The ``zi-coder`` command: a thin argparse dispatcher over ``server/commands/``.

Each command lives in its own module and imports its heavy dependencies only
when it runs, so ``zi-coder serve`` starts as fast as it did alone. Everything
after a lone ``--`` is passed through to vLLM (``zi-coder inference serve``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable

from server import __version__
from server.commands import add_models_option, complete, models, serve
from server.commands import history as history_command
from server.commands import inference as inference_command
from server.commands import mcp as mcp_command
from server.commands import replay as replay_command
from server.commands import stats as stats_command
from server.commands import worker as worker_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zi-coder",
        description="Self-hosted AI coding assistant: a language server backed by vLLM.",
    )
    parser.add_argument("--version", action="version", version=f"zi-coder {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.register(commands)
    complete.register(commands)
    inference_command.register(commands)
    models.register(commands)

    up = commands.add_parser(
        "up",
        help="serve the registry's models, start a worker if Redis is set, show how to connect",
    )
    add_models_option(up)
    up.set_defaults(run=_lazy("server.commands.up"))
    doctor = commands.add_parser("doctor", help="check models, Redis, database and workers")
    add_models_option(doctor)
    doctor.set_defaults(run=_lazy("server.commands.doctor"))
    worker = commands.add_parser("worker", help="run an RQ worker for Zi's job queues")
    worker_command.add_arguments(worker)
    worker.set_defaults(run=_lazy("server.commands.worker"))
    stats_command.register(commands)
    history_command.register(commands)
    replay_command.register(commands)
    mcp_command.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if "--" in args_in:
        split = args_in.index("--")
        args_in, passthrough = args_in[:split], args_in[split + 1 :]
    parser = build_parser()
    args = parser.parse_args(args_in)
    if passthrough and not getattr(args, "passthrough_ok", False):
        parser.error("arguments after `--` are only for `zi-coder inference serve`")
    args.passthrough = passthrough
    run: Callable[[argparse.Namespace], int] = args.run
    return run(args)


def _lazy(module: str) -> Callable[[argparse.Namespace], int]:
    """A command whose module is imported only when it runs."""

    def run(args: argparse.Namespace) -> int:
        result: int = importlib.import_module(module).run(args)
        return result

    return run
