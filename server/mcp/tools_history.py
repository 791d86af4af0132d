"""The tools over Zi's history: ``stats``, ``search_history``; and the rows both
they and the ``zi://history/recent`` resource show."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field
from sqlalchemy.exc import SQLAlchemyError

from server.errors import describe
from server.history.reading import masked, read_history, read_stats
from server.history.stats import Stats, to_json
from server.mcp.live import Live

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)


def add_history_tools(server: MCPServer, live: Live) -> None:
    url = live.database_url

    @server.tool(annotations=READ_ONLY)
    async def stats(
        since_days: Annotated[
            float | None,
            Field(gt=0, description="Only the last this many days (default: all time)"),
        ] = None,
    ) -> dict[str, Any]:
        """Acceptance, latency, cache, model-call and job figures of Zi's history, as
        `zi-coder stats --json` reports them."""
        since = None if since_days is None else datetime.now(UTC) - timedelta(days=since_days)
        try:
            figures = await asyncio.to_thread(read_stats, url, since=since)
        except (SQLAlchemyError, OSError) as exc:
            message = f"cannot read the history database {masked(url)}: {describe(exc)}"
            raise ToolError(message) from exc
        note = None if figures is not None else f"no history yet at {masked(url)}"
        return to_json(figures or Stats.empty(), url=masked(url), since=since, note=note)

    @server.tool(annotations=READ_ONLY)
    async def search_history(
        text: Annotated[
            str, Field(min_length=2, max_length=200, description="Text to look for (any case)")
        ],
        limit: Annotated[int, Field(ge=1, le=200, description="Most results")] = 20,
    ) -> dict[str, Any]:
        """Search Zi's history, newest first: suggestions by file name or text, model
        calls by prompt, response or error. Prompts and texts are searchable only where
        history.store_prompts kept them (secrets redacted)."""
        found = await asyncio.to_thread(history_rows, url, text=text, limit=limit)
        return {"results": found, "count": len(found)}


def history_rows(url: str, *, text: str | None, limit: int) -> list[dict[str, Any]]:
    """Rows containing `text`, or the newest ones for `text` None, as JSON values."""
    try:
        found = read_history(url, text=text, limit=limit)
    except (SQLAlchemyError, OSError) as exc:
        message = f"cannot read the history database {masked(url)}: {describe(exc)}"
        raise ToolError(message) from exc
    return [asdict(item) | {"created_at": _utc(item.created_at).isoformat()} for item in found]


def _utc(at: datetime) -> datetime:
    # SQLite gives back naive datetimes; the history writes them in UTC.
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
