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
- the "Fix with Zi" quick fix rewrites the line as the (scripted) chat model answers.

Every step's screenshot is in tests/vscode/artifacts/<test>/, next to the Zi Coder log.
"""

from __future__ import annotations

import shutil
import sqlite3
import sys
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
    """VS Code on a workspace of `files` with `file` open, once the status bar says Zi
    Coder is ready; `settings` are added to the test's."""

    def open_(files: dict[str, str], file: str, settings: dict[str, Any] | None = None) -> Zi:
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
        vscode.status_bar("Zi Coder: ready", timeout=90)
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

    offered = vscode.apply_quick_fix("Fix with Zi: Undefined name `y`", screenshot="quick-fix-menu")
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
