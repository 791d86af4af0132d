"""The LSP base protocol on the way in: frames, JSON and the JSON-RPC envelope.

pygls' own read loop trusts its input: a message without ``Content-Length`` is
skipped together with every message after it until the stream happens to line up,
a ``Content-Length`` of a gigabyte is allocated, params of the wrong type are
dropped without an answer (the client's request hangs), and a JSON array or number
raises. This module reads defensively instead and turns every bad input into a
`Problem`: an error reply when the message had an id, a log line otherwise.

Standard library only: fast start imports it before pygls.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

# A 10 MB document escaped as JSON (every non-ASCII character as \\uXXXX) stays under
# this; more is a broken or hostile client, and is skipped without being kept.
MAX_MESSAGE_BYTES = 64 << 20
MAX_HEADER_BYTES = 64 << 10  # the reader's line limit; real headers are ~60 bytes
MAX_DEPTH = 64  # LSP messages nest about 10 deep; deeper is garbage (or a stack attack)
SNIFF_BYTES = 64 << 10  # how much of a skipped message is kept to find its id

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
SERVER_NOT_INITIALIZED = -32002

MessageId = int | str


@dataclass(frozen=True)
class Problem:
    """A message that cannot be handled: answered with `code` if `id` is known, else logged."""

    code: int
    message: str
    id: MessageId | None = None


_HEADER = re.compile(rb"^([A-Za-z0-9-]+)[ \t]*:[ \t]*(.*?)[ \t]*$")
_LENGTH_NAME = re.compile(rb"content-length[ \t]*:", re.IGNORECASE)


def content_length(block: bytes) -> int | Problem:
    lengths = set()
    skipped = 0
    for raw in block.split(b"\r\n"):
        line = raw
        if not _HEADER.match(line):
            # The tail of a body that lost its frame, then a header: keep the header.
            found = list(_LENGTH_NAME.finditer(line))
            if not found:
                skipped += len(raw)
                continue
            skipped += found[-1].start()
            line = line[found[-1].start() :]
        match = _HEADER.match(line)
        if match and match.group(1).lower() == b"content-length":
            lengths.add(match.group(2))
    note = f" ({skipped} stray bytes before it skipped)" if skipped else ""
    if len(lengths) != 1:
        what = "without a Content-Length" if not lengths else "with conflicting Content-Lengths"
        return Problem(PARSE_ERROR, f"message {what} skipped{note}")
    value = lengths.pop()
    if not value.isdigit() or len(value) > 12:
        return Problem(PARSE_ERROR, f"bad Content-Length {value[:40]!r}: message skipped{note}")
    return int(value)


def parse(body: bytes) -> Any | Problem:
    """The JSON value in `body`, or a `Problem` (with the id, when it can be read).

    Half a UTF-16 surrogate pair (``"\\ud800"``: valid JSON, not valid text) becomes
    U+FFFD: such a string cannot be encoded, so it would fail every later step (a job
    id, a database row, the model's tokenizer) far from its cause."""
    try:
        value = json.loads(body)
    except RecursionError:
        return Problem(INVALID_REQUEST, "message nested too deeply", sniff_id(body[:SNIFF_BYTES]))
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        return Problem(PARSE_ERROR, f"malformed JSON: {exc}", sniff_id(body[:SNIFF_BYTES]))
    if _SURROGATE_ESCAPE.search(body):  # rare: only then is the value walked
        value = _without_lone_surrogates(value)
    return value


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def _text(value: str) -> str:
    if not _SURROGATE.search(value):
        return value
    return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _without_lone_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _text(value)
    stack = [value]
    while stack:  # not recursive: the depth is checked later, on the cleaned value
        item = stack.pop()
        if isinstance(item, list):
            for index, element in enumerate(item):
                if isinstance(element, str):
                    item[index] = _text(element)
                elif isinstance(element, dict | list):
                    stack.append(element)
        elif isinstance(item, dict):
            for key in list(item):
                element = item.pop(key)
                if isinstance(element, str):
                    element = _text(element)
                elif isinstance(element, dict | list):
                    stack.append(element)
                item[_text(key)] = element
    return value


def check_envelope(message: Any) -> Problem | None:
    """Whether `message` is a JSON-RPC 2.0 request, notification or response."""
    if isinstance(message, list):
        return Problem(INVALID_REQUEST, "batches are not supported by LSP")
    if not isinstance(message, dict):
        return Problem(INVALID_REQUEST, f"a message must be a JSON object, not {_kind(message)}")
    has_id = "id" in message
    msg_id = message.get("id")
    if has_id and not _valid_id(msg_id):
        return Problem(INVALID_REQUEST, f"bad message id {str(msg_id)[:40]}")
    ident = msg_id if has_id else None
    if message.get("jsonrpc") != "2.0":
        return Problem(INVALID_REQUEST, 'a message must have "jsonrpc": "2.0"', ident)
    if _depth_over(message, MAX_DEPTH):
        return Problem(INVALID_REQUEST, f"message nested over {MAX_DEPTH} levels", ident)
    if "method" in message:
        if not isinstance(message["method"], str):
            return Problem(INVALID_REQUEST, "method must be a string", ident)
        params = message.get("params")
        if params is not None and not isinstance(params, dict | list):
            return Problem(INVALID_PARAMS, f"params must be an object, not {_kind(params)}", ident)
        return None
    if has_id and ("result" in message or "error" in message):
        return None  # a response to one of our requests
    return Problem(INVALID_REQUEST, "a message needs a method (or a result)", ident)


def _valid_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__.replace("dict", "object")


def _depth_over(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item if isinstance(v, dict | list))
    return False


_TOKEN = re.compile(rb'\s*(?:"((?:[^"\\]|\\.)*)"|(-?\d+)(?![.eE\d])|([{}\[\]:,])|(.))', re.DOTALL)


def sniff_id(body: bytes) -> MessageId | None:
    """The top-level ``"id"`` of a message that cannot be parsed (truncated, garbled,
    too big), if the text up to it is well-formed: replying to a request we could not
    read beats leaving the client waiting. A nested ``"id"`` is never taken."""
    depth = 0
    expect_key = False
    key: bytes | None = None
    pos = 0
    while pos < len(body):
        match = _TOKEN.match(body, pos)
        if match is None:
            return None
        pos = match.end()
        string, number, punct, other = match.groups()
        if punct in (b"{", b"["):
            depth += 1
            expect_key = punct == b"{" and depth == 1
        elif punct in (b"}", b"]"):
            depth -= 1
        elif punct == b",":
            expect_key = depth == 1
        elif punct == b":":
            pass
        elif string is not None and expect_key:
            key, expect_key = string, False
            continue
        elif depth == 1 and key == b"id" and (string is not None or number is not None):
            if number is not None:
                return int(number)
            try:
                decoded: Any = json.loads(b'"' + string + b'"')
            except ValueError:
                return None
            return decoded if isinstance(decoded, str) else None
        elif other is not None and depth == 0:
            return None
        key = None if punct != b":" else key
    return None
