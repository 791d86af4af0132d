"""End-to-end harness: the real server subprocess over stdio, driven by pytest-lsp.

`start_server(**env)` starts `python -m server serve` with the given ZI_* settings
(the scripted model's URL and a fresh SQLite file by default) and returns an
initialized pytest-lsp client (with `workspace=`: one workspace folder);
everything is shut down after the test.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from tests.support.redis_server import RedisServer
from tests.support.scripted_model import ScriptedModel
from tests.support.workers import WorkerProcess

StartServer = Callable[..., Awaitable[LanguageClient]]


_INIT_RESULTS: dict[int, types.InitializeResult] = {}


def server_capabilities(client: LanguageClient) -> types.ServerCapabilities:
    """What the server answered to `initialize`."""
    return _INIT_RESULTS[id(client)].capabilities


def server_env(**overrides: str | None) -> dict[str, str]:
    """The test process's environment without ZI_* settings, plus `overrides` (None: unset)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZI_")}
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


@pytest.fixture(params=["rq", "in-process"])
def runner_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Settings for one job runner: Redis plus a live worker, or nothing (in process)."""
    if request.param == "in-process":
        yield {}
        return
    redis_server: RedisServer = request.getfixturevalue("redis_server")
    worker = WorkerProcess(redis_server.url, tmp_path / "worker.log")
    worker.start()
    try:
        yield {"ZI_REDIS_URL": redis_server.url}
    finally:
        worker.stop()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'history.sqlite3'}"


@pytest_asyncio.fixture
async def start_server(scripted_model: ScriptedModel, db_url: str) -> AsyncIterator[StartServer]:
    clients: list[LanguageClient] = []

    async def start(
        *,
        initialization_options: dict[str, Any] | None = None,
        configuration: dict[str, Any] | None = None,
        capabilities: str | types.ClientCapabilities = "visual-studio-code",
        workspace: Path | None = None,
        **env: str | None,
    ) -> LanguageClient:
        settings: dict[str, str | None] = {
            "ZI_INFERENCE__URL": scripted_model.url,
            "ZI_DATABASE_URL": db_url,
            "ZI_LOG_LEVEL": "DEBUG",
        }
        settings.update(env)
        config = ClientServerConfig(
            server_command=[sys.executable, "-m", "server", "serve"],
            server_env=server_env(**settings),
        )
        client = await config.start()
        clients.append(client)
        if configuration is not None:
            client.set_configuration(configuration, section="zi")
        result = await client.initialize_session(
            types.InitializeParams(
                capabilities=(
                    client_capabilities(capabilities)
                    if isinstance(capabilities, str)
                    else capabilities
                ),
                initialization_options=initialization_options,
                root_uri=workspace.as_uri() if workspace else None,
                workspace_folders=(
                    [types.WorkspaceFolder(uri=workspace.as_uri(), name=workspace.name)]
                    if workspace
                    else None
                ),
            )
        )
        _INIT_RESULTS[id(client)] = result
        return client

    yield start
    for client in clients:
        if client.stopped:  # the test ended the session itself
            continue
        try:
            await client.shutdown_session()
        finally:
            await client.stop()


def open_document(
    client: LanguageClient, uri: str, text: str, language: str = "python", version: int = 1
) -> None:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id=language, version=version, text=text
            )
        )
    )


def type_text(
    client: LanguageClient, uri: str, version: int, line: int, character: int, text: str
) -> None:
    here = types.Position(line=line, character=character)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(start=here, end=here), text=text
                )
            ],
        )
    )


def inline_params(
    uri: str, line: int, character: int, invoked: bool = False
) -> types.InlineCompletionParams:
    kind = (
        types.InlineCompletionTriggerKind.Invoked
        if invoked
        else types.InlineCompletionTriggerKind.Automatic
    )
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(trigger_kind=kind),
    )


async def inline(
    client: LanguageClient, uri: str, line: int, character: int, invoked: bool = False
) -> types.InlineCompletionList | None:
    result = await client.text_document_inline_completion_async(
        inline_params(uri, line, character, invoked)
    )
    assert result is None or isinstance(result, types.InlineCompletionList)
    return result


def texts(result: types.InlineCompletionList | None) -> list[str]:
    return [str(item.insert_text) for item in (result.items if result else [])]
