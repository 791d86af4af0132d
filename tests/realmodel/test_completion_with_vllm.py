"""The whole stack against a real vLLM engine serving the tiny model the suite builds.

The model has random weights, so its text is noise; what this proves is the
plumbing a fake cannot: model discovery, FIM template detection through vLLM's
/tokenize, the local tokenizer.json budget, vLLM's SSE stream, and that a
cancelled request frees the engine.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from lsprotocol import types
from pygls.exceptions import JsonRpcRequestCancelled
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from tests.e2e.conftest import inline, inline_params, open_document, server_env, texts

URI = "file:///work/project/notes.py"
# Random weights love to loop or stop at once: ask for a few tokens and penalise repeats.
EXTRA_BODY = json.dumps({"min_tokens": 3, "repetition_penalty": 1.8})


@pytest_asyncio.fixture
async def client(vllm_url: str, tmp_path: Path) -> AsyncIterator[LanguageClient]:
    config = ClientServerConfig(
        server_command=[sys.executable, "-m", "server", "serve"],
        server_env=server_env(
            ZI_INFERENCE__URL=vllm_url,
            ZI_INFERENCE__TEMPERATURE="0",
            ZI_INFERENCE__EXTRA_BODY=EXTRA_BODY,
            ZI_COMPLETION__MAX_TOKENS_SINGLE_LINE="8",
            ZI_DATABASE_URL=f"sqlite:///{tmp_path / 'history.sqlite3'}",
            ZI_LOG_LEVEL="DEBUG",
        ),
    )
    lsp = await config.start()
    await lsp.initialize_session(
        types.InitializeParams(capabilities=client_capabilities("visual-studio-code"))
    )
    lsp.zi_db = tmp_path / "history.sqlite3"  # type: ignore[attr-defined]
    yield lsp
    await lsp.shutdown_session()
    await lsp.stop()


async def test_ghost_text_from_a_real_vllm_engine(client: LanguageClient) -> None:
    # A comment line: single-line mode, and any text is valid syntax there.
    open_document(client, URI, "import os\n\n# Read the configuration file and \n")

    result = await asyncio.wait_for(inline(client, URI, 2, 35, invoked=True), 60)

    suggestion = texts(result)
    assert len(suggestion) == 1 and suggestion[0].strip(), result
    assert "\n" not in suggestion[0]
    await asyncio.sleep(0.3)
    logged = "\n".join(m.message for m in client.log_messages)
    assert "using model 'tiny-coder' with the qwen FIM template" in logged

    db = client.zi_db  # type: ignore[attr-defined]
    deadline = time.monotonic() + 5
    rows: list[tuple[object, ...]] = []
    while not rows and time.monotonic() < deadline:
        try:
            with sqlite3.connect(db) as conn:
                rows = conn.execute("select model, template, source from completions").fetchall()
        except sqlite3.OperationalError:
            pass
        await asyncio.sleep(0.1)
    assert rows == [("tiny-coder", "qwen", "model")]


async def test_cancelling_frees_the_engine_for_the_next_request(client: LanguageClient) -> None:
    open_document(client, URI, "import os\n\n# Read the configuration file and \n")
    params = inline_params(URI, 2, 35, invoked=True)
    future = client.protocol.send_request(
        types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id="to-cancel"
    )
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="to-cancel"))
    try:
        await asyncio.wait_for(asyncio.wrap_future(future), 5)
    except JsonRpcRequestCancelled as exc:
        assert exc.code == -32800
    # else: the engine answered before the cancel arrived, which is fine too

    open_document(client, "file:///work/project/other.py", "# Parse the arguments and \n")
    result = await asyncio.wait_for(
        inline(client, "file:///work/project/other.py", 0, 26, invoked=True), 60
    )
    assert texts(result) and texts(result)[0].strip()
