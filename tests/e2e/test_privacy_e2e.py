"""Nothing secret leaves or stays: the real server over stdio, a scripted model that
records its prompts, the history in SQLite and the log in a file at DEBUG (pygls then
logs whole message bodies).

Excluded files (``.env``, an SSH key, a .gitignored file) open in the editor never
feed another file's prompt; the corpus of realistic secrets, planted in an ordinary
document and in the model's answer, reaches neither the prompt, the history nor the log.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

from tests.e2e.conftest import StartServer, inline, open_document, texts
from tests.support.scripted_model import Reply, ScriptedModel
from tests.support.waits import rows_until
from tests.unit.data.secrets_corpus import SECRETS, SecretCase

# Each neighbour shares the current file's identifiers: each would be a snippet if allowed.
SHAPES = "def area(width, height):\n    return width * height\n\n\ndef perimeter(width, height):\n"
CURRENT = "def area_of(shape):\n    width, height = shape.width, shape.height\n    return \n"
GITHUB_TOKEN = "gh" + "p_" + "Zq4T7kLm2Xv9Rb8Nc3Wd6Yf1Hj5Gs0Ka7PeU"  # what the "model" answers


def _workspace(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    (root / ".git").mkdir(parents=True)  # a repository: its .gitignore counts
    (root / ".gitignore").write_text("local_shapes.py\n")
    return root


async def test_excluded_files_never_feed_a_prompt(
    start_server: StartServer, scripted_model: ScriptedModel, tmp_path: Path
) -> None:
    root = _workspace(tmp_path)
    client = await start_server(workspace=root)
    for name in (".env", "id_rsa", "local_shapes.py", "shapes.py"):
        # Same language as the current file, so only the rules keep them out.
        open_document(client, (root / name).as_uri(), f"{SHAPES}# from {name}\n")
    uri = (root / "geometry.py").as_uri()
    open_document(client, uri, CURRENT)
    scripted_model.reply_with("width * height\n")

    assert texts(await inline(client, uri, 2, 11, invoked=True)) == ["width * height"]

    [request] = scripted_model.requests
    prompt = request["prompt"]
    assert "# from shapes.py" in prompt  # the ordinary neighbour is a snippet
    for name in (".env", "id_rsa", "local_shapes.py"):
        assert f"# from {name}" not in prompt
    # Nothing is completed inside a secrets file, even when asked for; a file git
    # ignores is only kept out of other files' context, and still gets help itself.
    for name in (".env", "id_rsa"):
        assert texts(await inline(client, (root / name).as_uri(), 5, 0, invoked=True)) == []
    assert len(scripted_model.requests) == 1
    scratch = (root / "local_shapes.py").as_uri()
    assert texts(await inline(client, scratch, 5, 0, invoked=True)) == ["width * height"]


async def test_the_secret_corpus_reaches_no_prompt_history_or_log(
    start_server: StartServer, scripted_model: ScriptedModel, db_url: str, tmp_path: Path
) -> None:
    # Keys cut by a prompt's edge only make sense at the edge: joined, they make one key.
    cases = [case for case in SECRETS if not case.id.startswith("pem-cut-")]
    half = len(cases) // 2
    before = "\n".join(case.text for case in cases[:half])
    after = "\n".join(case.text for case in cases[half:])
    text = f"{before}\n{CURRENT}\n{after}"
    line = before.count("\n") + 3  # CURRENT's `return ` line
    scripted_model.max_model_len = 32_768  # room for the whole corpus around the cursor
    scripted_model.reply_with(Reply(text=f"connect(token='{GITHUB_TOKEN}')\n"))
    log_file = tmp_path / "server.log"
    client = await start_server(
        ZI_LOG_FILE=str(log_file),
        ZI_LOG_LEVEL="DEBUG",
        ZI_HISTORY__STORE_PROMPTS="true",
        ZI_COMPLETION__PREFIX_TOKENS="12000",
        ZI_COMPLETION__SUFFIX_TOKENS="12000",
    )
    uri = (tmp_path / "settings_module.py").as_uri()
    open_document(client, uri, text)

    # The suggestion is the model's to make: the user's own editor may show it.
    assert texts(await inline(client, uri, line, 11, invoked=True)) == [
        f"connect(token='{GITHUB_TOKEN}')"
    ]
    [request] = scripted_model.requests
    prompt = request["prompt"]
    # The whole corpus was in the prompt, each secret in its place redacted.
    assert prompt.count("<redacted:") == len(cases)
    assert _leaks(prompt, cases) == []

    [call] = await rows_until(db_url, "select * from model_calls")
    await rows_until(db_url, "select * from completions")
    assert call["prompt"] is not None and "<redacted:" in call["prompt"]  # stored, redacted
    assert _leaks(_database_text(db_url), cases) == []

    await client.shutdown_session()  # the log's last lines are written
    logged = log_file.read_text(encoding="utf-8")
    # pygls logs each body it sends: the answer was logged, its token redacted.
    assert "connect(token='<redacted:github-token>')" in logged
    assert _leaks(logged, cases) == []


def _leaks(text: str, cases: list[SecretCase]) -> list[str]:
    """The ids of the secrets found in `text`, as written or as JSON or repr escape them."""
    secrets = {case.id: case.secret for case in cases} | {"model-answer": GITHUB_TOKEN}
    return [
        ident
        for ident, secret in secrets.items()
        if any(form in text for form in (secret, json.dumps(secret)[1:-1], repr(secret)[1:-1]))
    ]


def _database_text(db_url: str) -> str:
    """Every value of every table of the history, as text."""
    path = Path(db_url.removeprefix("sqlite:///"))
    with closing(sqlite3.connect(path)) as conn:
        return "\n".join(conn.iterdump())
