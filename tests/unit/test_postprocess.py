"""Post-processing: from raw model text to the suggestion the user sees."""

from __future__ import annotations

import pytest

from server.completion import postprocess
from server.completion.postprocess import (
    Surroundings,
    adds_parse_errors,
    balance_brackets,
    block_is_complete,
    clean,
    drop_rest_of_line_overlap,
    drop_suffix_overlap,
    first_line,
    is_repetitive,
    trim_to_block,
)
from server.completion.types import Mode
from server.syntax import Syntax
from tests.unit.cursor import split_cursor


@pytest.fixture(scope="module")
def syntax() -> Syntax:
    return Syntax()


def around(language_id: str, source: str, header_indent: int = 0) -> Surroundings:
    text, offset = split_cursor(source)
    return Surroundings(language_id, text[:offset], text[offset:], header_indent)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("x = 1", "x = 1"),
        ("x = 1   \ny = 2", "x = 1"),
        ("\nnext", ""),
        ("", ""),
    ],
)
def test_first_line(raw: str, expected: str) -> None:
    assert first_line(raw) == expected


@pytest.mark.parametrize(
    ("raw", "header_indent", "expected"),
    [
        # The block ends at the first line back at the header's level.
        ("return 1\n\ndef g():\n    pass", 0, "return 1"),
        ("x = 1\n    y = 2\nprint(x)", 0, "x = 1\n    y = 2"),
        # Nested blocks stay; a dedent to the header (4) ends it.
        (
            "if a:\n            b()\n        c()\n    def other(self):",
            4,
            "if a:\n            b()\n        c()",
        ),
        # Blank lines inside the block survive; trailing whitespace does not.
        ("a()\n\n    b()\n\n", 0, "a()\n\n    b()"),
        # The first line is always kept, whatever its indentation.
        ("done()", 8, "done()"),
        # A closing brace at the header's level belongs to the file, not the completion.
        ("return 1;\n}\nfunction g() {}", 0, "return 1;"),
    ],
)
def test_trim_to_block(raw: str, header_indent: int, expected: str) -> None:
    assert trim_to_block(raw, header_indent) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("return 1", False),
        ("x = 1\n    y = 2\n", False),
        ("x = 1\n\n    y = 2\nz", True),
    ],
)
def test_block_is_complete(raw: str, expected: bool) -> None:
    assert block_is_complete(raw, 0) is expected


@pytest.mark.parametrize(
    ("text", "after", "expected"),
    [
        # The model wrote its way into the line that already follows the cursor.
        (
            "total = 0\n    for x in xs:\n        total += x\n    return total",
            "\n    return total\n",
            "total = 0\n    for x in xs:\n        total += x",
        ),
        # Nothing after the cursor: unchanged.
        ("a = 1\n    b = 2", "", "a = 1\n    b = 2"),
        # The existing next line does not appear: unchanged.
        ("a = 1\n    b = 2", "\n    c = compute()\n", "a = 1\n    b = 2"),
        # Anchors shorter than 4 characters are too common to cut on.
        ("a = 1\n}", "\n}\n", "a = 1\n}"),
        # Blank lines after the cursor are skipped when finding the anchor.
        ("a = 1\n\nprint(a)", "\n\n\nprint(a)\n", "a = 1"),
    ],
)
def test_drop_suffix_overlap(text: str, after: str, expected: str) -> None:
    assert drop_suffix_overlap(text, after) == expected


@pytest.mark.parametrize(
    ("text", "rest_of_line", "expected"),
    [
        ("a, b)", ")", "a, b"),  # foo(|) + "a, b)"
        ("a, b)", ")  ", "a, b"),
        ('hello"', '"', "hello"),
        ('key"]', '"]', "key"),
        ("a, b", ")", "a, b"),  # nothing repeated
        ("a, b)", "", "a, b)"),  # nothing after the cursor
        ("a, b) ", ")", "a, b"),
    ],
)
def test_drop_rest_of_line_overlap(text: str, rest_of_line: str, expected: str) -> None:
    assert drop_rest_of_line_overlap(text, rest_of_line) == expected


