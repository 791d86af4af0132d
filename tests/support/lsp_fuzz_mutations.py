"""Mutations of well-formed LSP messages, from params down to the frame's bytes.

`next_outgoing(gen)` draws one message from `MessageGenerator.valid()` and, with the
weights in `LAYERS`, sends it as it is or mutated in one layer:

- params: a field of the wrong type, a key dropped or added, a negative or huge
  number, a position past the end, an invalid URI, deep nesting, params that are
  not an object;
- envelope: a weird or missing id, an id on a notification, a wrong ``jsonrpc`` or
  ``method``, a stray response, a second ``initialize``, a non-object message, a batch;
- body: truncated or garbled JSON, invalid UTF-8, a byte-order mark, deep nesting,
  an empty body, a large body;
- frame: Content-Length too small, too large (completed by padding or by garbage),
  missing, unparsable, lowercase or twice; extra headers, bare LF, junk before the
  header; a frame written in pieces.
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any

from tests.support.lsp_fuzz_messages import (
    BAD_URIS,
    INT32,
    NUMBERS,
    WEIRD,
    MessageGenerator,
    Outgoing,
)

LAYERS = (("valid", 0.45), ("params", 0.25), ("envelope", 0.1), ("body", 0.1), ("frame", 0.1))
DEEP_MARK = b"fuzz-deep-nesting:"  # a string json.dumps writes, replaced by encode()
RESYNC = b"\r\n\r\n"  # ends whatever header block the server is in after a broken frame


def encode(message: Any) -> bytes:
    """JSON bytes; `Deep` markers become nesting too deep for json.dumps to write."""
    body = json.dumps(message).encode("utf-8")
    while (at := body.find(DEEP_MARK)) >= 0:
        end = body.index(b'"', at + len(DEEP_MARK))
        depth = int(body[at + len(DEEP_MARK) : end])
        body = body[: at - 1] + b"[" * depth + b"0" + b"]" * depth + body[end + 1 :]
    return body


def frame(body: bytes, header: bytes | None = None) -> bytes:
    return (header or b"Content-Length: %d\r\n\r\n" % len(body)) + body


def owed_id(body: bytes) -> int | str | None:
    """The id the server must answer for this body (read as a whole frame), if any."""
    try:
        value = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, dict):
        return None
    mid = value.get("id")
    valid = isinstance(mid, str) or (
        isinstance(mid, int) and not isinstance(mid, bool) and -INT32 <= mid < INT32
    )
    if not valid or ("method" not in value and ("result" in value or "error" in value)):
        return None
    return mid


def next_outgoing(gen: MessageGenerator) -> Outgoing:
    message = gen.valid()
    method = str(message["method"])
    layer = _weighted(gen.rng, LAYERS)
    if layer == "params":
        op = _mutate_params(gen.rng, message)
        return _whole("params:" + op, encode(message), method)
    if layer == "envelope":
        op, body = _mutate_envelope(gen, message)
        return _whole("envelope:" + op, body, method)
    if layer == "body":
        op, body = _mutate_body(gen.rng, encode(message))
        return _whole("body:" + op, body, method)
    if layer == "frame":
        return _mutate_frame(gen.rng, encode(message), method)
    return _whole(f"{gen.label}:{method}", encode(message), method)


def _whole(kind: str, body: bytes, method: str) -> Outgoing:
    return Outgoing([frame(body)], kind, owed_id(body), method)


def _weighted(rng: random.Random, choices: tuple[tuple[str, float], ...]) -> str:
    pick = rng.random() * sum(w for _, w in choices)
    for name, weight in choices:
        pick -= weight
        if pick <= 0:
            return name
    return choices[-1][0]


def _weird(rng: random.Random, among: int = len(WEIRD)) -> Any:
    """A copy: the mutations edit values in place, and WEIRD is shared."""
    return copy.deepcopy(rng.choice(WEIRD[:among]))


def _deep(depth: int) -> str:
    return DEEP_MARK.decode() + str(depth)


# ---------------------------------------------------------------------- params


def _nodes(value: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """(container, key) of every value below `value`."""
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in list(items):
        out.append((value, key))
        if isinstance(child, dict | list) and len(out) < 200:
            _nodes(child, out)
    return out


def _mutate_params(rng: random.Random, message: dict[str, Any]) -> str:
    params = message.get("params")
    if not isinstance(params, dict) or not params or rng.random() < 0.1:
        choice = rng.choice(("missing", "array", "number", "string", "null", "bool"))
        if choice == "missing":
            message.pop("params", None)
        else:
            message["params"] = {"array": [1, 2], "number": 7, "string": "p", "null": None}.get(
                choice, True
            )
        return "params-" + choice
    nodes = _nodes(params, [])
    op = rng.choice(("wrong-type", "number", "past-end", "bad-uri", "drop", "extra", "deep"))
    for _ in range(rng.randint(1, 3)):
        container, key = rng.choice(nodes)
        if op == "wrong-type":
            container[key] = _weird(rng)
        elif op == "number":
            ints = [(c, k) for c, k in nodes if type(c[k]) is int] or [(container, key)]
            c, k = rng.choice(ints)
            c[k] = rng.choice(NUMBERS)
        elif op == "past-end":
            for c, k in nodes:
                if k in ("line", "character") and type(c[k]) is int:
                    c[k] += rng.choice((1, 10, 10**6))
        elif op == "bad-uri":
            for c, k in nodes:
                if k == "uri":
                    c[k] = rng.choice(BAD_URIS)
        elif op == "drop" and isinstance(container, dict):
            container.pop(key, None)
        elif op == "extra":
            target = container[key] if isinstance(container[key], dict) else params
            target["fuzzExtra"] = _weird(rng)
        elif op == "deep":
            container[key] = _deep(rng.choice((50, 500, 5000, 50_000)))
        nodes = _nodes(params, []) or nodes
        if not nodes:
            break
    return op


# -------------------------------------------------------------------- envelope


def _mutate_envelope(gen: MessageGenerator, message: dict[str, Any]) -> tuple[str, bytes]:
    rng = gen.rng
    op = rng.choice(
        (
            "id-weird",
            "id-negative",
            "id-on-notification",
            "id-dropped",
            "jsonrpc",
            "method-type",
            "method-missing",
            "stray-response",
            "initialize-again",
            "non-object",
            "batch",
        )
    )
    if op == "id-weird":
        message["id"] = rng.choice((None, 1.5, True, {}, [], 2**40, -(2**40), [gen.new_id()]))
    elif op == "id-negative":
        message["id"] = -int(str(gen.new_id()).removeprefix("fz-"))
    elif op == "id-on-notification":
        message.setdefault("id", gen.new_id())
    elif op == "id-dropped":
        message.pop("id", None)
    elif op == "jsonrpc":
        if rng.random() < 0.3:
            message.pop("jsonrpc")
        else:
            message["jsonrpc"] = rng.choice(("1.0", 2.0, None, ""))
    elif op == "method-type":
        message["method"] = rng.choice((5, None, [], {}, ""))
    elif op == "method-missing":
        message.pop("method")
    elif op == "stray-response":
        reply: dict[str, Any] = {"jsonrpc": "2.0", "id": rng.choice((gen.new_id(), 0, None))}
        if rng.random() < 0.5:
            reply["result"] = _weird(rng, 14)
        else:
            reply["error"] = rng.choice(({"code": -1, "message": "x"}, {"code": "bad"}, None))
        return op, encode(reply)
    elif op == "initialize-again":
        init = gen.request("initialize", {"processId": None, "rootUri": None, "capabilities": {}})
        return op, encode(init)
    elif op == "non-object":
        return op, rng.choice((b"[]", b"5", b'"text"', b"null", b"true", b"-0.5e9", b"[{}]"))
    else:  # batch: JSON-RPC 2.0 batches are not part of LSP
        return op, encode([message, gen.notification("$/setTrace", {"value": "off"})])
    return op, encode(message)


# ------------------------------------------------------------------------ body


def _mutate_body(rng: random.Random, body: bytes) -> tuple[str, bytes]:
    op = rng.choice(("truncated", "garbled", "invalid-utf8", "bom", "deep", "empty", "large"))
    if op == "truncated":
        return op, body[: rng.randint(0, len(body) - 1)]
    if op == "garbled":
        data = bytearray(body)
        for _ in range(rng.randint(1, 5)):
            at = rng.randrange(len(data))
            action = rng.random()
            if action < 0.4:
                data[at] = rng.randrange(256)
            elif action < 0.7:
                del data[at]
            else:
                data.insert(at, rng.choice(b'{}[]",:\\0\x00\xff'))
        return op, bytes(data)
    if op == "invalid-utf8":
        bad = rng.choice((b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"))
        return op, body.replace(b'"2.0"', b'"2.0' + bad + b'"', 1)
    if op == "bom":
        return op, b"\xef\xbb\xbf" + body
    if op == "deep":
        depth = rng.choice((1000, 1000, 10_000, 50_000))
        return op, b"[" * depth + b"]" * depth
    if op == "empty":
        return op, b""
    # large: a valid message with 100 kB of padding in an extra field
    return op, body[:-1] + b', "fuzzPadding": "' + b"x" * 100_000 + b'"}'


# ----------------------------------------------------------------------- frame


def _mutate_frame(rng: random.Random, body: bytes, method: str) -> Outgoing:
    n = len(body)
    op = rng.choice(
        (
            "short-length",
            "long-length-padded",
            "long-length-garbage",
            "split",
            "no-length",
            "bad-length",
            "lowercase-name",
            "duplicate-length",
            "content-type",
            "extra-header",
            "bare-lf",
            "junk-before",
        )
    )
    kind = "frame:" + op
    owed = owed_id(body)
    if op == "long-length-padded":  # the server waits for the rest: it is padding
        k = rng.randint(1, 64)
        return Outgoing(
            [b"Content-Length: %d\r\n\r\n" % (n + k) + body, b" " * k], kind, owed, method
        )
    if op == "split":
        whole = frame(body)
        cuts = sorted({rng.randrange(1, len(whole)) for _ in range(rng.randint(1, 4))})
        pieces = [whole[a:b] for a, b in zip([0, *cuts], [*cuts, len(whole)], strict=True)]
        return Outgoing(pieces, kind, owed, method)
    if op == "content-type":
        header = (
            b"Content-Length: %d\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n"
        )
        return Outgoing([frame(body, header % n)], kind, owed, method)
    short = max(0, n - rng.randint(1, max(1, n // 2)))
    raw = {
        "short-length": lambda: b"Content-Length: %d\r\n\r\n" % short + body,
        "long-length-garbage": lambda: (
            b"Content-Length: %d\r\n\r\n" % (n + 8) + body + b"}\x00garbag"
        ),
        "no-length": lambda: b"Content-Type: application/vscode-jsonrpc\r\n\r\n" + body,
        "bad-length": lambda: (
            b"Content-Length: %s\r\n\r\n" % rng.choice((b"abc", b"-5", b"1e3", b"")) + body
        ),
        "lowercase-name": lambda: b"content-length: %d\r\n\r\n" % n + body,
        "duplicate-length": lambda: (
            b"Content-Length: %d\r\nContent-Length: %d\r\n\r\n" % tuple(rng.sample((n, short), 2))
            + body
        ),
        "extra-header": lambda: b"X-Fuzz: 1\r\nContent-Length: %d\r\n\r\n" % n + body,
        "bare-lf": lambda: b"Content-Length: %d\n\n" % n + body,
        "junk-before": lambda: b"GET / HTTP/1.1\r\n" + frame(body),
    }[op]()
    # The server may or may not take these frames; either way it owes nothing for them.
    return Outgoing([raw + RESYNC], kind, None, method)
