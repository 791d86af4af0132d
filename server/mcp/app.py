"""The MCP server: tools over the same history (and, next, the same services) as the
editor path. First cut: ``stats``."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from server import __version__
from server.app import Services
from server.settings import Settings

INSTRUCTIONS = (
    "Zi Coder is a self-hosted coding assistant. Its tools read the history of its "
    "suggestions and model calls; the figures are the same as `zi-coder stats`."
)
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
# Settings whose value is a credential whatever it looks like.
_SECRET_NAME = re.compile(r"api_key|token|password|secret", re.IGNORECASE)


@dataclass
class _Live:
    """What the tools share while the server runs: the editor path's services, and the
    last problem they reported (the reason an answer is empty)."""

    services: Services | None = None
    problem: str | None = None


def build_mcp(settings: Settings, *, token: str | None = None) -> MCPServer:
    """The server; with `token`, HTTP requests must carry it as a bearer token."""
    live = _Live()

    @asynccontextmanager
    async def lifespan(_: MCPServer) -> AsyncIterator[None]:
        from server.app import build_services
        from server.notify import Level, Notifier

        def keep(level: Level, message: str) -> None:
            if level <= Level.WARNING:
                live.problem = message

        notifier = Notifier()
        notifier.connect(log_sink=keep, show_sink=keep)
        live.services = build_services(settings, notifier=notifier)
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
    url = settings.resolved_database_url()

    @server.tool()
    async def complete_code(
        content: Annotated[str, Field(max_length=2_000_000, description="The whole file")],
        line: Annotated[int, Field(ge=0, description="Cursor line, from 0")],
        character: Annotated[
            int, Field(ge=0, description="Cursor column, from 0, in characters (code points)")
        ],
        path: Annotated[
            str | None, Field(description="The file's path: its language and the history's")
        ] = None,
        language: Annotated[str | None, Field(description="Language id, e.g. python")] = None,
    ) -> dict[str, Any]:
        """Complete code at the cursor with Zi's fill-in-the-middle model: the same
        pipeline, cache and history as the editor. Returns the text to insert."""
        from server.commands.complete import language_of
        from server.completion.types import CompletionRequest, Document

        if live.services is None:
            raise ToolError("the server is not running")
        lines = content.split("\n")
        if line >= len(lines) or character > len(lines[line]):
            raise ToolError(
                f"line {line}, character {character} is outside the content "
                f"({len(lines)} lines; that line has {len(lines[min(line, len(lines) - 1)])})"
            )
        offset = sum(len(text) + 1 for text in lines[:line]) + character
        name = PurePosixPath(path or "untitled")
        document = Document(
            uri=f"mcp:///{name.as_posix().lstrip('/')}",
            language_id=language or language_of(name),
            version=0,
            text=content,
        )
        live.problem = None
        result = await live.services.completions.complete(
            CompletionRequest(document, offset, line, character, invoked=True)
        )
        if result is None:
            raise ToolError(
                f"no completion: {live.problem or 'the suggestion was empty or filtered out'}"
            )
        return {"text": result.text, "completion_id": result.id, "model": result.model}

    @server.tool(annotations=READ_ONLY)
    async def stats(
        since_days: Annotated[
            float | None,
            Field(gt=0, description="Only the last this many days (default: all time)"),
        ] = None,
    ) -> dict[str, Any]:
        """Acceptance, latency, cache, model-call and job figures of Zi's history, as
        `zi-coder stats --json` reports them."""
        from sqlalchemy.exc import SQLAlchemyError

        from server.commands.stats import masked, read_stats
        from server.errors import describe
        from server.history.stats import Stats, to_json

        since = None if since_days is None else datetime.now(UTC) - timedelta(days=since_days)
        try:
            figures = await asyncio.to_thread(read_stats, url, since=since)
        except (SQLAlchemyError, OSError) as exc:
            message = f"cannot read the history database {masked(url)}: {describe(exc)}"
            raise ToolError(message) from exc
        note = None if figures is not None else f"no history yet at {masked(url)}"
        return to_json(figures or Stats.empty(), url=masked(url), since=since, note=note)

    @server.tool()
    async def review_file(
        content: Annotated[
            str | None, Field(max_length=2_000_000, description="The file's text (or: path)")
        ] = None,
        path: Annotated[
            str | None,
            Field(
                description="The file, under the directory the server runs in; read if "
                "content is not given, and its name tells the language"
            ),
        ] = None,
        language: Annotated[str | None, Field(description="Language id, e.g. python")] = None,
    ) -> dict[str, Any]:
        """Review a file with Zi's AI review, as on save in the editor: findings with
        1-based line ranges, severity, message, and a fix (the new text of exactly those
        lines) when there is one."""
        from server.commands.complete import language_of
        from server.diagnostics.service import ReviewUnavailable

        if live.services is None:
            raise ToolError("the server is not running")
        if content is None and path is None:
            raise ToolError("give the file's content, or its path")
        name = PurePosixPath(path or "untitled")
        if content is None:
            content = await asyncio.to_thread(_read_under, Path.cwd(), name)
        try:
            findings = await live.services.diagnostics.review_file(
                text=content,
                language_id=language or language_of(name),
                path=name.name,
                uri=f"mcp:///{name.as_posix().lstrip('/')}",
            )
        except ReviewUnavailable as exc:
            raise ToolError(str(exc)) from exc
        return {"findings": [finding.model_dump() for finding in findings]}

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
        found = await asyncio.to_thread(_read_history, url, text, limit)
        return {"results": found, "count": len(found)}

    @server.resource(
        "zi://history/recent",
        mime_type="application/json",
        description="The 50 newest suggestions and model calls in Zi's history",
    )
    async def recent() -> str:
        found = await asyncio.to_thread(_read_history, url, None, 50)
        return json.dumps({"results": found}, indent=2)

    @server.resource(
        "zi://config",
        mime_type="application/json",
        description="The settings this server runs with, credentials masked",
    )
    def configuration() -> str:
        return json.dumps(masked_settings(settings), indent=2)

    return server


def masked_settings(settings: Settings) -> dict[str, Any]:
    """`settings` as JSON, safe to show an agent: credentials as ``***``, URLs without
    user, password or query, every other text redacted (``server.redact``)."""
    from server.history.repository import safe_endpoint
    from server.redact import redact

    def mask(value: Any, name: str) -> Any:
        if isinstance(value, dict):
            return {key: mask(item, key) for key, item in value.items()}
        if isinstance(value, list):
            return [mask(item, name) for item in value]
        if isinstance(value, str):
            if value and _SECRET_NAME.search(name):
                return "***"
            return safe_endpoint(value) if "://" in value else redact(value)
        return value

    masked: dict[str, Any] = mask(settings.model_dump(mode="json"), "")
    return masked


def _read_history(url: str, text: str | None, limit: int) -> list[dict[str, Any]]:
    """Rows containing `text`, or the newest ones for `text` None."""
    from dataclasses import asdict

    from sqlalchemy import inspect
    from sqlalchemy.exc import SQLAlchemyError

    from server.commands.stats import masked, open_readonly
    from server.errors import describe
    from server.history.search import recent_history, search_history

    try:
        engine = open_readonly(url)
        if engine is None:
            return []
        try:
            with engine.connect() as connection:
                if not inspect(connection).has_table("model_calls"):
                    return []  # no history yet, or one from before model calls were kept
                if text is None:
                    found = recent_history(connection, limit=limit)
                else:
                    found = search_history(connection, text=text, limit=limit)
        finally:
            engine.dispose()
    except (SQLAlchemyError, OSError) as exc:
        message = f"cannot read the history database {masked(url)}: {describe(exc)}"
        raise ToolError(message) from exc
    return [asdict(item) | {"created_at": _utc(item.created_at).isoformat()} for item in found]


def _utc(at: datetime) -> datetime:
    # SQLite gives back naive datetimes; the history writes them in UTC.
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _read_under(root: Path, name: PurePosixPath) -> str:
    """The text of `name` if it is under `root` (an agent must not read ~/.ssh)."""
    base = root.resolve()
    target = (base / name).resolve()
    if not target.is_relative_to(base):
        raise ToolError(f"{name} is outside {base}, the directory the server runs in")
    try:
        return target.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ToolError(f"cannot read {name}: {exc}") from exc
