"""Static diagnostics: tree-sitter syntax errors and ruff/pyflakes lint, with the real tools."""

from __future__ import annotations

import logging
import stat
import time
from pathlib import Path

import pytest

from server.diagnostics import linters
from server.diagnostics.linters import lint_python
from server.diagnostics.static import looks_binary, static_diagnostics, syntax_errors
from server.diagnostics.types import Diagnostic, Severity
from server.syntax import Syntax

SAMPLE = """\
import os
from typing import List as L


def f():
    unused = 1
    return "é😀" + undefined_näme


x = f"plain"
long_line = "this line is longer than sixty characters, and E501 says so"
"""


@pytest.fixture(scope="module")
def syntax() -> Syntax:
    return Syntax()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A directory with its own ruff config, so results do not depend on the machine's."""
    (tmp_path / "ruff.toml").write_text(
        'target-version = "py313"\n\n[lint]\nselect = ["F", "E501"]\n\n'
        "[lint.pycodestyle]\nmax-line-length = 60\n"
    )
    return tmp_path


def spans(found: list[Diagnostic] | None) -> list[tuple[int, int, int, int, str]]:
    assert found is not None
    return [(d.start_line, d.start_col, d.end_line, d.end_col, d.message) for d in found]


def at(text: str, line: int, word: str, *, last: bool = False) -> tuple[int, int]:
    """The code-point columns of `word` (its first or last occurrence) on `line` of `text`."""
    content = text.splitlines()[line]
    start = content.rindex(word) if last else content.index(word)
    return start, start + len(word)


@pytest.mark.parametrize(
    ("text", "lines"),
    [
        ("", [""]),
        ("a", ["a"]),
        ("a\n", ["a", ""]),
        ("a\r\nb\rc\n", ["a", "b", "c", ""]),
        ("a\x0cb\u2028c\x85d\n", ["a\x0cb\u2028c\x85d", ""]),  # not line breaks for LSP
    ],
)
def test_line_texts(text: str, lines: list[str]) -> None:
    assert linters.line_texts(text) == lines


@pytest.mark.parametrize(
    ("text", "binary"),
    [
        ("", False),
        ("   \n\t\n", False),
        ("def f():\n\treturn 'héllo wörld 😀'\f\n", False),
        ("x = '\ufffd'  # one replacement character in real code\n", False),
        ("ab\x00cd", True),
        ("\x01\x02\x03\x04abc", True),
        ("\ufffd" * 8 + "PNG", True),
        ("\udcff\udcfe\udc89" + "ab", True),  # what undecodable bytes become
        ("x = 1\n" * 2000 + "\x00", False),  # only the first 8 KB are looked at
    ],
)
def test_looks_binary(text: str, binary: bool) -> None:
    assert looks_binary(text) is binary


@pytest.mark.parametrize(
    ("language", "text", "expected"),
    [
        ("python", "def f(:\n    pass\n", [(0, 6, 0, 7, "missing `)`")]),
        ("python", "x = = 1\n", [(0, 4, 0, 5, "syntax error: unexpected `=`")]),
        ("javascript", "let x = ;\n", [(0, 6, 0, 7, "syntax error: unexpected `=`")]),
        # One diagnostic for the outermost ERROR, not one more for the ERROR inside it.
        (
            "javascript",
            "function f( {\n  return 1;\n}\n",
            [(0, 0, 2, 1, "syntax error: unexpected `function`")],
        ),
        # A MISSING node at the end of the line marks the line's last character.
        ("rust", "fn main() {\n    let x = 1\n}\n", [(1, 12, 1, 13, "missing `;`")]),
        (
            "go",
            "package main\n\nfunc main() {\n\tx := \n}\n",
            [(3, 5, 3, 6, "missing `identifier`")],
        ),
        ("python", "def f(x):\n    return x\n", []),
        ("javascript", "const f = (a) => a + 1;\n", []),
        ("rust", "fn main() {}\n", []),
        ("go", "package main\n\nfunc main() {}\n", []),
    ],
)
def test_syntax_errors(
    syntax: Syntax, language: str, text: str, expected: list[tuple[int, int, int, int, str]]
) -> None:
    found = syntax_errors(syntax, language, text)
    assert spans(found) == expected
    assert found is not None
    assert all(
        (d.source, d.code, d.severity) == ("tree-sitter", "syntax", Severity.ERROR) for d in found
    )


def test_no_grammar_is_none(syntax: Syntax) -> None:
    assert syntax_errors(syntax, "plaintext", "(((") is None
    assert static_diagnostics(syntax, "plaintext", "(((", path=None) == []


