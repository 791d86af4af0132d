"""The gate: whether to complete at the cursor, and one line or a block."""

from __future__ import annotations

import pytest

from server.completion.gate import allows, decide_mode, line_bounds, parse_window
from server.completion.types import Mode
from server.syntax import Syntax
from tests.unit.cursor import split_cursor


@pytest.fixture(scope="module")
def syntax() -> Syntax:
    return Syntax()


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("foo|", True),  # end of line
        ("foo|\nbar", True),
        ("|", True),  # empty document
        ("x = |\n", True),
        ("fo|o", False),  # middle of a word
        ("x|_y", False),  # middle of an identifier
        ("a |b", False),  # before real code
        ("a|.b", False),  # a closer-like char followed by code is still code
        ("foo(|)", True),  # only closers after the cursor
        ("f(|);", True),
        ("items[|]", True),
        ("d = {|}", True),
        ("foo(|)  ", True),
        ("foo(|),", True),
        ('"abc|"', True),  # before a closing quote
        ("'abc|'", True),
        ("`abc|`", True),
        ("x = |  # comment", False),  # a comment after the cursor is text, not closers
        ("if x|:", True),
        ("return |x", False),
        ("foo(|)\r\nbar()", True),  # CRLF: the \r is part of the line end
        ("fo|o\r\n", False),
    ],
)
def test_allows(source: str, expected: bool) -> None:
    text, offset = split_cursor(source)
    assert allows(text, offset) is expected


def test_allows_looks_only_at_the_cursor_line() -> None:
    text, offset = split_cursor("x = (|)\nnext_line_of_code()\n")
    assert allows(text, offset)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("ab|c\ndef", (0, 3)),
        ("abc\nd|ef\nghi", (4, 7)),
        ("abc\n|", (4, 4)),
    ],
)
def test_line_bounds(source: str, expected: tuple[int, int]) -> None:
    text, offset = split_cursor(source)
    assert line_bounds(text, offset) == expected


PY_EMPTY_DEF = "def f():\n    |\n"
PY_EMPTY_DEF_EOF = "def f():\n    |"
PY_EMPTY_CLASS_THEN_CODE = "class A:\n    |\n\nx = 1\n"
PY_EMPTY_IF_WITH_ELSE = "if x:\n    |\nelse:\n    pass\n"
PY_EMPTY_FOR = "for i in range(3):\n    |\n"
PY_NESTED_EMPTY_DEF = "class A:\n    def m(self):\n        |\n\n    def n(self):\n        pass\n"
PY_NON_EMPTY_BODY_MIDDLE = "def f():\n    x = 1\n    |\n    y = 2\n"
PY_NON_EMPTY_BODY_END = "def f():\n    x = 1\n    |\n"
PY_TOP_LEVEL_BLANK = "import os\n|\nprint(os)\n"
PY_INSIDE_CALL = "x = foo(|)\n"
PY_IN_COMMENT = "def f():\n    # explain |\n"
PY_AFTER_STATEMENT = "def f():\n    return |\n"
JS_EMPTY_FUNCTION = "function f() {\n  |\n}\n"
JS_NON_EMPTY_FUNCTION = "function f() {\n  g();\n  |\n}\n"
JS_EMPTY_IF = "if (ok) {\n  |\n}\n"
RUST_EMPTY_FN = "fn main() {\n    |\n}\n"
PY_EMPTY_DEF_CRLF = "def f():\r\n    |\r\n"
# Top-level continuation clauses: the parse window must not start at `else:`/`elif`.
PY_TOP_LEVEL_EMPTY_ELSE = "if a:\n    x = 1\nelse:\n    |\n"
PY_TOP_LEVEL_EMPTY_ELIF = "x = 0\nif a:\n    x = 1\nelif b:\n    |\n"
PY_NESTED_EMPTY_ELIF = "def f():\n    if a:\n        x = 1\n    elif b:\n        |\n"
PY_EMPTY_EXCEPT = "def f():\n    try:\n        x = 1\n    except E:\n        |\n"
PY_EMPTY_FINALLY = "def f():\n    try:\n        x = 1\n    finally:\n        |\n"
# A body holding only a comment is still empty (as `Syntax._is_empty` and JS agree).
PY_COMMENT_ONLY_BODY = "def f():\n    # TODO: parse the header\n    |\n"
JS_COMMENT_ONLY_BODY = "function f() {\n  // TODO: parse the header\n  |\n}\n"


