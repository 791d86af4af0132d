"""The pure parts of `zi-coder replay`: splitting FIM prompts, references, similarity, dates."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import pytest

from inference.fim import CODELLAMA, QWEN, STARCODER, TEMPLATES, FimTemplate
from server.commands.moments import since_type, until_type
from server.completion.context import render_head
from server.completion.model_call import surroundings
from server.completion.snippets import Snippet
from server.completion.types import Document
from server.history.models import CompletionRecord
from server.history.replay import accepted_reference, similarity
from server.history.replayer import chat_messages, document, prompt_head


@pytest.mark.parametrize("template", list(TEMPLATES.values()), ids=list(TEMPLATES))
@pytest.mark.parametrize(
    ("prefix", "suffix"),
    [
        ("# Path: a.py\ndef f(x):\n    return ", "\n\nprint(f(1))\n"),
        ("", ""),
        ("x = ", ""),
        ("", "\n}\n"),
        ("  leading and trailing spaces  ", "  "),
    ],
)
def test_split_undoes_render(template: FimTemplate, prefix: str, suffix: str) -> None:
    assert template.split(template.render(prefix, suffix)) == (prefix, suffix)


def test_split_refuses_another_templates_prompt() -> None:
    with pytest.raises(ValueError, match="not a prompt of the qwen FIM template"):
        QWEN.split(STARCODER.render("a", "b"))
    with pytest.raises(ValueError, match="codellama"):
        CODELLAMA.split("<PRE>a <SUF>b <MID>")  # unspaced
    with pytest.raises(ValueError):
        QWEN.split("<|fim_prefix|>")


def test_split_refuses_an_ambiguous_prompt() -> None:
    # Code that contains the suffix sentinel itself: where the suffix starts is unknown.
    prompt = QWEN.render('SENTINEL = "<|fim_suffix|>"\n', "")
    with pytest.raises(ValueError, match="occurs 2 times"):
        QWEN.split(prompt)
    # Other sentinels in the code do not matter.
    prompt = QWEN.render('A = "<|fim_middle|><|fim_prefix|>"\n', "tail")
    assert QWEN.split(prompt) == ('A = "<|fim_middle|><|fim_prefix|>"\n', "tail")


def _row(
    ident: str,
    text: str,
    outcome: str,
    accepted_length: int | None = None,
    parent_id: str | None = None,
) -> CompletionRecord:
    return CompletionRecord(
        id=ident,
        parent_id=parent_id,
        text=text,
        text_length=len(text),
        outcome=outcome,
        accepted_length=accepted_length,
    )


@pytest.mark.parametrize(
    ("outcome", "accepted_length", "continuations", "expected"),
    [
        ("accepted", None, [], "return a + b"),
        ("partially_accepted", 6, [], "return"),
        ("rejected", None, [], None),
        ("shown", None, [], None),
        ("generated", None, [], None),
        # Typed "ret", then accepted the type-ahead's "urn a + b".
        ("shown", None, [("urn a + b", "accepted", None)], "return a + b"),
        # Typed "return ", then took 1 character of "a + b".
        ("shown", None, [("a + b", "partially_accepted", 1)], "return a"),
        # The longest acceptance wins.
        ("partially_accepted", 3, [("a + b", "accepted", None)], "return a + b"),
        ("shown", None, [("a + b", "rejected", None)], None),
    ],
)
def test_accepted_reference(
    outcome: str,
    accepted_length: int | None,
    continuations: list[tuple[str, str, int | None]],
    expected: str | None,
) -> None:
    parent = _row("p", "return a + b", outcome, accepted_length)
    children = [
        _row(f"c{i}", text, child_outcome, length, parent_id="p")
        for i, (text, child_outcome, length) in enumerate(continuations)
    ]
    assert accepted_reference(parent, children) == expected


def test_no_reference_without_the_stored_text() -> None:
    parent = CompletionRecord(id="p", text=None, text_length=5, outcome="accepted")
    assert accepted_reference(parent) is None


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("", "", 1.0),
        ("abc", "abc", 1.0),
        ("abc", "", 0.0),
        ("abc", "xyz", 0.0),
        ("x * 3", "x * 2", 0.8),  # 2·4 / 10
        ("total(items)", "total", 10 / 17),
        # Spaces are not junk (difflib's autojunk would ignore them past 200 characters).
        (" " * 150 + "a" * 60, " " * 150 + "b" * 60, 300 / 420),
    ],
)
def test_similarity(a: str, b: str, expected: float) -> None:
    assert similarity(a, b) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("prefix", "language", "head"),
    [
        ("# Path: a.py\nx = ", "python", "# Path: a.py\n"),
        (
            "# Compare this snippet from b.py:\n# def g():\n#     pass\n# Path: a.py\nx = ",
            "python",
            "# Compare this snippet from b.py:\n# def g():\n#     pass\n# Path: a.py\n",
        ),
        ("// Path: main.rs\nfn main() {", "rust", "// Path: main.rs\n"),
        ("x = 1\n# Path: not a head\n", "python", ""),
        ("# a comment\nx = ", "python", ""),
    ],
)
def test_prompt_head(prefix: str, language: str, head: str) -> None:
    assert prompt_head(prefix, language) == head


@pytest.mark.parametrize("language", ["python", "rust", "lua"])
def test_prompt_head_is_the_head_the_context_builder_writes(language: str) -> None:
    doc = Document(uri="file:///src/a.x", language_id=language, version=1, text="")
    snippets = [Snippet(path="b.x", start_line=3, text="def g():\n\n    pass", score=1.0)]
    for head in (render_head(doc, []), render_head(doc, snippets)):
        assert prompt_head(head + "x = 1\n", language) == head


def test_the_rebuilt_document_leaves_the_head_out() -> None:
    text, offset = document("# Path: a.py\ndef f():\n    return ", "\n\nx = 1\n", "python")
    assert (text[:offset], text[offset:]) == ("def f():\n    return ", "\n\nx = 1\n")
    around = surroundings(text, offset, "python")
    assert around.before == "def f():\n    return "
    assert around.after == "\n"  # the parse window ends at the next top-level line
    assert around.header_indent == 0


def test_chat_messages() -> None:
    prompt = '[{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]'
    assert chat_messages(prompt) == [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
    ]
    for bad in ("<|fim_prefix|>x", "[]", '{"role": "user"}', '[{"content": "no role"}]'):
        with pytest.raises(ValueError, match="JSON list of chat messages"):
            chat_messages(bad)


def test_since_and_until() -> None:
    now = datetime.now(UTC)
    week = since_type("7d")
    assert abs(week.at - (now - timedelta(days=7))) < timedelta(seconds=5)
    assert since_type("2025-01-31").at == datetime(2025, 1, 31, tzinfo=UTC)
    # A date as --until includes its whole day.
    assert until_type("2025-01-31").at == datetime(2025, 2, 1, tzinfo=UTC)
    assert until_type("2025-01-31T14:30").at == datetime(2025, 1, 31, 14, 30, tzinfo=UTC)
    offset = since_type("2025-01-31T14:30+02:00").at
    assert offset == datetime(2025, 1, 31, 12, 30, tzinfo=UTC)
    for bad in ("yesterday", "0d", "7y", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            since_type(bad)
