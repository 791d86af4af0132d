"""Tree-sitter helpers shared by the gate and post-processing.

Grammars come from ``tree-sitter-language-pack`` and load lazily, one parser per
language, on first use. Callers parse a *window* of the document around the
cursor rather than the whole file: a keystroke must not cost a parse of a
10 MB file, and a window that starts at a top-level line parses the same way.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tree_sitter import Node, Parser, Tree

log = logging.getLogger(__name__)

# LSP language ids that differ from tree-sitter-language-pack's names.
_GRAMMAR_NAMES = {
    "javascriptreact": "javascript",
    "typescriptreact": "tsx",
    "shellscript": "bash",
    "sh": "bash",
    "c++": "cpp",
    "cs": "csharp",
    "objective-c": "objc",
    "dockerfile": "dockerfile",
}

# Nodes whose absence of named children means "the user is about to write a body".
_BODY_FIELDS = ("body", "consequence", "alternative")


def _is_block(node: Node) -> bool:
    kind = node.type
    return (
        "block" in kind
        or kind.endswith("_body")
        or kind
        in {
            "compound_statement",
            "declaration_list",
            "field_declaration_list",
            "enum_body",
        }
    )


def _is_empty(node: Node) -> bool:
    return all(child.type == "comment" for child in node.named_children)


class Syntax:
    """Parsers by LSP language id, created on first use and reused (thread-safe)."""

    def __init__(self) -> None:
        self._parsers: dict[str, Parser | None] = {}
        self._lock = threading.Lock()

    def parser(self, language_id: str) -> Parser | None:
        name = _GRAMMAR_NAMES.get(language_id, language_id)
        with self._lock:
            if name not in self._parsers:
                self._parsers[name] = _load_parser(name)
            return self._parsers[name]

    def parse(self, language_id: str, text: str) -> Tree | None:
        parser = self.parser(language_id)
        return parser.parse(text.encode("utf-8", "surrogatepass")) if parser else None

    def error_count(self, language_id: str, text: str) -> int | None:
        """ERROR and MISSING nodes in `text`, or None when the language has no grammar."""
        tree = self.parse(language_id, text)
        if tree is None:
            return None
        return _count_errors(tree.root_node)

    def opens_empty_block(self, language_id: str, text: str, offset: int) -> bool | None:
        """Whether the code before `offset` ends with a block header whose body is empty.

        `text[:offset]` ends with a blank (or whitespace-only) line. Returns None when
        there is no grammar for the language, so the caller can fall back to text rules.
        """
        tree = self.parse(language_id, text)
        if tree is None:
            return None
        data = text[:offset].encode("utf-8", "surrogatepass")
        last = len(data.rstrip()) - 1
        node: Node | None = None
        while last >= 0:
            node = tree.root_node.descendant_for_byte_range(last, last + 1)
            if node is None or "comment" not in node.type:
                break
            # A comment under the header is not a body (tree-sitter-python even puts
            # it outside the empty block): look at the code before it.
            last = len(data[: node.start_byte].rstrip()) - 1
        if last < 0:
            return False
        for _ in range(4):
            if node is None:
                break
            if _is_block(node) and node.end_byte > last and _is_empty(node):
                return True
            # Bodies are named fields in most grammars, plain children in some
            # (Python's except and finally clauses).
            children = [node.child_by_field_name(f) for f in _BODY_FIELDS]
            children += [c for c in node.named_children if _is_block(c)]
            for child in children:
                if child is not None and child.start_byte >= last and _is_empty(child):
                    return True
            node = node.parent
        return False

    def in_comment_or_string(self, language_id: str, text: str, offset: int) -> bool:
        tree = self.parse(language_id, text)
        if tree is None:
            return False
        byte = len(text[:offset].encode("utf-8", "surrogatepass"))
        node: Node | None = tree.root_node.descendant_for_byte_range(max(byte - 1, 0), byte)
        while node is not None:
            if "comment" in node.type or node.type in {"string", "string_content"}:
                return True
            node = node.parent
        return False


def _count_errors(node: Node) -> int:
    if not node.has_error:
        return 0
    if node.is_error or node.is_missing:
        return 1
    return sum(_count_errors(child) for child in node.children)


def _load_parser(name: str) -> Parser | None:
    try:
        import tree_sitter_language_pack as pack

        get_parser: Any = pack.get_parser  # typed with a Literal of names; ours is a str
        parser: Parser = get_parser(name)
        return parser
    except (LookupError, ValueError, ImportError) as exc:
        log.info("no tree-sitter grammar for %r: %s", name, exc)
        return None
    except Exception as exc:  # a broken grammar must not break completions
        log.warning("loading tree-sitter grammar %r failed: %s", name, exc)
        return None
