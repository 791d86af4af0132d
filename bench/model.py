"""The model side of the benchmark: the scripted model subprocess and a lean direct client.

`ModelProcess` starts ``bench.model_server`` and talks to its control channel.
`DirectClient` posts a completion body straight to the model over one keep-alive
connection with hand-rolled HTTP/1.1, reading the SSE stream to its end: the
baseline that server overhead is measured against (as little client work as
possible, so the difference is the server's own time).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from typing import Any
from urllib.parse import urlsplit


class ModelProcess:
    def __init__(self, proc: asyncio.subprocess.Process, url: str) -> None:
        self.proc = proc
        self.url = url
        self._lock = asyncio.Lock()

    @classmethod
    async def start(cls) -> ModelProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.model_server",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 26,  # `requests` answers carry whole prompts
        )
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        if not line.startswith(b"http"):
            raise RuntimeError(f"model server did not start: {line!r}")
        return cls(proc, line.decode().strip())

    async def call(self, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        async with self._lock:
            self.proc.stdin.write(json.dumps(command).encode() + b"\n")
            await self.proc.stdin.drain()
            reply: dict[str, Any] = json.loads(await self.proc.stdout.readline())
        if not reply.get("ok"):
            raise RuntimeError(f"model server: {reply.get('error')}")
        return reply

    async def fixed(self, text: str, delay_s: float) -> None:
        await self.call(cmd="fixed", text=text, delay_s=delay_s)

    async def oracle(self, source_file: str, latency_s: float) -> None:
        await self.call(cmd="oracle", source_file=source_file, latency_s=latency_s)

    async def counts(self) -> dict[str, int]:
        reply = await self.call(cmd="counts")
        return {k: v for k, v in reply.items() if k != "ok"}

    async def requests(self, since: int) -> list[dict[str, Any]]:
        reply = await self.call(cmd="requests", since=since)
        return list(reply["requests"])

    async def settle(self, quiet_s: float = 0.5, timeout_s: float = 30.0) -> dict[str, int]:
        """Wait until no new request (completion or tokenize) arrived for `quiet_s`."""
        deadline = time.monotonic() + timeout_s
        last = await self.counts()
        while time.monotonic() < deadline:
            await asyncio.sleep(quiet_s)
            now = await self.counts()
            if now == last:
                return now
            last = now
        return last

    async def stop(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


DIRECT_TAG = "zi-bench-direct"  # marks the benchmark's own requests in the model's log


class DirectClient:
    """Streaming POST /v1/completions over one keep-alive connection."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = parts.path.rstrip("/") + "/completions"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self._reader is None or self._writer is None or self._writer.is_closing():
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self._reader, self._writer

    def encode(self, body: dict[str, Any]) -> bytes:
        """The whole HTTP request for `body` (built before timing starts)."""
        payload = json.dumps({**body, "stream": True, "user": DIRECT_TAG}).encode()
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Accept: */*\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode()
        return head + payload

    async def post(self, request: bytes) -> tuple[float, bytes]:
        """Send a prepared request; (seconds to the end of the stream, raw SSE body)."""
        reader, writer = await self._connect()
        started = time.perf_counter()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        status = head.split(b" ", 2)[1]
        if status != b"200":
            raise RuntimeError(f"direct request failed: {head!r}")
        body = bytearray()
        while True:  # chunked transfer encoding (the scripted model always streams so)
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            body += (await reader.readexactly(size + 2))[:-2]
        return time.perf_counter() - started, bytes(body)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self._writer.wait_closed()
