"""Context: token budgets cut at line boundaries, a stable prompt head, snippets."""

from __future__ import annotations

import pytest

from inference.tokens import CharEstimateCounter
from server.completion.context import (
    ContextBuilder,
    budget_prefix,
    budget_suffix,
    comment_prefix,
    render_head,
)
from server.completion.snippets import Snippet, SnippetIndex
from server.completion.types import CompletionRequest, Document
from tests.unit.cursor import split_cursor


class CharCounter:
    """One token per character: budgets in characters, easy to reason about."""

    exact = True

    def count(self, text: str) -> int:
        return len(text)


def numbered_lines(n: int, width: int = 32) -> str:
    """`n` lines of exactly `width` characters each, newline included."""
    return "".join(f"value_{i:05d} = {i:05d}".ljust(width - 1) + "\n" for i in range(n))


def test_numbered_lines_helper() -> None:
    text = numbered_lines(3)
    assert len(text) == 96
    assert all(len(line) == 31 for line in text.split("\n")[:3])


@pytest.mark.parametrize("budget", [10, 40, 100, 333, 1000])
@pytest.mark.parametrize("counter", [CharCounter(), CharEstimateCounter()], ids=["char", "est"])
def test_budget_prefix_respects_budget_and_cuts_at_a_line_start(
    budget: int, counter: CharCounter | CharEstimateCounter
) -> None:
    text = numbered_lines(200) + "result = compute("
    offset = len(text)
    prefix = budget_prefix(text, offset, budget, counter)
    assert text.endswith(prefix)
    start = offset - len(prefix)
    assert start == 0 or text[start - 1] == "\n"
    assert prefix.endswith("result = compute(")
    assert counter.count(prefix) <= max(budget, counter.count("result = compute("))


def test_budget_prefix_uses_the_budget() -> None:
    """Enough budget for the whole file: the whole file before the cursor."""
    text, offset = split_cursor(numbered_lines(10) + "x = |\n" + numbered_lines(5))
    assert budget_prefix(text, offset, 10_000, CharCounter()) == text[:offset]


def test_budget_prefix_keeps_the_cursor_line_even_over_budget() -> None:
    text, offset = split_cursor("a = 1\nb = 2\n" + "x" * 50 + "|")
    assert budget_prefix(text, offset, 10, CharCounter()) == "x" * 50


def test_budget_prefix_whole_lines_only() -> None:
    text, offset = split_cursor("aaaa\nbbbb\ncccc\nx = |")
    # 4 (cursor line) + 5 ("cccc\n") = 9 fits; one more line (5) would not.
    assert budget_prefix(text, offset, 12, CharCounter()) == "cccc\nx = "
    assert budget_prefix(text, offset, 14, CharCounter()) == "bbbb\ncccc\nx = "


def test_budget_prefix_start_is_stable_while_typing() -> None:
    """Appending characters on the cursor line keeps the prompt's first line byte-identical.

    Lines are 32 chars and the budget leaves 5 spare tokens, so after 6 keystrokes a
    naive "as many lines as fit" start would move forward a line, changing the head
    of every prompt and defeating vLLM's prefix cache.
    """
    text = numbered_lines(400)  # 12,800 chars before the cursor line
    after = "\n" + numbered_lines(3)
    counter = CharCounter()
    budget = 32 * 40 + 5
    typed = "answer = compute_something(value_00001)"
    starts = []
    for n in range(len(typed) + 1):
        doc = text + typed[:n] + after
        offset = len(text) + n
        prefix = budget_prefix(doc, offset, budget, counter)
        assert prefix.endswith("\n" + typed[:n])
        assert counter.count(prefix) <= budget
        starts.append(offset - len(prefix))
    assert len(set(starts)) == 1, starts


@pytest.mark.parametrize("budget", [0, 5, 40, 100, 1000])
def test_budget_suffix_respects_budget_and_cuts_at_a_line_end(budget: int) -> None:
    text, offset = split_cursor("x = foo(|)\n" + numbered_lines(50))
    suffix = budget_suffix(text, offset, budget, CharCounter())
    assert text[offset:].startswith(suffix)
    end = offset + len(suffix)
    assert end == len(text) or text[end] == "\n"
    assert suffix.startswith(")")  # the rest of the cursor line always comes along
    assert len(suffix) <= max(budget, 1)


def test_budget_suffix_whole_lines_only() -> None:
    text, offset = split_cursor("x = |)\naaaa\nbbbb\ncccc\n")
    # ")" is 1; each following line costs 5 ("\naaaa").
    assert budget_suffix(text, offset, 6, CharCounter()) == ")\naaaa"
    assert budget_suffix(text, offset, 10, CharCounter()) == ")\naaaa"
    assert budget_suffix(text, offset, 11, CharCounter()) == ")\naaaa\nbbbb"