@pytest.mark.parametrize(
    ("text", "rest_of_line", "expected"),
    [
        ("a, b)", ")", "a, b"),  # foo(|) + "a, b)" -> "a, b"
        ("a, b)", "):", "a, b"),  # if foo(|): + "a, b)"
        ("x[0])", ")", "x[0]"),  # matched pairs inside stay
        ("(a))", ")", "(a)"),
        ("a])", "])", "a"),
        ("a))", "))", "a"),
        ("a)", "", "a)"),  # the line does not supply the closer: keep it
        ("a)", "]", "a)"),  # a different closer: keep it
        ("f(a)", ")", "f(a)"),  # balanced: nothing to drop
        ("a) + b", ")", "a) + b"),  # the unmatched closer is not at the end
    ],
)
def test_balance_brackets(text: str, rest_of_line: str, expected: str) -> None:
    assert balance_brackets(text, rest_of_line) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("foo()\nfoo()\nfoo()", True),  # three identical lines in a row
        ("    x += 1\n    x += 1\n    x += 1\n", True),
        ("a\nb\na\nb\na\nb", True),  # six lines, two distinct
        ("ababababababab", True),  # a short chunk looping
        ("self.x = self.x = self.x = self.x = self.x = ", True),
        ("return self._cache[key]", False),
        ("print('hello')", False),
        ("a = 1\nb = 2\na = 1\nb = 2", False),  # repeats, but not a loop
        ("foo()\nfoo()\nbar()", False),  # two in a row is fine
        ("aaaa", False),  # too short to judge
        ("if x:\n    return 1\nreturn 2", False),
    ],
)
def test_is_repetitive(text: str, expected: bool) -> None:
    assert is_repetitive(text) is expected


@pytest.mark.parametrize(
    ("language_id", "source", "text", "expected"),
    [
        ("python", "y = foo(|)\n", "x, 1", False),
        ("python", "y = foo(|)\n", "x, 1))", True),
        ("python", "y = foo(|)\n", "x, ]", True),
        ("python", "def f(x):\n    |\n", "return x", False),
        ("python", "def f(x):\n    |\n", "return (x", True),
        # Already-broken code: only *new* errors count.
        ("python", "y = foo(|)\nz = (\n", "x", False),
        ("javascript", "const y = foo(|);\n", "a, b", False),
        ("javascript", "const y = foo(|);\n", "a, {", True),
        # No grammar: never rejected on syntax.
        ("no-such-language-zi", "y = foo(|)\n", "x, 1)))", False),
    ],
)
def test_adds_parse_errors(
    syntax: Syntax, language_id: str, source: str, text: str, expected: bool
) -> None:
    assert adds_parse_errors(syntax, around(language_id, source), text) is expected


def test_rest_of_line_is_the_cursor_line_only() -> None:
    assert around("python", "x = foo(|)  \nprint(x)\n").rest_of_line == ")  "


@pytest.mark.parametrize(
    ("source", "raw", "expected"),
    [
        # The model repeats the closer the line already has.
        ("x = foo(|)\n", "a, b)\nprint(x)", "a, b"),
        ("x = foo(|)\n", "a, b))", "a, b"),
        ("if ready(|):\n    pass\n", "a, b)", "a, b"),
        ("total = |\n", "sum(xs)  \nmore()", "sum(xs)"),
        ('name = "|"\n', 'world"', "world"),
        # Nothing left, whitespace only, a loop, or broken code: show nothing.
        ("x = foo(|)\n", ")", None),
        ("x = |\n", "   \nfoo()", None),
        ("x = |\n", "\nfoo()", None),
        ("x = |\n", "[1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2]", None),
        ("x = foo(|)\n", "a, b))))", None),
    ],
)
def test_clean_single_line(syntax: Syntax, source: str, raw: str, expected: str | None) -> None:
    result = clean(raw, mode=Mode.SINGLE_LINE, around=around("python", source), syntax=syntax)
    assert result == expected


