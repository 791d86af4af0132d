"""Static diagnostics, published on open and save: syntax errors and lint.

Every language with a tree-sitter grammar gets its syntax errors, one per
outermost ERROR node and one per MISSING node; Python also gets ruff's or
pyflakes' findings (``linters``). Both run on the whole document, so they must
stay cheap: the tree walk only descends into subtrees that contain an error, and
positions are only computed for the nodes reported.

Binary files (a NUL or mostly control characters near the start) get nothing:
their "syntax errors" would be noise, thousands of them.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from server.diagnostics.linters import (
    char_col,
    is_syntax_error,
    line_texts,
    lint_python,
    widen,
)
from server.diagnostics.types import Diagnostic, Severity

if TYPE_CHECKING:
    from tree_sitter import Node, Point

    from server.syntax import Syntax

_SAMPLE_CHARS = 8192
_BINARY_SHARE = 0.3
# Controls other than \t \n \f \r, C1 controls, U+FFFD and lone surrogates (what is
# left of bytes that were not utf-8).
_BINARYISH = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ufffd\ud800-\udfff]")
_TOKEN_CHARS = 30
_LONE_CR = re.compile(r"\r(?!\n)")


def looks_binary(text: str) -> bool:
    """Whether `text` is not source code: a NUL, or >30% control chars near the start."""
    sample = text[:_SAMPLE_CHARS]
    if "\x00" in sample:
        return True
    return len(_BINARYISH.findall(sample)) > _BINARY_SHARE * len(sample) > 0


def static_diagnostics(
    syntax: Syntax, language_id: str, text: str, *, path: str | None, linter: str = "auto"
) -> list[Diagnostic]:
    """Syntax errors, plus lint for Python, sorted by position; [] for binary text.

    For Python the linter's parser (ruff's, or CPython's under pyflakes) decides
    whether there are syntax errors, and tree-sitter only parses when it found
    some: tree-sitter-python accepts some invalid code and lags behind new
    syntax, so it would add nothing but false errors, and a valid file (most
    saves) costs no second parse. When both report syntax errors, tree-sitter's
    stay (they are all there, not only the first) and the linter's go.
    """
    if looks_binary(text):
        return []
    if language_id != "python" or linter == "off":
        return sorted(syntax_errors(syntax, language_id, text) or [], key=_order)
    linted = lint_python(text, path=path, linter=linter)
    if not any(is_syntax_error(d) for d in linted):
        return sorted(linted, key=_order)
    errors = syntax_errors(syntax, language_id, text) or []
    found = errors + [d for d in linted if not (errors and is_syntax_error(d))]
    return sorted(found, key=_order)


def syntax_errors(
    syntax: Syntax, language_id: str, text: str, *, limit: int = 100
) -> list[Diagnostic] | None:
    """tree-sitter's syntax errors in `text`, or None when the language has no grammar."""
    if "\r" in text:
        # tree-sitter ends lines only at \n, LSP also at a lone \r: make it a \n, the
        # same length, so that rows are LSP's lines and offsets do not move.
        text = _LONE_CR.sub("\n", text)
    tree = syntax.parse(language_id, text)
    if tree is None:
        return None
    nodes = _error_nodes(tree.root_node, limit)
    if not nodes:
        return []
    lines = line_texts(text)
    return [_diagnostic(node, lines) for node in nodes]


def _error_nodes(root: Node, limit: int) -> list[Node]:
    """Outermost ERROR nodes and MISSING nodes, in document order, at most `limit`."""
    found: list[Node] = []
    if not root.has_error or limit <= 0:
        return found
    cursor = root.walk()
    while True:
        node = cursor.node
        descend = False
        if node is not None:
            if node.is_error or node.is_missing:
                found.append(node)
                if len(found) >= limit:
                    return found
            else:
                descend = node.has_error
        if descend and cursor.goto_first_child():
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                return found


def _position(lines: list[str], point: Point) -> tuple[int, int]:
    """A tree-sitter point (row, utf-8 byte column) as (line, code-point column)."""
    line = min(point.row, len(lines) - 1)
    return line, char_col(lines[line], point.column)


def _diagnostic(node: Node, lines: list[str]) -> Diagnostic:
    start_line, start_col = _position(lines, node.start_point)
    end_line, end_col = _position(lines, node.end_point)
    if (end_line, end_col) <= (start_line, start_col):  # MISSING nodes are empty
        end_line = start_line
        start_col, end_col = widen(lines[start_line], start_col)
    if node.is_missing:
        message = f"missing `{node.type}`"
    else:
        token = _first_token(node)
        message = f"syntax error: unexpected `{token}`" if token else "syntax error"
    return Diagnostic(
        start_line, start_col, end_line, end_col, Severity.ERROR, message, "tree-sitter", "syntax"
    )


def _first_token(node: Node) -> str:
    """The error's first token (or, without one, its first word), short and on one line."""
    leaf = node
    while True:
        children = (leaf.child(i) for i in range(leaf.child_count))
        child = next((c for c in children if c is not None and c.end_byte > c.start_byte), None)
        if child is None:
            break
        leaf = child
    text = (leaf.text or b"").decode("utf-8", "replace")  # "replace": no lone surrogates
    words = text.split(maxsplit=1) if leaf is node else text.strip().splitlines()
    token = words[0].strip() if words else ""
    return token if len(token) <= _TOKEN_CHARS else token[:_TOKEN_CHARS] + "…"


def _order(d: Diagnostic) -> tuple[int, int, int, int, int, str, str]:
    return (d.start_line, d.start_col, d.end_line, d.end_col, d.severity, d.source, d.message)
