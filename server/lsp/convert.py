"""Conversions between LSP values and the pipeline's domain values.

Positions arrive in the negotiated encoding's code units (UTF-16 unless the client
offered another). Per the LSP spec, a character past the end of its line means
the end of the line; a position inside a surrogate pair is moved back to the
start of its code point; a line past the end of the document is an error.
"""

from __future__ import annotations

from typing import Any


class BadPosition(ValueError):
    pass


def _units(ch: str, encoding: str) -> int:
    code = ord(ch)
    if encoding == "utf-8":
        return 1 if code < 0x80 else 2 if code < 0x800 else 3 if code < 0x10000 else 4
    if encoding == "utf-32":
        return 1
    return 2 if code >= 0x10000 else 1


def offset_at(text: str, line: int, character: int, encoding: str = "utf-16") -> int:
    """Index into `text` of an LSP position (lines split on \\n; a \\r before it is not text)."""
    if line < 0 or character < 0:
        raise BadPosition(f"negative position {line}:{character}")
    if line == 0:
        start = 0
    else:
        parts = text.split("\n", line)
        if len(parts) <= line:
            raise BadPosition(f"line {line} is past the end of the document ({len(parts)} lines)")
        start = len(text) - len(parts[-1])
    end = text.find("\n", start)
    end = len(text) if end < 0 else end
    if end > start and text[end - 1] == "\r":
        end -= 1
    if encoding == "utf-32" or (encoding == "utf-16" and text[start:end].isascii()):
        return min(start + character, end)
    units = 0
    index = start
    while index < end:
        width = _units(text[index], encoding)
        if units + width > character:
            break  # inside a multi-unit character: its start
        units += width
        index += 1
    return index


def position_at(text: str, offset: int, encoding: str = "utf-16") -> tuple[int, int]:
    """The LSP (line, character) of an index into `text`."""
    line = text.count("\n", 0, offset)
    start = text.rfind("\n", 0, offset) + 1
    segment = text[start:offset]
    if encoding == "utf-32" or segment.isascii():
        return line, len(segment)
    return line, sum(_units(ch, encoding) for ch in segment)


def field(params: Any, name: str, camel: str | None = None) -> Any:
    """Read a custom method's parameter whether pygls gave a dict or an object."""
    for key in (name, camel) if camel else (name,):
        if isinstance(params, dict):
            if key in params:
                return params[key]
        elif hasattr(params, key):
            return getattr(params, key)
    return None


def width(segment: str, encoding: str = "utf-16") -> int:
    """Length of `segment` in the encoding's code units (a column within one line)."""
    if encoding == "utf-32" or segment.isascii():
        return len(segment)
    return sum(_units(ch, encoding) for ch in segment)
