"""A bounded stdio transport for ``mcp.Client``.

The SDK's own ``stdio_client`` reads lines without a size limit (one endless line grows
memory on our loop), logs every stray line with a traceback and passes the server's
stderr through to ours. A configured server is untrusted, so here:

- it runs in its own process group (stopping it stops its children too) with a minimal
  environment plus its configured ``env``, never our ``ZI_*`` settings;
- a message (one line of JSON) over ``max_message_bytes`` means it misbehaves: the
  session ends; a few non-protocol lines are skipped, many end it;
- only a tail of its stderr is kept (however much it writes), for the reason shown when
  it fails: cleaned of escapes and invisible characters, and redacted;
- closing follows the spec's order (stdin closed, then SIGTERM to the group, then
  SIGKILL), every wait bounded and shielded, so a cancelled caller cannot leak it.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

# Private to the SDK, pinned with it (pyproject: mcp>=2.3,<3): the stream pair a
# `Client` transport yields. Recheck on the next major version.
from mcp.client._transport import TransportStreams
from mcp.os.posix.utilities import terminate_posix_process_tree
from mcp.shared.message import SessionMessage
from mcp.types import jsonrpc_message_adapter

from server.context.prompt import visible
from server.redact import redact

log = logging.getLogger(__name__)

MIB = 1024 * 1024
# What a server may read of ours: enough to find programs and a home, no secrets.
_INHERITED = ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG", "LC_ALL", "TMPDIR")
_EXIT_POLL_S = 0.1
_STREAM_GONE = (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError)


@dataclass(frozen=True)
class Limits:
    max_message_bytes: int = 2 * MIB
    max_garbage_lines: int = 50  # non-protocol lines skipped per session before giving up
    stderr_tail_bytes: int = 4096
    grace_s: float = 1.0  # each step of stopping: after stdin closes, after SIGTERM


class Ending:
    """Why a server's session ended; the first reason wins. Set by the transport (exit,
    misbehaviour) or by the supervisor (stop, timeouts), which waits on it."""

    def __init__(self, stderr_tail_bytes: int = Limits.stderr_tail_bytes) -> None:
        self.reason: str | None = None
        self.closing = False  # we are stopping it: its exit is no news
        self._event = anyio.Event()
        self._stderr = bytearray()
        self._stderr_cap = stderr_tail_bytes
        self._stderr_cut = False  # its start was dropped: the first line is partial

    def end(self, reason: str) -> None:
        if self.reason is None and not self.closing:
            self.reason = reason
        self._event.set()

    async def wait(self) -> None:
        await self._event.wait()

    def keep_stderr(self, chunk: bytes) -> None:
        self._stderr += chunk
        excess = len(self._stderr) - self._stderr_cap
        if excess > 0:
            del self._stderr[:excess]
            self._stderr_cut = True

    def stderr_tail(self, lines: int = 3, chars: int = 400) -> str:
        """The last lines the server wrote to stderr, cleaned and redacted, on one line."""
        text = visible(self._stderr.decode("utf-8", errors="replace"))
        if self._stderr_cut:  # a partial line could hold the end of a secret, unrecognised
            text = text.partition("\n")[2]
        kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
        return redact(" | ".join(kept))[-chars:]


def child_environment(extra: Mapping[str, str]) -> dict[str, str]:
    env = {
        name: value
        for name in _INHERITED
        if (value := os.environ.get(name)) is not None and not value.startswith("()")
    }
    return env | dict(extra)


def exit_reason(code: int) -> str:
    if code < 0:
        with suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return "exited" if code == 0 else f"crashed (exit code {code})"


@asynccontextmanager
async def bounded_stdio(
    command: str,
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None,
    ending: Ending,
    limits: Limits | None = None,
) -> AsyncIterator[TransportStreams]:
    """Start the server and yield the session's streams; stop its process group on exit.

    Raises OSError when the command cannot be started."""
    limits = limits or Limits()
    process = await anyio.open_process(
        [command, *args], env=child_environment(env), cwd=cwd, start_new_session=True
    )
    to_session, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](8)
    write_stream, from_session = anyio.create_memory_object_stream[SessionMessage](8)
    stderr_done = anyio.Event()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_pump_stdout, process, to_session, ending, limits)
        tasks.start_soon(_pump_stdin, process, from_session, to_session, ending)
        tasks.start_soon(_keep_stderr_tail, process, ending, stderr_done)
        tasks.start_soon(_watch_exit, process, ending)
        try:
            yield read_stream, write_stream
        finally:
            ending.closing = True
            with anyio.CancelScope(shield=True):
                await stop_process_group(process, limits.grace_s)
                with anyio.move_on_after(limits.grace_s):  # the last words of a crash
                    await stderr_done.wait()
                for stream in (read_stream, write_stream, to_session, from_session):
                    stream.close()
                await _close_pipes(process)
            tasks.cancel_scope.cancel()


async def stop_process_group(process: Process, grace_s: float) -> None:
    """stdin closed → `grace_s` → SIGTERM to the group → `grace_s` → SIGKILL. The group
    is signalled even when the leader already left: its children may linger."""
    if process.stdin is not None:
        with suppress(*_STREAM_GONE):
            await process.stdin.aclose()
    await _exited_within(process, grace_s)
    await terminate_posix_process_tree(process, grace_s)
    if not await _exited_within(process, grace_s):
        log.warning("MCP server process %d survived SIGKILL; abandoning it", process.pid)


async def _pump_stdout(
    process: Process,
    to_session: MemoryObjectSendStream[SessionMessage | Exception],
    ending: Ending,
    limits: Limits,
) -> None:
    assert process.stdout is not None
    lines = BufferedByteReceiveStream(process.stdout)
    garbage = 0
    async with to_session:  # closing it fails the session's pending requests
        while True:
            try:
                line = await lines.receive_until(b"\n", limits.max_message_bytes)
            except anyio.DelimiterNotFound:
                size = limits.max_message_bytes / MIB
                ending.end(f"sent a message over {size:g} MiB (misbehaving)")
                return
            except (anyio.IncompleteRead, anyio.EndOfStream, *_STREAM_GONE):
                await _note_exit(process, ending)
                return
            if not line.strip():
                continue
            try:
                message = jsonrpc_message_adapter.validate_json(line, by_name=False)
            except ValueError:
                garbage += 1
                if garbage == 1:
                    log.info("MCP server process %d wrote a non-protocol line", process.pid)
                if garbage > limits.max_garbage_lines:
                    ending.end("writes non-protocol output on stdout (misbehaving)")
                    return
                continue
            try:
                await to_session.send(SessionMessage(message))
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return  # the session is gone


async def _pump_stdin(
    process: Process,
    from_session: MemoryObjectReceiveStream[SessionMessage],
    to_session: MemoryObjectSendStream[SessionMessage | Exception],
    ending: Ending,
) -> None:
    assert process.stdin is not None
    async with from_session:
        async for message in from_session:
            line = message.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
            try:
                await process.stdin.send(line.encode())
            except _STREAM_GONE:
                # It stopped reading: end the session rather than leave requests waiting.
                to_session.close()
                await _note_exit(process, ending)
                return


async def _keep_stderr_tail(process: Process, ending: Ending, done: anyio.Event) -> None:
    # Always drained: a full stderr pipe blocks the server and looks like a hang.
    assert process.stderr is not None
    try:
        async for chunk in process.stderr:
            ending.keep_stderr(chunk)
    except _STREAM_GONE:
        pass
    finally:
        done.set()


async def _watch_exit(process: Process, ending: Ending) -> None:
    ending.end(exit_reason(await _exit_code(process, _EXIT_POLL_S)))


async def _note_exit(process: Process, ending: Ending) -> None:
    """Its output ended: say how it exited (it usually has, or is about to)."""
    if await _exited_within(process, 1.0) and process.returncode is not None:
        ending.end(exit_reason(process.returncode))
    else:
        ending.end("closed its output")


async def _exited_within(process: Process, seconds: float) -> bool:
    with anyio.move_on_after(seconds):
        await _exit_code(process, 0.01)
    return process.returncode is not None


async def _exit_code(process: Process, poll_s: float) -> int:
    # Polled: process.wait() also waits for the pipes, which a grandchild may hold open.
    while process.returncode is None:  # noqa: ASYNC110
        await anyio.sleep(poll_s)
    return process.returncode


async def _close_pipes(process: Process) -> None:
    for pipe in (process.stdin, process.stdout, process.stderr):
        if pipe is not None:
            with suppress(*_STREAM_GONE):
                await pipe.aclose()
    # The asyncio transport would otherwise stay open (and warn when collected) while
    # a survivor holds a pipe; nothing public exposes it. Private to anyio's asyncio
    # backend (anyio 4): looked up defensively, so a change only brings the warning back.
    transport = getattr(getattr(process, "_process", None), "_transport", None)
    close = getattr(transport, "close", None)
    if callable(close):
        with suppress(PermissionError):
            close()
