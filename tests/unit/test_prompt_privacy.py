"""A completion prompt holds no secret and nothing of an excluded file: the context
builder's own guarantees, with the corpus of realistic secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.completion.context import ContextBuilder
from server.completion.snippets import SnippetIndex
from server.completion.types import CompletionRequest, Document
from server.context.ignore import ContextRules
from server.redact import redact_pair
from tests.unit.data.secrets_corpus import SECRETS, SecretCase
from tests.unit.test_context import CharCounter

# Neighbours share the current file's identifiers, so each would be a snippet if allowed.
NEIGHBOUR = (
    "def area(width, height):\n    return width * height\n\n\ndef perimeter(width, height):\n"
)
CURRENT = "def area_of(shape):\n    width, height = shape.width, shape.height\n    return █\n"


def _builder(rules: ContextRules | None = None, **budgets: int) -> ContextBuilder:
    return ContextBuilder(
        prefix_tokens=budgets.get("prefix", 2000),
        suffix_tokens=budgets.get("suffix", 500),
        snippet_tokens=budgets.get("snippets", 2000),
        snippet_time_limit_s=5.0,
        snippets=SnippetIndex(),
        rules=rules,
    )


def _request(root: Path, source: str = CURRENT) -> CompletionRequest:
    """The request at `█` (corpus texts have `|`, the usual marker, in shell pipes)."""
    offset = source.index("█")
    text = source.replace("█", "")
    doc = Document((root / "geometry.py").as_uri(), "python", 1, text)
    line = text.count("\n", 0, offset)
    return CompletionRequest(doc, offset, line, offset - text.rfind("\n", 0, offset) - 1)


def test_excluded_neighbours_never_become_snippets(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".gitignore").write_text("local_shapes.py\n")
    marker = "# width height {}\n"
    others = [
        Document((tmp_path / name).as_uri(), "python", 1, NEIGHBOUR + marker.format(name))
        for name in (".env", "id_rsa", "local_shapes.py", "deploy/prod.pem", "shapes.py")
    ]
    ctx = _builder().build(_request(tmp_path), CharCounter(), others)
    assert [snippet.path.rsplit("/", 1)[-1] for snippet in ctx.snippets] == ["shapes.py"]
    for name in (".env", "id_rsa", "local_shapes.py", "prod.pem"):
        assert marker.format(name) not in ctx.full_prefix
    assert _builder().excluded(others[0]) and not _builder().excluded(others[-1])


@pytest.mark.parametrize("case", SECRETS, ids=lambda case: case.id)
def test_no_secret_reaches_a_prompt(tmp_path: Path, case: SecretCase) -> None:
    """Each corpus text in the current file's prefix, its suffix and a neighbour."""
    neighbour = Document(
        (tmp_path / "shapes.py").as_uri(), "python", 1, NEIGHBOUR + case.text + NEIGHBOUR
    )
    for source in (case.text + CURRENT, CURRENT + case.text):
        ctx = _builder().build(_request(tmp_path, source), CharCounter(), [neighbour])
        assert case.secret not in ctx.full_prefix + ctx.suffix
    # The neighbour was used (the query, the lines above the cursor, is CURRENT's).
    assert ctx.snippets and NEIGHBOUR.split("\n")[1] in ctx.head


def test_a_secret_cut_by_the_cursor_is_redacted_whole(tmp_path: Path) -> None:
    key = "sk-proj-" + "Xy7kQ2mN9pL4vR8tZ3wA6bC1dE5fG0hJ"
    source = f'client = OpenAI(api_key="{key[:14]}█{key[14:]}")\n'
    ctx = _builder().build(_request(tmp_path, source), CharCounter(), [])
    assert ctx.prefix == 'client = OpenAI(api_key="<redacted:openai-key>'
    assert ctx.suffix == '")\n'


def test_placeholders_longer_than_secrets_stay_within_a_hard_limit(tmp_path: Path) -> None:
    # `p4ss` (4 characters) becomes `<redacted:password>` (19): the prefix is cut again.
    lines = "".join(f'password_{i} = "p4s{i}"\n' for i in range(40))
    request = _request(tmp_path, lines + "x = █\n")
    builder = _builder(prefix=400, suffix=100, snippets=0)
    ctx = builder.build(request, CharCounter(), [], max_prompt_tokens=600)
    assert "p4s" not in ctx.prefix and "<redacted:password>" in ctx.prefix
    assert len(ctx.full_prefix) + len(ctx.suffix) <= 600


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ("a = 1\n", "b = 2\n", ("a = 1\n", "b = 2\n")),
        ('db_password = "S3cr', 'et99"\n', ('db_password = "<redacted:password>', '"\n')),
        ('password = "S3cret99"\n', "x", ('password = "<redacted:password>"\n', "x")),
        ("x\n", 'password = "S3cret99"\n', ("x\n", 'password = "<redacted:password>"\n')),
        ("k = AKIA", "IOSFODNN7EXAMPLE\n", ("k = <redacted:aws-access-key>", "\n")),
    ],
)
def test_redact_pair(before: str, after: str, expected: tuple[str, str]) -> None:
    assert redact_pair(before, after) == expected