@pytest.mark.parametrize(
    ("language", "text", "line", "word"),
    [
        # Columns count code points: not utf-8 bytes, not utf-16 units (the emoji is 2).
        ("python", 's = "日本語😀\udcff"; x = = 1\n', 0, "= 1"),
        ("javascript", 'let x = "日本😀" + ;\n', 0, "+"),
        ("python", 'x = 1\r\ny = "é"; z = = 2\r\n', 1, "= 2"),  # CRLF
        ("python", 'x = 1\ry = "é"; z = = 2\r', 1, "= 2"),  # lone CR: a line break for LSP
    ],
)
def test_syntax_error_columns(
    syntax: Syntax, language: str, text: str, line: int, word: str
) -> None:
    start, _ = at(text, line, word)
    assert [
        (d.start_line, d.start_col, d.end_col) for d in syntax_errors(syntax, language, text) or []
    ] == [(line, start, start + 1)]


def test_missing_node_with_crlf_and_non_ascii(syntax: Syntax) -> None:
    text = 'fn main() {\r\n    let é = "ü"\r\n}\r\n'
    assert spans(syntax_errors(syntax, "rust", text)) == [(1, 14, 1, 15, "missing `;`")]


def test_syntax_errors_are_limited(syntax: Syntax) -> None:
    text = "".join(f"x{i} = = 1\n" for i in range(300))
    assert len(syntax_errors(syntax, "python", text) or []) == 100
    found = syntax_errors(syntax, "python", text, limit=5) or []
    assert [(d.start_line, d.start_col) for d in found] == [(i, len(f"x{i} = ")) for i in range(5)]


def test_long_tokens_are_cut(syntax: Syntax) -> None:
    name = "a" * 50
    assert spans(syntax_errors(syntax, "python", f"{name} {name}\n")) == [
        (0, 0, 0, 50, f"syntax error: unexpected `{'a' * 30}…`")
    ]


def expected_sample() -> list[tuple[str, int, int, int, Severity, bool]]:
    """(code, line, start, end, severity, unnecessary) of SAMPLE's findings, for both linters."""
    return [
        ("os", 0, *at(SAMPLE, 0, "os"), Severity.WARNING, True),
        ("L", 1, *at(SAMPLE, 1, "L", last=True), Severity.WARNING, True),  # the name bound, "as L"
        ("unused", 5, *at(SAMPLE, 5, "unused"), Severity.WARNING, True),
        ("undefined_näme", 6, *at(SAMPLE, 6, "undefined_näme"), Severity.ERROR, False),
        ("f-string", 9, *at(SAMPLE, 9, 'f"plain"'), Severity.WARNING, False),
    ]


def test_ruff(project: Path) -> None:
    found = lint_python(SAMPLE, path=str(project / "sample.py"), linter="ruff")
    assert {d.source for d in found} == {"ruff"}
    assert [d.code for d in found] == ["F401", "F401", "F841", "F821", "F541", "E501"]
    got = [(d.start_line, d.start_col, d.end_col, d.severity, d.unnecessary) for d in found[:5]]
    assert got == [(line, s, e, sev, unn) for _, line, s, e, sev, unn in expected_sample()]
    assert found[3].message == "Undefined name `undefined_näme`"
    # The project's ruff.toml applies (E501 at 60), because ruff runs from the file's directory.
    assert (found[5].start_line, found[5].start_col, found[5].message) == (
        10,
        60,
        "Line too long (73 > 60)",
    )


def test_ruff_untitled_uses_cwd_config(project: Path) -> None:
    text = 'long_line = "this line is longer than sixty characters, and E501 says so"\n'
    found = lint_python(text, path=None, linter="ruff", cwd=str(project))
    assert [(d.code, d.message) for d in found] == [("E501", "Line too long (73 > 60)")]


def test_pyflakes() -> None:
    found = lint_python(SAMPLE, path="sample.py", linter="pyflakes")
    assert {d.source for d in found} == {"pyflakes"}
    assert [d.code for d in found] == [
        "UnusedImport",
        "UnusedImport",
        "UnusedVariable",
        "UndefinedName",
        "FStringMissingPlaceholders",
    ]
    got = [(d.start_line, d.start_col, d.end_col, d.severity, d.unnecessary) for d in found]
    # The f-string's range runs to the end of the line: pyflakes names nothing there.
    expected = [(line, s, e, sev, unn) for _, line, s, e, sev, unn in expected_sample()]
    expected[-1] = (9, 4, len(SAMPLE.splitlines()[9]), Severity.WARNING, False)
    assert got == expected
    assert found[3].message == "undefined name 'undefined_näme'"


@pytest.mark.parametrize("linter", ["ruff", "pyflakes"])
def test_linter_columns_with_crlf_and_surrogates(project: Path, linter: str) -> None:
    text = "import os\r\nx = '\udcff😀é'; y = undefined\r\n"
    found = lint_python(text, path=str(project / "m.py"), linter=linter)
    undefined = [d for d in found if d.severity == Severity.ERROR]
    start, end = at(text, 1, "undefined")
    assert [(d.start_line, d.start_col, d.end_col) for d in undefined] == [(1, start, end)]
    assert all("\udcff" not in d.message for d in found)


