"""``zi-coder serve --tcp``: one editor session over loopback TCP, behind a token.

Any local process (and any web page, through the browser) can connect to a
loopback port, so a connection must earn its session:

- Its first bytes must be an LSP frame. Anything that looks like HTTP gets a
  ``400`` and is closed, so a web page cannot talk to the server by a
  cross-protocol request.
- Its first message must be ``initialize`` carrying the token in
  ``initializationOptions.token`` (from ``ZI_LSP_TOKEN``, else the ``lsp-token``
  file in the state directory). A wrong or missing token is answered with an
  error and the connection closed. The token is removed before the settings see it.
- One client at a time: while a session runs, other connections are closed at once.

The process serves one session, like a stdio server, and exits with its code.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from typing import TYPE_CHECKING, Any

from server.lsp.transport import serve
from server.lsp.wire import MAX_HEADER_BYTES, MAX_MESSAGE_BYTES, content_length

if TYPE_CHECKING:
    from server.lsp.server import ZiLanguageServer

log = logging.getLogger(__name__)

UNAUTHORIZED = -32001
HELLO_TIMEOUT_S = 10.0  # a silent connection must not hold the only slot
_HTTP = re.compile(rb"^[A-Z]{3,10} \S* ?HTTP/\d|^PRI \* HTTP/2")


class _Socket:
    """pygls' writer interface over a stream writer (writes queue; they never block)."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    def write(self, data: bytes) -> None:
        if not self._writer.is_closing():
            self._writer.write(data)

    def close(self) -> None:
        self._writer.close()


async def serve_tcp(server: ZiLanguageServer, host: str, port: int, token: str) -> int:
    """Listen on `host:port` until one authenticated session ends; its exit code."""
    done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    busy = False

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal busy
        peer = writer.get_extra_info("peername")
        try:
            if busy or done.done():
                log.warning("refused a connection from %s: a session is already running", peer)
                return
            # Only an authenticated session takes the slot: a connection that says
            # nothing (for up to HELLO_TIMEOUT_S) must not keep the right client out.
            try:
                session = await _authenticated(reader, writer, token, peer)
            except Exception as exc:  # a reset, a bad token's bytes: that connection's end only
                log.warning("closed a connection from %s: %s", peer, exc)
                session = None
            if session is None:
                return
            if busy or done.done():
                log.warning("refused a connection from %s: a session is already running", peer)
                return
            busy = True
            server.protocol.set_writer(_Socket(writer))
            log.info("session from %s", peer)
            try:
                code = await serve(server, session, watch_parent=False)
            except Exception:
                log.exception("the session from %s failed", peer)
                code = 1
            done.set_result(code)
        finally:
            writer.close()

    listener = await asyncio.start_server(
        on_connection, host, port, limit=MAX_HEADER_BYTES, reuse_address=True
    )
    bound = listener.sockets[0].getsockname()
    log.warning("zi-coder: LSP over TCP at %s:%d, one client at a time", bound[0], bound[1])
    try:
        return await done
    finally:
        listener.close()


async def _authenticated(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, token: str, peer: Any
) -> asyncio.StreamReader | None:
    """The session's stream (the first message, token removed, then the socket), or
    None when the connection was refused (and answered, where it could be)."""
    try:
        first = await asyncio.wait_for(_first_message(reader), HELLO_TIMEOUT_S)
    except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        log.warning("closed a connection from %s: no LSP message", peer)
        return None
    if isinstance(first, bytes):  # an HTTP request
        writer.write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
        log.warning("refused an HTTP request from %s: %r", peer, first[:80])
        return None
    if first is None:
        log.warning("closed a connection from %s: its first message is not initialize", peer)
        return None
    options = first.get("params", {}).get("initializationOptions")
    given = options.pop("token", None) if isinstance(options, dict) else None
    if not isinstance(given, str) or not hmac.compare_digest(
        given.encode("utf-8", "surrogatepass"), token.encode()
    ):
        log.warning("refused a connection from %s: wrong or missing token", peer)
        _answer(
            writer, first["id"], UNAUTHORIZED, "initializationOptions.token is missing or wrong"
        )
        await writer.drain()
        return None
    session = asyncio.StreamReader(limit=MAX_HEADER_BYTES)
    body = json.dumps(first).encode()
    session.feed_data(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    pump = asyncio.get_running_loop().create_task(_pump(reader, session))
    _pumps.add(pump)  # held until done: the loop keeps only weak references to tasks
    pump.add_done_callback(_pumps.discard)
    return session


async def _first_message(reader: asyncio.StreamReader) -> dict[str, Any] | bytes | None:
    """The first message if it is an ``initialize`` request, the first line if it is
    HTTP, else None."""
    block = await reader.readuntil(b"\r\n\r\n")
    if _HTTP.match(block):
        return block.split(b"\r\n", 1)[0]
    length = content_length(block[:-4])
    if not isinstance(length, int) or length > MAX_MESSAGE_BYTES:
        return None
    try:
        message = json.loads(await reader.readexactly(length))
    except (ValueError, RecursionError):
        return None
    if (
        not isinstance(message, dict)
        or message.get("method") != "initialize"
        or not isinstance(message.get("id"), int | str)
        or not isinstance(message.get("params"), dict)
    ):
        return None
    return message


def _answer(writer: asyncio.StreamWriter, msg_id: Any, code: int, message: str) -> None:
    body = json.dumps(
        {"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}}
    ).encode()
    writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)


_pumps: set[asyncio.Task[None]] = set()


async def _pump(source: asyncio.StreamReader, session: asyncio.StreamReader) -> None:
    while chunk := await source.read(1 << 16):
        session.feed_data(chunk)
    session.feed_eof()
