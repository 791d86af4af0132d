"""Stale requests: superseded, cancelled or overtaken by an edit; identical ones joined."""

from __future__ import annotations

import asyncio
import time

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled

from tests.e2e.conftest import (
    StartServer,
    inline,
    inline_params,
    open_document,
    texts,
    type_text,
)
from tests.support.scripted_model import Reply, ScriptedModel

URI = "file:///work/project/calc.py"
SLOW = Reply(text="return a + b", delay_s=3.0)


async def test_a_newer_request_supersedes_the_older_one_and_closes_its_stream(
    start_server: StartServer, scripted_model: ScriptedModel
) -> None:
    client = await start_server()
    open_document(client, URI, "def add(a, b):\n    \n\ndef sub(a, b):\n    \n")
    scripted_model.queue(SLOW, Reply(text="return a - b"))

    older = asyncio.ensure_future(inline(client, URI, 1, 4))
    await asyncio.to_thread(scripted_model.wait_for_requests, 1)
    started = time.monotonic()
    newer = await inline(client, URI, 4, 4)

    assert texts(newer) == ["return a - b"]
    assert texts(await older) == []  # answered empty, long before the slow reply
    assert time.monotonic() - started < 2.0
    await asyncio.to_thread(scripted_model.wait_for_cancelled, 1)


async def test_cancel_request_answers_request_cancelled_at_once_and_aborts_the_model_call(
    start_server: StartServer, scripted_model: ScriptedModel
) -> None:
    client = await start_server()
    open_document(client, URI, "def add(a, b):\n    \n")
    scripted_model.queue(SLOW)
    params = inline_params(URI, 1, 4, invoked=True)
    future = client.protocol.send_request(
        types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id="slow-1"
    )
    await asyncio.to_thread(scripted_model.wait_for_requests, 1)
    started = time.monotonic()
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="slow-1"))

    with pytest.raises(JsonRpcRequestCancelled) as raised:
        await asyncio.wait_for(asyncio.wrap_future(future), 2)
    assert raised.value.code == -32800
    assert time.monotonic() - started < 1.0
    await asyncio.to_thread(scripted_model.wait_for_cancelled, 1, 2.0)
    # The cancelled call was not turned into a user-visible error.
    assert not [m for m in client.log_messages if "model server error" in m.message]


async def test_an_edit_before_the_position_makes_the_request_stale(
    start_server: StartServer, scripted_model: ScriptedModel
) -> None:
    client = await start_server()
    open_document(client, URI, "def add(a, b):\n    \n")
    scripted_model.queue(SLOW)

    pending = asyncio.ensure_future(inline(client, URI, 1, 4))
    await asyncio.to_thread(scripted_model.wait_for_requests, 1)
    type_text(client, URI, 2, 1, 4, "r")

    assert texts(await asyncio.wait_for(pending, 2)) == []
    await asyncio.to_thread(scripted_model.wait_for_cancelled, 1)


async def test_an_identical_request_joins_the_one_in_flight(
    start_server: StartServer, scripted_model: ScriptedModel
) -> None:
    client = await start_server()
    open_document(client, URI, "def add(a, b):\n    \n")
    scripted_model.reply_with(Reply(text="return a + b", delay_s=0.5))

    first = asyncio.ensure_future(inline(client, URI, 1, 4))
    await asyncio.to_thread(scripted_model.wait_for_requests, 1)
    second = await inline(client, URI, 1, 4)  # the editor re-asked at the same place

    assert texts(second) == ["return a + b"]
    assert texts(await first) == []  # superseded by the identical request
    assert len(scripted_model.requests) == 1
    assert scripted_model.cancelled == 0
