"""An MCP server that answers but will not go: it serves a resource under docs://,
keeps running after its stdin closes ("eof" recorded) and shrugs off SIGTERM
("sigterm" recorded). Only a SIGKILL stops it, so a test that sees it gone knows
its client stopped it rather than it leaving by itself."""

from __future__ import annotations

import signal
import time
from contextlib import suppress
from types import FrameType

from _record import record  # the script's directory is on sys.path
from mcp.server.mcpserver import MCPServer

server = MCPServer("stubborn", version="1.0")


@server.resource("docs://api/stubborn", mime_type="text/markdown")
def stubborn_docs() -> str:
    record("read", uri="docs://api/stubborn")
    return "stubborn() never gives up."


def _shrug(signum: int, frame: FrameType | None) -> None:
    record("sigterm")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _shrug)
    record("start")
    with suppress(BaseException):  # whatever ended the session, stay
        server.run()
    record("eof")
    while True:
        time.sleep(1)