@pytest.mark.parametrize("linter", ["ruff", "pyflakes"])
def test_no_duplicate_syntax_errors(syntax: Syntax, project: Path, linter: str) -> None:
    path = str(project / "m.py")
    found = static_diagnostics(
        syntax, "python", "import os\ndef f(:\n    pass\n", path=path, linter=linter
    )
    assert [(d.source, d.code, d.start_line) for d in found] == [("tree-sitter", "syntax", 1)]
    # An error tree-sitter accepts but Python does not: the linter's report stays.
    found = static_diagnostics(
        syntax, "python", "def f():\n    return 1\n  x = 2\n", path=path, linter=linter
    )
    assert found and all(d.source == linter and d.severity == Severity.ERROR for d in found)
    assert found[0].start_line == 2


def test_the_linter_decides_whether_python_has_syntax_errors(syntax: Syntax, project: Path) -> None:
    text = "def f[T: int = int]():\n    pass\n"  # Python 3.13; tree-sitter-python rejects it
    assert spans(syntax_errors(syntax, "python", text)) == [
        (0, 13, 0, 18, "syntax error: unexpected `=`")
    ]
    assert (
        static_diagnostics(syntax, "python", text, path=str(project / "m.py"), linter="ruff") == []
    )


def test_sorted_by_position(syntax: Syntax) -> None:
    # pyflakes checks the lambda's body last: its report comes second on the line.
    text = "x = lambda: undefined_a; y = undefined_b\n"
    found = static_diagnostics(syntax, "python", text, path=None, linter="pyflakes")
    assert [d.start_col for d in found] == [
        at(text, 0, "undefined_a")[0],
        at(text, 0, "undefined_b")[0],
    ]


def test_linter_off(syntax: Syntax) -> None:
    text = "import os\ny = = 1\n"
    found = static_diagnostics(syntax, "python", text, path=None, linter="off")
    assert [(d.start_line, d.source) for d in found] == [(1, "tree-sitter")]
    assert static_diagnostics(syntax, "python", "import os\n", path=None, linter="off") == []
    # An unknown setting means "auto": ruff, here.
    assert [d.source for d in lint_python("import os\n", path=None, linter="bogus")] == ["ruff"]


def script(directory: Path, body: str) -> str:
    path = directory / "fake-ruff"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


@pytest.mark.parametrize(
    ("binary", "reason"),
    [
        ("/nonexistent/ruff", "No such file"),
        ("exit 2", "exit status 2"),
        ("echo not json", "unexpected output"),
        ("exec sleep 5", "no answer"),
    ],
)
def test_ruff_failure_falls_back_to_pyflakes(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    binary: str,
    reason: str,
) -> None:
    monkeypatch.setattr(linters, "RUFF_TIMEOUT_S", 0.5)
    ruff = binary if binary.startswith("/") else script(tmp_path, binary)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="server.diagnostics.linters"):
        found = lint_python("import os\n", path=None, linter="auto", ruff=ruff)
    assert [(d.source, d.code) for d in found] == [("pyflakes", "UnusedImport")]
    assert reason in caplog.text
    assert time.monotonic() - started < 3


@pytest.mark.parametrize(
    "text",
    [
        "",
        " \n\t \n   ",
        "\n\n\n",
        "\r\r\r",
        "\ufffd\ufffd = 1\n",
        "x = '\udcff'\nimport os\n\udcfe",
        "\ufeffimport os\n",
        bytes(range(256)).decode("latin-1"),
        "x = [" + "1, " * 100_000 + "\n",  # a 300,000-character line
        "def f(:\n" * 50 + "\udcff" * 5,
    ],
)
@pytest.mark.parametrize("linter", ["ruff", "pyflakes"])
def test_bad_input_never_raises(syntax: Syntax, text: str, linter: str) -> None:
    lines = linters.line_texts(text)
    for language in ("python", "javascript"):
        for d in static_diagnostics(syntax, language, text, path=None, linter=linter):
            assert 0 <= d.start_line <= d.end_line < len(lines)
            assert 0 <= d.start_col <= len(lines[d.start_line])
            assert 0 <= d.end_col <= len(lines[d.end_line])
            d.message.encode("utf-8")  # no lone surrogates go to the client


def test_five_thousand_lines(syntax: Syntax, project: Path) -> None:
    chunk = (
        'import os as os_{i}\n\n\ndef f{i}(a, b):\n    """Doc."""\n    c = a\n    return c\n\n\n'
    )
    lines = "".join(chunk.replace("{i}", str(i)) for i in range(556)).splitlines(keepends=True)
    text = "".join(lines[:5000])
    path = str(project / "big.py")
    for linter in ("ruff", "pyflakes"):
        started = time.perf_counter()
        found = static_diagnostics(syntax, "python", text, path=path, linter=linter)
        elapsed = time.perf_counter() - started
        assert len(found) == 556
        assert all(d.unnecessary and d.source == linter for d in found)
        assert elapsed < 5  # a sanity check only: the budget is measured apart
    lines[4000] = "    c = = 1\n"  # in f444's body
    found = static_diagnostics(syntax, "python", "".join(lines[:5000]), path=path)
    assert spans(found) == [(4000, 8, 4000, 9, "syntax error: unexpected `=`")]
