"""The resources: ``zi://history/recent`` and ``zi://config`` (credentials masked)."""

from __future__ import annotations

import asyncio
import json

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError

from server.mcp.live import Live
from server.mcp.masking import masked_settings
from server.mcp.tools_history import history_rows


def add_resources(server: MCPServer, live: Live) -> None:
    @server.resource(
        "zi://history/recent",
        mime_type="application/json",
        description="The 50 newest suggestions and model calls in Zi's history",
    )
    async def recent() -> str:
        try:
            found = await asyncio.to_thread(history_rows, live.database_url, text=None, limit=50)
        except ToolError as exc:  # the reason, not the SDK's generic message
            raise ResourceError(str(exc)) from exc
        return json.dumps({"results": found}, indent=2)

    @server.resource(
        "zi://config",
        mime_type="application/json",
        description="The settings this server runs with, credentials masked",
    )
    def configuration() -> str:
        return json.dumps(masked_settings(live.settings), indent=2)
