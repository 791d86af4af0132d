"""Model-server faults against the real vLLM engine, through the language server subprocess.

The same faults are scripted against a fake server in
``tests/integration/test_client_robustness.py`` and ``tests/e2e/test_faults.py``;
a fake cannot show how a real engine dies, what it lists, or how it counts a
prompt. These tests prove, end to end: an engine killed mid-stream ends the
suggestion at once with a message to the user and the language server keeps
answering, then an engine restarted on the same port is used again; a model
name the server does not serve is named (with what is served) without a request
per keystroke; a document far larger than ``max_model_len`` gets a prompt cut to
fit the window instead of an HTTP 400.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import time
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from inference.launcher import ServeConfig, VllmServer
from inference.probes import free_port, server_root
from tests.e2e.conftest import StartServer, inline, open_document, texts
from tests.realmodel.conftest import MAX_MODEL_LEN, STARTUP_TIMEOUT_S, TinyServer
from tests.realmodel.vllm_log import VllmLog
from tests.support.tiny_model import QWEN2
from tests.support.vllm_server import request_logging_env

URI = "file:///work/project/notes.py"
# A comment line (single-line mode; any text is valid syntax there) with code after it.
PREFIX_TEXT = "import os\n\n# Read the configuration file and "
SUFFIX_TEXT = "\nprint(os.sep)\n"
DOC = PREFIX_TEXT + SUFFIX_TEXT
LINE, CHARACTER = 2, len("# Read the configuration file and ")
COMMENT = "# Read the configuration file and "
# Newline-free, end-of-text-free tokens only: the answer is always one line, exactly
# max_tokens long, whatever the random weights prefer. Sampled (seeded, so the same
# each run): greedy decoding of random weights loops, and loops are not shown.
LETTERS = "abcde"
SAMPLED_TEMPERATURE = "1"
# Long enough to outlive the moment between vLLM logging the request and the kill.
LONG_TOKENS = 800
ANSWER_S = 5.0  # a fault must end a request this fast; hanging is the bug


async def _logged(
    client: LanguageClient,
    *needles: str,
    shown: bool = False,
    since: int = 0,
    timeout_s: float = 5.0,
) -> str:
    """The first window/logMessage (or showMessage) from index `since` containing any needle."""
    deadline = time.monotonic() + timeout_s
    while True:
        messages = client.messages if shown else client.log_messages
        found = [m.message for m in messages[since:] if any(n in m.message for n in needles)]
        if found:
            return found[0]
        if time.monotonic() > deadline:
            got = "\n".join(m.message for m in messages)
            raise AssertionError(f"no message containing any of {needles!r}; got:\n{got}")
        await asyncio.sleep(0.05)


def _letters(model_dir: Path) -> list[int]:
    server = TinyServer(QWEN2, model_dir, "", VllmLog(model_dir / "unused.log"))
    return [server.token_id(c) for c in LETTERS]


async def _client(
    start_server: StartServer,
    url: str,
    extra_body: dict[str, object],
    *,
    temperature: str = "0",
    **env: str,
) -> LanguageClient:
    return await start_server(
        ZI_INFERENCE__URL=url,
        ZI_INFERENCE__TEMPERATURE=temperature,
        ZI_INFERENCE__EXTRA_BODY=json.dumps(extra_body),
        **env,
    )


async def _timed_inline(client: LanguageClient, uri: str, line: int, character: int) -> list[str]:
    started = time.monotonic()
    result = await asyncio.wait_for(inline(client, uri, line, character, invoked=True), 30)
    elapsed = time.monotonic() - started
    assert elapsed < ANSWER_S, f"the request took {elapsed:.1f} s"
    return texts(result)


# -- crashed mid-stream, then restarted ----------------------------------------------


def _dedicated_config(model_dir: Path, python: Path, log_dir: Path) -> ServeConfig:
    """A vLLM of its own for this test (it gets killed), logging requests like the session's."""
    env = {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        **request_logging_env(log_dir / "logging.json"),
    }
    return ServeConfig(
        source=str(model_dir),
        served_name=QWEN2.served_name,
        port=free_port(),
        max_model_len=MAX_MODEL_LEN,
        dtype="float32",
        extra_args=("--enforce-eager",),
        env=env,
        log_file=log_dir / "first.log",
        python=python,
        enable_log_requests=True,
    )


