"""The ``zi-coder`` command: ``serve`` (the language server) and ``complete`` (one shot).

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
from pathlib import Path
from typing import TYPE_CHECKING

from server import __version__

if TYPE_CHECKING:
    from server.lsp.server import ZiLanguageServer

log = logging.getLogger("server")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="zi-coder", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"zi-coder {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the language server (stdio by default)")
    serve.add_argument("--tcp", metavar="HOST:PORT", help="listen on a loopback TCP address")

    complete = commands.add_parser(
        "complete", help="run one completion through the whole pipeline and print it"
    )
    complete.add_argument("location", metavar="FILE:LINE:COL", help="1-based line and column")
    complete.add_argument("--language", help="language id (default: from the file extension)")

    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args.tcp)
    return _complete(args.location, args.language)


def _configure_logging(level: str, log_file: Path | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    if logging.getLogger().level > logging.DEBUG:
        # pygls logs every message body at INFO: documents would flood the log.
        logging.getLogger("pygls").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)


def _serve(tcp: str | None) -> int:
    if tcp is not None:
        host, _, port = tcp.rpartition(":")
        try:
            if not ipaddress.ip_address(host.strip("[]")).is_loopback:
                raise ValueError(host)
            port_number = int(port)
        except ValueError:
            sys.stderr.write(f"zi-coder: --tcp needs a loopback HOST:PORT, got {tcp!r}\n")
            return 2
        _build_server().start_tcp(host.strip("[]"), port_number)
        return 0
    from server.lsp.fast_start import serve_stdio

    # Read before Settings exist: building them is part of what fast start hides.
    fast = os.environ.get("ZI_FAST_START", "true").strip().lower() not in {"0", "false", "no"}
    serve_stdio(_build_server, fast=fast)
    return 0


def _build_server() -> ZiLanguageServer:
    from server.lsp.server import create_server
    from server.settings import Settings

    settings = Settings()
    _configure_logging(settings.log_level, settings.log_file)
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


_EXTENSIONS = {
    ".py": "python",
    ".js": "javascript",
    ".jsx": "javascriptreact",
    ".ts": "typescript",
    ".tsx": "typescriptreact",
    ".rs": "rust",
    ".go": "go",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".hpp": "cpp",
    ".java": "java",
    ".rb": "ruby",
    ".sh": "shellscript",
    ".lua": "lua",
    ".cs": "csharp",
    ".php": "php",
    ".kt": "kotlin",
}


def _complete(location: str, language: str | None) -> int:
    import asyncio

    from server.app import build_services
    from server.completion.types import CompletionRequest, Document
    from server.notify import Level, Notifier
    from server.settings import Settings

    settings = Settings()
    _configure_logging(
        settings.log_level if settings.log_level != "INFO" else "WARNING", settings.log_file
    )
    try:
        path_text, line_text, col_text = location.rsplit(":", 2)
        line, col = int(line_text), int(col_text)
        path = Path(path_text)
        text = path.read_text(encoding="utf-8")
    except (ValueError, OSError) as exc:
        sys.stderr.write(f"zi-coder: cannot read {location!r}: {exc}\n")
        return 2
    lines = text.split("\n")
    if not 1 <= line <= len(lines) or not 1 <= col <= len(lines[line - 1]) + 1:
        sys.stderr.write(f"zi-coder: {location} is outside the file\n")
        return 2
    offset = sum(len(x) + 1 for x in lines[: line - 1]) + col - 1
    document = Document(
        uri=path.resolve().as_uri(),
        language_id=language or _EXTENSIONS.get(path.suffix, "plaintext"),
        version=0,
        text=text,
    )
    notifier = Notifier()
    messages: list[str] = []
    # Keep problems (warnings, errors) to explain an empty answer; info is not a reason.
    notifier.connect(
        log_sink=lambda level, m: messages.append(m) if level <= Level.WARNING else None,
        show_sink=lambda _level, _m: None,
    )

    async def run() -> str | None:
        services = build_services(settings, notifier=notifier)
        try:
            result = await services.completions.complete(
                CompletionRequest(document, offset, line - 1, col - 1, invoked=True)
            )
            return result.text if result else None
        finally:
            await services.aclose()

    text_out = asyncio.run(run())
    if text_out is None:
        reason = (
            messages[-1]
            if messages
            else ("the model's suggestion was empty or filtered out (ZI_LOG_LEVEL=DEBUG shows why)")
        )
        sys.stderr.write(f"zi-coder: no completion: {reason}\n")
        return 1
    sys.stdout.write(text_out + "\n")
    return 0
