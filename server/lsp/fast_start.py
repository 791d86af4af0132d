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
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO

from server import __version__

if TYPE_CHECKING:
    from server.lsp.server import ZiLanguageServer

log = logging.getLogger(__name__)

# pygls' ServerCapabilitiesBuilder output for our registered features, minus the
# position encoding, which depends on what the client offers.
CAPABILITIES: dict[str, Any] = {
    "completionProvider": {},
    "executeCommandProvider": {"commands": ["zi.acceptCompletion"]},
    "workspace": {
        "workspaceFolders": {"supported": True, "changeNotifications": True},
        "fileOperations": {},
    },
    "inlineCompletionProvider": {},
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
    sync["save"] = False
    return {
        "capabilities": {"positionEncoding": encoding, "textDocumentSync": sync, **CAPABILITIES},
        "serverInfo": {"name": "zi-coder", "version": __version__},
    }


def read_message(stream: BinaryIO) -> tuple[bytes, dict[str, Any] | None]:
    """One framed message: the raw bytes as read, and the parsed body (None if not JSON)."""
    raw = bytearray()
    length = None
    while True:
        line = stream.readline()
        if not line:
            return bytes(raw), None
        raw += line
        if line in (b"\r\n", b"\n"):
            if length is not None:
                break
            continue
        name, _, value = line.decode("ascii", "replace").partition(":")
        if name.strip().lower() == "content-length":
            try:
                length = int(value.strip())
            except ValueError:
                return bytes(raw), None
    body = stream.read(length)
    raw += body
    try:
        message = json.loads(body)
    except ValueError:
        return bytes(raw), None
    return bytes(raw), message if isinstance(message, dict) else None


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
        build().start_io(stdin, stdout)
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
    consumed, first = read_message(stdin)
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
    built[0].start_io(_Replay(consumed, stdin), writer)  # type: ignore[arg-type]
