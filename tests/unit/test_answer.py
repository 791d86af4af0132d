"""Reading code out of a small model's answer: tolerant when the intent is clear, else refused."""

from __future__ import annotations

import pytest

from server.actions.answer import AnswerRejected, check_parses, extract_code_block, reindent
from server.syntax import Syntax


@pytest.fixture(scope="module")
def syntax() -> Syntax:
    return Syntax()


@pytest.mark.parametrize(
    ("answer", "language_id", "expected"),
    [
        pytest.param("```python\nx = 1\n```", "python", "x = 1", id="fenced"),
        pytest.param(
            "Here is the fix:\n\n```python\ndef f():\n    return 1\n```\n\nThis returns 1.",
            "python",
            "def f():\n    return 1",
            id="prose-around",
        ),
        pytest.param("~~~python\nx = 1\n~~~\n", "python", "x = 1", id="tildes"),
        pytest.param("Fixed:\n```\nx = 1\n```", "python", "x = 1", id="no-tag"),
        pytest.param("```python\nx = 1\ny = 2\n", "python", "x = 1\ny = 2", id="never-closed"),
        pytest.param(
            "```python\nx = 1\ny = 2```", "python", "x = 1\ny = 2", id="fence-glued-to-code"
        ),
        pytest.param(
            "Sure.\r\n```python\r\nif x:\r\n    y()\r\n```\r\n",
            "python",
            "if x:\n    y()",
            id="crlf",
        ),
        pytest.param(
            "Install it:\n```bash\npip install x\n```\nThen:\n```python\nimport x\n```",
            "python",
            "import x",
            id="the-block-for-the-language",
        ),
        pytest.param("```py\nimport x\n```", "python", "import x", id="tag-alias"),
        pytest.param(
            "```tsx\nconst a = <b/>;\n```", "typescriptreact", "const a = <b/>;", id="tag-alias-tsx"
        ),
        pytest.param(
            "```text\noutput\n```\n```\nx = 1\n```",
            "python",
            "x = 1",
            id="untagged-before-other-language",
        ),
        pytest.param(
            "```text\nfirst\n```\n```rust\nsecond\n```", "python", "first", id="else-the-first"
        ),
        pytest.param(
            "```python\n```\n```python\nx = 1\n```", "python", "x = 1", id="empty-one-skipped"
        ),
        pytest.param(
            "1. Change it:\n   ```python\n   if x:\n       y()\n   ```",
            "python",
            "if x:\n    y()",
            id="indented-fence-in-a-list",
        ),
        pytest.param(
            "````markdown\nA\n```\ncode\n```\n````",
            "markdown",
            "A\n```\ncode\n```",
            id="longer-fence-holds-a-shorter-one",
        ),
        pytest.param(
            "```python\n\n    return x + 1\n\n```",
            "python",
            "    return x + 1",
            id="blank-edges-dropped-indent-kept",
        ),
        pytest.param(
            "<think>Maybe ```python\nwrong\n``` no.</think>\n```python\nright = 1\n```",
            "python",
            "right = 1",
            id="reasoning-section-ignored",
        ),
        pytest.param(
            "def f(x):\n    return x * 2\n",
            "python",
            "def f(x):\n    return x * 2",
            id="unfenced-python",
        ),
        pytest.param(
            "    return x * 2\n", "python", "    return x * 2", id="unfenced-python-fragment"
        ),
        pytest.param(
            "const x = f(1);\n", "javascript", "const x = f(1);", id="unfenced-javascript"
        ),
    ],
)
def test_extract_code_block(
    answer: str, language_id: str | None, expected: str, syntax: Syntax
) -> None:
    assert extract_code_block(answer, language_id, syntax=syntax) == expected


