"""The language server follows the model registry: the completion model per language.

Two scripted servers stand in for two served models; the registry says which
language goes where. The simple path (an explicit ZI_INFERENCE__URL) still wins.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import StartServer, inline, open_document, texts
from tests.support.scripted_model import Reply, ScriptedModel

PY_URI = "file:///work/project/calc.py"
RS_URI = "file:///work/project/calc.rs"


@pytest.fixture
def second_model() -> Iterator[ScriptedModel]:
    model = ScriptedModel(model_name="rust-coder")
    model.start()
    try:
        yield model
    finally:
        model.stop()


def write_registry(path: Path, body: str) -> Path:
    path.write_text(body, encoding="utf-8")
    return path


def registry_env(models_file: Path, state_dir: Path) -> dict[str, str | None]:
    # No explicit ZI_INFERENCE__URL: that would be the simple path.
    return {
        "ZI_INFERENCE__URL": None,
        "ZI_MODELS_FILE": str(models_file),
        "ZI_STATE_DIR": str(state_dir),
    }


async def test_each_language_goes_to_its_registered_model(
    start_server: StartServer,
    scripted_model: ScriptedModel,
    second_model: ScriptedModel,
    tmp_path: Path,
) -> None:
    scripted_model.reply_with(Reply(text="return a + b"))
    second_model.reply_with(Reply(text="a + b"))
    models = write_registry(
        tmp_path / "models.toml",
        f"""
[models.python-coder]
url = "{scripted_model.url}"
served_name = "scripted-coder"
roles = ["completion"]
languages = ["python"]

[models.rust-coder]
url = "{second_model.url}"
roles = ["completion"]
""",
    )
    client = await start_server(**registry_env(models, tmp_path / "state"))
    open_document(client, PY_URI, "def add(a, b):\n    \n")
    open_document(client, RS_URI, "fn add(a: i32, b: i32) -> i32 {\n    \n}\n", language="rust")

    assert texts(await inline(client, PY_URI, 1, 4)) == ["return a + b"]
    assert texts(await inline(client, RS_URI, 1, 4)) == ["a + b"]
    assert [r["model"] for r in scripted_model.requests] == ["scripted-coder"]
    assert [r["model"] for r in second_model.requests] == ["rust-coder"]


async def test_a_local_model_is_found_where_it_was_loaded(
    start_server: StartServer, scripted_model: ScriptedModel, tmp_path: Path
) -> None:
    """`zi-coder models load` records the address; the server reads it from there."""
    from inference.state import LoadedModel, write_state

    scripted_model.reply_with(Reply(text="return a + b"))
    model_dir = tmp_path / "weights"
    model_dir.mkdir()
    models = write_registry(
        tmp_path / "models.toml",
        f"""
[models.local-coder]
source = "{model_dir}"
served_name = "scripted-coder"
roles = ["completion", "chat"]
""",
    )
    state = tmp_path / "state"
    write_state(
        state,
        LoadedModel(
            name="local-coder",
            pid=os.getpid(),  # alive for as long as the test runs
            url=scripted_model.url,
            port=int(scripted_model.url.rsplit(":", 1)[1].split("/")[0]),
            log_file=str(tmp_path / "vllm.log"),
            started_at=0.0,
        ),
    )
    client = await start_server(**registry_env(models, state))
    open_document(client, PY_URI, "def add(a, b):\n    \n")

    assert texts(await inline(client, PY_URI, 1, 4)) == ["return a + b"]


async def test_an_unloaded_model_is_explained_not_guessed(
    start_server: StartServer, scripted_model: ScriptedModel, tmp_path: Path
) -> None:
    model_dir = tmp_path / "weights"
    model_dir.mkdir()
    models = write_registry(
        tmp_path / "models.toml",
        f"""
[models.local-coder]
source = "{model_dir}"
roles = ["completion"]
""",
    )
    client = await start_server(**registry_env(models, tmp_path / "state"))
    open_document(client, PY_URI, "def add(a, b):\n    \n")

    assert texts(await asyncio.wait_for(inline(client, PY_URI, 1, 4), 10)) == []
    shown = " ".join(m.message for m in client.messages)
    assert "local-coder" in shown and "zi-coder models load local-coder" in shown
    assert scripted_model.requests == []


async def test_an_explicit_url_is_the_simple_path(
    start_server: StartServer,
    scripted_model: ScriptedModel,
    second_model: ScriptedModel,
    tmp_path: Path,
) -> None:
    second_model.reply_with(Reply(text="wrong"))
    scripted_model.reply_with(Reply(text="return a + b"))
    models = write_registry(
        tmp_path / "models.toml",
        f"""
[models.other]
url = "{second_model.url}"
roles = ["completion"]
""",
    )
    client = await start_server(ZI_MODELS_FILE=str(models), ZI_STATE_DIR=str(tmp_path / "s"))
    open_document(client, PY_URI, "def add(a, b):\n    \n")

    assert texts(await inline(client, PY_URI, 1, 4)) == ["return a + b"]
    assert second_model.requests == []


async def test_a_broken_registry_is_reported_and_the_simple_path_kept(
    start_server: StartServer, scripted_model: ScriptedModel, tmp_path: Path
) -> None:
    models = write_registry(tmp_path / "models.toml", "[models.x]\nroles = ['nonsense']\n")
    client = await start_server(
        ZI_INFERENCE__URL=None,
        ZI_MODELS_FILE=str(models),
        ZI_STATE_DIR=str(tmp_path / "s"),
    )
    for _ in range(100):  # read when the server warms up, after `initialized`
        if any("models.toml" in m.message for m in client.messages):
            break
        await asyncio.sleep(0.1)
    shown = " ".join(m.message for m in client.messages)
    assert "models.toml" in shown and "'completion' or 'chat'" in shown
