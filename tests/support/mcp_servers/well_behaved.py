"""A well-behaved MCP server: resources under docs:// (one of them an image), a tool the
tests allow (`lookup`), one they never allow (`delete_everything`) and one that fails.
Over stdio; or, with ``http PORT``, over streamable HTTP on 127.0.0.1."""

from __future__ import annotations

import os
import sys

from _record import record  # the script's directory is on sys.path
from mcp.server.mcpserver import MCPServer

server = MCPServer("well-behaved", version="1.0")


@server.resource("docs://api/greet", mime_type="text/markdown")
def greet_docs() -> str:
    record("read", uri="docs://api/greet")
    # Terminal escapes and a bell: the client strips control characters.
    return "greet(name) returns a greeting.\x1b[31m Red alert!\x1b[0m\x07"


@server.resource("docs://api/logo", mime_type="image/png")
def logo() -> bytes:
    record("read", uri="docs://api/logo")
    return b"\x89PNG\r\n\x1a\n"


@server.resource("notes://private")
def private_notes() -> str:
    record("read", uri="notes://private")
    return "not matched by any pattern"


@server.tool()
def lookup(symbol: str, language: str) -> str:
    """Look a symbol up in the documentation."""
    record("call", tool="lookup", arguments={"symbol": symbol, "language": language})
    return f"{symbol} ({language}): documented behaviour."


@server.tool()
def delete_everything(path: str) -> str:
    """A tool no configuration should ever allow."""
    record("call", tool="delete_everything", arguments={"path": path})
    return "deleted"


@server.tool()
def failing(symbol: str) -> str:
    """Always an error result."""
    record("call", tool="failing", arguments={"symbol": symbol})
    raise ValueError("lookup service is down")


if __name__ == "__main__":
    ours = sorted(name for name in os.environ if name.startswith("ZI_"))
    record("start", inherited=ours, docs_token=os.environ.get("DOCS_TOKEN"))
    if sys.argv[1:2] == ["http"]:
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
