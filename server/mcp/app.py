"""The MCP server ``zi-coder mcp``: Zi's tools for coding agents, over the same
services (pipeline, queue, cache and history) as the editor path.

Tools: ``complete_code``, ``review_file`` (``tools_code.py``), ``fix_diagnostic``,
``generate_tests`` (``tools_actions.py``), ``stats``, ``search_history``
(``tools_history.py``). Resources: ``zi://history/recent``, ``zi://config``
(``resources.py``). The services live as long as the server (the lifespan): over
stdio one client's session, over HTTP the app.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp.server.mcpserver import MCPServer

from server import __version__
from server.mcp.live import Live
from server.mcp.resources import add_resources
from server.mcp.tools_actions import add_action_tools
from server.mcp.tools_code import add_code_tools
from server.mcp.tools_history import add_history_tools
from server.settings import Settings

INSTRUCTIONS = (
    "Zi Coder is a self-hosted coding assistant. Its tools complete code, review a "
    "file, fix a diagnostic and write tested unit tests with Zi's models, as in the "
    "editor; they return text and edits and never write files. Others read the history "
    "of its suggestions and model calls; the figures are the same as `zi-coder stats`."
)


def build_mcp(settings: Settings, *, token: str | None = None) -> MCPServer:
    """The server; with `token`, HTTP requests must carry it as a bearer token."""
    # Tools read files, and generated tests go, under the directory the server runs in.
    live = Live(settings, root=Path.cwd())

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[None]:
        from server.app import build_services
        from server.mcp.live import CallNotifier

        # Its problems are logged (stderr) and reach the tool call they happened in.
        live.services = build_services(
            settings, notifier=CallNotifier(), folders=lambda: [live.root]
        )
        try:
            yield
        finally:
            services, live.services = live.services, None
            await services.aclose(drain_s=2)  # the history is flushed

    auth: dict[str, Any] = {}
    if token is not None:
        from server.mcp.http import StaticToken, auth_settings

        auth = {"token_verifier": StaticToken(token), "auth": auth_settings()}
    server = MCPServer(
        "zi-coder", version=__version__, instructions=INSTRUCTIONS, lifespan=lifespan, **auth
    )
    add_code_tools(server, live)
    add_action_tools(server, live)
    add_history_tools(server, live)
    add_resources(server, live)
    return server
