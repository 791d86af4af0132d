"""Strict reading of what a language server writes: every byte a JSON-RPC frame.

`next_frame` takes the frame at the start of a buffer (only the Content-Length and
Content-Type headers are allowed, the body is a UTF-8 JSON object); `shape_problem`
says what keeps a message from being a JSON-RPC 2.0 request, notification or response.
"""

from __future__ import annotations

import json
from typing import Any


def next_frame(buffer: bytes) -> tuple[dict[str, Any] | None, bytes, str | None]:
    """(message, rest, problem) for the frame at the start of `buffer` (None: need more)."""
    head, sep, rest = buffer.partition(b"\r\n\r\n")
    if not sep:
        ok = b"Content-Length: ".startswith(buffer[:16]) or buffer.startswith(b"Content-")
        return None, buffer, None if ok or not buffer else f"junk on stdout: {buffer[:120]!r}"
    headers: dict[str, str] = {}
    for line in head.split(b"\r\n"):
        name, colon, value = line.decode("ascii", "replace").partition(": ")
        if not colon or name not in ("Content-Length", "Content-Type"):
            return None, buffer, f"bad header on stdout: {line[:120]!r}"
        headers[name] = value
    if not headers.get("Content-Length", "").isdigit():
        return None, buffer, f"no Content-Length on stdout: {head[:120]!r}"
    length = int(headers["Content-Length"])
    if len(rest) < length:
        return None, buffer, None
    try:
        message = json.loads(rest[:length].decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        return None, buffer, f"body is not JSON ({exc}): {rest[:120]!r}"
    if not isinstance(message, dict):
        return None, buffer, f"body is not an object: {rest[:120]!r}"
    return message, rest[length:], None


def shape_problem(message: dict[str, Any]) -> str | None:
    """What makes `message` not a JSON-RPC 2.0 request, notification or response."""
    if message.get("jsonrpc") != "2.0":
        return "jsonrpc is not 2.0"
    if "method" in message:
        return None if isinstance(message["method"], str) else "method is not a string"
    if "id" not in message:
        return "neither a method nor an id"
    if ("result" in message) == ("error" in message):
        return "a response needs exactly one of result and error"
    error = message.get("error")
    if error is not None and not (
        isinstance(error, dict)
        and isinstance(error.get("code"), int)
        and isinstance(error.get("message"), str)
    ):
        return "malformed error object"
    return None
