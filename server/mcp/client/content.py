"""From what an MCP server returns to context items: text only, cleaned, cut to size.

Results are untrusted data. Only text is kept (text blocks, text resources, a
structured result as compact JSON); images, blobs, audio and resource links (never
followed) are dropped, and so is an error result. Control characters and terminal
escapes are stripped, so nothing can hide in or restyle what the user and the model see.
"""

from __future__ import annotations

import json
import re
import string
from typing import Any

from mcp.types import CallToolResult, ReadResourceResult, TextContent, TextResourceContents

from server.context.types import ContextRequest
from server.mcp.client.config import ToolUse, placeholder_values, render_arguments

_CONTROL = re.compile(
    r"\x1b\[[0-9;?]*[ -/]*[@-~]"  # terminal escapes
    r"|[\x00-\x08\x0b-\x1f\x7f]"  # control characters but tab and newline
    r"|[\u200b-\u200f\u202a-\u202e\u2066-\u2069]"  # invisible and bidi overrides
)


def clean_text(text: str, cap: int) -> str:
    """`text` without control characters, cut to `cap` characters with a marker."""
    text = _CONTROL.sub("", text).strip()
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
        for text in _strings_in(use.arguments)
        for _literal, field, _spec, _conversion in string.Formatter().parse(text)
        if field
    }
    if any(not values.get(name, "").strip() for name in needed):
        return None
    return render_arguments(use.arguments, request)


def first_line(text: str | None, cap: int = 120) -> str:
    line = clean_text(text or "", cap * 2).partition("\n")[0]
    return line if len(line) <= cap else line[: cap - 1] + "…"


def _strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in _strings_in(item)]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings_in(item)]
    return []
