"""Context: token budgets cut at line boundaries, a stable prompt head, snippets."""

from __future__ import annotations

import pytest

from inference.fim import QWEN
from inference.tokens import CharEstimateCounter
from server.completion.backend import ModelInfo
from server.completion.context import (
    ContextBuilder,
    budget_prefix,
    budget_suffix,
    comment_prefix,
    fit_budgets,
    render_head,
    usable_tokens,
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


# ------------------------------------------------------ the served context window


@pytest.mark.parametrize(
    ("budgets", "available", "expected"),
    [
        ((1536, 512, 384), 5000, (1536, 512, 384)),  # fits: unchanged
        ((1536, 512, 384), 2432, (1536, 512, 384)),  # exactly
        ((1536, 512, 384), 1216, (768, 256, 192)),  # half: ratios kept
        ((1000, 0, 0), 300, (300, 0, 0)),
        ((100, 100, 100), 0, (0, 0, 0)),
        ((100, 100, 100), -50, (0, 0, 0)),
    ],
)
def test_fit_budgets_scales_down_in_proportion(
    budgets: tuple[int, int, int], available: int, expected: tuple[int, int, int]
) -> None:
    fitted = fit_budgets(*budgets, available)
    assert fitted == expected
    assert sum(fitted) <= max(available, 0)


def test_usable_tokens_keeps_a_larger_margin_for_estimates() -> None:
    assert usable_tokens(1000, exact=True) == 980
    assert usable_tokens(1000, exact=False) == 900
    assert usable_tokens(0, exact=True) == 0


def model_info(max_model_len: int | None, overhead: int = 4) -> ModelInfo:
    return ModelInfo(
        name="m",
        template=QWEN,
        counter=CharCounter(),
        max_model_len=max_model_len,
        overhead_tokens=overhead,
    )


def test_prompt_limit_leaves_room_for_the_answer_and_the_template() -> None:
    assert model_info(2048).prompt_limit(256) == 2048 - 256 - 4
    assert model_info(None).prompt_limit(256) is None
    assert model_info(100).prompt_limit(256) == 0


def big_request(cursor_line: str = "result = compute(") -> CompletionRequest:
    text = numbered_lines(400) + cursor_line + "\n" + numbered_lines(200)
    offset = len(numbered_lines(400)) + len(cursor_line)
    doc = Document("file:///w/big.py", "python", 1, text)
    return CompletionRequest(document=doc, offset=offset, line=400, character=len(cursor_line))


@pytest.mark.parametrize("window", [160, 300, 512, 1024, 4096])
@pytest.mark.parametrize("max_tokens", [64, 256])
def test_prompt_fits_the_served_context_window(window: int, max_tokens: int) -> None:
    """Head, prefix, suffix, template tokens and max_tokens all within max_model_len."""
    request = big_request()
    helper = Document("file:///w/helpers.py", "python", 1, HELPER_SOURCE)
    counter = CharCounter()
    info = model_info(window, overhead=counter.count(QWEN.render("", "")) + 1)
    builder = make_builder(prefix_tokens=1536, suffix_tokens=512, snippet_tokens=384)
    limit = info.prompt_limit(max_tokens)
    context = builder.build(request, counter, [helper], max_prompt_tokens=limit)
    prompt = QWEN.render(context.full_prefix, context.suffix)
    assert counter.count(prompt) + 1 + max_tokens <= window or limit == 0
    if limit and limit > 200:
        assert context.prefix.endswith("result = compute(")  # the cursor line survives


def test_without_a_limit_the_budgets_are_the_configured_ones() -> None:
    request = big_request()
    builder = make_builder(prefix_tokens=1536, suffix_tokens=512, snippet_tokens=0)
    context = builder.build(request, CharCounter(), [])
    # Lines are 32 characters; the prefix's start moves in 512-character steps.
    assert 1536 - 512 - 32 < len(context.prefix) <= 1536
    assert 512 - 32 < len(context.suffix) <= 512


def test_a_generous_limit_changes_nothing() -> None:
    request = big_request()
    helper = Document("file:///w/helpers.py", "python", 1, HELPER_SOURCE)
    builder = make_builder(prefix_tokens=600, suffix_tokens=200, snippet_tokens=300)
    free = builder.build(request, CharCounter(), [helper])
    capped = builder.build(request, CharCounter(), [helper], max_prompt_tokens=100_000)
    assert capped == free


def test_under_a_limit_a_huge_cursor_line_is_cut_to_fit() -> None:
    minified = "var a=" + ",".join(f"x{i}" for i in range(5000)) + ";f("
    request = big_request(cursor_line=minified)
    builder = make_builder(prefix_tokens=1536, suffix_tokens=512, snippet_tokens=0)
    context = builder.build(request, CharCounter(), [], max_prompt_tokens=500)
    assert len(context.head) + len(context.prefix) + len(context.suffix) <= 500
    assert context.prefix.endswith(";f(")  # the end of the line, next to the cursor
    # Without a hard limit the cursor line is kept whole, as before.
    free = builder.build(request, CharCounter(), [])
    assert free.prefix.endswith(minified)


def test_under_a_limit_a_huge_rest_of_line_is_cut_from_its_end() -> None:
    text, offset = split_cursor("x = f(|" + "a, " * 3000 + ")\nnext_line = 1\n")
    assert budget_suffix(text, offset, 50, CharCounter(), strict=True) == ("a, " * 3000)[:50]
    assert budget_suffix(text, offset, 50, CharCounter()).endswith(")")


def test_snippets_are_counted_as_rendered() -> None:
    request = current_request()
    helper = Document("file:///w/helpers.py", "python", 1, HELPER_SOURCE)
    counter = CharCounter()
    context = make_builder(snippet_tokens=400).build(request, counter, [helper])
    snippet_part = context.head[: -len("# Path: /w/geometry.py\n")]
    assert counter.count(snippet_part) <= 400
