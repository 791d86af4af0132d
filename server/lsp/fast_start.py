"""Answer ``initialize`` before pygls has finished importing.

Importing ``lsprotocol.types`` builds about a thousand attrs classes: half a
second on a small machine, most of a cold start. Editors wait for the
``initialize`` answer before they send anything else, so this module (standard
library only) reads that first message, answers it with the capabilities pygls
would compute, and meanwhile imports and builds the real server in a thread.
Then pygls gets the same ``initialize`` replayed (so its workspace and client
capabilities are set up exactly as usual) and its own answer to it is dropped;
if that answer ever differs from ours, the difference is logged as an error
(a test keeps the two equal).

Set ``ZI_FAST_START=false`` to let pygls answer ``initialize`` itself. That one
variable is read before Settings exist, since building them is part of the wait.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO

from server import __version__
from server.actions.kinds import KINDS as CODE_ACTION_KINDS
from server.lsp.wire import MAX_HEADER_BYTES, MAX_MESSAGE_BYTES

if TYPE_CHECKING:
    import asyncio

    from server.lsp.server import ZiLanguageServer

log = logging.getLogger(__name__)

# pygls' ServerCapabilitiesBuilder output for our registered features, minus the
# position encoding, which depends on what the client offers.
CAPABILITIES: dict[str, Any] = {
    "completionProvider": {},
    "codeActionProvider": {"codeActionKinds": list(CODE_ACTION_KINDS), "resolveProvider": True},
    "executeCommandProvider": {"commands": ["zi.acceptCompletion"]},
    "workspace": {
        "workspaceFolders": {"supported": True, "changeNotifications": True},
        "fileOperations": {},
    },
    "inlineCompletionProvider": {},
    # features/diagnostics.py's DiagnosticOptions (not imported: it pulls in lsprotocol).
    "diagnosticProvider": {
        "identifier": "zi",
        "interFileDependencies": False,
        "workspaceDiagnostics": False,
    },
}
_SUPPORTED_ENCODINGS = ("utf-8", "utf-16", "utf-32")


def initialize_result(params: dict[str, Any]) -> dict[str, Any]:
    """The InitializeResult pygls would send for `params` (see pygls' capabilities.py)."""
    client = params.get("capabilities") or {}
    encoding = "utf-16"
    for offered in (client.get("general") or {}).get("positionEncodings") or ():
        if offered in _SUPPORTED_ENCODINGS:
            encoding = offered
            break
    # pygls answers willSave* with false when the client mentions them at all.
    client_sync = (client.get("textDocument") or {}).get("synchronization") or {}
    sync: dict[str, Any] = {"openClose": True, "change": 2}
    for key in ("willSave", "willSaveWaitUntil"):
        if client_sync.get(key) is not None:
            sync[key] = False
    sync["save"] = True  # didSave runs the checks and the review
    return {
        "capabilities": {"positionEncoding": encoding, "textDocumentSync": sync, **CAPABILITIES},
        "serverInfo": {"name": "zi-coder", "version": __version__},
    }


def read_message(fd: int) -> tuple[bytes, dict[str, Any] | None]:
    """Read the first framed message straight from the file descriptor.

    Returns every byte read (the message and whatever the client already sent after
    it, all of which pygls must still see) and the parsed message, or None if the
    first bytes are not a JSON-RPC message (the read loop then deals with them).
    Python's buffered stdin is not used: it would keep read-ahead bytes where the
    event loop's pipe reader cannot see them.
    """
    data = bytearray()
    while True:
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            length = _content_length(bytes(data[:end]))
            if length is None or length > MAX_MESSAGE_BYTES:
                return bytes(data), None
            if len(data) >= end + 4 + length:
                break
        elif len(data) > MAX_HEADER_BYTES:
            return bytes(data), None
        chunk = os.read(fd, 65536)
        if not chunk:
            return bytes(data), None
        data += chunk
    try:
        message = json.loads(data[end + 4 : end + 4 + length])
    except (ValueError, RecursionError):
        return bytes(data), None
    return bytes(data), message if isinstance(message, dict) else None


def _content_length(headers: bytes) -> int | None:
    for line in headers.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                return int(value.strip())
            except ValueError:
                return None
    return None


def write_message(stream: BinaryIO, message: dict[str, Any]) -> None:
    body = json.dumps(message).encode("utf-8")
    stream.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    stream.flush()


class _DropAnswer:
    """stdout as pygls writes it, minus pygls' own answer to the replayed `initialize`."""

    def __init__(self, stream: BinaryIO, request_id: Any, sent: dict[str, Any]) -> None:
        self._stream = stream
        self._request_id = request_id
        self._sent = sent
        self._dropped = request_id is None

    def write(self, data: bytes) -> None:
        if not self._dropped:
            _, _, body = data.partition(b"\r\n\r\n")
            try:
                message = json.loads(body)
            except ValueError:
                message = None
            if (
                isinstance(message, dict)
                and message.get("id") == self._request_id
                and ("result" in message or "error" in message)
            ):
                self._dropped = True
                if message.get("result") != self._sent:
                    log.error(
                        "fast-start initialize answer differs from pygls': sent %s, pygls %s",
                        json.dumps(self._sent),
                        json.dumps(message.get("result")),
                    )
                return
        self._stream.write(data)
        self._stream.flush()

    def flush(self) -> None:
        self._stream.flush()

    def close(self) -> None:
        self._stream.close()


def serve_stdio(build: Callable[[], ZiLanguageServer], *, fast: bool = True) -> int:
    """Serve LSP on stdin/stdout; `build` imports and creates the server (the slow part).
    Returns the exit code: 0 after ``shutdown``, 1 without."""
    stdin, stdout = sys.stdin.buffer, guard_stdout()
    if not fast:
        return _serve(build(), b"", stdin, _DropAnswer(stdout, None, {}))

    built: list[ZiLanguageServer] = []
    failure: list[BaseException] = []

    def run_build() -> None:
        try:
            built.append(build())
        except BaseException as exc:  # re-raised on the main thread
            failure.append(exc)

    builder = threading.Thread(target=run_build, name="zi-import", daemon=True)
    builder.start()
    consumed, first = read_message(stdin.fileno())
    request_id = None
    sent: dict[str, Any] = {}
    if first is not None and first.get("method") == "initialize" and _is_id(first.get("id")):
        request_id = first["id"]
        params = first.get("params")
        sent = initialize_result(params if isinstance(params, dict) else {})
        write_message(stdout, {"jsonrpc": "2.0", "id": request_id, "result": sent})
    builder.join()
    if failure:
        raise failure[0]
    server = built[0]
    server.protocol.initialize_answered = request_id is not None  # type: ignore[attr-defined]
    return _serve(server, consumed, stdin, _DropAnswer(stdout, request_id, sent))


def guard_stdout() -> BinaryIO:
    """The protocol's own handle on stdout. File descriptor 1 and ``sys.stdout`` then
    point at stderr, so a stray print (ours, a library's, a child process's) lands in
    the log instead of corrupting the JSON-RPC stream."""
    sys.stdout.flush()
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return os.fdopen(protocol_fd, "wb")


def _is_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _serve(server: ZiLanguageServer, consumed: bytes, stdin: BinaryIO, writer: Any) -> int:
    """Run the read loop (``server.lsp.transport``) over stdin until the session ends.

    stdin is read by the event loop when it is a pipe (pygls hands every read to a
    worker thread: three thread hops per message, about half a millisecond per request
    on a small machine, which the latency path feels), by a thread otherwise (a
    regular file, which asyncio cannot watch).
    """
    import asyncio  # ~50 ms: not before initialize is answered

    from server.lsp.transport import serve
    from server.lsp.wire import MAX_HEADER_BYTES

    async def main() -> int:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=MAX_HEADER_BYTES)  # bodies use readexactly
        reader.feed_data(consumed)  # the initialize message we already read
        if _is_pipe(stdin):
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdin)
        else:
            threading.Thread(
                target=_pump, args=(stdin.fileno(), reader, loop), name="zi-stdin", daemon=True
            ).start()
        server.protocol.set_writer(writer)
        return await serve(server, reader)

    code = 1
    try:
        code = asyncio.run(main())
    except BrokenPipeError:
        log.error("the client closed the connection; shutting down")
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()  # writes the last history rows, stops the MCP servers
    return code


def _is_pipe(stream: BinaryIO) -> bool:
    mode = os.fstat(stream.fileno()).st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)


def _pump(fd: int, reader: asyncio.StreamReader, loop: asyncio.AbstractEventLoop) -> None:
    while chunk := os.read(fd, 1 << 16):
        loop.call_soon_threadsafe(reader.feed_data, chunk)
    loop.call_soon_threadsafe(reader.feed_eof)
