"""The answer to ``textDocument/codeAction``: which Zi actions fit a request.

Computed from the request alone (no model call, no job), so it is instant; each
offer's data is what ``ActionService.resolve`` needs later to compute the edit.
Python definitions are found with ``ast``: the docstring offer is for the innermost
definition around the cursor, the tests offer for a top-level function.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from typing import Any

from server.actions.types import DOCSTRING, IMPROVE, QUICKFIX, TESTS, ActionRequest, Offer

Definition = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef

_TITLE_CHARS = 80


def offers_for(request: ActionRequest) -> list[Offer]:
    doc = request.document
    base = {"uri": doc.uri, "version": doc.version}
    found: list[Offer] = []
    if _matches(QUICKFIX, request.only):
        for problem in request.problems:
            data = {
                **base,
                "zi": "fix",
                "start": problem.start_line,
                "end": problem.end_line + 1,
                "problem": describe(problem.message, problem.source, problem.code),
            }
            fix = _ready_fix(problem.data)
            if fix is not None:
                data["fix"] = fix
                replaces = problem.data.get("replaces")  # _ready_fix: data is a dict
                if isinstance(replaces, str):
                    data["replaces"] = replaces
            title = f"Fix with Zi: {_first_line(problem.message)}"
            found.append(Offer(title, QUICKFIX, data, problem.index))
    if doc.language_id == "python":
        nodes = definitions(doc.text)
        node = _innermost(nodes, request.start_line)
        if node is not None and _matches(DOCSTRING, request.only):
            first, end = span(node)
            data = {**base, "zi": "docstring", "start": first, "end": end}
            found.append(Offer(f"Generate docstring for `{node.name}`", DOCSTRING, data))
        function = _innermost(top_level_functions(nodes), request.start_line)
        if function is not None and doc.path is not None and _matches(TESTS, request.only):
            first, end = span(function)
            data = {**base, "zi": "tests", "start": first, "end": end, "name": function.name}
            found.append(Offer(f"Generate tests for `{function.name}`", TESTS, data))
    if not request.empty_selection and _matches(IMPROVE, request.only):
        data = {
            **base,
            "zi": "improve",
            "start": request.start_line,
            "end": request.end_line + 1,
        }
        found.append(Offer("Improve selection", IMPROVE, data))
    return found


def definitions(text: str) -> list[Definition]:
    """Every function and class definition of Python `text`; none if it does not parse."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    return [node for node in ast.walk(tree) if isinstance(node, Definition)]


def top_level_functions(nodes: Sequence[Definition]) -> list[Definition]:
    """The functions tests may be generated for: not classes, not nested."""
    return [n for n in nodes if not isinstance(n, ast.ClassDef) and n.col_offset == 0]


def span(node: Definition) -> tuple[int, int]:
    """Its lines, 0-based and end exclusive, decorators included."""
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
    return first, node.end_lineno or node.lineno


def describe(message: str, source: str | None, code: str | None) -> str:
    """A problem as the fix prompt names it: its message, then where it came from."""
    origin = " ".join(part for part in (source, code) if part)
    return f"{message} ({origin})" if origin else message


def _innermost(nodes: Sequence[Definition], line: int) -> Definition | None:
    """The smallest definition whose lines (decorators included) hold 0-based `line`."""
    best = None
    for node in nodes:
        first, end = span(node)
        if first <= line < end and (best is None or node.lineno >= best.lineno):
            best = node
    return best


def _matches(kind: str, only: tuple[str, ...] | None) -> bool:
    """LSP kinds are hierarchical: ``refactor`` asks for ``refactor.rewrite.zi.tests`` too."""
    return only is None or any(kind == o or kind.startswith(o + ".") for o in only)


def _first_line(message: str) -> str:
    line = message.strip().splitlines()[0] if message.strip() else "problem"
    return line if len(line) <= _TITLE_CHARS else line[: _TITLE_CHARS - 1] + "…"


def _ready_fix(data: Any) -> str | None:
    """A replacement carried by the diagnostic itself (e.g. Zi's own review findings)."""
    if isinstance(data, dict):
        fix = data.get("fix")
        if isinstance(fix, str):
            return fix
    return None
