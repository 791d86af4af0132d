"""Bad input and failing dependencies: an empty answer and a clear message, never a crash."""

from __future__ import annotations

import asyncio
import socket

import pytest
from lsprotocol import types

from tests.e2e.conftest import StartServer, inline, open_document, texts
from tests.support.scripted_model import Reply, ScriptedModel
from tests.support.waits import rows_until

URI = "file:///work/project/calc.py"
BODY = "def add(a, b):\n    \n"


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def _messages(items: list[types.LogMessageParams] | list[types.ShowMessageParams]) -> str:
    return "\n".join(m.message for m in items)


async def _still_serves(client, scripted_model: ScriptedModel) -> None:  # type: ignore[no-untyped-def]
    scripted_model.reply_with(Reply(text="return a + b"))
    open_document(client, "file:///work/project/ok.py", BODY)
    assert texts(await inline(client, "file:///work/project/ok.py", 1, 4)) == ["return a + b"]


async def test_model_server_down_gives_empty_results_and_one_message(
    start_server: StartServer,
) -> None:
    client = await start_server(ZI_INFERENCE__URL=_closed_port_url())
    open_document(client, URI, BODY)
    for _ in range(3):
        assert texts(await inline(client, URI, 1, 4, invoked=True)) == []
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.3)
    shown = [m for m in client.messages if "cannot connect" in m.message]
    assert len(shown) == 1
    assert "cannot connect" in _messages(client.log_messages)


@pytest.mark.parametrize(
    ("reply", "expected_log"),
    [
        (Reply(status=500, text="CUDA out of memory"), "HTTP 500"),
        (Reply(text="return a + b", broken_json=True), "malformed stream chunk"),
        (Reply(text="return a + b", hang=True), "timed out"),
    ],
    ids=["http-500", "broken-json", "silent-server"],
)
async def test_model_failures_give_an_empty_result_and_a_log_message(
    start_server: StartServer, scripted_model: ScriptedModel, reply: Reply, expected_log: str
) -> None:
    client = await start_server(ZI_INFERENCE__READ_TIMEOUT_S="1")
    open_document(client, URI, BODY)
    scripted_model.queue(reply)

    # Bounded only to catch a hang: the read timeout (1 s) must end the silent stream.
    result = await asyncio.wait_for(inline(client, URI, 1, 4), 20)

    assert texts(result) == []
    await asyncio.sleep(0.2)
    assert expected_log in _messages(client.log_messages)
    await _still_serves(client, scripted_model)


@pytest.mark.parametrize(
    ("uri", "text", "line", "character", "expected_log"),
    [
        ("file:///never/opened.py", None, 0, 0, "unknown document"),
        (URI, BODY, 40, 0, "past the end"),
        (URI, "\x00\x01binary\x00" * 50, 0, 3, "looks binary"),
        (URI, "x = 1\n" * 400_000, 10, 5, "completions are off"),
    ],
    ids=["unknown-uri", "line-past-end", "binary", "huge-2.4MB"],
)
async def test_bad_documents_and_positions_get_an_empty_result(
    start_server: StartServer,
    scripted_model: ScriptedModel,
    uri: str,
    text: str | None,
    line: int,
    character: int,
    expected_log: str,
) -> None:
    client = await start_server()
    if text is not None:
        open_document(client, uri, text)

    assert texts(await asyncio.wait_for(inline(client, uri, line, character), 10)) == []
    await asyncio.sleep(0.2)
    assert expected_log in _messages(client.log_messages)
    assert scripted_model.requests == []
    await _still_serves(client, scripted_model)


async def test_position_past_line_end_and_inside_a_surrogate_pair_are_clamped(
    start_server: StartServer, scripted_model: ScriptedModel
) -> None:
    scripted_model.reply_with(Reply(text=" + 1"))
    client = await start_server()
    open_document(client, URI, 'face = "\U0001f600"\nx = 1\n')

    # Past the end of line 1 means its end (LSP spec): completes after "x = 1".
    assert texts(await inline(client, URI, 1, 99)) == [" + 1"]
    assert scripted_model.requests[-1]["prompt"].split("<|fim_suffix|>")[0].endswith("x = 1")
    # Character 9 is the middle of the emoji's UTF-16 pair: moved to its start, where
    # the gate sees code after the cursor and declines.
    assert texts(await inline(client, URI, 0, 9)) == []


async def test_ten_megabyte_document_is_declined_quickly(
    start_server: StartServer, scripted_model: ScriptedModel
) -> None:
    client = await start_server()
    open_document(client, URI, "# filler line for a huge file\n" * 350_000)  # ~10.5 MB
    result = await asyncio.wait_for(inline(client, URI, 349_999, 0), 20)
    assert texts(result) == []
    assert scripted_model.requests == []


@pytest.mark.parametrize(
    ("reply", "told", "recorded"),
    [
        (Reply(status=500, text="CUDA out of memory"), "HTTP 500", "HTTP 500"),
        (Reply(status=429, headers={"Retry-After": "1"}), "rate-limiting", "HTTP 429"),
        (Reply(text="return a + b", drop_after=1), "broke off", "ConnectionLost"),
        (Reply(text="return a + b", delay_s=30), "timed out", "timeout"),
    ],
    ids=["http-500", "http-429", "stream-cut", "slow"],
)
async def test_a_failed_model_call_is_told_answered_and_kept_in_the_history(
    start_server: StartServer,
    scripted_model: ScriptedModel,
    db_url: str,
    reply: Reply,
    told: str,
    recorded: str,
) -> None:
    client = await start_server(ZI_INFERENCE__READ_TIMEOUT_S="1")
    open_document(client, URI, BODY)
    scripted_model.queue(reply)

    # Bounded only to catch a hang: the read timeout (1 s) ends the slow answer.
    assert texts(await asyncio.wait_for(inline(client, URI, 1, 4), 20)) == []

    [failed] = await rows_until(db_url, "select * from model_calls")
    assert recorded in failed["error"]
    assert failed["kind"] == "completion" and failed["completion_id"] is None
    said = _messages(client.log_messages) + _messages(client.messages)
    assert told in said and "Traceback" not in said