@pytest.mark.parametrize(
    ("answer", "language_id", "reason"),
    [
        pytest.param("", "python", "is empty", id="empty"),
        pytest.param("  \n\n", "python", "is empty", id="blank"),
        pytest.param("<think>Let me think about", "python", "is empty", id="only-reasoning"),
        pytest.param("I cannot change this code.", "python", "no code block", id="prose"),
        pytest.param("Sure", "python", "no code block", id="one-word-parses-as-a-name"),
        pytest.param("Yes, done", "python", "no code block", id="words-parse-as-a-tuple"),
        pytest.param("Sure", "javascript", "no code block", id="one-word-javascript"),
        pytest.param("Here it is: x = 1", "python", "no code block", id="prose-and-code"),
        pytest.param("x = 1", "no-such-language", "no code block", id="unfenced-unknown-language"),
        pytest.param("x = 1", None, "no code block", id="unfenced-no-language"),
        pytest.param("```python\n```", "python", "code block is empty", id="empty-block"),
        pytest.param(
            "```python\n  \n\n```\nDone.", "python", "code block is empty", id="blank-block"
        ),
        pytest.param("```python", "python", "code block is empty", id="cut-after-the-fence"),
        pytest.param("```diff\n-x = 1\n+x = 2\n```", "python", "a diff", id="diff"),
    ],
)
def test_extract_code_block_refuses(
    answer: str, language_id: str | None, reason: str, syntax: Syntax
) -> None:
    with pytest.raises(AnswerRejected, match=reason):
        extract_code_block(answer, language_id, syntax=syntax)


@pytest.mark.parametrize(
    ("code", "indent", "newline", "expected"),
    [
        pytest.param(
            "x = 1\nif x:\n    y = 2\n",
            "    ",
            "\n",
            "    x = 1\n    if x:\n        y = 2\n",
            id="indent",
        ),
        pytest.param(
            "        a\n          b", "  ", "\n", "  a\n    b", id="common-indent-replaced"
        ),
        pytest.param("a\n   \nb\n", "\t", "\n", "\ta\n\n\tb\n", id="blank-lines-empty"),
        pytest.param("  a\r\n    b\r\n", "", "\r\n", "a\r\n  b\r\n", id="crlf"),
        pytest.param("a\nb\n", "", "\r\n", "a\r\nb\r\n", id="to-crlf"),
        pytest.param("a", "    ", "\n", "    a", id="no-trailing-newline-added"),
    ],
)
def test_reindent(code: str, indent: str, newline: str, expected: str) -> None:
    assert reindent(code, indent, newline=newline) == expected


@pytest.mark.parametrize(
    ("language_id", "before", "after"),
    [
        pytest.param("python", "def f():\n    return 1\n", "def f():\n    return 2\n", id="python"),
        pytest.param(
            "python",
            "def f(:\n    pass\nx = 1\n",
            "def f(:\n    pass\nx = 2\n",
            id="python-already-broken-not-worse",
        ),
        pytest.param(
            "python", "x = 1\n", "x = 1 is 1\ny = '\\d'\n", id="python-warnings-are-not-errors"
        ),
        pytest.param("javascript", "let a = 1;\n", "let a = 2;\n", id="javascript"),
        pytest.param("no-such-language", "ok", "((((", id="unknown-language"),
    ],
)
@pytest.mark.filterwarnings("error")
def test_check_parses_accepts(language_id: str, before: str, after: str, syntax: Syntax) -> None:
    check_parses(after, language_id, syntax=syntax, before=before)


@pytest.mark.parametrize(
    ("language_id", "before", "after", "reason"),
    [
        pytest.param(
            "python",
            "def f():\n    return 1\n",
            "def f():\n    return (1\n",
            r"does not parse: .* \(line 2\)",
            id="python",
        ),
        pytest.param(
            "python",
            "def f():\n    return 1\n",
            "def f():\n    return await g()\n",
            "'await' outside async function",
            id="python-compile-time-error",
        ),
        pytest.param(
            "python",
            "def f(:\n    pass\nx = 1\n",
            "def f(:\n    pass\nx = = 1\n",
            "adds 1 syntax error",
            id="python-already-broken-worse",
        ),
        pytest.param(
            "javascript",
            "let a = 1;\n",
            "let a = (1;\nif {\n",
            "adds .* syntax error",
            id="javascript",
        ),
    ],
)
def test_check_parses_rejects(
    language_id: str, before: str, after: str, reason: str, syntax: Syntax
) -> None:
    with pytest.raises(AnswerRejected, match=reason):
        check_parses(after, language_id, syntax=syntax, before=before)
