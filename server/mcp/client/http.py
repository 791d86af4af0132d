"""Streamable HTTP to a configured server, with its headers and our size limit."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2
from mcp.client._transport import TransportStreams
from mcp.client.streamable_http import streamable_http_client

from server.mcp.client.config import ServerSpec
from server.mcp.client.stdio import Limits


@asynccontextmanager
async def bounded_http(spec: ServerSpec, limits: Limits) -> AsyncIterator[TransportStreams]:
    """The SDK caps event-stream events but not plain JSON answers: a declared length
    over the message limit is refused here."""
    assert spec.url is not None

    async def refuse_outsized(response: httpx2.Response) -> None:
        size = response.headers.get("content-length", "")
        if size.isdigit() and int(size) > limits.max_message_bytes:
            await response.aclose()
            raise ValueError(f"an answer of {int(size)} bytes is over the limit")

    timeout = httpx2.Timeout(spec.timeout_s, read=300.0)  # an event stream stays open
    hooks = {"response": [refuse_outsized]}
    http = httpx2.AsyncClient(headers=spec.headers, timeout=timeout, event_hooks=hooks)
    async with (
        http,
        streamable_http_client(
            spec.url, http_client=http, max_sse_event_size=limits.max_message_bytes
        ) as streams,
    ):
        yield streams
