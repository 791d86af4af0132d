"""An MCP server that crashes with exit code 3, saying why on stderr. ``init``: right
after the initialize handshake (a bare JSON-RPC loop). ``call``: during a call of its
`explode` tool, only the first time when ``--once MARKER`` is given (the marker file
remembers it crashed), so a reconnect finds it working."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from _record import record  # the script's directory is on sys.path


def crash(why: str) -> None:
    sys.stderr.write(f"fatal: {why}\n")
    sys.stderr.flush()
    os._exit(3)


def crash_after_initialize() -> None:
    record("start")
    for line in sys.stdin:
        message = json.loads(line)
        if message.get("method") == "initialize":
            result = {
                "protocolVersion": message["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "crashes", "version": "1.0"},
            }
            reply = {"jsonrpc": "2.0", "id": message["id"], "result": result}
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()
        elif message.get("method") == "notifications/initialized":
            crash("database connection lost")


def crash_during_call(marker: Path | None) -> None:
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("crashes", version="1.0")

    @server.tool()
    def explode(symbol: str) -> str:
        """Crashes (once, with a marker)."""
        record("call", tool="explode", arguments={"symbol": symbol})
        if marker is None or not marker.exists():
            if marker is not None:
                marker.touch()
            crash(f"segmentation fault while looking up {symbol}")
        return f"{symbol}: found after a restart"

    record("start")
    server.run()


if __name__ == "__main__":
    if sys.argv[1] == "init":
        crash_after_initialize()
    else:
        crash_during_call(Path(sys.argv[3]) if sys.argv[2:3] == ["--once"] else None)
