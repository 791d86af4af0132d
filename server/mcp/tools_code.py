"""The tools over the editor path's completion and review: ``complete_code``,
``review_file``."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from server.completion.types import CompletionRequest, Document
from server.diagnostics.service import ReviewUnavailable
from server.languages import language_of
from server.mcp.documents import MAX_FILE_CHARS, name_of, read_under, refuse_excluded, uri_of
from server.mcp.live import Live, problems_reported
from server.mcp.tool_params import FileContent, FilePath, LanguageId


def add_code_tools(server: MCPServer, live: Live) -> None:
    @server.tool()
    async def complete_code(
        content: Annotated[str, Field(max_length=MAX_FILE_CHARS, description="The whole file")],
        line: Annotated[int, Field(ge=0, description="Cursor line, from 0")],
        character: Annotated[
            int, Field(ge=0, description="Cursor column, from 0, in characters (code points)")
        ],
        path: Annotated[
            str | None, Field(description="The file's path: its language and the history's")
        ] = None,
        language: LanguageId = None,
    ) -> dict[str, Any]:
        """Complete code at the cursor with Zi's fill-in-the-middle model: the same
        pipeline, cache and history as the editor. Returns the text to insert."""
        services = live.running()
        lines = content.split("\n")
        if line >= len(lines) or character > len(lines[line]):
            raise ToolError(
                f"line {line}, character {character} is outside the content "
                f"({len(lines)} lines; that line has {len(lines[min(line, len(lines) - 1)])})"
            )
        offset = sum(len(text) + 1 for text in lines[:line]) + character
        name = name_of(path)
        document = Document(
            uri=uri_of(name),
            language_id=language or language_of(name),
            version=0,
            text=content,
        )
        with problems_reported() as problems:
            result = await services.completions.complete(
                CompletionRequest(document, offset, line, character, invoked=True)
            )
        if result is None:
            reason = problems[-1] if problems else "the suggestion was empty or filtered out"
            raise ToolError(f"no completion: {reason}")
        return {"text": result.text, "completion_id": result.id, "model": result.model}

    @server.tool()
    async def review_file(
        content: FileContent = None,
        path: FilePath = None,
        language: LanguageId = None,
    ) -> dict[str, Any]:
        """Review a file with Zi's AI review, as on save in the editor: findings with
        1-based line ranges, severity, message, and a fix (the new text of exactly those
        lines) when there is one."""
        services = live.running()
        if content is None and path is None:
            raise ToolError("give the file's content, or its path")
        name = name_of(path)
        rules = live.settings.context.rules()
        if content is None:
            # Larger files are not reviewed: refused before they are read.
            limit = min(live.settings.diagnostics.max_file_chars, MAX_FILE_CHARS)
            content = await asyncio.to_thread(
                read_under, live.root, name, max_chars=limit, rules=rules
            )
        elif path is not None:  # no AI on a .env even when the agent sends its text
            refuse_excluded(live.root, name, live.root.resolve() / name, rules)
        try:
            findings = await services.diagnostics.review_file(
                text=content,
                language_id=language or language_of(name),
                path=name.name,
                uri=uri_of(name),
            )
        except ReviewUnavailable as exc:
            raise ToolError(str(exc)) from exc
        return {"findings": [finding.model_dump() for finding in findings]}
