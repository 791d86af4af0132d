"""What the MCP tools share while the server runs, and the problems each tool call
ran into (the reason its answer is empty)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from mcp.server.mcpserver.exceptions import ToolError

from server.app import Services
from server.notify import Level, Notifier
from server.settings import Settings

# The problems reported while the current tool call runs: a context variable, so
# concurrent calls and sessions each see their own (tasks the call starts share it).
_reported: ContextVar[list[str] | None] = ContextVar("zi_mcp_reported", default=None)


@dataclass
class Live:
    """The settings, the directory the tools may read (the server's), and the editor
    path's services while the server runs."""

    settings: Settings
    root: Path
    services: Services | None = None

    def running(self) -> Services:
        if self.services is None:
            raise ToolError("the server is not running")
        return self.services

    @property
    def database_url(self) -> str:
        return self.settings.resolved_database_url()


class CallNotifier(Notifier):
    """A Notifier that also hands each problem to the tool call it happened in: every
    report, including those its rate limit keeps out of the log sink."""

    def problem(
        self, key: str, message: str, *, lasting: bool = False, level: Level = Level.WARNING
    ) -> None:
        reported = _reported.get()
        if reported is not None:
            reported.append(message)
        super().problem(key, message, lasting=lasting, level=level)


@contextmanager
def problems_reported() -> Iterator[list[str]]:
    """The problems the services report while the block runs, in this call alone."""
    reported: list[str] = []
    token = _reported.set(reported)
    try:
        yield reported
    finally:
        _reported.reset(token)
