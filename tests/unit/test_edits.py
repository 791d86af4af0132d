"""Line edits survive typing elsewhere, refuse typing inside, and stay in the workspace."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Imported as a module: pytest would collect a bare `test_file_for` as a test.
from server.actions import edits
from server.actions.edits import EditConflict, LineEdit, apply_line_edit, rebase

URI = "file:///ws/m.py"

BASE = "import os\n\ndef f():\n    a = 1\n    return a\n\nprint(f())\n"
# Lines 3-4 ("    a = 1", "    return a") rewritten by the model.
EDIT = LineEdit(URI, 1, 3, 5, ("    a = 1\n", "    return a\n"), "    return 1\n")


def _line_edit(text: str, start: int, end: int, new_text: str) -> LineEdit:
    return LineEdit(URI, 1, start, end, tuple(edits.split_lines(text)[start:end]), new_text)


@pytest.mark.parametrize(
    ("text", "start", "end", "new_text", "expected"),
    [
        pytest.param("a\nb\nc\n", 1, 2, "B\n", "a\nB\nc\n", id="middle-line"),
        pytest.param("a\nb", 1, 2, "B", "a\nB", id="last-line-without-newline"),
        pytest.param("a\n", 0, 0, "top\n", "top\na\n", id="insert-at-top"),
        pytest.param("a\nb\nc\n", 0, 2, "", "c\n", id="delete"),
        pytest.param("", 0, 0, "new\n", "new\n", id="empty-document"),
        pytest.param("a\r\nb\r\n", 1, 2, "B\r\n", "a\r\nB\r\n", id="crlf"),
        pytest.param("a\rb\r", 1, 2, "B\r", "a\rB\r", id="cr"),
        # LSP lines: a form feed is not a line break (str.splitlines says it is).
        pytest.param("a\x0cb\nc\n", 1, 2, "C\n", "a\x0cb\nC\n", id="form-feed-not-a-line-break"),
    ],
)
def test_apply_line_edit(text: str, start: int, end: int, new_text: str, expected: str) -> None:
    assert apply_line_edit(text, _line_edit(text, start, end, new_text)) == expected


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(LineEdit(URI, 1, 1, 2, ("x\n",), "B\n"), id="other-old-lines"),
        pytest.param(LineEdit(URI, 1, 2, 4, ("c\n",), "B\n"), id="past-the-end"),
    ],
)
def test_apply_line_edit_refuses(edit: LineEdit) -> None:
    with pytest.raises(EditConflict):
        apply_line_edit("a\nb\nc\n", edit)


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        pytest.param(BASE, "import os\n\ndef f():\n    return 1\n\nprint(f())\n", id="unchanged"),
        pytest.param(
            "import sys\n" + BASE,
            "import sys\nimport os\n\ndef f():\n    return 1\n\nprint(f())\n",
            id="line-added-above",
        ),
        pytest.param(
            BASE.replace("import os\n\n", ""),
            "def f():\n    return 1\n\nprint(f())\n",
            id="lines-removed-above",
        ),
        pytest.param(
            BASE.replace("import os", "import re"),
            "import re\n\ndef f():\n    return 1\n\nprint(f())\n",
            id="line-changed-above",
        ),
        pytest.param(
            BASE.replace("def f():\n", "def f():\n    '''Doc.'''\n"),
            "import os\n\ndef f():\n    '''Doc.'''\n    return 1\n\nprint(f())\n",
            id="line-inserted-just-above",
        ),
        pytest.param(
            BASE.replace("def f():", "def f(x):"),
            "import os\n\ndef f(x):\n    return 1\n\nprint(f())\n",
            id="line-just-above-changed",
        ),
        pytest.param(
            BASE + "print(2)\n",
            "import os\n\ndef f():\n    return 1\n\nprint(f())\nprint(2)\n",
            id="line-added-below",
        ),
        pytest.param(
            BASE.replace("return a\n", "return a\n    # end\n"),
            "import os\n\ndef f():\n    return 1\n    # end\n\nprint(f())\n",
            id="line-inserted-just-below",
        ),
        pytest.param(
            BASE.replace("return a\n\n", "return a\n# end\n"),
            "import os\n\ndef f():\n    return 1\n# end\nprint(f())\n",
            id="line-just-below-changed",
        ),
        pytest.param(
            "import sys\n" + BASE.replace("print(f())", "print(f(), 2)"),
            "import sys\nimport os\n\ndef f():\n    return 1\n\nprint(f(), 2)\n",
            id="above-and-below",
        ),
    ],
)
def test_rebase_moves_or_keeps_the_edit(current: str, expected: str) -> None:
    rebased = rebase(EDIT, BASE, current, 7)
    assert rebased.version == 7
    assert apply_line_edit(current, rebased) == expected


@pytest.mark.parametrize(
    ("current", "where"),
    [
        pytest.param(BASE.replace("a = 1", "a = 2"), "lines 4-5", id="line-in-region-edited"),
        pytest.param(BASE.replace("return a", "return a  # x"), "lines 4-5", id="last-line-edited"),
        pytest.param(
            BASE.replace("a = 1\n", "a = 1\n    b = 2\n"), "lines 4-5", id="line-inserted-inside"
        ),
        pytest.param(BASE.replace("    a = 1\n", ""), "lines 4-5", id="line-in-region-deleted"),
        pytest.param(
            BASE.replace("    a = 1\n    return a\n", ""), "lines 4-5", id="region-deleted"
        ),
        pytest.param(
            BASE.replace("def f():\n    a = 1", "def g():\n    a = 0"),
            "lines 4-5",
            id="edit-spanning-into-the-region",
        ),
    ],
)
def test_rebase_conflicts(current: str, where: str) -> None:
    with pytest.raises(EditConflict, match=f"{where} changed"):
        rebase(EDIT, BASE, current, 7)


def test_rebase_refuses_an_edit_not_made_for_its_base() -> None:
    with pytest.raises(EditConflict, match="does not match"):
        rebase(EDIT, BASE.replace("a = 1", "a = 9"), BASE, 7)


@pytest.mark.parametrize(
    ("base", "start", "end", "new_text", "current", "expected"),
    [
        pytest.param(
            "a\nb", 1, 2, "B", "a\nb\nc", "a\nB\nc", id="line-added-after-unterminated-region"
        ),
        pytest.param("a\nb", 1, 2, "B", "a\nb\n", "a\nB\n", id="newline-added-at-eof"),
        pytest.param("a\nb\nc\n", 1, 2, "B\n", "a\nb", "a\nB", id="lines-after-region-removed"),
        pytest.param("a\r\nb", 1, 2, "B", "a\r\nb\r\nc", "a\r\nB\r\nc", id="crlf-line-added-after"),
        pytest.param("a\n", 1, 1, "x\n", "a\nb", "a\nb\nx\n", id="insert-at-eof-after-typing"),
        pytest.param("a", 1, 1, "\nx", "a\n", "a\nx", id="insert-at-eof-newline-typed"),
        pytest.param("", 0, 0, "x\n", "", "x\n", id="empty-document"),
        pytest.param(
            "a\nb\n", 0, 0, "top\n", "z\na\nb\n", "z\ntop\na\nb\n", id="insert-point-shifts"
        ),
    ],
)
def test_rebase_at_the_end_of_the_document(
    base: str, start: int, end: int, new_text: str, current: str, expected: str
) -> None:
    edit = _line_edit(base, start, end, new_text)
    assert apply_line_edit(current, rebase(edit, base, current, 2)) == expected


def test_rebase_of_a_long_document_is_a_line_diff() -> None:
    body = "".join(f"line {i}\n" for i in range(5000))
    base = body + "x = 1\n" + body
    edit = _line_edit(base, 5000, 5001, "x = 2\n")
    current = "new\n" + base.replace("line 4000\n", "").replace("line 10\n", "", 1)
    rebased = rebase(edit, base, current, 2)
    assert rebased.start == 4999
    assert apply_line_edit(current, rebased).count("x = 2\n") == 1


# -- the workspace -------------------------------------------------------------------


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "mod.py").write_text("x = 1\n")
    (tmp_path / "ws2").mkdir()
    (tmp_path / "outside").mkdir()
    (root / "out").symlink_to(tmp_path / "outside")
    (root / "alias").symlink_to(root / "pkg")
    (root / "dangling.py").symlink_to(tmp_path / "outside" / "missing.py")
    (root / "loop").symlink_to(root / "loop")
    (tmp_path / "ws-link").symlink_to(root)
    return root


@pytest.mark.parametrize(
    ("relative", "inside"),
    [
        pytest.param("ws/pkg/mod.py", True, id="file"),
        pytest.param("ws/tests/test_new.py", True, id="not-yet-created"),
        pytest.param("ws", True, id="the-folder-itself"),
        pytest.param("ws/alias/mod.py", True, id="symlink-inside-to-inside"),
        pytest.param("ws-link/pkg/mod.py", True, id="through-a-symlink-to-the-folder"),
        pytest.param("ws/../ws2/x.py", False, id="dot-dot"),
        pytest.param("ws/pkg/../../outside/x.py", False, id="dot-dot-twice"),
        pytest.param("ws2/x.py", False, id="sibling-with-the-same-prefix"),
        pytest.param("ws/out/x.py", False, id="symlink-to-outside"),
        pytest.param("ws/dangling.py", False, id="dangling-symlink-to-outside"),
        pytest.param("ws/loop/x.py", False, id="symlink-loop"),
    ],
)
def test_inside_workspace(ws: Path, relative: str, inside: bool) -> None:
    assert edits.inside_workspace(ws.parent / relative, [ws]) is inside


def test_inside_workspace_any_folder_and_never_relative(ws: Path) -> None:
    assert edits.inside_workspace(ws.parent / "ws2" / "x.py", [ws, ws.parent / "ws2"])
    assert not edits.inside_workspace(ws.parent / "ws2" / "x.py", [])
    assert not edits.inside_workspace(Path("pkg/mod.py"), [Path(os.getcwd())])


@pytest.mark.parametrize(
    ("module", "tests_dir", "expected"),
    [
        pytest.param("pkg/mod.py", True, "tests/test_mod.py", id="tests-folder"),
        pytest.param("pkg/mod.py", False, "pkg/test_mod.py", id="next-to-the-module"),
        pytest.param("pkg/__init__.py", True, "tests/test_pkg.py", id="package"),
        pytest.param("alias/mod.py", False, "pkg/test_mod.py", id="through-a-symlink"),
    ],
)
def test_test_file_for(ws: Path, module: str, tests_dir: bool, expected: str) -> None:
    if tests_dir:
        (ws / "tests").mkdir()
    assert edits.test_file_for(ws / module, [ws]) == (ws / expected).resolve()


def test_test_file_for_uses_the_innermost_folder(ws: Path) -> None:
    (ws / "tests").mkdir()
    (ws / "pkg" / "tests").mkdir()
    assert (
        edits.test_file_for(ws / "pkg" / "mod.py", [ws, ws / "pkg"])
        == (ws / "pkg" / "tests" / "test_mod.py").resolve()
    )


def test_test_file_for_a_file_named_tests_is_not_a_folder(ws: Path) -> None:
    (ws / "tests").write_text("")
    assert (
        edits.test_file_for(ws / "pkg" / "mod.py", [ws]) == (ws / "pkg" / "test_mod.py").resolve()
    )


@pytest.mark.parametrize("module", ["../ws2/m.py", "out/m.py"])
def test_test_file_for_outside(ws: Path, module: str) -> None:
    with pytest.raises(ValueError, match="not inside a workspace folder"):
        edits.test_file_for(ws / module, [ws])


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        pytest.param("pkg/mod.py", "pkg.mod", id="package-module"),
        pytest.param("mod.py", "mod", id="top-level"),
        pytest.param("pkg/sub/m.py", "pkg.sub.m", id="nested"),
        pytest.param("src/pkg/mod.py", "pkg.mod", id="src-layout"),
        pytest.param("src.py", "src", id="a-module-named-src"),
        pytest.param("pkg/__init__.py", "pkg", id="package-init"),
    ],
)
def test_module_name(module: str, expected: str) -> None:
    assert edits.module_name(Path("/ws") / module, Path("/ws")) == expected


def test_module_name_outside_the_root() -> None:
    with pytest.raises(ValueError):
        edits.module_name(Path("/ws2/m.py"), Path("/ws"))