def _shared_memory_of(pgid: int) -> set[Path]:
    """The /dev/shm files the processes of group `pgid` map (Linux; empty elsewhere).

    A SIGKILLed vLLM leaves its engine queues there (``psm_*``, 160-250 MB each, if
    sparse): its resource tracker dies with it. (A 32-byte ``sem.mp-*`` that no
    process maps any more is left too.)
    """
    found: set[Path] = set()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            stat = (proc / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            maps = (proc / "maps").read_text()
        except (OSError, ValueError, IndexError):
            continue  # exited meanwhile, or not ours to read
        found.update(Path(m) for m in re.findall(r"/dev/shm/\S+", maps))
    return found


def _unlink(paths: set[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _serve(config: ServeConfig) -> VllmServer:
    server = VllmServer(config)
    server.start()
    try:
        server.wait_ready(STARTUP_TIMEOUT_S)
    except BaseException:
        server.stop()
        raise
    return server


# Two vLLM starts of its own (40-90 s each here, up to STARTUP_TIMEOUT_S allowed).
@pytest.mark.timeout(2 * STARTUP_TIMEOUT_S + 120)
async def test_a_crash_mid_stream_is_told_and_the_restarted_engine_is_used_again(
    start_server: StartServer, tiny_model_dir: Path, vllm_python: Path, tmp_path: Path
) -> None:
    config = _dedicated_config(tiny_model_dir, vllm_python, tmp_path)
    endless = {
        "ignore_eos": True,
        "min_tokens": LONG_TOKENS,
        "allowed_token_ids": _letters(tiny_model_dir),
        "seed": 7,
    }
    servers: list[VllmServer] = []
    leaked: set[Path] = set()
    try:
        first = await asyncio.to_thread(_serve, config)
        servers.append(first)
        assert first.pid is not None
        first_log = VllmLog(first.log_file)
        client = await _client(
            start_server,
            config.url,
            endless,
            temperature=SAMPLED_TEMPERATURE,
            ZI_COMPLETION__MAX_TOKENS_SINGLE_LINE=str(LONG_TOKENS),
        )
        await _logged(client, "using model 'tiny-coder'")
        open_document(client, URI, DOC)
        mark = first_log.mark()

        # A long generation is running in the engine when the engine dies.
        streaming = asyncio.create_task(
            asyncio.wait_for(inline(client, URI, LINE, CHARACTER, invoked=True), 60)
        )
        seen = await asyncio.to_thread(first_log.wait_for_completion, mark, 30.0)
        await asyncio.to_thread(first_log.wait_for, rf"Added request cmpl-{seen.request_id}-", mark)
        leaked = await asyncio.to_thread(_shared_memory_of, first.pid)
        os.killpg(first.pid, signal.SIGKILL)
        killed = time.monotonic()

        result = await streaming
        answered_s = time.monotonic() - killed
        assert texts(result) == [], "the generation finished before the kill"
        assert answered_s < ANSWER_S, f"answered {answered_s:.1f} s after the crash"
        assert not first_log.aborted(seen.request_id, mark)  # killed, not cancelled
        told = await _logged(client, "broke off its answer", "lost the connection")
        assert config.url in told, told

        # The language server keeps answering: inline and classic completion, empty
        # and prompt; the third failure in a row pauses requests (the breaker opens).
        assert await _timed_inline(client, URI, LINE, CHARACTER) == []
        listed = await asyncio.wait_for(
            client.text_document_completion_async(
                types.CompletionParams(
                    text_document=types.TextDocumentIdentifier(uri=URI),
                    position=types.Position(line=LINE, character=CHARACTER),
                    context=types.CompletionContext(
                        trigger_kind=types.CompletionTriggerKind.Invoked
                    ),
                )
            ),
            ANSWER_S,
        )
        assert isinstance(listed, types.CompletionList) and not listed.items
        paused = await _logged(client, "pausing requests", shown=True)
        assert f"model server at {config.url} is failing" in paused, paused
        assert "cannot connect" in paused, paused  # the cause, in the same message
        assert client.error is None

        # vLLM comes back on the same port: the next request finds it and is served.
        await asyncio.to_thread(first.stop, 10)
        logs_before = len(client.log_messages)
        second = await asyncio.to_thread(_serve, replace(config, log_file=tmp_path / "second.log"))
        servers.append(second)
        second_log = VllmLog(second.log_file)

        result = await asyncio.wait_for(inline(client, URI, LINE, CHARACTER, invoked=True), 60)

        suggestion = texts(result)
        assert len(suggestion) == 1 and suggestion[0].strip(), suggestion
        assert set(suggestion[0]) <= set(LETTERS), suggestion
        again = await _logged(client, "answers again", since=logs_before)
        assert config.url in again, again
        await _logged(client, "using model 'tiny-coder'", since=logs_before)  # resolved anew
        resent = await asyncio.to_thread(second_log.wait_for_completion, 0)
        assert resent.body["prompt"] == seen.body["prompt"]
    finally:
        for server in servers:
            await asyncio.to_thread(server.stop, 10)
        await asyncio.to_thread(_unlink, leaked)


# -- model name unknown ---------------------------------------------------------------


_MODELS_REQUESTS = re.compile(
    r'^http_requests_total\{[^}]*handler="/v1/models"[^}]*\} (\S+)$', re.MULTILINE
)


async def _models_requests(server: TinyServer) -> int:
    """GET /v1/models requests vLLM has answered, from its Prometheus metrics."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(f"{server_root(server.url)}/metrics")
    response.raise_for_status()
    return sum(int(float(value)) for value in _MODELS_REQUESTS.findall(response.text))


async def test_an_unknown_model_name_is_named_with_what_is_served_and_not_hammered(
    start_server: StartServer, qwen_server: TinyServer
) -> None:
    mark = qwen_server.log.mark()
    before = await _models_requests(qwen_server)
    client = await _client(
        start_server,
        qwen_server.url,
        {"min_tokens": 3},
        ZI_INFERENCE__MODEL="no-such-model",
    )

    shown = await _logged(client, "'no-such-model'", shown=True)

    assert f"is not served at {qwen_server.url}" in shown, shown
    assert "(served: tiny-coder)" in shown, shown
    # Keystrokes meanwhile: each answered at once, empty, without asking vLLM again.
    open_document(client, URI, DOC)
    for _ in range(10):
        assert await _timed_inline(client, URI, LINE, CHARACTER) == []
    asked = await _models_requests(qwen_server) - before
    # One resolution at start-up; at most one more if the 2 s cool-down ran out meanwhile.
    assert 1 <= asked <= 2, f"{asked} GET /v1/models for 10 requests"
    told = [m for m in client.messages if "no-such-model" in m.message]
    assert len(told) == 1 and told[0].type == types.MessageType.Error, told
    assert "no-such-model" in await _logged(client, "no-such-model")
    logged = qwen_server.log.since(mark)
    assert "Received request cmpl-" not in logged and "Received request tokenize-" not in logged


# -- max_model_len exceeded by the document -------------------------------------------


def _long_document() -> tuple[str, int]:
    """~45,000 characters of real Python with a comment line (the cursor's) in the middle."""
    source = Path(argparse.__file__).read_text(encoding="utf-8")
    source = source[: source.index("\n", 45_000) + 1]
    middle = min(
        (m.start() for m in re.finditer(r"^(?:class|def) \w+", source, re.MULTILINE)),
        key=lambda start: abs(start - len(source) // 2),
    )
    text = f"{source[:middle]}{COMMENT}\n{source[middle:]}"
    return text, source.count("\n", 0, middle)


async def test_a_document_beyond_max_model_len_gets_a_prompt_cut_to_the_window(
    start_server: StartServer, qwen_server: TinyServer
) -> None:
    text, line = await asyncio.to_thread(_long_document)
    letters = [qwen_server.token_id(c) for c in LETTERS]
    mark = qwen_server.log.mark()
    client = await _client(
        start_server,
        qwen_server.url,
        {"allowed_token_ids": letters, "seed": 7},
        temperature=SAMPLED_TEMPERATURE,
        ZI_COMPLETION__PREFIX_TOKENS="4000",
        ZI_COMPLETION__SUFFIX_TOKENS="2000",
    )
    await _logged(client, f"context window {MAX_MODEL_LEN} tokens")
    open_document(client, URI, text)

    result = await asyncio.wait_for(inline(client, URI, line, len(COMMENT), invoked=True), 60)

    suggestion = texts(result)
    assert len(suggestion) == 1 and suggestion[0].strip(), suggestion
    seen = await asyncio.to_thread(qwen_server.log.wait_for_completion, mark)
    prompt_tokens = len(seen.prompt_token_ids)
    assert prompt_tokens + seen.body["max_tokens"] <= MAX_MODEL_LEN, prompt_tokens
    # Cut to the window, not to a sliver of it: most of the room went to context.
    assert prompt_tokens >= (MAX_MODEL_LEN - seen.body["max_tokens"]) * 3 // 4, prompt_tokens
    prompt = seen.body["prompt"]
    assert len(prompt) < len(text) // 4
    before, after = text.split(COMMENT + "\n", 1)
    last_before = next(line for line in reversed(before.splitlines()) if line.strip())
    assert last_before in prompt and after.splitlines()[0] in prompt, prompt
    # One request, accepted: no HTTP 400 and no shrink-and-retry.
    assert [c.request_id for c in qwen_server.log.completions(mark)] == [seen.request_id]
    assert not [m.message for m in client.log_messages if "too long" in m.message]