def test_budget_suffix_at_end_of_document() -> None:
    text, offset = split_cursor("x = 1\ny = |")
    assert budget_suffix(text, offset, 100, CharCounter()) == ""


@pytest.mark.parametrize(
    ("language_id", "mark"),
    [
        ("python", "#"),
        ("shellscript", "#"),
        ("yaml", "#"),
        ("lua", "--"),
        ("sql", "--"),
        ("haskell", "--"),
        ("javascript", "//"),
        ("rust", "//"),
        ("go", "//"),
    ],
)
def test_comment_prefix(language_id: str, mark: str) -> None:
    assert comment_prefix(language_id) == mark


def test_render_head_comments_snippets_and_ends_with_the_path() -> None:
    doc = Document("file:///repo/app/main.py", "python", 1, "x = 1\n")
    snippet = Snippet("/repo/app/util.py", 10, "def helper(a):\n\n    return a", 0.5)
    head = render_head(doc, [snippet])
    assert head == (
        "# Compare this snippet from /repo/app/util.py:\n"
        "# def helper(a):\n"
        "#\n"
        "#     return a\n"
        "# Path: /repo/app/main.py\n"
    )


def test_render_head_without_snippets_is_just_the_path() -> None:
    doc = Document("untitled:Untitled-1", "lua", 1, "")
    assert render_head(doc, []) == "-- Path: Untitled-1\n"


def test_render_head_javascript_uses_slashes() -> None:
    doc = Document("file:///w/index.js", "javascript", 1, "")
    head = render_head(doc, [Snippet("/w/lib.js", 0, "export const a = 1;", 0.3)])
    lines = head.splitlines()
    assert lines[-1] == "// Path: /w/index.js"
    assert all(line.startswith("//") for line in lines)


HELPER_SOURCE = """\
import math


def distance(point_a, point_b):
    delta_x = point_b.x - point_a.x
    delta_y = point_b.y - point_a.y
    return math.sqrt(delta_x * delta_x + delta_y * delta_y)


def unrelated_banner():
    print("welcome to the program")
"""

CURRENT_SOURCE = """\
import math


def midpoint_distance(point_a, point_b):
    delta_x = point_b.x - point_a.x
    delta_y = point_b.y - point_a.y
    |
"""


def make_builder(**overrides: float) -> ContextBuilder:
    options: dict[str, float] = {
        "prefix_tokens": 1000,
        "suffix_tokens": 200,
        "snippet_tokens": 300,
        "snippet_time_limit_s": 5.0,
    }
    options.update(overrides)
    return ContextBuilder(
        prefix_tokens=int(options["prefix_tokens"]),
        suffix_tokens=int(options["suffix_tokens"]),
        snippet_tokens=int(options["snippet_tokens"]),
        snippet_time_limit_s=options["snippet_time_limit_s"],
        snippets=SnippetIndex(),
    )


def current_request() -> CompletionRequest:
    text, offset = split_cursor(CURRENT_SOURCE)
    doc = Document("file:///w/geometry.py", "python", 3, text)
    return CompletionRequest(document=doc, offset=offset, line=6, character=4)


def test_context_builder_includes_a_similar_snippet_from_another_document() -> None:
    request = current_request()
    helper = Document("file:///w/helpers.py", "python", 1, HELPER_SOURCE)
    context = make_builder().build(request, CharEstimateCounter(), [request.document, helper])
    assert [s.path for s in context.snippets] == ["/w/helpers.py"]
    assert "# Compare this snippet from /w/helpers.py:\n" in context.head
    assert "#     return math.sqrt(delta_x * delta_x + delta_y * delta_y)\n" in context.head
    assert context.head.endswith("# Path: /w/geometry.py\n")
    assert context.prefix == request.document.text[: request.offset]
    assert context.suffix == "\n"
    assert context.full_prefix == context.head + context.prefix


def test_context_builder_never_quotes_the_current_document() -> None:
    request = current_request()
    # A stale copy of the current document under the same uri must not be quoted.
    same_uri = Document(request.document.uri, "python", 2, request.document.text)
    context = make_builder().build(request, CharEstimateCounter(), [request.document, same_uri])
    assert context.snippets == ()
    assert context.head == "# Path: /w/geometry.py\n"


def test_context_builder_snippets_fit_the_snippet_budget() -> None:
    request = current_request()
    helper = Document("file:///w/helpers.py", "python", 1, HELPER_SOURCE)
    counter = CharEstimateCounter()
    context = make_builder(snippet_tokens=10).build(request, counter, [helper])
    assert sum(counter.count(s.text) for s in context.snippets) <= 10
