"""``zi-coder mcp [--http [--host H] [--port N]]``: serve Zi's tools to coding agents
over MCP, on stdio or on streamable HTTP (loopback only, bearer token required).
``zi-coder mcp list [--json]`` and ``zi-coder mcp trust SERVER [TOOL ...]``: the MCP
servers Zi itself draws context from (``mcp.servers_file``), probed live, and the
confirmation of tools whose descriptions changed since they were pinned.

The token is ``ZI_MCP_TOKEN``; without it one is made and kept, readable by the
user alone, as ``mcp-token`` in the state directory (``ZI_STATE_DIR``, beside the
MCP pins; its path is printed, never the token).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from server.mcp.client.config import ServerSpec
    from server.mcp.client.manager import McpContext
    from server.mcp.client.status import ServerStatus, ToolStatus
    from server.settings import Settings

DEFAULT_PORT = 8765
TOKEN_VARIABLE = "ZI_MCP_TOKEN"
PROBE_TIMEOUT_S = 10.0
NOT_CONFIGURED = (
    "no MCP servers configured: set ZI_MCP__SERVERS_FILE (in the editor: zi.mcp.servers_file) "
    "to a TOML or YAML file of [servers.NAME] tables"
)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mcp = commands.add_parser(
        "mcp",
        help="serve Zi's tools to coding agents over MCP; list and trust the MCP servers Zi uses",
        description="Without a subcommand: serve Zi's tools over MCP (stdio, or --http). "
        "`list` and `trust`: the MCP servers Zi draws context from (ZI_MCP__SERVERS_FILE).",
    )
    mcp.add_argument("--http", action="store_true", help="streamable HTTP instead of stdio")
    mcp.add_argument("--host", default="127.0.0.1", help="a loopback address (default 127.0.0.1)")
    mcp.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}; 0: any free"
    )
    mcp.set_defaults(run=run)
    # Optional, so `zi-coder mcp` alone still serves on stdio.
    sub = mcp.add_subparsers(dest="mcp_command", required=False, metavar="SUBCOMMAND")
    listing = sub.add_parser("list", help="probe the configured MCP servers: state, tools")
    _add_probe_options(listing)
    listing.add_argument("--json", action="store_true", help="print the listing as JSON")
    trust = sub.add_parser("trust", help="confirm tools whose descriptions changed")
    _add_probe_options(trust)
    trust.add_argument("server", help="server name (a key of the servers file)")
    trust.add_argument("tools", nargs="*", metavar="TOOL", help="default: all its tools")


def _add_probe_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--servers",
        metavar="FILE",
        type=Path,
        help="MCP servers file (TOML or YAML); default: ZI_MCP__SERVERS_FILE",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=PROBE_TIMEOUT_S,
        metavar="SECONDS",
        help=f"how long to wait for each server to be ready (default: {PROBE_TIMEOUT_S:g})",
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 600:  # NaN fails too
        raise argparse.ArgumentTypeError(f"{text!r}: more than 0 and at most 600 seconds")
    return value


def run(args: argparse.Namespace) -> int:
    subcommand = getattr(args, "mcp_command", None)
    if subcommand is not None and args.http:
        from server.commands import fail

        return fail(f"mcp {subcommand}: --http is for serving, not for this command", 2)
    if subcommand == "list":
        return run_list(args)
    if subcommand == "trust":
        return run_trust(args)
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
    try:
        token, where = _token(settings)
    except (OSError, ValueError) as exc:
        return fail(f"mcp: no bearer token: {exc}")
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


def _token(settings: Settings) -> tuple[str, str]:
    """The bearer token, and where it comes from (for the user, not the token).
    Raises ValueError when the kept token file is empty."""
    from server.tokens import kept_token

    # Next to the pins (ZI_STATE_DIR moves both).
    return kept_token(settings.resolved_state_dir(), "mcp-token", TOKEN_VARIABLE)


def run_list(args: argparse.Namespace) -> int:
    """Probe every configured server and show how it is. Exit 0 when the listing worked,
    even if servers failed (their state is the answer); 1 when the settings or the
    servers file are unusable."""
    from server.commands import configure_cli_logging, fail, say

    configure_cli_logging()
    opened = _open(args)
    if isinstance(opened, int):
        return opened
    if opened is None:
        say(NOT_CONFIGURED)
        if args.json:
            _write_json({"servers_file": None, "servers": []})
        return 0
    path, specs, context = opened
    try:
        statuses = context.statuses(connect_timeout_s=args.timeout)
    except TimeoutError:
        return fail("mcp list: the MCP servers did not answer or stop in time")
    finally:
        context.close()  # stops every server's process group
    servers = [_listing(spec, status) for spec, status in zip(specs, statuses, strict=True)]
    if args.json:
        _write_json({"servers_file": str(path), "servers": servers})
    else:
        say(f"MCP servers from {path}")
        for server in servers:
            _write_server(server)
    return 0


def run_trust(args: argparse.Namespace) -> int:
    """Re-pin the named tools of a server (all of them by default) as it lists them now."""
    from server.commands import configure_cli_logging, fail, say

    configure_cli_logging()
    opened = _open(args)
    if isinstance(opened, int):
        return opened
    if opened is None:
        return fail(NOT_CONFIGURED)
    _path, _specs, context = opened
    try:
        trusted = context.trust(args.server, args.tools, connect_timeout_s=args.timeout)
    except ValueError as exc:  # unknown server or tool, or a server that is not ready
        return fail(f"mcp trust: {exc}")
    except TimeoutError:
        return fail(f"mcp trust: MCP server '{args.server}' did not answer or stop in time")
    finally:
        context.close()
    if not trusted:
        say(f"MCP server '{args.server}' lists no tools: nothing to trust")
    for tool in trusted:
        say(f"trusted tool '{tool}' of MCP server '{args.server}' as it is described now")
    return 0


def _open(args: argparse.Namespace) -> tuple[Path, list[ServerSpec], McpContext] | int | None:
    """The servers file and a client manager over it; None when no file is configured;
    the exit status after saying why the settings or the file are unusable."""
    from pydantic import ValidationError

    from server.commands import fail
    from server.mcp.client.config import McpConfigError, load_servers
    from server.mcp.client.manager import McpContext, pins_path
    from server.notify import Notifier
    from server.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        return fail(f"mcp: invalid settings: {' '.join(str(exc).split())}")
    path = args.servers or settings.mcp.servers_file
    if path is None:
        return None
    path = path.expanduser()
    try:
        specs = load_servers(path)
    except McpConfigError as exc:
        return fail(str(exc))
    # What the notifier logs is meant for the editor ("going on without it"); here the
    # listing itself says what went wrong.
    logging.getLogger("server.notify").setLevel(logging.ERROR)
    context = McpContext(
        specs,
        settings=settings.mcp,
        pins_path=pins_path(settings),  # as the language server
        notifier=Notifier(),
    )
    return path, specs, context


def _listing(spec: ServerSpec, status: ServerStatus) -> dict[str, Any]:
    from server.mcp.client.status import State

    matched = [uri for uri in status.resources if any(fnmatchcase(uri, p) for p in spec.resources)]
    state = {State.READY: "ready", State.FAILED: "failed", State.CONNECTING: "timed out"}
    return {
        "name": status.name,
        "transport": status.transport,
        "identity": status.identity,  # redacted
        "state": state.get(status.state, status.state.value),
        "reason": " ".join(status.reason.split()),  # a stderr tail spans lines
        "tools": [
            {
                "name": tool.name,
                "use": _use(tool),
                "allowed": tool.allowed,
                "pin": tool.pin,
                "description": tool.description,
            }
            for tool in status.tools
        ],
        "missing_tools": list(status.missing_tools),
        "resources": matched,
        "unmatched_resources": len(status.resources) - len(matched),
    }


def _use(tool: ToolStatus) -> str:
    """allowed, not allowed, changed (not called until trusted) or new (pinned now)."""
    if not tool.allowed:
        return "not allowed"
    return {"changed": "changed", "new": "new"}.get(tool.pin, "allowed")


def _write_server(server: dict[str, Any]) -> None:
    state = server["state"]
    if server["reason"]:
        state += f" ({server['reason']})" if state == "timed out" else f": {server['reason']}"
    lines = [f"{server['name']}  {server['transport']}  {state}  [{server['identity']}]"]
    rows = [
        (f"tool {tool['name']}", _use_text(server["name"], tool), tool["description"])
        for tool in server["tools"]
    ]
    rows += [
        (f"tool {name}", "missing: allowed in the servers file, not offered", "")
        for name in server["missing_tools"]
    ]
    rows += [(f"resource {uri}", "", "") for uri in server["resources"]]
    if rows:
        first = max(len(row[0]) for row in rows)
        second = max(len(row[1]) for row in rows)
        for row in rows:
            lines.append(f"  {row[0].ljust(first)}  {row[1].ljust(second)}  {row[2]}".rstrip())
    if server["unmatched_resources"]:
        count = server["unmatched_resources"]
        other = "other resource" if count == 1 else "other resources"
        lines.append(f"  ({count} {other}: no pattern matches)")
    sys.stdout.write("\n".join(lines) + "\n")


def _use_text(server: str, tool: dict[str, Any]) -> str:
    if tool["use"] == "changed":
        return f"changed: not used until `zi-coder mcp trust {server} {tool['name']}`"
    return "allowed, new (pinned now)" if tool["use"] == "new" else str(tool["use"])


def _write_json(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")