@pytest.mark.parametrize(
    ("source", "header_indent", "raw", "expected"),
    [
        # Stops where the model leaves the block.
        (
            "def f(x):\n    |\n\ny = 2\n",
            0,
            "if x:\n        return 1\n    return 2\n\ndef g():\n    pass",
            "if x:\n        return 1\n    return 2",
        ),
        # Stops where the model writes into code the file already has.
        (
            "def f(xs):\n    |\n    return total\n",
            0,
            "total = 0\n    for x in xs:\n        total += x\n    return total\n",
            "total = 0\n    for x in xs:\n        total += x",
        ),
        # A method inside a class: the header is indented by 4.
        (
            "class A:\n    def m(self):\n        |\n\n    def n(self):\n        pass\n",
            4,
            "self.x = 1\n        return self.x\n\n    def n(self):\n        pass",
            "self.x = 1\n        return self.x",
        ),
        # A loop or broken code: nothing.
        ("def f():\n    |\n", 0, "x += 1\n    x += 1\n    x += 1\n    x += 1", None),
        ("def f():\n    |\n", 0, "return (1,\n", None),
        ("def f():\n    |\n", 0, "\n\n", None),
    ],
)
def test_clean_multi_line(
    syntax: Syntax, source: str, header_indent: int, raw: str, expected: str | None
) -> None:
    result = clean(
        raw, mode=Mode.MULTI_LINE, around=around("python", source, header_indent), syntax=syntax
    )
    assert result == expected


def test_clean_javascript_block_drops_the_existing_closing_brace(syntax: Syntax) -> None:
    result = clean(
        "const y = x * 2;\n  return y;\n}\n\nfunction g() {}",
        mode=Mode.MULTI_LINE,
        around=around("javascript", "function f(x) {\n  |\n}\n"),
        syntax=syntax,
    )
    assert result == "const y = x * 2;\n  return y;"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("x = [0, 0, 0, 0, 0, 0]", False),  # a literal, not a loop
        ("# ----------------------------------------", False),  # a rule line
        ("foo(bar, baz)", False),
        ("self.x = self.x = self.x = self.x = self.x = ", True),
        ("abababababababab", True),
    ],
)
def test_literal_runs_are_not_mistaken_for_model_loops(text: str, expected: bool) -> None:
    assert postprocess.is_repetitive(text) is expected


@pytest.mark.parametrize(
    ("text", "rest_of_line", "expected"),
    [
        ("a) )", "))", "a"),  # closers separated by a space, supplied by the suffix
        ("a, b)", ")", "a, b"),
        ("a, b)", "", "a, b)"),  # nothing after the cursor: keep the closer
        ("a, b]", ")", "a, b]"),  # a different closer follows: keep
    ],
)
def test_trailing_closers_balance_against_the_rest_of_the_line(
    text: str, rest_of_line: str, expected: str
) -> None:
    assert postprocess.balance_brackets(text, rest_of_line) == expected


@pytest.mark.parametrize(
    ("raw", "stops", "expected"),
    [
        ("return x<|endoftext|>junk", ("<|endoftext|>",), "return x"),
        ("a<|fim_pad|>b<|file_sep|>c", ("<|file_sep|>", "<|fim_pad|>"), "a"),
        ("no stop here", ("<|endoftext|>",), "no stop here"),
        ("", ("<|endoftext|>",), ""),
    ],
)
def test_end_tokens_the_server_did_not_apply_are_cut(
    raw: str, stops: tuple[str, ...], expected: str
) -> None:
    assert postprocess.cut_at_stops(raw, stops) == expected


@pytest.mark.parametrize(
    ("source", "raw", "expected"),
    [
        # The statement goes on past this line: its parse cannot be judged yet.
        ("class S:\n    def __init__(self, |\n", "posix=False,", "posix=False,"),
        ("items = [|\n", "1, 2,", "1, 2,"),
        # A mismatch is an error however the line ends.
        ("const y = foo(|);\n", "a, {", None),
    ],
)
def test_one_line_that_continues_a_statement_is_kept(
    source: str, raw: str, expected: str | None
) -> None:
    language = "javascript" if source.startswith("const") else "python"
    text, offset = split_cursor(source)
    around = Surroundings(
        language_id=language, before=text[:offset], after=text[offset:], header_indent=0
    )
    assert clean(raw, mode=Mode.SINGLE_LINE, around=around, syntax=Syntax()) == expected
