"""``zi-coder mcp``: serve Zi's tools to coding agents over MCP on stdio."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mcp = commands.add_parser("mcp", help="serve Zi's tools to coding agents over MCP (stdio)")
    mcp.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import anyio
    from pydantic import ValidationError

    from server.commands import configure_cli_logging, fail
    from server.settings import Settings

    configure_cli_logging()  # stderr: stdout carries the protocol
    try:
        settings = Settings()
    except ValidationError as exc:
        return fail(f"mcp: invalid settings: {' '.join(str(exc).split())}")
    from server.mcp.app import build_mcp

    anyio.run(build_mcp(settings).run_stdio_async)
    return 0
