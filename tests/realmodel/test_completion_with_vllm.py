"""The whole stack against real vLLM engines serving the tiny models the suite builds.

The models have random weights, so their text is noise; what these tests prove
is the path a fake cannot: the language server detects each model's FIM family
through vLLM's /tokenize, the prompt reaches the engine with that family's
sentinels as single tokens in prefix-suffix-middle order, tokens stream back,
stop strings are applied by the engine, a cancelled request is aborted in the
engine, timings land in the history database, and a wrong template is a clear
error instead of a prompt the model cannot read. Every assertion on "what vLLM
saw" reads the server's request log (see ``vllm_log.py``).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled
from pytest_lsp import LanguageClient

from tests.e2e.conftest import StartServer, inline, inline_params, open_document, texts
from tests.realmodel.conftest import TinyServer
from tests.support.tiny_model import FAMILIES

URI = "file:///work/project/notes.py"
# A comment line (single-line mode; any text is valid syntax there) with code after it.
PREFIX_TEXT = "import os\n\n# Read the configuration file and "
SUFFIX_TEXT = "\nprint(os.sep)\n"
DOC = PREFIX_TEXT + SUFFIX_TEXT
LINE, CHARACTER = 2, len("# Read the configuration file and ")
# Random weights love to loop or stop at once: ask for a few tokens and penalise repeats.
EXTRA_BODY = {"min_tokens": 3, "repetition_penalty": 1.8}


@pytest.fixture(params=sorted(FAMILIES))
def server(request: pytest.FixtureRequest, tiny_servers: dict[str, TinyServer]) -> TinyServer:
    """Each test using this runs once per tiny model family."""
    return tiny_servers[request.param]


async def _client(
    start_server: StartServer, server: TinyServer, extra_body: dict[str, object], **env: str
) -> LanguageClient:
    return await start_server(
        **{
            "ZI_INFERENCE__URL": server.url,
            "ZI_INFERENCE__TEMPERATURE": "0",
            "ZI_INFERENCE__EXTRA_BODY": json.dumps(extra_body),
            **env,
        }
    )


async def _complete(client: LanguageClient) -> list[str]:
    open_document(client, URI, DOC)
    result = await asyncio.wait_for(inline(client, URI, LINE, CHARACTER, invoked=True), 60)
    return texts(result)


async def _logged(client: LanguageClient, needle: str, *, shown: bool = False) -> str:
    """The first window/logMessage (or showMessage) containing `needle`, waiting briefly."""
    deadline = time.monotonic() + 5
    while True:
        messages = client.messages if shown else client.log_messages
        found = [m.message for m in messages if needle in m.message]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            got = "\n".join(m.message for m in messages)
            raise AssertionError(f"no message containing {needle!r}; got:\n{got}")
        await asyncio.sleep(0.05)


async def test_auto_detection_sends_the_family_sentinels_in_psm_order(
    start_server: StartServer, server: TinyServer
) -> None:
    family = server.family
    mark = server.log.mark()
    client = await _client(start_server, server, EXTRA_BODY)

    await _complete(client)

    await _logged(
        client, f"using model {server.name!r} with the {family.fim_template} FIM template"
    )
    seen = await asyncio.to_thread(server.log.wait_for_completion, mark)
    prompt = seen.body["prompt"]
    assert seen.body["model"] == server.name
    # Prefix sentinel, code before the cursor, suffix sentinel, code after it, middle sentinel.
    assert prompt.startswith(family.fim_prefix) and prompt.endswith(family.fim_middle), prompt
    order = [
        prompt.index(PREFIX_TEXT.splitlines()[-1]),
        prompt.index(family.fim_suffix),
        prompt.index("print(os.sep)"),
        len(prompt) - len(family.fim_middle),
    ]
    assert order == sorted(order), prompt
    for sentinel in (family.fim_prefix, family.fim_suffix, family.fim_middle):
        assert prompt.count(sentinel) == 1, prompt
    other = next(f for f in FAMILIES.values() if f is not family)
    assert other.fim_prefix not in prompt and other.fim_middle not in prompt
    # The engine read each sentinel as its single special token.
    ids = seen.prompt_token_ids
    assert ids[0] == server.token_id(family.fim_prefix)
    assert ids[-1] == server.token_id(family.fim_middle)
    assert ids.count(server.token_id(family.fim_suffix)) == 1


async def test_tokens_stream_back_from_the_engine(
    start_server: StartServer, server: TinyServer
) -> None:
    mark = server.log.mark()
    client = await _client(start_server, server, EXTRA_BODY)

    suggestion = await _complete(client)

    assert len(suggestion) == 1 and suggestion[0].strip(), suggestion
    seen = await asyncio.to_thread(server.log.wait_for_completion, mark)
    assert seen.body["stream"] is True
    assert seen.body["min_tokens"] == EXTRA_BODY["min_tokens"]  # extra_body reached vLLM


async def test_single_line_stop_is_sent_and_honoured_by_the_engine(
    start_server: StartServer, qwen_server: TinyServer
) -> None:
    # Structured output forces the engine to want a newline after "zi ok": only the
    # stop string can end the answer there.
    forced = {"structured_outputs": {"regex": "zi ok\nnever shown"}}
    mark = qwen_server.log.mark()
    client = await _client(start_server, qwen_server, forced)

    suggestion = await _complete(client)

    assert suggestion == ["zi ok"]
    seen = await asyncio.to_thread(qwen_server.log.wait_for_completion, mark)
    assert seen.body["stop"][0] == "\n"
    assert "<|endoftext|>" in seen.body["stop"]
    assert "stop=['\\n', " in seen.sampling_params  # the engine took the stop strings
    # The same request, not streamed: the engine itself stopped at the newline.
    # (stream_options, for the usage at the stream's end, is refused without a stream.)
    replay = {k: v for k, v in seen.body.items() if k != "stream_options"} | {"stream": False}
    async with httpx.AsyncClient(timeout=60) as http:
        response = await http.post(f"{qwen_server.url}/completions", json=replay)
    choice = response.raise_for_status().json()["choices"][0]
    assert (choice["text"], choice["finish_reason"], choice["stop_reason"]) == (
        "zi ok",
        "stop",
        "\n",
    )


async def test_cancel_request_aborts_the_generation_in_the_engine(
    start_server: StartServer, qwen_server: TinyServer
) -> None:
    # Nearly a window of newline-free tokens in 128 parallel sequences: about 35 s of
    # work on an idle 2-CPU machine, so the generation is still running when the
    # cancel arrives even if a loaded machine delays it by many seconds. (16 sequences
    # of 800 tokens took 7 s idle, and one CI run finished them before the abort.)
    letters = [qwen_server.token_id(c) for c in "abcde"]
    endless = {"ignore_eos": True, "min_tokens": 960, "allowed_token_ids": letters}
    endless["n"] = 128
    mark = qwen_server.log.mark()
    client = await _client(
        start_server,
        qwen_server,
        endless,
        ZI_COMPLETION__MAX_TOKENS_SINGLE_LINE="960",  # the window is 1024 tokens
        ZI_INFERENCE__TEMPERATURE="1",  # vLLM allows n > 1 only when sampling
    )
    open_document(client, URI, DOC)

    future = client.protocol.send_request(
        types.TEXT_DOCUMENT_INLINE_COMPLETION,
        inline_params(URI, LINE, CHARACTER, invoked=True),
        msg_id="to-cancel",
    )
    seen = await asyncio.to_thread(qwen_server.log.wait_for_completion, mark, 30.0)
    await asyncio.to_thread(
        qwen_server.log.wait_for, rf"Added request (\d+_)?cmpl-{seen.request_id}-", mark
    )
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="to-cancel"))

    # Generous waits: on a loaded 2-CPU machine the engine notices the closed stream
    # late. Without the abort, the 800 tokens would finish and never log one.
    cancelled_at = time.monotonic()
    try:
        result = await asyncio.wait_for(asyncio.wrap_future(future), 30)
    except JsonRpcRequestCancelled as cancelled:
        assert cancelled.code == -32800
    else:
        late = time.monotonic() - cancelled_at
        pytest.fail(f"the request was answered {late:.1f} s after the cancel: {result!r:.200}")
    aborted = rf"Request (\d+_)?cmpl-{seen.request_id}-\S+ aborted\."  # N_: one of n
    await asyncio.to_thread(qwen_server.log.wait_for, aborted, mark, 60.0)


async def test_history_records_the_model_timings(
    start_server: StartServer, qwen_server: TinyServer, db_url: str
) -> None:
    mark = qwen_server.log.mark()
    client = await _client(start_server, qwen_server, EXTRA_BODY)
    started = time.perf_counter()

    suggestion = await _complete(client)

    elapsed_ms = (time.perf_counter() - started) * 1000
    seen = await asyncio.to_thread(qwen_server.log.wait_for_completion, mark)
    row = await _history_row(Path(db_url.removeprefix("sqlite:///")))
    model, template, source, mode, prompt_chars, text_length, first_ms, total_ms = row
    assert (model, template, source, mode) == ("tiny-coder", "qwen", "model", "single_line")
    assert prompt_chars == len(seen.body["prompt"])
    assert text_length == len(suggestion[0])
    assert first_ms is not None and 0 < first_ms <= total_ms < elapsed_ms


async def _history_row(db: Path) -> tuple[object, ...]:
    """The one completion row; history is written off the latency path, so poll."""
    query = (
        "select model, template, source, mode, prompt_chars, text_length, first_token_ms, "
        "total_ms from completions"
    )
    deadline = time.monotonic() + 5
    while True:
        try:
            with sqlite3.connect(db) as conn:
                rows = conn.execute(query).fetchall()
        except sqlite3.OperationalError:  # the schema is not there yet
            rows = []
        if rows:
            assert len(rows) == 1, rows
            return tuple(rows[0])
        if time.monotonic() > deadline:
            raise AssertionError(f"no completion recorded in {db}")
        await asyncio.sleep(0.1)


async def test_a_wrong_explicit_template_is_a_clear_error_naming_the_model(
    start_server: StartServer, qwen_server: TinyServer
) -> None:
    mark = qwen_server.log.mark()
    client = await _client(
        start_server, qwen_server, EXTRA_BODY, ZI_INFERENCE__FIM_TEMPLATE="starcoder"
    )

    suggestion = await _complete(client)

    assert suggestion == []
    shown = await _logged(client, "does not fit the starcoder FIM template", shown=True)
    assert "'tiny-coder'" in shown and "<fim_prefix>" in shown and "qwen" in shown, shown
    assert qwen_server.log.completions(mark) == []  # no prompt the model cannot read
