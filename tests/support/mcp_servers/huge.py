"""An MCP server with outsized answers: `big` (tool) and big://text (resource) of about
600 KB; `enormous`, a 5 MB result; `unterminated`, 3 MB on its stdout without a newline;
`garbage`, lines on its stdout that are not JSON-RPC."""

from __future__ import annotations

import os

from _record import record  # the script's directory is on sys.path
from mcp.server.mcpserver import MCPServer

# The SDK diverts fd 1 to stderr while serving; this copy still reaches the client.
WIRE = os.dup(1)
server = MCPServer("huge", version="1.0")


@server.resource("big://text")
def big_text() -> str:
    record("read", uri="big://text")
    return "resource line\n" * 45_000  # ~630 KB


@server.tool()
def big(symbol: str) -> str:
    """About 600 KB of text."""
    record("call", tool="big", arguments={"symbol": symbol})
    return f"{symbol} " * 100_000


@server.tool()
def enormous(symbol: str) -> str:
    """A 5 MB message."""
    record("call", tool="enormous", arguments={"symbol": symbol})
    return "x" * 5_000_000


@server.tool()
def unterminated(symbol: str) -> str:
    """3 MB without a newline, then the answer (never reached: it is too late)."""
    record("call", tool="unterminated", arguments={"symbol": symbol})
    os.write(WIRE, b'{"jsonrpc": "2.0", "method": "' + b"y" * 3_000_000)
    return "done"


@server.tool()
def garbage(symbol: str) -> str:
    """Hundreds of lines that are not protocol messages."""
    record("call", tool="garbage", arguments={"symbol": symbol})
    os.write(WIRE, b"progress: working...\n" * 500)
    return "done"


if __name__ == "__main__":
    record("start")
    server.run()
