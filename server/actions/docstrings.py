"""Put a model's docstring into the user's own definition, leaving the code untouched.

The model is asked for the whole definition with a docstring. Taking only the
docstring from its answer and inserting it ourselves means a model that also
"tidied" the code cannot change behaviour through a docstring action.
"""

from __future__ import annotations

import ast
import textwrap

from server.actions.answer import AnswerRejected
from server.actions.edits import split_lines

_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def _first_definition(source: str) -> ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef:
    tree = ast.parse(textwrap.dedent(source))
    for node in tree.body:
        if isinstance(node, _DEFINITIONS):
            return node
    raise ValueError("no function or class definition")


def docstring_of(answer_code: str) -> str:
    """The docstring of the first definition in the model's code."""
    try:
        node = _first_definition(answer_code)
    except (SyntaxError, ValueError) as exc:
        raise AnswerRejected(f"the model's answer is not a definition: {exc}") from None
    text = ast.get_docstring(node, clean=True)
    if not text or not text.strip():
        raise AnswerRejected("the model's answer has no docstring")
    return text.strip()


def insert_docstring(region: str, docstring: str) -> str:
    """`region` (a definition, at its own indentation) with `docstring` as its first
    statement, replacing a docstring it already has."""
    lines = split_lines(region)
    node = _first_definition(region)
    body = node.body[0]
    if body.lineno == node.lineno:
        raise ValueError("the definition's body is on its header line; put it on its own line")
    existing = (
        isinstance(body, ast.Expr)
        and isinstance(body.value, ast.Constant)
        and isinstance(body.value.value, str)
    )
    # ast line numbers count from the region's first line (dedent keeps the line count).
    first = body.lineno - 1
    indent = lines[first][: len(lines[first]) - len(lines[first].lstrip())]
    newline = "\r\n" if lines[first].endswith("\r\n") else "\n"
    rendered = _render(docstring, indent, newline)
    end = (body.end_lineno or body.lineno) if existing else first
    return "".join(lines[:first]) + rendered + "".join(lines[end:])


def _render(docstring: str, indent: str, newline: str) -> str:
    text = docstring.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    doc_lines = text.splitlines()
    if len(doc_lines) == 1:
        return f'{indent}"""{doc_lines[0]}"""{newline}'
    out = [f'{indent}"""{doc_lines[0]}{newline}']
    out += [f"{indent}{line}{newline}" if line else newline for line in doc_lines[1:]]
    out.append(f'{indent}"""{newline}')
    return "".join(out)
