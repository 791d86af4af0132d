"""Zi Coder's VS Code extension in a real VS Code, the way a user meets it.

code-server runs the extension installed from its .vsix (`zi_vsix`, packaged when missing
or stale), the extension runs the real `zi-coder serve`, and the server talks to the
scripted model (tests/support/scripted_model.py) and writes its history to a SQLite file.
Chromium, driven by Playwright (harness.py, driver.mjs), types and presses keys:

- ghost text appears while typing, Tab accepts it, the saved file is exact and the
  history has the suggestion as shown and accepted;
- Ctrl+Right accepts one word and the history has the suggestion as partially accepted,
  with the length accepted: through VS Code's proposed API (the extension's default with
  --enable-proposed-api) and through the extension's approximation;
- saving a file with an undefined name shows ruff's diagnostic in the Problems view;
- the "Fix with Zi" quick fix rewrites the line as the (scripted) chat model answers;
- a missing server: the notification says what is wrong, "How to Install" opens the
  installed README, "Set Path" the setting, and the status bar shows the error;
- the commands: disabling inline completions stops the requests, enabling brings them
  back, restarting starts a new server that completes;
- "Zi: Show Completion Stats" shows `zi-coder stats` for the history being written.

Every step's screenshot is in tests/vscode/artifacts/<test>/, next to the Zi Coder log.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.scripted_model import Reply, ScriptedModel
from tests.vscode.harness import poll

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.vscode.conftest import LaunchVSCode
    from tests.vscode.harness import VSCode

EXTENSION_ID = "zi-coder.zi-coder"
# VS Code gives an extension its proposed API (here `inlineCompletionsAdditions`: the
# shown and partially accepted hooks) only when started with this.
PROPOSED_API = ("--enable-proposed-api", EXTENSION_ID)
FIM_SUFFIX = "<|fim_suffix|>"  # the scripted model's vocabulary is Qwen's

ADD = "def add(a, b):\n    \n"


def zi_coder_executable() -> str:
    """The zi-coder of the environment running the tests (uv run: the project's .venv)."""
    beside = Path(sys.executable).with_name("zi-coder")
    found = str(beside) if beside.exists() else shutil.which("zi-coder")
    if found is None:
        pytest.fail("zi-coder is not installed in this environment (uv sync)")
    return found


def continuation_after(prefix: str, text: str) -> Callable[[dict[str, Any]], Reply]:
    """The model's FIM answer: `text` when the code before the cursor ends with `prefix`,
    nothing elsewhere, so that only one request can make a suggestion."""

    def reply(request: dict[str, Any]) -> Reply:
        before_cursor = str(request.get("prompt", "")).partition(FIM_SUFFIX)[0]
        return Reply(text=text if before_cursor.endswith(prefix) else "")

    return reply


@dataclass
class Zi:
    """VS Code with Zi Coder ready on an open file; the model and the history behind it."""

    vscode: VSCode
    model: ScriptedModel
    database: Path

    def completions(self) -> list[dict[str, Any]]:
        """The history's completions, oldest first ([] until the table exists)."""
        if not self.database.exists():
            return []
        with sqlite3.connect(self.database) as db:
            db.row_factory = sqlite3.Row
            try:
                rows = db.execute(
                    "select outcome, text_length, accepted_length, shown_at from completions"
                    " order by created_at"
                ).fetchall()
            except sqlite3.OperationalError:  # not migrated yet
                return []
        return [dict(row) for row in rows]

    def wait_for_completions(self, outcome: str, timeout: float = 15) -> list[dict[str, Any]]:
        """The history once a completion has `outcome` (the server writes it from a
        background thread)."""

        def read() -> list[dict[str, Any]]:
            rows = self.completions()
            return rows if any(row["outcome"] == outcome for row in rows) else []

        return poll(read, f"a completion {outcome} in the history", timeout)

    def log(self) -> str:
        """The Zi Coder output channel: the extension's lines and the server's log."""
        return self.vscode.server.extension_log(EXTENSION_ID, "Zi Coder")


@pytest.fixture
def open_zi(
    launch_vscode: LaunchVSCode, zi_vsix: Path, scripted_model: ScriptedModel, tmp_path: Path
) -> Callable[..., Zi]:
    """VS Code on a workspace of `files` with `file` open, once the status bar says
    `status` (Zi Coder is ready); `settings` are added to the test's."""

    def open_(
        files: dict[str, str],
        file: str,
        settings: dict[str, Any] | None = None,
        status: str = "Zi Coder: ready",
    ) -> Zi:
        database = tmp_path / "history.db"
        vscode = launch_vscode(
            workspace_files=files,
            vsix=[zi_vsix],
            settings={
                "zi.server.path": zi_coder_executable(),
                "zi.inference.url": scripted_model.url,
                "zi.database_url": f"sqlite:///{database}",
                # No AI review on save: its answers would be findings of their own.
                "zi.diagnostics.review": False,
                # What is typed is what lands in the file: no indentation added on Enter.
                "editor.autoIndent": "none",
                **(settings or {}),
            },
            extra_args=PROPOSED_API,
        )
        vscode.open_file(file)
        # The server has answered beyond `initialize` (see client-vscode/README.md).
        vscode.status_bar(status, timeout=90)
        return Zi(vscode, scripted_model, database)

    return open_


@pytest.mark.timeout(300)
def test_ghost_text_accepted_with_tab_reaches_the_file_and_the_history(
    open_zi: Callable[..., Zi],
) -> None:
    zi = open_zi({"calc.py": ADD}, "calc.py")
    zi.model.reply_with(continuation_after("\n    ret", "urn a + b"))
    vscode = zi.vscode
    vscode.screenshot("ready")

    vscode.goto(2, 5)
    vscode.type_text("ret")
    assert vscode.wait_for_ghost_text() == "urn a + b"
    assert vscode.editor_text() == "def add(a, b):\n    ret\n"  # not in the text yet
    vscode.screenshot("ghost-text")

    vscode.press("Tab")
    vscode.wait_for_no_ghost_text()
    vscode.save()
    assert vscode.file_text("calc.py") == "def add(a, b):\n    return a + b\n"
    vscode.screenshot("accepted-and-saved")

    # The suggestion, recorded as shown then accepted (the item's zi.acceptCompletion).
    completions = zi.wait_for_completions("accepted")
    assert [(c["outcome"], c["text_length"], c["accepted_length"]) for c in completions] == [
        ("accepted", len("urn a + b"), None)
    ]
    assert completions[0]["shown_at"] is not None


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("acceptance_events", "mode"),
    [("auto", "proposed-api"), ("approximate", "approximate")],
    ids=["proposed-api", "approximate"],
)
def test_ctrl_right_accepts_a_word_and_the_history_has_its_length(
    open_zi: Callable[..., Zi], acceptance_events: str, mode: str
) -> None:
    zi = open_zi({"calc.py": ADD}, "calc.py", {"zi.acceptanceEvents": acceptance_events})
    zi.model.reply_with(continuation_after("\n    ret", "urn a + b"))
    vscode = zi.vscode
    # The extension says how it learns of partial acceptance.
    poll(
        lambda: f"acceptance events: {mode}" in zi.log(),
        f"'acceptance events: {mode}' in the Zi Coder log",
    )

    vscode.goto(2, 5)
    vscode.type_text("ret")
    assert vscode.wait_for_ghost_text() == "urn a + b"
    vscode.screenshot("ghost-text")

    # One word: "urn" is in the text, " a + b" still ghost text.
    vscode.press("Control+ArrowRight")
    vscode.wait_for_ghost_text(expected=" a + b")
    assert vscode.editor_text() == "def add(a, b):\n    return\n"
    vscode.screenshot("one-word-accepted")

    completions = zi.wait_for_completions("partially_accepted")
    partial = [c for c in completions if c["outcome"] == "partially_accepted"]
    assert [(c["text_length"], c["accepted_length"]) for c in partial] == [
        (len("urn a + b"), len("urn"))
    ]
    assert partial[0]["shown_at"] is not None

    # The rest is dismissed: the file has the word only.
    vscode.press("Escape")
    vscode.wait_for_no_ghost_text()
    vscode.save()
    assert vscode.file_text("calc.py") == "def add(a, b):\n    return\n"
    vscode.screenshot("rest-dismissed-and-saved")


