"""From what an MCP server returns to context items: text only, cleaned, cut to size.

Results are untrusted data. Only text is kept (text blocks, text resources, a
structured result as compact JSON); images, blobs, audio and resource links (never
followed) are dropped, and so is an error result. Terminal escapes and invisible
characters are stripped (by the one cleaner, ``server.context.prompt.visible``), so
nothing can hide in or restyle what the user and the model see; so are the names,
descriptions and URIs ``zi-coder mcp list`` shows.
"""

from __future__ import annotations

import json
import string
from typing import Any

from mcp.types import CallToolResult, ReadResourceResult, TextContent, TextResourceContents

from server.context.prompt import visible
from server.context.types import ContextRequest
from server.mcp.client.config import ToolUse, placeholder_values, render_arguments, strings_in


def clean_text(text: str, cap: int) -> str:
    """`text` without escapes or invisible characters, cut to `cap` characters with a
    marker."""
    text = visible(text).strip()
    if len(text) > cap:
        text = text[:cap] + f"\n[... {len(text) - cap} more characters cut]"
    return text


def tool_text(result: CallToolResult) -> str | None:
    """The text of a tool result; None for an error or a result with no text."""
    if result.is_error:
        return None
    texts = [block.text for block in result.content if isinstance(block, TextContent)]
    if texts:  # servers also send structured results as text: once is enough
        return "\n".join(texts)
    if result.structured_content is not None:
        return json.dumps(result.structured_content, separators=(",", ":"), ensure_ascii=False)
    return None


def resource_text(result: ReadResourceResult) -> str | None:
    texts = [part.text for part in result.contents if isinstance(part, TextResourceContents)]
    return "\n".join(texts) if texts else None


def arguments_for(use: ToolUse, request: ContextRequest) -> dict[str, Any] | None:
    """The tool's arguments for `request`; None when a placeholder they use has no value
    (a lookup of an empty symbol would only return noise)."""
    values = placeholder_values(request)
    needed = {
        field
        for text in strings_in(use.arguments)
        for _literal, field, _spec, _conversion in string.Formatter().parse(text)
        if field
    }
    if any(not values.get(name, "").strip() for name in needed):
        return None
    return render_arguments(use.arguments, request)


def first_line(text: str | None, cap: int = 120) -> str:
    """The first line of a server's text (a tool description), cleaned and cut."""
    line = clean_text(text or "", cap * 2).partition("\n")[0]
    return line if len(line) <= cap else line[: cap - 1] + "…"


def one_line(text: str, cap: int = 300) -> str:
    """A server's name or URI as shown on one line: cleaned, whitespace runs as one
    space, cut."""
    line = " ".join(visible(text).split())
    return line if len(line) <= cap else line[: cap - 1] + "…"
