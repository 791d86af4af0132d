"""The read loop every transport shares (stdio pipe, stdio file, TCP).

It replaces pygls' ``run_async``: frames come from `server.lsp.wire` (capped and
resynchronised), the JSON-RPC envelope and the session's lifecycle are checked
before pygls sees a message, and every refusal is answered when the message had an
id. The loop ends on EOF, on ``exit``, or when the editor process named in
``initialize``'s ``processId`` is gone; it returns the process's exit code.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from server.lsp.wire import (
    INVALID_REQUEST,
    MAX_MESSAGE_BYTES,
    PARSE_ERROR,
    SNIFF_BYTES,
    Problem,
    check_envelope,
    content_length,
    parse,
    sniff_id,
)

if TYPE_CHECKING:
    from server.lsp.protocol import ZiProtocol
    from server.lsp.server import ZiLanguageServer

log = logging.getLogger(__name__)

PARENT_POLL_S = 2.0  # how often the editor's process is looked for


async def serve(
    server: ZiLanguageServer, reader: asyncio.StreamReader, *, watch_parent: bool = True
) -> int:
    """Read and dispatch messages until the session ends; the process's exit code.
    `watch_parent`: end when the ``processId`` of ``initialize`` dies (stdio only: over
    TCP the client's pid may be in another machine's or container's namespace)."""
    protocol: ZiProtocol = server.protocol  # type: ignore[assignment]
    watchdog: asyncio.Task[None] | None = None
    try:
        while protocol.exit_code is None:
            frame = await read_frame(reader)
            if frame is None:
                break
            message = _checked(protocol, frame)
            if isinstance(message, Problem):
                _refuse(protocol, message)
                continue
            try:
                structured = _structured(protocol, message)
            except _Refused as refused:
                _refuse(protocol, refused.problem)
                continue
            if message.get("method") == "initialize" and watch_parent and watchdog is None:
                watchdog = _watch_parent(message, reader)
            try:
                protocol.handle_message(structured)
            except Exception:  # pygls answers handler errors itself; this is its own bug
                log.exception("could not handle %s", message.get("method", "a response"))
    finally:
        if watchdog is not None:
            watchdog.cancel()
    if protocol.exit_code is not None:
        return protocol.exit_code
    return 0 if protocol.lifecycle.shut_down else 1


async def read_frame(reader: asyncio.StreamReader) -> bytes | Problem | None:
    """The next message body, a `Problem` for a frame that cannot be used, or None at EOF.

    A frame whose headers are unusable is skipped up to the next ``Content-Length``;
    the reader stays in step with the client as long as the client's frames do.
    """
    while True:
        try:
            block = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        except asyncio.LimitOverrunError as exc:
            # No end of headers within the limit: garbage. Drop it and look again.
            await reader.readexactly(exc.consumed)
            return Problem(PARSE_ERROR, f"{exc.consumed} bytes without a message header skipped")
        length = content_length(block[:-4])
        if isinstance(length, Problem):
            return length
        if length > MAX_MESSAGE_BYTES:
            head = await _skip(reader, length)
            if head is None:
                return None
            return Problem(
                INVALID_REQUEST,
                f"message of {length} bytes is over the limit of {MAX_MESSAGE_BYTES}",
                sniff_id(head),  # `head` is at most SNIFF_BYTES
            )
        try:
            return await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            return None


async def _skip(reader: asyncio.StreamReader, length: int) -> bytes | None:
    """Read and drop `length` bytes, keeping the first few for `sniff_id`; None at EOF."""
    head = b""
    left = length
    while left:
        try:
            chunk = await reader.readexactly(min(left, 1 << 20))
        except asyncio.IncompleteReadError:
            return None
        if len(head) < SNIFF_BYTES:
            head += chunk[: SNIFF_BYTES - len(head)]
        left -= len(chunk)
    return head


def _checked(protocol: ZiProtocol, frame: bytes | Problem) -> dict[str, Any] | Problem:
    """The frame's message if it is well-formed and may run now, else why not."""
    if isinstance(frame, Problem):
        return frame
    message = parse(frame)
    if isinstance(message, Problem):
        return message
    problem = check_envelope(message)
    if problem is None and "method" in message:
        problem = protocol.lifecycle.refuse(message["method"], message.get("id"))
    return message if problem is None else problem


def _structured(protocol: ZiProtocol, message: dict[str, Any]) -> Any:
    """pygls' typed message; a refusal (with -32602) raises `_Refused` first."""
    from pygls.exceptions import JsonRpcException

    method = message.get("method")
    try:
        structured = protocol.structure_message(message)
    except JsonRpcException as exc:
        if method == "initialize" and protocol.initialize_answered:
            # Fast start has already said yes; a session with default capabilities
            # is better than a client that believes it is initialized and is not.
            log.error("%s; going on with pygls' lenient reading of it", exc.message)
            structured = protocol.structure_leniently(message)
        elif method is None:  # a response of the client's: never answered, but unblocked
            protocol.fail_request(message.get("id"), exc)
            raise _Refused(Problem(exc.code, f"a bad response: {exc.message}")) from None
        else:
            raise _Refused(Problem(exc.code, exc.message, message.get("id"))) from None
    if isinstance(method, str):
        protocol.lifecycle.admitted(method)
    return structured


class _Refused(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


def _refuse(protocol: ZiProtocol, problem: Problem) -> None:
    if problem.id is None:
        log.warning("ignored a message: %s", problem.message)
        return
    log.warning("refused message %r: %s", problem.id, problem.message)
    protocol.reply_error(problem.id, problem.code, problem.message)


def _watch_parent(
    initialize: dict[str, Any], reader: asyncio.StreamReader
) -> asyncio.Task[None] | None:
    params = initialize.get("params")
    pid = params.get("processId") if isinstance(params, dict) else None
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or sys.platform == "win32":
        return None
    if not _alive(pid, None):  # another pid namespace (Flatpak, a container): not ours to watch
        log.warning("the editor's process %d is not visible here: not watching it", pid)
        return None
    return asyncio.get_running_loop().create_task(_parent_gone(pid, reader))


async def _parent_gone(pid: int, reader: asyncio.StreamReader) -> None:
    """End the session (as EOF would) once the editor's process has exited, so an
    editor killed without closing our stdin does not leave this server behind."""
    started = _start_time(pid)
    while _alive(pid, started):  # noqa: ASYNC110 (polling is the only way to see it)
        await asyncio.sleep(PARENT_POLL_S)
    log.warning("the editor's process %d is gone: exiting", pid)
    reader.feed_eof()


def _alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    fields = _proc_stat(pid)
    if fields is None:
        return True  # no /proc: the signal check is all there is
    # A zombie has exited; a reused pid is another process (its start time differs).
    return fields[0] != b"Z" and (started is None or fields[19].decode() == started)


def _start_time(pid: int) -> str | None:
    fields = _proc_stat(pid)
    return None if fields is None else fields[19].decode()


def _proc_stat(pid: int) -> list[bytes] | None:
    """/proc/PID/stat's fields after the command name (state first), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields if len(fields) > 19 else None
