"""``zi-coder mcp [--http [--host H] [--port N]]``: serve Zi's tools to coding agents
over MCP, on stdio or on streamable HTTP (loopback only, bearer token required).

The token is ``ZI_MCP_TOKEN``; without it one is made and kept, readable by the
user alone, in the user state directory (its path is printed, never the token).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DEFAULT_PORT = 8765
TOKEN_VARIABLE = "ZI_MCP_TOKEN"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mcp = commands.add_parser("mcp", help="serve Zi's tools to coding agents over MCP")
    mcp.add_argument("--http", action="store_true", help="streamable HTTP instead of stdio")
    mcp.add_argument("--host", default="127.0.0.1", help="a loopback address (default 127.0.0.1)")
    mcp.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}; 0: any free"
    )
    mcp.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import anyio
    from pydantic import ValidationError

    from server.commands import configure_cli_logging, fail, say
    from server.settings import Settings

    configure_cli_logging()  # stderr: on stdio, stdout carries the protocol
    try:
        settings = Settings()
    except ValidationError as exc:
        return fail(f"mcp: invalid settings: {' '.join(str(exc).split())}")
    from server.mcp.app import build_mcp

    if not args.http:
        anyio.run(build_mcp(settings).run_stdio_async)
        return 0
    from server.mcp.http import is_loopback, serve

    if not is_loopback(args.host):
        fail(
            f"mcp: {args.host} is not a loopback address: "
            "the MCP server listens on this machine only"
        )
        return 2
    token, where = _token()
    server = build_mcp(settings, token=token)

    def ready(url: str) -> None:
        say(f"MCP over streamable HTTP at {url} (bearer token: {where})")

    try:
        anyio.run(lambda: serve(server, host=args.host, port=args.port, on_ready=ready))
    except OSError as exc:
        return fail(f"mcp: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
    except KeyboardInterrupt:
        pass
    return 0


def _token() -> tuple[str, str]:
    """The bearer token, and where it comes from (for the user, not the token)."""
    import secrets

    import platformdirs

    given = os.environ.get(TOKEN_VARIABLE)
    if given:
        return given, f"${TOKEN_VARIABLE}"
    path = Path(platformdirs.user_state_dir("zi-coder", appauthor=False)) / "mcp-token"
    try:
        return path.read_text(encoding="utf-8").strip(), str(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(token + "\n")
    return token, str(path)
