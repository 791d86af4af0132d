"""Experiments, not fixes: the real server with one part swapped, to measure that part.

``python -m bench.experiments serve`` applies the swaps named in
``ZI_BENCH_EXPERIMENTS`` (comma-separated) and runs ``zi-coder serve`` unchanged
otherwise. ``bench.run --experiment NAME`` sets both::

    uv run python -m bench.run --quick --only latency --experiment native_stdin raw_http

- ``native_stdin``: pygls' ``StdinAsyncReader`` reads each header line and each
  body through a thread pool (three thread hops per message); this reads the
  stdin pipe with asyncio instead.
- ``raw_http``: ``InferenceClient.stream_completion`` over one keep-alive
  connection with hand-rolled HTTP/1.1 instead of httpx (no timeouts, no error
  mapping: for measuring only).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

EXPERIMENTS = ("native_stdin", "raw_http")


class NativeStdinReader:
    """pygls' reader interface over an asyncio StreamReader on the stdin pipe.

    Fast start hands pygls a replay wrapper whose buffer holds the already-read
    ``initialize``; that buffer is served first, then the pipe itself. (Bytes that
    ``sys.stdin.buffer`` read ahead past ``initialize`` would be lost; clients wait
    for the ``initialize`` answer before sending more, so in practice there are none.)
    """

    def __init__(self, stdin: Any, executor: Any = None) -> None:
        self.stdin = stdin
        self._reader: asyncio.StreamReader | None = None

    async def _pipe(self) -> asyncio.StreamReader:
        if self._reader is None:
            reader = asyncio.StreamReader(limit=1 << 26)
            raw = getattr(self.stdin, "_stream", self.stdin)
            await asyncio.get_running_loop().connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), raw
            )
            self._reader = reader
        return self._reader

    async def readline(self) -> bytes:
        if getattr(self.stdin, "_buffer", b""):
            line: bytes = self.stdin.readline()
            return line
        return await (await self._pipe()).readline()

    async def readexactly(self, n: int) -> bytes:
        if getattr(self.stdin, "_buffer", b""):
            data: bytes = self.stdin.read(n)
            return data
        return await (await self._pipe()).readexactly(n)


def install_native_stdin() -> None:
    import pygls.server as pygls_server

    pygls_server.StdinAsyncReader = NativeStdinReader  # type: ignore[attr-defined,assignment]


def install_raw_http() -> None:
    import inference.client as client

    idle: dict[tuple[str, int], tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}

    async def stream_completion(self: Any, request: Any) -> AsyncIterator[str]:
        parts = urlsplit(self.base_url)
        key = (parts.hostname or "127.0.0.1", parts.port or 80)
        conn = idle.pop(key, None)
        if conn is None or conn[1].is_closing():
            conn = await asyncio.open_connection(*key)
        reader, writer = conn
        payload = json.dumps(request.body()).encode()
        writer.write(
            f"POST {parts.path}/completions HTTP/1.1\r\nHost: {key[0]}:{key[1]}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        await reader.readuntil(b"\r\n\r\n")
        buffer, finished = b"", False
        try:
            while True:  # chunked SSE body
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    finished = True
                    return
                buffer += (await reader.readexactly(size + 2))[:-2]
                while b"\n\n" in buffer:
                    event, buffer = buffer.split(b"\n\n", 1)
                    data = event[5:].strip() if event.startswith(b"data:") else b"[DONE]"
                    if data != b"[DONE]" and (text := client._chunk_text(data.decode())):
                        yield text
        finally:
            if finished:
                idle[key] = (reader, writer)
            else:
                writer.close()  # left early: closing the stream stops the model

    client.InferenceClient.stream_completion = stream_completion  # type: ignore[method-assign]


def main() -> int:
    chosen = [e for e in os.environ.get("ZI_BENCH_EXPERIMENTS", "").split(",") if e]
    for name in chosen:
        if name not in EXPERIMENTS:
            sys.stderr.write(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}\n")
            return 2
        {"native_stdin": install_native_stdin, "raw_http": install_raw_http}[name]()
    from server.cli import main as cli_main

    return cli_main(["serve"])


if __name__ == "__main__":
    sys.exit(main())
