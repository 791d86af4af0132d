"""One configured MCP server: the task that owns its session, and the context it gives.

anyio's task groups and cancel scopes must be left by the task that entered them, in
order, and ``Client.__aenter__`` leaves both open. So one supervisor task per server
owns the session from start to stop; requests borrow the client while it is ready and
go without this server otherwise. It starts at first use; after a failure (crash,
timeout, misbehaviour) it stays failed for a pause (2 s, doubling to 60 s) before the
next use tries again. Runs on the MCP client's own loop (see manager.py).

Every request is bounded by the server's ``timeout_s`` and by what is left of the
gather it serves, whichever ends first: with the default settings the gather's share of
the context deadline (about 2.5 s) is the shorter, and a request it cuts counts as one
not answered in time all the same, so a server whose tool keeps hanging is restarted
and reported rather than left "ready".
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import anyio
from mcp import Client

# Private to the SDK, pinned with it (pyproject: mcp>=2.3,<3): the stream pair a
# `Client` transport yields. Recheck on the next major version.
from mcp.client._transport import TransportStreams
from mcp.shared.exceptions import MCPError
from mcp.types import (
    CONNECTION_CLOSED,
    REQUEST_TIMEOUT,
    Implementation,
    ResourceListChangedNotification,
    ToolListChangedNotification,
)

from server import __version__
from server.context.types import ContextItem, ContextRequest
from server.mcp.client import content
from server.mcp.client.catalog import Catalog, Reporter
from server.mcp.client.config import ServerSpec, identity
from server.mcp.client.http import bounded_http
from server.mcp.client.pins import Pins
from server.mcp.client.status import ServerStatus, State
from server.mcp.client.stdio import Ending, Limits, bounded_stdio
from server.redact import redact

log = logging.getLogger(__name__)

MAX_READS = 8  # resources read for one request
BACKOFF_S = (2.0, 60.0)
HEALTHY_S = 60.0  # a session up this long before it failed resets the pause
STOP_S = 10.0  # the transport's shielded stop takes at most ~3 s
# Starting may take a while (`uvx` fetching a package, a cold Python import); after that
# every request has the server's own `timeout_s`.
START_S = 30.0


Add = Callable[[int, ContextItem], None]  # (order within the server, item)
T = TypeVar("T")


class Connection:
    def __init__(
        self,
        spec: ServerSpec,
        *,
        pins: Pins,
        reporter: Reporter,
        max_item_chars: int,
        limits: Limits | None = None,
        backoff_s: tuple[float, float] = BACKOFF_S,
    ) -> None:
        self.spec = spec
        self.key = f"mcp:{spec.name}"
        self.state = State.IDLE
        self.reason = ""
        self.catalog = Catalog(spec, pins=pins, reporter=reporter)
        self._reporter = reporter
        self._max_item_chars = max_item_chars
        self._limits = limits or Limits()
        self._backoff_s = backoff_s
        self._pause = backoff_s[0]
        self._retry_at = 0.0
        self._client: Client | None = None
        self._attempt = anyio.Event()  # set when the current attempt is ready or over
        self._scope: anyio.CancelScope | None = None
        self._ending: Ending | None = None
        self._task: asyncio.Task[None] | None = None
        self._stale_tools = self._stale_resources = False  # the server said they changed
        self._relisting = anyio.Lock()
        self._timeouts = 0  # requests in a row without an answer in time
        self._failing = False  # a failure was told and its end not yet

    # -- lifecycle ----------------------------------------------------------------

    async def ready_client(self, *, force: bool = False) -> Client | None:
        """The client once ready (the caller bounds the wait), starting the server if it
        is idle or its pause is over (`force`: even during the pause); None if it failed."""
        pausing = self.state is State.FAILED and anyio.current_time() < self._retry_at
        if self.state is State.IDLE or (self.state is State.FAILED and (force or not pausing)):
            self._start()
        if self.state is State.CONNECTING:
            await self._attempt.wait()
        return self._client if self.state is State.READY else None

    async def stop(self) -> None:
        """Stop the server's process group (bounded); for good."""
        self.state = State.STOPPED
        if self._scope is not None:
            self._scope.cancel()
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=STOP_S)

    def _start(self) -> None:
        self.state, self.reason = State.CONNECTING, ""
        self._attempt = anyio.Event()
        self._scope = anyio.CancelScope()
        self._ending = Ending(self._limits.stderr_tail_bytes)
        self._task = asyncio.get_running_loop().create_task(
            self._supervise(self._scope, self._ending), name=f"zi-mcp-{self.spec.name}"
        )

    async def _supervise(self, scope: anyio.CancelScope, ending: Ending) -> None:
        budget = self._start_budget_s()  # start, handshake and listings
        ready_at: float | None = None
        problem = ""
        try:
            with scope:
                scope.deadline = anyio.current_time() + budget
                async with self._client_for(ending) as client:
                    await self._list(client)
                    scope.deadline = math.inf
                    ready_at = anyio.current_time()
                    self._became_ready(client)
                    await ending.wait()  # it exited, misbehaved, or stopped answering
            if scope.cancelled_caught and ready_at is None:
                problem = f"was not ready within {budget:g} s"
        except Exception as exc:  # whatever the server did, the supervisor ends cleanly
            problem = self._describe(exc)
        finally:
            # Even when a BaseException escapes (the loop shutting down): never left
            # "connecting" or "ready" with no session, nor a waiter left waiting.
            self._client = None
            if self.state is not State.STOPPED:
                up_s = anyio.current_time() - ready_at if ready_at is not None else 0.0
                self._failed(ending.reason or problem or "closed the connection", ending, up_s)
            self._attempt.set()

    def _start_budget_s(self) -> float:
        return START_S + 2 * self.spec.timeout_s

    def _client_for(self, ending: Ending) -> Client:
        transport: AbstractAsyncContextManager[TransportStreams]
        if self.spec.command is not None:
            transport = bounded_stdio(
                self.spec.command,
                self.spec.args,
                env=self.spec.env,
                cwd=self.spec.cwd,
                ending=ending,
                limits=self._limits,
            )
        else:
            transport = bounded_http(self.spec, self._limits, ending)
        return Client(
            transport,
            mode="legacy",  # third-party servers are handshake-era; no 10 s discovery probe
            # The handshake's limit; later requests are bounded by `_guarded`.
            read_timeout_seconds=self._start_budget_s(),
            message_handler=self._on_message,
            client_info=Implementation(name="zi-coder", version=__version__),
            cache=None,  # listings are re-fetched, so pins see every change
        )

    def _became_ready(self, client: Client) -> None:
        self._client, self.state, self._timeouts = client, State.READY, 0
        if self._failing:
            self._failing = False
            self._reporter.resolved(self.key, f"MCP server '{self.spec.name}' answers again")
        self._attempt.set()

    def _failed(self, problem: str, ending: Ending, up_s: float) -> None:
        if up_s >= HEALTHY_S:
            self._pause = self._backoff_s[0]
        tail = ending.stderr_tail()  # cleaned and redacted
        self.state = State.FAILED
        # An error message quotes the server: shown in `mcp list` and told to the user.
        problem = redact(content.one_line(problem, 600))
        self.reason = f"{problem}: {tail}" if tail else problem
        self._retry_at = anyio.current_time() + self._pause
        message = (
            f"MCP server '{self.spec.name}' {self.reason}; going on without it "
            f"(next try in {self._pause:g} s)"
        )
        self._pause = min(self._pause * 2, self._backoff_s[1])
        if self._failing:
            log.info("%s", message)
        else:  # told once per episode: until it answers again
            self._failing = True
            self._reporter.problem(self.key, message)

    def _describe(self, exc: BaseException) -> str:
        while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]
        if isinstance(exc, MCPError):
            if exc.code == REQUEST_TIMEOUT:
                return "did not answer in time"
            if exc.code == CONNECTION_CLOSED:
                return "closed the connection"
            return f"answered with an error: {exc.error.message}"
        if isinstance(exc, TimeoutError):  # before OSError, its base class
            return "did not answer in time"
        if isinstance(exc, OSError):
            return f"could not be started: {exc.strerror or exc}"
        log.info("MCP server %r failed", self.spec.name, exc_info=exc)
        return f"failed: {type(exc).__name__}"

    async def _on_message(self, message: Any) -> None:
        # Awaited inline by the session's reader: flags only, no requests from here.
        if isinstance(message, ToolListChangedNotification):
            self._stale_tools = True
        elif isinstance(message, ResourceListChangedNotification):
            self._stale_resources = True

    # -- listings -------------------------------------------------------------------

    async def _list(self, client: Client) -> None:
        capabilities = client.server_capabilities
        await self.catalog.list_from(
            client,
            tools=capabilities.tools is not None,
            resources=capabilities.resources is not None,
        )

    async def _refresh(self, client: Client) -> None:
        async with self._relisting:
            tools, resources = self._stale_tools, self._stale_resources
            self._stale_tools = self._stale_resources = False
            try:
                await self.catalog.list_from(client, tools=tools, resources=resources)
            except BaseException:  # cut or failed: a changed tool must still be re-listed
                self._stale_tools |= tools
                self._stale_resources |= resources
                raise

    def trust(self, tools: Sequence[str]) -> list[str]:
        """Re-pin `tools` (every listed tool when empty) as listed now; needs a listing."""
        return self.catalog.trust(tools)

    def status(self) -> ServerStatus:
        ready = self.state is State.READY
        return ServerStatus(
            name=self.spec.name,
            transport=self.spec.transport,
            identity=redact(identity(self.spec)),  # a command line may hold a token
            state=self.state,
            reason=self.reason,
            tools=self.catalog.tool_statuses(),
            resources=self.catalog.resource_statuses(),
            missing_tools=self.catalog.missing_tools() if ready else (),
        )

    # -- context ----------------------------------------------------------------------

    async def gather(self, request: ContextRequest, add: Add, *, stop_at: float) -> None:
        """Add this server's items for `request` as they come, until `stop_at` (anyio
        time), when the caller cancels what is still out."""
        uses = {name: use for name, use in self.spec.tools.items() if request.purpose in use.use_in}
        if not uses and not self.spec.resources:
            return
        client = await self.ready_client()
        if client is None:
            return
        if self._stale_tools or self._stale_resources:
            await self._guarded(f"re-listing {self.spec.name}", self._refresh(client), stop_at)
        self.catalog.recheck()
        uris = self.catalog.matching_resources(MAX_READS)
        calls = [
            (name, arguments)
            for name, use in uses.items()
            if not self._stale_tools  # not re-listed: a tool may have changed unseen
            and self.catalog.usable(name)
            and (arguments := content.arguments_for(use, request)) is not None
        ]
        async with anyio.create_task_group() as tasks:
            for order, uri in enumerate(uris):
                tasks.start_soon(self._read, client, uri, order, add, stop_at)
            for order, (name, arguments) in enumerate(calls, start=len(uris)):
                tasks.start_soon(self._call, client, name, arguments, order, add, stop_at)

    async def _read(self, client: Client, uri: str, order: int, add: Add, stop_at: float) -> None:
        result = await self._guarded(f"reading {uri}", client.read_resource(uri), stop_at)
        text = content.resource_text(result) if result is not None else None
        if text:
            self._add(add, order, f"resource {uri}", text)

    async def _call(
        self,
        client: Client,
        name: str,
        arguments: dict[str, Any],
        order: int,
        add: Add,
        stop_at: float,
    ) -> None:
        call = client.call_tool(name, arguments, read_timeout_seconds=self.spec.timeout_s)
        result = await self._guarded(f"calling {name}", call, stop_at)
        text = content.tool_text(result) if result is not None else None
        if text:
            self._add(add, order, f"tool {name}", text)

    def _add(self, add: Add, order: int, source: str, text: str) -> None:
        cleaned = content.clean_text(text, self._max_item_chars)
        if cleaned:
            add(order, ContextItem(self.spec.name, source, cleaned))

    async def _guarded(self, what: str, request: Awaitable[T], stop_at: float) -> T | None:
        """Await `request` until the server's timeout or `stop_at` (anyio time), whichever
        comes first; None (logged) on any failure. Two requests in a row without an
        answer in time end the session: it is restarted after its pause."""
        limit_at = min(anyio.current_time() + self.spec.timeout_s, stop_at)
        try:
            with anyio.CancelScope(deadline=limit_at) as scope:
                result = await request
        except anyio.get_cancelled_exc_class():
            # The gather's own scope ends at `stop_at` too and may deliver the cut first:
            # ours then passes it on. The request went unanswered in time all the same.
            if anyio.current_time() >= limit_at:
                self._unanswered(what, None)
            raise
        except Exception as exc:
            self._unanswered(what, exc)
            return None
        if scope.cancelled_caught:
            self._unanswered(what, None)
            return None
        self._timeouts = 0
        return result

    def _unanswered(self, what: str, exc: Exception | None) -> None:
        """`exc` None: cut at its time limit."""
        code = exc.code if isinstance(exc, MCPError) else None
        if exc is None or isinstance(exc, TimeoutError) or code == REQUEST_TIMEOUT:
            self._timeouts += 1
        if self._ending is not None and self._timeouts >= 2:
            self._ending.end(f"did not answer {self._timeouts} requests in a row in time")
        elif self._ending is not None and code == CONNECTION_CLOSED:
            self._ending.end("closed the connection")  # over HTTP, nothing else says so
        why = self._describe(exc) if exc is not None else "did not answer in time"
        log.info("MCP server %r: %s failed: %s", self.spec.name, what, why)
