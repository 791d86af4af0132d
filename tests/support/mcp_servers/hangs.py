"""An MCP server that hangs. ``init``: never answers initialize, ignores SIGTERM and
stdin EOF, and keeps a grandchild in its process group (its pid recorded) — only a
SIGKILL to the group stops them. ``call``: answers, but its `wait` tool never returns."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from _record import record  # the script's directory is on sys.path


def never_answer() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # inherited by the grandchild too
    grandchild = subprocess.Popen(["sleep", "300"], stdin=subprocess.DEVNULL)
    record("start", grandchild=grandchild.pid)
    while True:
        time.sleep(1)


def never_return() -> None:
    import anyio
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("hangs", version="1.0")

    @server.tool()
    async def wait(symbol: str) -> str:
        """Never returns."""
        record("call", tool="wait", arguments={"symbol": symbol})
        await anyio.sleep_forever()
        return "unreachable"

    record("start")
    server.run()


if __name__ == "__main__":
    never_answer() if sys.argv[1:] == ["init"] else never_return()
