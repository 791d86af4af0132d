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
    first bytes are not a JSON-RPC message. Python's buffered stdin is not used: it
    would keep read-ahead bytes where the event loop's pipe reader cannot see them.
    """
    data = bytearray()
    while True:
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            length = _content_length(bytes(data[:end]))
            if length is None:
                return bytes(data), None
            if len(data) >= end + 4 + length:
                break
        chunk = os.read(fd, 65536)
        if not chunk:
            return bytes(data), None
        data += chunk
    try:
        message = json.loads(data[end + 4 : end + 4 + length])
    except ValueError:
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


class _Replay:
    """stdin as pygls reads it: the already-consumed first message, then the rest."""

    def __init__(self, consumed: bytes, stream: BinaryIO) -> None:
        self._buffer = consumed
        self._stream = stream

    def readline(self) -> bytes:
        if not self._buffer:
            return self._stream.readline()
        end = self._buffer.find(b"\n")
        if end < 0:  # the client stopped mid-header: hand over what there is
            line, self._buffer = self._buffer, b""
            return line + self._stream.readline()
        line, self._buffer = self._buffer[: end + 1], self._buffer[end + 1 :]
        return line

    def read(self, n: int) -> bytes:
        if self._buffer:
            chunk, self._buffer = self._buffer[:n], self._buffer[n:]
            if len(chunk) < n:
                chunk += self._stream.read(n - len(chunk))
            return chunk
        return self._stream.read(n)


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


def serve_stdio(build: Callable[[], ZiLanguageServer], *, fast: bool = True) -> None:
    """Serve LSP on stdin/stdout; `build` imports and creates the server (the slow part)."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    if not fast:
        build().start_io(stdin, stdout)  # its end calls server.shutdown(), which cleans up
        return

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
    if first is not None and first.get("method") == "initialize" and "id" in first:
        request_id = first["id"]
        params = first.get("params")
        sent = initialize_result(params if isinstance(params, dict) else {})
        write_message(stdout, {"jsonrpc": "2.0", "id": request_id, "result": sent})
    builder.join()
    if failure:
        raise failure[0]
    writer = _DropAnswer(stdout, request_id, sent)
    try:
        _serve_pipe(built[0], consumed, stdin, writer)
    except ValueError:  # stdin is a regular file, which asyncio cannot watch: pygls' way
        built[0].start_io(_Replay(consumed, stdin), writer)  # type: ignore[arg-type]


class _PipeReader:
    """pygls' reader interface over an asyncio StreamReader (EOF reads as b"")."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self._reader = reader

    async def readline(self) -> bytes:
        return await self._reader.readline()

    async def readexactly(self, n: int) -> bytes:
        import asyncio

        try:
            return await self._reader.readexactly(n)
        except asyncio.IncompleteReadError:
            return b""


def _serve_pipe(
    server: ZiLanguageServer, consumed: bytes, stdin: BinaryIO, writer: _DropAnswer
) -> None:
    """Like pygls' start_io, but stdin is read by the event loop, not a thread pool.

    pygls hands every read to a worker thread: three thread hops per message, about
    half a millisecond per request on a small machine, which the latency path feels.
    """
    import asyncio  # ~50 ms: not before initialize is answered

    from pygls.io_ import run_async

    async def main() -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 20)  # header lines only; bodies use readexactly
        reader.feed_data(consumed)  # the initialize message we already read
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), stdin)
        server.protocol.set_writer(writer)
        await run_async(
            stop_event=stop_event,
            reader=_PipeReader(reader),
            protocol=server.protocol,
            logger=log,
            error_handler=server.report_server_error,
        )

    stop_event = threading.Event()
    server._stop_event = stop_event  # pygls' shutdown() sets it
    mode = os.fstat(stdin.fileno()).st_mode
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)):
        raise ValueError("stdin is not a pipe")  # checked before anything is started
    try:
        asyncio.run(main())
    except BrokenPipeError:
        log.error("the client closed the connection; shutting down")
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.shutdown()  # writes the last history rows, stops the MCP servers
