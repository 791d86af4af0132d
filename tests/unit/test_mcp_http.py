"""The size limit on HTTP answers of MCP servers: counted as the body comes (a chunked
answer declares no size), declared sizes refused before reading, event streams left to
the SDK (it caps each event), compressed answers refused."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest

from server.mcp.client.http import CappedTransport, RefusedAnswer

LIMIT = 1000


class Chunks(httpx2.AsyncByteStream):
    """A body of `count` chunks of `size` bytes, with no declared length."""

    def __init__(self, count: int, size: int = 100) -> None:
        self.count, self.size = count, size
        self.sent = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.count):
            self.sent += self.size
            yield b"x" * self.size


def client(response: httpx2.Response, refusals: list[str]) -> httpx2.AsyncClient:
    capped = CappedTransport(httpx2.MockTransport(lambda _: response), LIMIT, refusals.append)
    return httpx2.AsyncClient(transport=capped)


async def post(http: httpx2.AsyncClient) -> bytes:
    async with http, http.stream("POST", "http://mcp.test/mcp", json={}) as response:
        return await response.aread()


async def test_a_chunked_answer_over_the_limit_is_refused_once_past_it() -> None:
    body = Chunks(count=1000)  # 100 KB
    refusals: list[str] = []
    headers = {"content-type": "application/json"}
    with pytest.raises(RefusedAnswer):
        await post(client(httpx2.Response(200, headers=headers, stream=body), refusals))
    assert len(refusals) == 1 and refusals[0].startswith("a message over")
    assert body.sent <= LIMIT + body.size  # not read further


async def test_an_answer_within_the_limit_passes() -> None:
    refusals: list[str] = []
    headers = {"content-type": "application/json"}
    response = httpx2.Response(200, headers=headers, stream=Chunks(count=10))
    assert await post(client(response, refusals)) == b"x" * LIMIT
    assert refusals == []


async def test_a_declared_size_over_the_limit_is_refused_before_reading() -> None:
    body = Chunks(count=1)
    headers = {"content-type": "application/json", "content-length": str(LIMIT + 1)}
    refusals: list[str] = []
    with pytest.raises(RefusedAnswer):
        await post(client(httpx2.Response(200, headers=headers, stream=body), refusals))
    assert body.sent == 0


async def test_an_event_stream_is_left_to_the_sdk() -> None:
    headers = {"content-type": "text/event-stream"}
    response = httpx2.Response(200, headers=headers, stream=Chunks(count=30))
    refusals: list[str] = []
    assert len(await post(client(response, refusals))) == 3000
    assert refusals == []


async def test_a_compressed_answer_is_refused() -> None:
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    response = httpx2.Response(200, headers=headers, stream=Chunks(count=1))
    refusals: list[str] = []
    with pytest.raises(RefusedAnswer):
        await post(client(response, refusals))
    assert refusals == ["a compressed answer (gzip) though asked for none"]
