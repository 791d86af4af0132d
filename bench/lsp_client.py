"""A minimal JSON-RPC client for the server subprocess (Content-Length framing over pipes).

Deliberately thin (no pytest-lsp, no lsprotocol types): one reader task parses
frames and timestamps each response the moment its body is read, so the time a
request takes is the server's plus a pipe hop, not a client library's.
Notifications from the server (``window/logMessage``, ``publishDiagnostics``...)
are kept aside, each with the time it was read (``notification_times``, and
``wait_notification`` to await one); requests from the server get a null answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

INVOKED = 1
AUTOMATIC = 2


@dataclass(slots=True)
class Response:
    id: int
    sent: float  # perf_counter just before the request was written
    received: float  # perf_counter when its body had been read
    result: Any = None
    error: dict[str, Any] | None = None

    @property
    def seconds(self) -> float:
        return self.received - self.sent

    @property
    def items(self) -> list[dict[str, Any]]:
        if isinstance(self.result, dict):
            return list(self.result.get("items") or [])
        if isinstance(self.result, list):
            return self.result
        return []


@dataclass
class Pending:
    id: int
    sent: float
    future: asyncio.Future[Response]


@dataclass
class LspClient:
    proc: asyncio.subprocess.Process
    notifications: list[dict[str, Any]] = field(default_factory=list)
    notification_times: list[float] = field(default_factory=list)  # perf_counter, when read
    _notified: asyncio.Event = field(default_factory=asyncio.Event)
    _pending: dict[int, Pending] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _reader_task: asyncio.Task[None] | None = None

    @classmethod
    async def spawn(
        cls, env: dict[str, str], stderr: IO[bytes] | int, module: str = "server"
    ) -> LspClient:
        """`python -m <module> serve`: the server (or a bench wrapper around it)."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            "serve",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env=env,
        )
        client = cls(proc)
        client._reader_task = asyncio.get_running_loop().create_task(client._read_loop())
        return client

    @property
    def pid(self) -> int:
        return self.proc.pid

    # -- sending ----------------------------------------------------------------

    def _write(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        body = json.dumps(message).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    def send_request(self, method: str, params: Any) -> Pending:
        """Write a request now; its Response arrives in `pending.future`."""
        msg_id = next(self._ids)
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        pending = Pending(msg_id, 0.0, future)
        self._pending[msg_id] = pending
        message = {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}
        pending.sent = time.perf_counter()
        self._write(message)
        return pending

    async def request(self, method: str, params: Any, wait_s: float = 30.0) -> Response:
        pending = self.send_request(method, params)
        return await asyncio.wait_for(pending.future, wait_s)

    def notify(self, method: str, params: Any) -> None:
        self._write({"jsonrpc": "2.0", "method": method, "params": params})

    def cancel(self, msg_id: int) -> None:
        self.notify("$/cancelRequest", {"id": msg_id})

    async def drain(self) -> None:
        assert self.proc.stdin is not None
        await self.proc.stdin.drain()

    # -- receiving --------------------------------------------------------------

    async def _read_loop(self) -> None:
        reader = self.proc.stdout
        assert reader is not None
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                received = time.perf_counter()
                self._dispatch(json.loads(body), received)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            for pending in self._pending.values():
                if not pending.future.done():
                    pending.future.set_exception(ConnectionError("server went away"))

    def _dispatch(self, message: dict[str, Any], received: float) -> None:
        if "method" not in message:
            pending = self._pending.pop(message.get("id"), None)  # type: ignore[arg-type]
            if pending is not None and not pending.future.done():
                pending.future.set_result(
                    Response(
                        pending.id,
                        pending.sent,
                        received,
                        message.get("result"),
                        message.get("error"),
                    )
                )
        elif "id" in message:  # a request from the server: answer it emptily
            result: Any = None
            if message["method"] == "workspace/configuration":
                result = [None] * len(message.get("params", {}).get("items", []))
            self._write({"jsonrpc": "2.0", "id": message["id"], "result": result})
        else:  # window/logMessage, window/showMessage, ...
            self.notifications.append(message)
            self.notification_times.append(received)
            self._notified.set()

    async def wait_notification(
        self, predicate: Callable[[dict[str, Any]], bool], since: int = 0, wait_s: float = 30.0
    ) -> int:
        """Index (in `notifications`) of the first one from `since` on that matches `predicate`."""
        deadline = time.perf_counter() + wait_s
        while True:
            for index in range(since, len(self.notifications)):
                if predicate(self.notifications[index]):
                    return index
            since = len(self.notifications)
            self._notified.clear()
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError(f"no matching notification in {wait_s:g} s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._notified.wait(), remaining)

    # -- LSP conveniences -------------------------------------------------------

    async def initialize(self, wait_s: float = 60.0) -> Response:
        response = await self.request("initialize", initialize_params(), wait_s)
        self.notify("initialized", {})
        return response

    def did_open(self, uri: str, text: str, language_id: str = "python", version: int = 1) -> None:
        self.notify(
            "textDocument/didOpen",
            {
                "textDocument": {
                    "uri": uri,
                    "languageId": language_id,
                    "version": version,
                    "text": text,
                }
            },
        )

    def did_change(
        self, uri: str, version: int, start: tuple[int, int], end: tuple[int, int], text: str
    ) -> None:
        self.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": uri, "version": version},
                "contentChanges": [
                    {
                        "range": {
                            "start": {"line": start[0], "character": start[1]},
                            "end": {"line": end[0], "character": end[1]},
                        },
                        "text": text,
                    }
                ],
            },
        )

    def did_save(self, uri: str) -> float:
        """didSave; returns perf_counter just before it was written."""
        sent = time.perf_counter()
        self.notify("textDocument/didSave", {"textDocument": {"uri": uri}})
        return sent

    def send_inline(self, uri: str, line: int, character: int, trigger: int) -> Pending:
        return self.send_request(
            "textDocument/inlineCompletion",
            {
                "textDocument": {"uri": uri},
                "position": {"line": line, "character": character},
                "context": {"triggerKind": trigger},
            },
        )

    async def inline(
        self, uri: str, line: int, character: int, trigger: int = INVOKED, wait_s: float = 30.0
    ) -> Response:
        pending = self.send_inline(uri, line, character, trigger)
        return await asyncio.wait_for(pending.future, wait_s)

    async def close(self, wait_s: float = 10.0) -> int | None:
        """shutdown + exit, then wait for the process (killed if it lingers)."""
        if self.proc.returncode is None:
            with contextlib.suppress(Exception):
                await self.request("shutdown", None, wait_s)
                self.notify("exit", None)
                await self.drain()
            try:
                await asyncio.wait_for(self.proc.wait(), wait_s)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
        return self.proc.returncode


def initialize_params() -> dict[str, Any]:
    """What a plain editor offers: UTF-16 positions, inline completion, no configuration."""
    return {
        "processId": os.getpid(),
        "clientInfo": {"name": "zi-bench", "version": "0"},
        "rootUri": None,
        "capabilities": {
            "general": {"positionEncodings": ["utf-16"]},
            "textDocument": {
                "synchronization": {"dynamicRegistration": False},
                "inlineCompletion": {"dynamicRegistration": False},
            },
            "window": {"workDoneProgress": False},
        },
    }


def server_env(model_url: str, workdir: Path, **overrides: str) -> dict[str, str]:
    """The server's environment: ours minus any ZI_* setting, plus the benchmark's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZI_")}
    env.update(
        {
            "ZI_INFERENCE__URL": model_url,
            "ZI_DATABASE_URL": f"sqlite:///{workdir / 'history.sqlite3'}",
            "ZI_COMPLETION__DEBOUNCE_MS": "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


def utf16_position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset)
    segment = text[text.rfind("\n", 0, offset) + 1 : offset]
    if segment.isascii():
        return line, len(segment)
    return line, len(segment.encode("utf-16-le")) // 2


def read_rss_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process, in kB, from /proc."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = int(value.split()[0])
    return out
