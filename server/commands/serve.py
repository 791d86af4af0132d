"""``zi-coder serve``: the language server, over stdio (default) or loopback TCP.

Only JSON-RPC may reach stdout while serving: logging goes to stderr (and to
``ZI_LOG_FILE`` when set).
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import logging
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.lsp.server import ZiLanguageServer

TOKEN_VARIABLE = "ZI_LSP_TOKEN"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="run the language server (stdio by default)")
    serve.add_argument(
        "--tcp",
        metavar="[HOST:]PORT",
        help="listen on loopback TCP instead (HOST defaults to 127.0.0.1; clients must send "
        "the token in initializationOptions.token)",
    )
    serve.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.tcp is not None:
        return _run_tcp(args.tcp)
    from server.lsp.fast_start import serve_stdio

    # Read before Settings exist: building them is part of what fast start hides.
    fast = os.environ.get("ZI_FAST_START", "true").strip().lower() not in {"0", "false", "no"}
    return serve_stdio(build_server, fast=fast)


def _run_tcp(address: str) -> int:
    import asyncio

    from server.commands import fail
    from server.lsp.tcp import serve_tcp
    from server.tokens import kept_token

    host, _, port = address.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    host = "127.0.0.1" if host == "localhost" else host
    try:
        # Loopback only: the token would cross the network in clear text (use an SSH
        # tunnel to reach a remote server).
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(host)
        port_number = int(port)
    except ValueError:
        return fail(f"--tcp needs a loopback [HOST:]PORT, got {address!r}", 2)
    server = build_server()
    try:
        token, where = kept_token(
            server.base_settings.resolved_state_dir(), "lsp-token", TOKEN_VARIABLE
        )
    except (OSError, ValueError) as exc:
        return fail(f"serve --tcp: no token: {exc}")
    logging.getLogger(__name__).warning("the LSP token is in %s", where)
    try:
        return asyncio.run(serve_tcp(server, host, port_number, token))
    except OSError as exc:
        return fail(f"serve --tcp: cannot listen on {host}:{port_number}: {exc}")
    except KeyboardInterrupt:
        return 130
    finally:
        server.shutdown()  # the last history rows, the MCP servers


def build_server() -> ZiLanguageServer:
    from server.commands import configure_logging
    from server.lsp.server import create_server
    from server.settings import Settings

    settings = Settings()
    configure_logging(settings.log_level, settings.log_file)
    server = create_server(settings)
    # Imports leave ~10^5 long-lived objects: freeze them out of every future
    # collection, and collect the young generation less often (each pause lands in
    # some request's latency).
    gc.freeze()
    gc.set_threshold(7_000, 20, 20)
    # Background threads (history writes, imports) hold the GIL for up to the switch
    # interval while a request waits for it: 1 ms instead of 5 caps that wait.
    sys.setswitchinterval(0.001)
    return server