@pytest.mark.timeout(300)
def test_saving_an_undefined_name_shows_ruffs_diagnostic(open_zi: Callable[..., Zi]) -> None:
    zi = open_zi({"calc.py": "def double(x):\n    return x * 2\n"}, "calc.py")
    vscode = zi.vscode

    vscode.goto(3, 1)
    vscode.type_text("def triple(x):\n    return y\n")
    vscode.screenshot("typed")
    vscode.save()
    assert vscode.file_text("calc.py") == (
        "def double(x):\n    return x * 2\ndef triple(x):\n    return y\n"
    )

    rows = vscode.problems_panel_text(contains="Undefined name `y`")
    problem = next(row for row in rows if "Undefined name `y`" in row)
    assert problem.split("\n") == ["Undefined name `y`", "ruff", "F821", "[Ln 4, Col 12]"]
    vscode.screenshot("problems-view")

    vscode.focus_editor()
    vscode.goto(4, 12)
    hover = vscode.hover_text(screenshot="hover")
    assert "Undefined name `y`" in hover and "ruff(F821)" in hover, hover


@pytest.mark.timeout(300)
def test_fix_with_zi_rewrites_the_line_as_the_model_answers(
    open_zi: Callable[..., Zi],
) -> None:
    broken = "def double(x):\n    return x * 2\n\n\ndef triple(x):\n    return y\n"
    fixed = broken.replace("return y", "return x * 3")
    zi = open_zi({"calc.py": broken}, "calc.py")
    zi.model.chat_reply_with("The name is undefined:\n\n```python\n    return x * 3\n```\n")
    vscode = zi.vscode

    # Diagnostics on open: the Problems view has ruff's, then back to its line.
    vscode.problems_panel_text(contains="Undefined name `y`")
    vscode.screenshot("problems-view")
    vscode.focus_editor()
    vscode.goto(6, 12)

    offered = vscode.apply_quick_fix(
        "Fix with Zi: Undefined name `y`", timeout=60, screenshot="quick-fix-menu"
    )
    assert "Fix with Zi: Undefined name `y`" in offered, offered
    vscode.wait_for_editor_text(fixed)
    vscode.screenshot("quick-fix-applied")

    # The model was asked about that problem, on those lines.
    (request,) = zi.model.chat_requests
    prompt = "\n".join(str(m.get("content")) for m in request["messages"])
    assert "Undefined name `y` (ruff F821)" in prompt
    assert "```python\n    return y\n```" in prompt

    vscode.save()
    assert vscode.file_text("calc.py") == fixed
    vscode.status_bar("No Problems")  # ruff, run again on save, finds nothing
    vscode.screenshot("fixed-and-saved")


