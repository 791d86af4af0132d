"""Docstrings from the model go into the user's definition; the code stays the user's."""

from __future__ import annotations

import pytest

from server.actions.answer import AnswerRejected
from server.actions.docstrings import docstring_of, insert_docstring
from server.actions.prompts import fenced


@pytest.mark.parametrize(
    ("region", "doc", "expected"),
    [
        (
            "def f(x):\n    return x\n",
            "Identity.",
            'def f(x):\n    """Identity."""\n    return x\n',
        ),
        (  # a method, indented, with a decorator and an old docstring replaced
            "    @staticmethod\n    def g():\n        'old'\n        return 1\n",
            "New summary.\n\nMore text.",
            '    @staticmethod\n    def g():\n        """New summary.\n\n        More text.\n'
            '        """\n        return 1\n',
        ),
        (  # a class; quotes in the text cannot end the docstring early
            "class C:\n    x = 1\n",
            'Holds """x""".',
            'class C:\n    """Holds \\"\\"\\"x\\"\\"\\"."""\n    x = 1\n',
        ),
        (  # CRLF documents keep their line endings
            "def f():\r\n    pass\r\n",
            "Nothing.",
            'def f():\r\n    """Nothing."""\r\n    pass\r\n',
        ),
    ],
)
def test_insert_docstring(region: str, doc: str, expected: str) -> None:
    assert insert_docstring(region, doc) == expected


def test_a_one_line_definition_is_refused() -> None:
    with pytest.raises(ValueError, match="header line"):
        insert_docstring("def f(): return 1\n", "Doc.")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('def f():\n    """Does f."""\n    return 2\n', "Does f."),
        ('    def f(self):\n        """Indented."""\n', "Indented."),
    ],
)
def test_docstring_of(answer: str, expected: str) -> None:
    assert docstring_of(answer) == expected


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("def f():\n    return 2\n", "no docstring"),
        ("this is prose", "not a definition"),
        ("x = 1\n", "not a definition"),
    ],
)
def test_docstring_of_rejects(answer: str, reason: str) -> None:
    with pytest.raises(AnswerRejected, match=reason):
        docstring_of(answer)


@pytest.mark.parametrize(
    ("text", "fence"),
    [("x = 1", "```"), ("a ``` b", "````"), ("`````", "``````")],
)
def test_code_in_a_prompt_cannot_close_its_fence(text: str, fence: str) -> None:
    block = fenced(text, "python")
    assert block.startswith(fence + "python\n") and block.endswith("\n" + fence)
    assert fence not in text