@pytest.mark.parametrize(
    ("language_id", "source", "expected"),
    [
        ("python", PY_EMPTY_DEF, Mode.MULTI_LINE),
        ("python", PY_EMPTY_DEF_EOF, Mode.MULTI_LINE),
        ("python", PY_EMPTY_CLASS_THEN_CODE, Mode.MULTI_LINE),
        ("python", PY_EMPTY_IF_WITH_ELSE, Mode.MULTI_LINE),
        ("python", PY_EMPTY_FOR, Mode.MULTI_LINE),
        ("python", PY_NESTED_EMPTY_DEF, Mode.MULTI_LINE),
        ("python", PY_NON_EMPTY_BODY_MIDDLE, Mode.SINGLE_LINE),
        ("python", PY_NON_EMPTY_BODY_END, Mode.SINGLE_LINE),
        ("python", PY_TOP_LEVEL_BLANK, Mode.SINGLE_LINE),
        ("python", PY_INSIDE_CALL, Mode.SINGLE_LINE),
        ("python", PY_IN_COMMENT, Mode.SINGLE_LINE),
        ("python", PY_AFTER_STATEMENT, Mode.SINGLE_LINE),
        ("javascript", JS_EMPTY_FUNCTION, Mode.MULTI_LINE),
        ("javascript", JS_NON_EMPTY_FUNCTION, Mode.SINGLE_LINE),
        ("javascript", JS_EMPTY_IF, Mode.MULTI_LINE),
        ("javascriptreact", JS_EMPTY_FUNCTION, Mode.MULTI_LINE),
        ("rust", RUST_EMPTY_FN, Mode.MULTI_LINE),
        ("python", PY_EMPTY_DEF_CRLF, Mode.MULTI_LINE),
        ("python", PY_TOP_LEVEL_EMPTY_ELSE, Mode.MULTI_LINE),
        ("python", PY_TOP_LEVEL_EMPTY_ELIF, Mode.MULTI_LINE),
        ("python", PY_NESTED_EMPTY_ELIF, Mode.MULTI_LINE),
        ("python", PY_EMPTY_EXCEPT, Mode.MULTI_LINE),
        ("python", PY_EMPTY_FINALLY, Mode.MULTI_LINE),
        ("python", PY_COMMENT_ONLY_BODY, Mode.MULTI_LINE),
        ("javascript", JS_COMMENT_ONLY_BODY, Mode.MULTI_LINE),
    ],
    ids=[
        "py-empty-def",
        "py-empty-def-at-eof",
        "py-empty-class-then-code",
        "py-empty-if-with-else",
        "py-empty-for",
        "py-nested-empty-method",
        "py-blank-in-middle-of-body",
        "py-blank-after-body",
        "py-top-level-blank",
        "py-inside-call",
        "py-in-comment",
        "py-after-return",
        "js-empty-function",
        "js-non-empty-function",
        "js-empty-if",
        "jsx-alias",
        "rust-empty-fn",
        "py-empty-def-crlf",
        "py-top-level-empty-else",
        "py-top-level-empty-elif",
        "py-nested-empty-elif",
        "py-empty-except",
        "py-empty-finally",
        "py-comment-only-body",
        "js-comment-only-body",
    ],
)
def test_decide_mode_with_grammar(
    syntax: Syntax, language_id: str, source: str, expected: Mode
) -> None:
    text, offset = split_cursor(source)
    assert decide_mode(syntax, language_id, text, offset) is expected


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("def f():\n    |\n", Mode.MULTI_LINE),  # opener and nothing under it
        ("block {\n  |\n}\n", Mode.MULTI_LINE),  # the closer is not deeper: still empty
        ("when x ->\n  |", Mode.MULTI_LINE),
        ("def f():\n    |\n    x = 1\n", Mode.SINGLE_LINE),  # the body already exists
        ("x = 1\n|\n", Mode.SINGLE_LINE),  # no opener
        ("call(a, |)\n", Mode.SINGLE_LINE),  # mid-line
    ],
)
def test_decide_mode_unknown_language_uses_text_rules(
    syntax: Syntax, source: str, expected: Mode
) -> None:
    assert syntax.parser("no-such-language-zi") is None
    text, offset = split_cursor(source)
    assert decide_mode(syntax, "no-such-language-zi", text, offset) is expected


def test_parse_window_starts_at_the_enclosing_top_level_line() -> None:
    text, offset = split_cursor("import os\n\ndef f():\n    x = 1\n    |\n\ny = 2\n")
    window = parse_window(text, offset)
    assert text[window.start :].startswith("def f():\n")
    assert window.before(text, offset) == "def f():\n    x = 1\n    "
    # ... and ends where the next top-level construct starts.
    assert window.after(text, offset) == "\n"
    assert text[window.end :] == "\ny = 2\n"


def test_parse_window_skips_closing_brackets_at_column_zero() -> None:
    text, offset = split_cursor("const a = 1;\nfunction f() {\n  g();\n}\n|")
    window = parse_window(text, offset)
    assert text[window.start :].startswith("function f() {")


@pytest.mark.parametrize(
    "source",
    [
        "if a:\n    x = 1\nelse:\n    |\n",
        "if a:\n    x = 1\nelif b:\n    |\n",
        "try:\n    x = 1\nexcept ValueError:\n    |\n",
        "try:\n    x = 1\nfinally:\n    |\n",
    ],
    ids=["else", "elif", "except", "finally"],
)
def test_parse_window_does_not_start_at_a_continuation_clause(source: str) -> None:
    """`else:` alone does not parse like the whole file; the window must include its `if`."""
    text, offset = split_cursor(source)
    window = parse_window(text, offset)
    assert text[window.start :].startswith(("if a:", "try:"))


def test_parse_window_from_the_first_line_when_nothing_is_top_level() -> None:
    text, offset = split_cursor("    a\n    b\n    |\n")
    assert parse_window(text, offset).start == 0


def test_parse_window_is_bounded_in_a_huge_indented_body() -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(5_000))
    text = "def f():\n" + body + "y = 1\n"
    offset = text.index("    x2500 =")
    window = parse_window(text, offset)
    lines_before = text.count("\n", window.start, offset)
    lines_after = text.count("\n", offset, window.end)
    assert 0 < lines_before <= 400
    assert 0 < lines_after <= 100
    assert window.start == 0 or text[window.start - 1] == "\n"  # starts at a line start
    assert window.end == len(text) or text[window.end] == "\n"  # ends at a line end
