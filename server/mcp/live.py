"""What the MCP tools share while the server runs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mcp.server.mcpserver.exceptions import ToolError

from server.app import Services
from server.settings import Settings


@dataclass
class Live:
    """The settings, the directory the tools may read (the server's), the editor path's
    services while the server runs, and the last problem they reported (the reason an
    answer is empty)."""

    settings: Settings
    root: Path
    services: Services | None = None
    problem: str | None = None

    def running(self) -> Services:
        if self.services is None:
            raise ToolError("the server is not running")
        return self.services

    @property
    def database_url(self) -> str:
        return self.settings.resolved_database_url()
