"""The harness itself, proven in a real VS Code with a throwaway extension.

The extension is built here (a .vsix zipped by hand, never committed) and uses the same
editor features as Zi Coder's: an inline completion provider (ghost text, Tab accepts),
diagnostics published on save, and a quick fix for them. If this test passes, a failure
in the real extension's test is the extension's, not the harness's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.vscode.harness import build_vsix

if TYPE_CHECKING:
    from pathlib import Path

    from tests.vscode.conftest import LaunchVSCode

EXTENSION_JS = r"""
const vscode = require("vscode");

exports.activate = (context) => {
  // Activation is visible: a status bar item.
  const item = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right);
  item.text = "Throwaway: active";
  item.show();

  // Ghost text: after a known prefix, its completion (replacing the typed prefix);
  // one single-line and one multi-line suggestion.
  const suggestions = { ret: "return a + b", "def s": "def sub(a, b):\n    return a - b\n" };
  const inline = vscode.languages.registerInlineCompletionItemProvider({ pattern: "**" }, {
    provideInlineCompletionItems(doc, pos) {
      const before = doc.lineAt(pos.line).text.slice(0, pos.character);
      const prefix = Object.keys(suggestions).find((p) => before.endsWith(p));
      if (prefix === undefined) return [];
      const range = new vscode.Range(pos.translate(0, -prefix.length), pos);
      return [new vscode.InlineCompletionItem(suggestions[prefix], range)];
    },
  });

  // Diagnostics on save: every "BUG" is an error; a quick fix renames it.
  const diagnostics = vscode.languages.createDiagnosticCollection("throwaway");
  const check = (doc) => {
    const found = [];
    doc.getText().split("\n").forEach((text, line) => {
      const col = text.indexOf("BUG");
      if (col < 0) return;
      const d = new vscode.Diagnostic(
        new vscode.Range(line, col, line, col + 3), "BUG found", vscode.DiagnosticSeverity.Error);
      d.source = "throwaway";
      found.push(d);
    });
    diagnostics.set(doc.uri, found);
  };
  const saved = vscode.workspace.onDidSaveTextDocument(check);
  const fixes = vscode.languages.registerCodeActionsProvider({ pattern: "**" }, {
    provideCodeActions(doc, range, ctx) {
      return ctx.diagnostics.filter((d) => d.source === "throwaway").map((d) => {
        const fix = new vscode.CodeAction("Replace BUG with FIXED", vscode.CodeActionKind.QuickFix);
        fix.edit = new vscode.WorkspaceEdit();
        fix.edit.replace(doc.uri, d.range, "FIXED");
        fix.diagnostics = [d];
        return fix;
      });
    },
  }, { providedCodeActionKinds: [vscode.CodeActionKind.QuickFix] });

  // A palette command that answers with a notification.
  const hello = vscode.commands.registerCommand("throwaway.hello", () =>
    vscode.window.showInformationMessage("Hello from the throwaway extension"));

  context.subscriptions.push(item, inline, diagnostics, saved, fixes, hello);
};
"""

PACKAGE = {
    "name": "throwaway",
    "publisher": "zi-test",
    "version": "0.0.1",
    "engines": {"vscode": "^1.80.0"},
    "main": "./extension.js",
    "activationEvents": ["onStartupFinished"],
    "contributes": {"commands": [{"command": "throwaway.hello", "title": "Throwaway: Say Hello"}]},
}


@pytest.fixture
def throwaway_vsix(tmp_path: Path) -> Path:
    return build_vsix(
        tmp_path,
        publisher="zi-test",
        name="throwaway",
        version="0.0.1",
        package=PACKAGE,
        files={"extension.js": EXTENSION_JS},
    )


@pytest.mark.timeout(300)
def test_ghost_text_diagnostic_and_quick_fix(
    launch_vscode: LaunchVSCode, throwaway_vsix: Path
) -> None:
    vscode = launch_vscode(
        workspace_files={"calc.py": "def add(a, b):\n    \n"}, vsix=[throwaway_vsix]
    )
    assert any("Throwaway: active" in label for label in vscode.status_bar("Throwaway"))

    vscode.open_file("calc.py")
    vscode.goto(2, 5)
    vscode.type_text("ret")
    assert vscode.wait_for_ghost_text() == "urn a + b"
    vscode.screenshot("ghost-text")
    assert vscode.editor_text() == "def add(a, b):\n    ret\n"

    # Partial acceptance: one word (VS Code's default key), then the rest with Tab.
    vscode.press("Control+ArrowRight")
    assert vscode.wait_for_ghost_text() == " a + b"
    assert vscode.editor_text() == "def add(a, b):\n    return\n"
    vscode.press("Tab")
    vscode.wait_for_no_ghost_text()
    assert vscode.editor_text() == "def add(a, b):\n    return a + b\n"

    vscode.goto(3, 1)
    vscode.type_text("def s")
    assert vscode.wait_for_ghost_text() == "ub(a, b):\n    return a - b\n"
    vscode.screenshot("multi-line-ghost-text")
    vscode.press("Tab")
    vscode.wait_for_no_ghost_text()
    vscode.save()
    expected = "def add(a, b):\n    return a + b\ndef sub(a, b):\n    return a - b\n"
    assert vscode.file_text("calc.py") == expected
    vscode.screenshot("accepted")

    vscode.goto(5, 1)
    vscode.type_text("BUG = 1")
    vscode.save()
    rows = vscode.problems_panel_text(contains="BUG found")
    assert any("BUG found" in row for row in rows), rows
    assert rows == vscode.problems_panel_text()  # asking twice leaves the view open
    vscode.screenshot("problems")

    vscode.focus_editor()
    vscode.goto(5, 2)
    assert "BUG found" in vscode.hover_text()
    offered = vscode.apply_quick_fix("Replace BUG with FIXED")
    assert any("Replace BUG with FIXED" in title for title in offered), offered
    vscode.save()
    assert vscode.file_text("calc.py") == expected + "FIXED = 1"
    vscode.screenshot("quick-fix-applied")

    vscode.run_command("Throwaway: Say Hello")
    assert "Hello from the throwaway extension" in "\n".join(vscode.notifications())
    vscode.screenshot("notification")
