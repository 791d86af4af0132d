"""The Redis cache shared by server processes, and what happens when Redis goes away."""

from __future__ import annotations

import asyncio

from tests.e2e.conftest import StartServer, inline, open_document, texts
from tests.support.redis_server import RedisServer
from tests.support.scripted_model import Reply, ScriptedModel

URI = "file:///work/project/calc.py"
BODY = "def add(a, b):\n    \n"


async def test_a_second_server_process_gets_the_completion_from_redis(
    start_server: StartServer, scripted_model: ScriptedModel, redis_server: RedisServer
) -> None:
    scripted_model.reply_with(Reply(text="return a + b"))
    first = await start_server(ZI_REDIS_URL=redis_server.url)
    second = await start_server(ZI_REDIS_URL=redis_server.url)
    open_document(first, URI, BODY)
    open_document(second, URI, BODY)

    assert texts(await inline(first, URI, 1, 4)) == ["return a + b"]
    assert texts(await inline(second, URI, 1, 4)) == ["return a + b"]

    assert len(scripted_model.requests) == 1
    import redis

    keys = redis.Redis.from_url(redis_server.url).keys("zi:cache:completion:*")
    assert len(keys) == 1


async def test_redis_dying_mid_session_falls_back_to_the_process_cache(
    start_server: StartServer, scripted_model: ScriptedModel, redis_server: RedisServer
) -> None:
    scripted_model.reply_with(Reply(text="return a + b"))
    client = await start_server(ZI_REDIS_URL=redis_server.url)
    open_document(client, URI, BODY)
    assert texts(await inline(client, URI, 1, 4)) == ["return a + b"]

    redis_server.kill()
    open_document(client, "file:///work/project/b.py", "def mul(a, b):\n    \n")
    scripted_model.reply_with(Reply(text="return a * b"))
    result = await asyncio.wait_for(inline(client, "file:///work/project/b.py", 1, 4), 20)

    assert texts(result) == ["return a * b"]
    await asyncio.sleep(0.2)
    warnings = [m.message for m in client.log_messages if "Redis" in m.message]
    assert any("unreachable" in w and "in-process cache" in w for w in warnings)
    # The process cache still serves repeats without the model.
    before = len(scripted_model.requests)
    open_document(client, "file:///work/project/c.py", "def mul(a, b):\n    \n")
    open_document(client, "file:///work/project/b.py", "def mul(a, b):\n    \n", version=2)
    assert texts(await inline(client, "file:///work/project/b.py", 1, 4)) == ["return a * b"]
    assert len(scripted_model.requests) == before


async def test_unreachable_redis_at_start_still_completes(
    start_server: StartServer, scripted_model: ScriptedModel
) -> None:
    scripted_model.reply_with(Reply(text="return a + b"))
    client = await start_server(ZI_REDIS_URL="redis://127.0.0.1:9/0")
    open_document(client, URI, BODY)
    assert texts(await asyncio.wait_for(inline(client, URI, 1, 4), 20)) == ["return a + b"]
    await asyncio.sleep(0.2)
    assert any("Redis" in m.message for m in client.log_messages)
