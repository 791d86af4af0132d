"""Type-ahead: typing the start of a shown suggestion serves the rest without a model call."""

from __future__ import annotations

import pytest

from server.completion.typeahead import TypeAheadCache
from server.completion.types import Completion, Mode, Source
from tests.unit.cursor import split_cursor

URI = "file:///w/app.py"
SUGGESTION = "compute(a, b)"
SOURCE = "def f(a, b):\n    return |\n\nprint(f(1, 2))\n"


def completion(text: str = SUGGESTION) -> Completion:
    return Completion(
        id="c1",
        text=text,
        mode=Mode.SINGLE_LINE,
        source=Source.MODEL,
        model="m",
        template="qwen",
    )


@pytest.fixture
def cache() -> TypeAheadCache:
    text, offset = split_cursor(SOURCE)
    cache = TypeAheadCache()
    cache.remember(URI, text, offset, completion())
    return cache


def typed(chars: str, source: str = SOURCE) -> tuple[str, int]:
    """The document after typing `chars` at the cursor of `source`."""
    text, offset = split_cursor(source)
    return text[:offset] + chars + text[offset:], offset + len(chars)


@pytest.mark.parametrize("n", range(len(SUGGESTION)))
def test_typing_the_start_of_the_suggestion_returns_the_rest(cache: TypeAheadCache, n: int) -> None:
    text, offset = typed(SUGGESTION[:n])
    hit = cache.lookup(URI, text, offset)
    assert hit is not None
    shown, rest = hit
    assert shown.id == "c1"
    assert rest == SUGGESTION[n:]


def test_typing_the_whole_suggestion_returns_none(cache: TypeAheadCache) -> None:
    text, offset = typed(SUGGESTION)
    assert cache.lookup(URI, text, offset) is None


@pytest.mark.parametrize("chars", ["x", "comp_", "Compute", "compute(a, c"])
def test_a_mismatching_character_returns_none(cache: TypeAheadCache, chars: str) -> None:
    text, offset = typed(chars)
    assert cache.lookup(URI, text, offset) is None


def test_a_changed_suffix_returns_none(cache: TypeAheadCache) -> None:
    text, offset = typed("comp", SOURCE.replace("print(f(1, 2))", "print(f(3, 4))"))
    assert cache.lookup(URI, text, offset) is None


def test_an_edit_before_the_anchor_returns_none(cache: TypeAheadCache) -> None:
    text, offset = typed("comp", SOURCE.replace("def f(a, b)", "def f(a, c)"))
    assert cache.lookup(URI, text, offset) is None


def test_an_insertion_before_the_anchor_returns_none(cache: TypeAheadCache) -> None:
    text, offset = typed("comp", "# note\n" + SOURCE)
    assert cache.lookup(URI, text, offset) is None


def test_cursor_before_the_anchor_returns_none(cache: TypeAheadCache) -> None:
    text, offset = split_cursor(SOURCE)
    assert cache.lookup(URI, text, offset - 1) is None


def test_another_document_returns_none(cache: TypeAheadCache) -> None:
    text, offset = typed("comp")
    assert cache.lookup("file:///w/other.py", text, offset) is None


def test_forget_drops_the_documents_suggestions(cache: TypeAheadCache) -> None:
    cache.forget(URI)
    text, offset = typed("comp")
    assert cache.lookup(URI, text, offset) is None


def test_the_newest_matching_suggestion_wins() -> None:
    text, offset = split_cursor(SOURCE)
    cache = TypeAheadCache()
    cache.remember(URI, text, offset, completion("compute(a, b)"))
    newer = Completion("c2", "combine(a, b)", Mode.SINGLE_LINE, Source.MODEL, "m", "qwen")
    cache.remember(URI, text, offset, newer)
    hit = cache.lookup(URI, *typed("com"))
    assert hit is not None
    assert hit[0].id == "c2"
    # The older one still serves its own continuation.
    hit = cache.lookup(URI, *typed("comp"))
    assert hit is not None
    assert hit == (completion(), "ute(a, b)")


def test_multi_line_suggestion_continues_across_lines() -> None:
    source = "def f(xs):\n    |\n"
    suggestion = "total = sum(xs)\n    return total"
    text, offset = split_cursor(source)
    cache = TypeAheadCache()
    cache.remember(URI, text, offset, completion(suggestion))
    hit = cache.lookup(URI, *typed("total = sum(xs)\n    ", source))
    assert hit is not None
    assert hit[1] == "return total"


def test_documents_beyond_capacity_are_forgotten_oldest_first() -> None:
    text, offset = split_cursor(SOURCE)
    cache = TypeAheadCache(documents=2)
    for uri in ("file:///a.py", "file:///b.py", "file:///c.py"):
        cache.remember(uri, text, offset, completion())
    after_typing = typed("comp")
    assert cache.lookup("file:///a.py", *after_typing) is None
    assert cache.lookup("file:///b.py", *after_typing) is not None
    assert cache.lookup("file:///c.py", *after_typing) is not None
