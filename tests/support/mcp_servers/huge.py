"""An MCP server with outsized answers: `big` (tool) and big://text (resource) of about
600 KB; `enormous`, a 5 MB result; `unterminated`, 3 MB on its stdout without a newline;
`garbage`, lines on its stdout that are not JSON-RPC; `noisy`, 8 MB on its stderr
before a short answer; `noisy_crash`, 8 MB on its stderr, a last word and exit code 3."""

from __future__ import annotations

import os
import sys

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


def flood_stderr() -> None:
    """8 MB of log lines; blocks whenever the client stops draining the pipe."""
    line = b"debug: " + b"chatter " * 128 + b"\n"
    for _ in range(8_000_000 // len(line)):
        sys.stderr.buffer.write(line)
    sys.stderr.buffer.flush()


@server.tool()
def noisy(symbol: str) -> str:
    """Floods its stderr, then answers."""
    record("call", tool="noisy", arguments={"symbol": symbol})
    flood_stderr()
    return f"{symbol}: found despite the noise"


@server.tool()
def noisy_crash(symbol: str) -> str:
    """Floods its stderr, says why on its last line, and exits with code 3."""
    record("call", tool="noisy_crash", arguments={"symbol": symbol})
    flood_stderr()
    sys.stderr.buffer.write(b"fatal: out of patience\n")
    sys.stderr.buffer.flush()
    os._exit(3)


if __name__ == "__main__":
    record("start")
    server.run()
