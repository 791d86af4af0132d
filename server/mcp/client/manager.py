"""The MCP client manager: configured MCP servers as context for reviews and code actions.

It runs its own asyncio loop in a daemon thread, started at first use: the SDK's import
(about a second), parsing of big messages and whatever a misbehaving server does stay
off the language server's loop, which only awaits a future, for at most
``context_deadline_s``; every anyio lifetime lives in that one loop. Problems are told
through the notifier on the caller's loop (its messages go out from there).

Only this package imports the ``mcp`` SDK, and this module only inside its thread:
``server.app`` imports it at no cost.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from contextlib import suppress
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from server.context.types import ContextItem, ContextRequest, ContextSource, NoContext
from server.mcp.client.status import ServerStatus, State
from server.notify import Level, Notifier

if TYPE_CHECKING:
    from server.mcp.client.config import ServerSpec
    from server.mcp.client.connection import Connection
    from server.settings import McpSettings, Settings

log = logging.getLogger(__name__)

# The share of the deadline spent gathering: what came by then must still cross back
# to the caller before it stops waiting.
GATHER_SHARE = 0.85
STOP_S = 15.0  # stopping every server: each takes at most ~3 s, all at once
T = TypeVar("T")


class McpContext:
    """A ContextSource over configured MCP servers. ``context_for`` is called on the
    language server's loop; ``statuses`` and ``trust`` block (the command line)."""

    def __init__(
        self,
        specs: Sequence[ServerSpec],
        *,
        settings: McpSettings,
        pins_path: Path,
        notifier: Notifier,
    ) -> None:
        self._specs = list(specs)
        self._settings = settings
        self._pins_path = pins_path
        self._teller = _OnCallersLoop(notifier)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._connections: list[Connection] | None = None  # built in the thread
        self._closed = False

    async def context_for(self, request: ContextRequest) -> list[ContextItem]:
        """Items for `request` from every server that has some, within the deadline;
        [] on any trouble. Never raises (but passes the caller's own cancellation)."""
        if self._closed or not self._wanted(request):
            return []
        deadline = self._settings.context_deadline_s
        self._teller.loop = asyncio.get_running_loop()
        future = None
        try:
            loop = self._running_loop()
            gather = self._gather(request, time.monotonic() + deadline * GATHER_SHARE)
            future = asyncio.run_coroutine_threadsafe(gather, loop)
            async with asyncio.timeout(deadline):
                return await asyncio.wrap_future(future)
        except TimeoutError:
            log.info("MCP context took over %g s: going on without it", deadline)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the caller's own cancellation
            # else the manager closed under us
        except Exception:
            log.exception("gathering MCP context failed")
        finally:
            if future is not None:
                future.cancel()  # stop the work on the MCP loop (no-op once done)
        return []

    def statuses(self, *, connect_timeout_s: float) -> list[ServerStatus]:
        """Connect every server (each waited for at most `connect_timeout_s`) and say how
        it is, with its tools and resources. Blocks: never call it on a running loop.
        Raises RuntimeError once closed, TimeoutError if the manager does not answer."""
        return self._run(self._statuses(connect_timeout_s), connect_timeout_s + STOP_S)

    def trust(
        self, server: str, tools: Sequence[str] = (), *, connect_timeout_s: float
    ) -> list[str]:
        """Re-pin `tools` of `server` (every tool it lists when empty) as it lists them
        now; returns the tools re-pinned. Blocks. Raises ValueError for an unknown
        server or tool, or a server that does not get ready."""
        return self._run(self._trust(server, tools, connect_timeout_s), connect_timeout_s + STOP_S)

    async def aclose(self) -> None:
        """Stop every server's process group and the thread; idempotent."""
        try:
            await asyncio.to_thread(self.close)
        except RuntimeError:  # no executor any more (the loop is shutting down)
            self.close()

    def close(self) -> None:
        """`aclose` for callers without a loop (the command line)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._stop_all(), loop).result(STOP_S)
        except Exception:
            log.warning("stopping the MCP servers failed or took too long", exc_info=True)
        with suppress(RuntimeError):  # its loop is closed already
            loop.call_soon_threadsafe(loop.stop)
        thread.join(5.0)

    # -- the caller's side -------------------------------------------------------------

    def _wanted(self, request: ContextRequest) -> bool:
        return any(
            spec.resources or any(request.purpose in use.use_in for use in spec.tools.values())
            for spec in self._specs
        )

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise RuntimeError("the MCP client manager is closed")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=_serve, args=(loop,), name="zi-mcp", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def _run(self, work: Coroutine[Any, Any, T], timeout_s: float) -> T:
        try:
            loop = self._running_loop()
        except RuntimeError:
            work.close()  # never to run
            raise
        future = asyncio.run_coroutine_threadsafe(work, loop)
        try:
            return future.result(timeout_s)
        finally:
            future.cancel()

    # -- the MCP loop's side -----------------------------------------------------------

    def _here(self) -> list[Connection]:
        if self._connections is None:
            from server.mcp.client.connection import Connection  # the SDK, in this thread
            from server.mcp.client.pins import Pins

            pins = Pins(self._pins_path)
            self._connections = [
                Connection(
                    spec,
                    pins=pins,
                    reporter=self._teller,
                    max_item_chars=self._settings.max_item_chars,
                )
                for spec in self._specs
            ]
        return self._connections

    async def _gather(self, request: ContextRequest, stop_at: float) -> list[ContextItem]:
        import anyio

        found: dict[tuple[int, int], ContextItem] = {}
        connections = self._here()
        # On this loop's clock, which need not be time.monotonic's (uvloop's is not).
        stop_here = anyio.current_time() + max(0.0, stop_at - time.monotonic())
        with anyio.CancelScope(deadline=stop_here):
            async with anyio.create_task_group() as tasks:
                for index, connection in enumerate(connections):
                    add = functools.partial(_keep, found, index)
                    tasks.start_soon(_gather_one, connection, request, add, stop_here)
        return [found[key] for key in sorted(found)]  # by server, then as configured

    async def _statuses(self, connect_timeout_s: float) -> list[ServerStatus]:
        import anyio

        connections = self._here()

        async def connect(connection: Connection) -> None:
            with anyio.move_on_after(connect_timeout_s):
                await connection.ready_client(force=True)

        async with anyio.create_task_group() as tasks:
            for connection in connections:
                tasks.start_soon(connect, connection)
        return [_with_wait(connection.status(), connect_timeout_s) for connection in connections]

    async def _trust(
        self, server: str, tools: Sequence[str], connect_timeout_s: float
    ) -> list[str]:
        import anyio

        named = [connection for connection in self._here() if connection.spec.name == server]
        if not named:
            known = ", ".join(spec.name for spec in self._specs)
            raise ValueError(f"no MCP server named {server!r} (configured: {known})")
        connection = named[0]
        with anyio.move_on_after(connect_timeout_s):
            await connection.ready_client(force=True)
        if connection.state is not State.READY:
            why = _with_wait(connection.status(), connect_timeout_s).reason
            raise ValueError(f"MCP server '{server}' is not available: {why}")
        return connection.trust(tools)

    async def _stop_all(self) -> None:
        await asyncio.gather(*(connection.stop() for connection in self._connections or []))


def build_context_source(settings: Settings, notifier: Notifier) -> ContextSource:
    """NoContext without a servers file; else the servers it lists (a bad file is told
    once, and means no MCP context rather than no language server)."""
    path = settings.mcp.servers_file
    if path is None:
        return NoContext()
    from server.mcp.client.config import McpConfigError, load_servers

    try:
        specs = load_servers(path)
    except McpConfigError as exc:
        message = f"{exc}; MCP context is off"
        notifier.problem("mcp:config", message, level=Level.ERROR, lasting=True)
        return NoContext()
    return McpContext(
        specs,
        settings=settings.mcp,
        pins_path=pins_path(settings),
        notifier=notifier,
    )


def pins_path(settings: Settings) -> Path:
    """Where confirmed tool descriptions are kept: per user, next to the other state
    (``ZI_STATE_DIR``), shared by the language servers and ``zi-coder mcp trust``."""
    return settings.resolved_state_dir() / "mcp-pins.json"


class _OnCallersLoop:
    """The notifier, called on the loop it serves, or right here when there is none."""

    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier
        self.loop: asyncio.AbstractEventLoop | None = None

    def problem(
        self, key: str, message: str, *, lasting: bool = False, level: Level = Level.WARNING
    ) -> None:
        tell = functools.partial(self.notifier.problem, lasting=lasting, level=level)
        self._call(tell, key, message)

    def resolved(self, key: str, message: str) -> None:
        self._call(self.notifier.resolved, key, message)

    def _call(self, tell: Callable[[str, str], None], key: str, message: str) -> None:
        loop = self.loop
        if loop is not None and loop.is_running():
            try:
                loop.call_soon_threadsafe(tell, key, message)
                return
            except RuntimeError:  # closed since
                pass
        tell(key, message)


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        if tasks:
            loop.run_until_complete(asyncio.wait(tasks, timeout=5.0))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _gather_one(
    connection: Connection, request: ContextRequest, add: Any, stop_at: float
) -> None:
    try:
        await connection.gather(request, add, stop_at=stop_at)
    except Exception:  # one server's trouble is not the others'
        log.exception("MCP context from %r failed", connection.spec.name)


def _keep(
    found: dict[tuple[int, int], ContextItem], index: int, order: int, item: ContextItem
) -> None:
    found[index, order] = item


def _with_wait(status: ServerStatus, waited_s: float) -> ServerStatus:
    if status.state is State.CONNECTING and not status.reason:
        return replace(status, reason=f"not ready after {waited_s:g} s")
    return status
