"""Streamable HTTP to a configured server, with its headers and our size limit.

The SDK caps each event of an event stream, but reads a plain JSON answer whole,
whatever its size, and a chunked one declares none. So the HTTP transport is wrapped:
a body that is not an event stream is counted as it is read, and one over the message
limit (declared or counted) fails its request and ends the session, as an outsized line
does over stdio. Answers are asked for uncompressed, and a compressed one is refused:
its size on the wire says nothing of its size once decoded.
"""

from __future__ import annotations

import urllib.request
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import httpx2

# Private to the SDK, pinned with it (pyproject: mcp>=2.3,<3): the stream pair a
# `Client` transport yields. Recheck on the next major version.
from mcp.client._transport import TransportStreams
from mcp.client.streamable_http import streamable_http_client

from server.mcp.client.config import ServerSpec
from server.mcp.client.stdio import MIB, Ending, Limits


class RefusedAnswer(httpx2.StreamError):
    """An answer over the size limit, or compressed. A StreamError: the SDK turns it into
    an error of the one request it answers."""


@asynccontextmanager
async def bounded_http(
    spec: ServerSpec, limits: Limits, ending: Ending
) -> AsyncIterator[TransportStreams]:
    assert spec.url is not None

    def refused(why: str) -> None:
        ending.end(f"sent {why} (misbehaving)")

    inner = httpx2.AsyncHTTPTransport(proxy=environment_proxy(spec.url))
    transport = CappedTransport(inner, limits.max_message_bytes, refused)
    timeout = httpx2.Timeout(spec.timeout_s, read=300.0)  # an event stream stays open
    headers = {
        name: value for name, value in spec.headers.items() if name.lower() != "accept-encoding"
    }
    headers["Accept-Encoding"] = "identity"
    http = httpx2.AsyncClient(headers=headers, timeout=timeout, transport=transport)
    async with (
        http,
        streamable_http_client(
            spec.url, http_client=http, max_sse_event_size=limits.max_message_bytes
        ) as streams,
    ):
        yield streams


def environment_proxy(url: str) -> str | None:
    """The proxy our environment names for `url` (HTTPS_PROXY, ALL_PROXY, NO_PROXY...):
    a client given its own transport no longer looks, and the SDK keeps to one origin."""
    parts = urlsplit(url)
    if parts.hostname is None or urllib.request.proxy_bypass(parts.hostname):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(parts.scheme) or proxies.get("all")


class CappedTransport(httpx2.AsyncBaseTransport):
    """`inner`, with every body but an event stream's limited to `max_bytes`: reading
    past it raises RefusedAnswer, after telling `refused` why."""

    def __init__(
        self, inner: httpx2.AsyncBaseTransport, max_bytes: int, refused: Callable[[str], None]
    ) -> None:
        self._inner = inner
        self._max_bytes = max_bytes
        self._refused = refused

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        content_type = response.headers.get("content-type", "").lower()
        if content_type.startswith("text/event-stream"):
            return response  # the SDK caps each event (after decoding)
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        response.stream = _CappedStream(response, self._max_bytes, self._refused)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class _CappedStream(httpx2.AsyncByteStream):
    def __init__(
        self, response: httpx2.Response, max_bytes: int, refused: Callable[[str], None]
    ) -> None:
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        self._inner = response.stream
        self._headers = response.headers
        self._max_bytes = max_bytes
        self._refused = refused

    async def __aiter__(self) -> AsyncIterator[bytes]:
        encoding = self._headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            self._refuse(f"a compressed answer ({encoding}) though asked for none")
        declared = self._headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self._max_bytes:
            self._refuse(f"a message over {self._max_bytes / MIB:g} MiB")
        size = 0
        async for chunk in self._inner:
            size += len(chunk)
            if size > self._max_bytes:
                self._refuse(f"a message over {self._max_bytes / MIB:g} MiB")
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()

    def _refuse(self, why: str) -> None:
        self._refused(why)
        raise RefusedAnswer(f"refused: {why}")
