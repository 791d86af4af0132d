"""Snippets from other open documents: similarity, ranking, limits, stability."""

from __future__ import annotations

import itertools

import pytest

from server.completion.snippets import Snippet, SnippetIndex, identifiers, jaccard
from server.completion.types import Document


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ({"alpha", "beta"}, {"alpha", "beta"}, 1.0),
        ({"alpha", "beta"}, {"gamma", "delta"}, 0.0),
        ({"alpha", "beta"}, {"beta", "gamma"}, 1 / 3),
        ({"alpha", "beta", "gamma", "delta"}, {"alpha"}, 1 / 4),
        (set(), {"alpha"}, 0.0),
        (set(), set(), 0.0),
    ],
)
def test_jaccard(a: set[str], b: set[str], expected: float) -> None:
    assert jaccard(frozenset(a), frozenset(b)) == pytest.approx(expected)
    assert jaccard(frozenset(b), frozenset(a)) == pytest.approx(expected)


def test_identifiers_ignore_short_names_numbers_and_punctuation() -> None:
    assert identifiers("x = foo_bar(a1, _tmp, 42) + db.query") == {"foo_bar", "_tmp", "query"}


FILLER = "\n".join(f"filler_line_{i} = None" for i in range(30))

PARSER_DOC = f"""\
{FILLER}
def parse_config(config_path, overrides):
    raw_text = read_file(config_path)
    parsed = yaml_loader.load(raw_text)
    parsed.update(overrides)
    return validate_schema(parsed)
{FILLER}
"""

LOGGING_DOC = """\
def setup_logging(level):
    handler = make_handler(level)
    logger.addHandler(handler)
    parsed = None
"""

UNRELATED_DOC = """\
class Shape:
    def area(self):
        return width * height
"""

QUERY = """\
def load_config(config_path, overrides):
    raw_text = read_file(config_path)
    parsed = yaml_loader.load(raw_text)
"""


def docs() -> list[Document]:
    return [
        Document("file:///w/logging_setup.py", "python", 1, LOGGING_DOC),
        Document("file:///w/unrelated.py", "python", 1, UNRELATED_DOC),
        Document("file:///w/config.py", "python", 1, PARSER_DOC),
    ]


def best(
    index: SnippetIndex,
    documents: list[Document],
    *,
    exclude_uri: str = "file:///w/current.py",
    max_chars: int = 4000,
    time_limit_s: float = 5.0,
) -> list[Snippet]:
    return index.best(
        QUERY,
        documents,
        exclude_uri=exclude_uri,
        max_chars=max_chars,
        time_limit_s=time_limit_s,
    )


def test_best_ranks_the_similar_window_first() -> None:
    found = best(SnippetIndex(), docs())
    assert found, "the parser document shares most identifiers with the query"
    top = found[0]
    assert top.path == "/w/config.py"
    assert "yaml_loader.load(raw_text)" in top.text
    assert [s.score for s in found] == sorted((s.score for s in found), reverse=True)
    assert all(s.path != "/w/unrelated.py" for s in found)


def test_best_does_not_return_overlapping_windows_of_one_document() -> None:
    found = best(SnippetIndex(), docs())
    config = sorted(s.start_line for s in found if s.path == "/w/config.py")
    assert all(b - a >= 12 for a, b in itertools.pairwise(config))


@pytest.mark.parametrize("max_chars", [0, 50, 200, 400, 10_000])
def test_best_respects_max_chars(max_chars: int) -> None:
    found = best(SnippetIndex(), docs(), max_chars=max_chars)
    if max_chars >= 400:
        assert found
    assert sum(len(s.text) for s in found) <= max_chars


def test_best_excludes_the_current_document() -> None:
    documents = docs()
    found = best(SnippetIndex(), documents, exclude_uri="file:///w/config.py")
    assert found
    assert all(s.path != "/w/config.py" for s in found)


def test_best_with_only_the_current_document_is_empty() -> None:
    current = Document("file:///w/current.py", "python", 1, PARSER_DOC)
    assert best(SnippetIndex(), [current]) == []


def test_best_remembers_the_answer_for_an_identical_query() -> None:
    index = SnippetIndex()
    first = best(index, docs())
    assert first
    # A deadline already past would find nothing: an identical query must not search.
    assert best(index, docs(), time_limit_s=-1.0) == first


def test_best_searches_again_when_a_document_changes() -> None:
    index = SnippetIndex()
    assert best(index, docs())
    changed = [*docs()[:2], Document("file:///w/config.py", "python", 2, UNRELATED_DOC)]
    found = best(index, changed)
    assert all(s.path != "/w/config.py" for s in found)


def test_best_gives_up_at_the_deadline() -> None:
    index = SnippetIndex()
    assert best(index, docs(), time_limit_s=-1.0) == []
    # The partial answer was not remembered: with time, the snippets come back.
    assert best(index, docs())


def test_best_finds_code_at_the_end_of_a_short_document() -> None:
    """The last lines of a document are indexed too, whatever its length.

    17 lines: 12 unrelated ones, then the matching function. Windows of 12 lines
    every 6 lines must still reach the function at the bottom.
    """
    unrelated = "\n".join(f"banner_{i} = None" for i in range(12))
    function = (
        "def parse_config(config_path, overrides):\n"
        "    raw_text = read_file(config_path)\n"
        "    parsed = yaml_loader.load(raw_text)\n"
        "    parsed.update(overrides)\n"
        "    return validate_schema(parsed)"
    )
    doc = Document("file:///w/config.py", "python", 1, unrelated + "\n" + function)
    assert len(doc.text.split("\n")) == 17
    found = best(SnippetIndex(), [doc])
    assert found, "the function at the end of config.py was never indexed"
    assert "yaml_loader.load(raw_text)" in found[0].text