@pytest.mark.timeout(300)
def test_a_missing_server_says_what_is_wrong_and_how_to_fix_it(
    open_zi: Callable[..., Zi], tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "zi-coder"
    zi = open_zi(
        {"calc.py": ADD},
        "calc.py",
        {"zi.server.path": str(missing)},
        status="Zi Coder: not running",
    )
    vscode = zi.vscode

    # The status bar item is in its error state, and says why.
    labels = vscode.status_bar("Zi Coder: not running")
    assert "Zi Coder: not running: zi-coder not found (see Zi: Open Log)" in labels, labels
    # The notification names the problem and offers the ways out.
    toast = vscode.notification("not installed or not found")
    assert f"({missing} is not an executable file)" in toast.message, toast.message
    assert "uv tool install" in toast.message and "zi.server.path" in toast.message
    assert "pip install" not in toast.message  # zi-coder is not on PyPI
    assert toast.buttons == ["How to Install", "Set Path", "Open Log"]
    vscode.screenshot("missing-server")
    poll(lambda: f"Tried: {missing}" in zi.log(), "the paths tried, in the Zi Coder log")

    # "How to Install": the README of the installed extension (vsce stores it as
    # readme.md), in the Markdown preview.
    vscode.click_notification_button("not installed or not found", "How to Install")
    assert vscode.active_tab("Preview") == "Preview readme.md"
    readme = vscode.webview_text("uv tool install")
    assert "Zi Coder for VS Code" in readme
    vscode.screenshot("how-to-install")

    # Zi: Restart Server tries again, and fails the same way; "Set Path" opens the
    # setting.
    vscode.run_command("Zi: Restart Server")
    vscode.notification("not installed or not found")
    vscode.status_bar("Zi Coder: not running")
    poll(lambda: zi.log().count(f"Tried: {missing}") == 2, "a second attempt in the log")
    # code-server is a remote window: the setting is in the Remote tab (the User tab
    # does not list machine settings there).
    vscode.click_notification_button("not installed or not found", "Set Path")
    shown = poll(
        lambda: vscode.evaluate(
            "const editor = document.querySelector('.settings-editor');"
            "if (!editor) return null;"
            "const rows = [...editor.querySelectorAll('.setting-item-title')];"
            "if (!rows.some((e) => e.textContent.startsWith('Zi'))) return null;"
            "const tab = editor.querySelector('.settings-tabs-widget .action-label.checked');"
            "return {tab: tab && tab.textContent, rows: rows.map((e) => e.textContent)};"
        ),
        "the setting in the settings editor",
        timeout=20,
    )
    vscode.screenshot("set-path")
    # ("Also modified in User": the test writes its settings to both.)
    assert [row.split("(")[0] for row in shown["rows"]] == ["Zi \u203a Server: Path"], shown
    assert shown["tab"].startswith("Remote"), shown


@pytest.mark.timeout(300)
def test_commands_disable_enable_and_restart(open_zi: Callable[..., Zi]) -> None:
    zi = open_zi({"calc.py": ADD}, "calc.py")
    zi.model.reply_with(continuation_after("\n    ret", "urn a + b"))
    vscode = zi.vscode
    starting = f"Starting {zi_coder_executable()} serve"
    assert zi.log().count(starting) == 1

    # Disabled: the status bar says so, and typing asks the model nothing.
    vscode.run_command("Zi: Disable Inline Completions")
    vscode.status_bar("Zi Coder: inline completions are off")
    vscode.screenshot("completions-off")
    vscode.goto(2, 5)
    asked = len(zi.model.requests)
    vscode.type_text("ret")
    time.sleep(2)  # ghost text comes within ~0.5 s when enabled (see below)
    assert vscode.ghost_text() == ""
    assert len(zi.model.requests) == asked
    assert vscode.editor_text() == "def add(a, b):\n    ret\n"
    vscode.screenshot("no-ghost-text-while-off")

    # Enabled again: the same typing brings the suggestion.
    vscode.run_command("Zi: Enable Inline Completions")
    vscode.status_bar("Zi Coder: ready")
    vscode.press("Backspace")
    vscode.type_text("t")
    assert vscode.wait_for_ghost_text() == "urn a + b"
    assert len(zi.model.requests) > asked
    vscode.screenshot("completions-on-again")
    vscode.press("Escape")
    vscode.wait_for_no_ghost_text()

    # Zi: Restart Server: a second server process, ready, and completing. (The status
    # bar is watched: it reads "ready" until the restart's "starting" arrives.)
    vscode.watch_status_bar()
    vscode.run_command("Zi: Restart Server")
    vscode.status_bar_seen("Zi Coder: starting the server", timeout=60)
    vscode.status_bar("Zi Coder: ready", timeout=90)
    poll(lambda: zi.log().count(starting) == 2, "a second server start in the Zi Coder log")
    vscode.screenshot("restarted")
    vscode.press("Backspace")
    vscode.type_text("t")
    assert vscode.wait_for_ghost_text() == "urn a + b"
    vscode.press("Tab")
    vscode.wait_for_no_ghost_text()
    vscode.save()
    assert vscode.file_text("calc.py") == "def add(a, b):\n    return a + b\n"
    vscode.screenshot("completed-after-restart")
    # The new process recorded it.
    completions = zi.wait_for_completions("accepted")
    assert [c["outcome"] for c in completions].count("accepted") == 1


STATS_LINE = "Acceptance rate: 100.0 % (1 of 1 shown)"


@pytest.mark.timeout(300)
def test_show_completion_stats_after_one_accepted_suggestion(open_zi: Callable[..., Zi]) -> None:
    zi = open_zi({"calc.py": ADD}, "calc.py")
    zi.model.reply_with(continuation_after("\n    ret", "urn a + b"))
    vscode = zi.vscode

    vscode.goto(2, 5)
    vscode.type_text("ret")
    assert vscode.wait_for_ghost_text() == "urn a + b"
    vscode.press("Tab")
    vscode.wait_for_no_ghost_text()
    (completion,) = zi.wait_for_completions("accepted")
    assert completion["shown_at"] is not None
    vscode.screenshot("accepted")

    # `zi-coder stats` reads the history of zi.database_url (passed as ZI_DATABASE_URL):
    # the default database, empty, would not say 1 of 1. Its output is in a read-only
    # editor of its own.
    vscode.run_command("Zi: Show Completion Stats")
    text = vscode.wait_for_editor_text_containing(STATS_LINE, timeout=60)
    vscode.screenshot("stats")
    assert STATS_LINE in text.splitlines(), text
    assert f"sqlite:///{zi.database}" in text, text
    assert "Zi Coder Stats" in vscode.active_tab("Zi Coder Stats"), vscode.active_tab()
