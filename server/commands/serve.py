"""``zi-coder serve``: the language server, over stdio (default) or loopback TCP.

Only JSON-RPC may reach stdout while serving: logging goes to stderr (and to
``ZI_LOG_FILE`` when set).
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.lsp.server import ZiLanguageServer


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser("serve", help="run the language server (stdio by default)")
    serve.add_argument("--tcp", metavar="HOST:PORT", help="listen on a loopback TCP address")
    serve.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    tcp: str | None = args.tcp
    if tcp is not None:
        host, _, port = tcp.rpartition(":")
        try:
            if not ipaddress.ip_address(host.strip("[]")).is_loopback:
                raise ValueError(host)
            port_number = int(port)
        except ValueError:
            sys.stderr.write(f"zi-coder: --tcp needs a loopback HOST:PORT, got {tcp!r}\n")
            return 2
        build_server().start_tcp(host.strip("[]"), port_number)
        return 0
    from server.lsp.fast_start import serve_stdio

    # Read before Settings exist: building them is part of what fast start hides.
    fast = os.environ.get("ZI_FAST_START", "true").strip().lower() not in {"0", "false", "no"}
    serve_stdio(build_server, fast=fast)
    return 0


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
