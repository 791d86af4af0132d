"""Step 1, the gate: whether to complete here at all, and how much.

No request in the middle of a word, nor mid-line unless the rest of the line is
only closers and punctuation (``foo(|)`` completes, ``fo|o`` does not). The mode
comes from the syntax tree: a blank line under a block header with an empty body
asks for a multi-line block; anything else (an expression, a statement, a
comment) gets one line.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.completion.types import Mode
from server.syntax import Syntax

# What may follow the cursor on its line without blocking a completion.
_TRAILING_OK = frozenset(")]}>\"'`;:,. \t\r")
_OPENERS = (":", "{", "(", "[", "=>", "->")

# Parse windows: enough code for the enclosing construct, bounded per keystroke.
_WINDOW_LINES_BEFORE = 400
_WINDOW_LINES_AFTER = 100


@dataclass(frozen=True, slots=True)
class Window:
    """A slice of the document around the cursor that parses like the whole file."""

    start: int
    end: int

    def before(self, text: str, offset: int) -> str:
        return text[self.start : offset]

    def after(self, text: str, offset: int) -> str:
        return text[offset : self.end]


def line_bounds(text: str, offset: int) -> tuple[int, int]:
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    return start, len(text) if end < 0 else end


def allows(text: str, offset: int) -> bool:
    """False in the middle of a word or before real code on the same line."""
    _, line_end = line_bounds(text, offset)
    rest = text[offset:line_end]
    if rest[:1].isalnum() or rest[:1] == "_":
        return False
    return all(ch in _TRAILING_OK for ch in rest)


def parse_window(text: str, offset: int) -> Window:
    """The top-level construct around the cursor: from the nearest top-level line above
    to the next one below (each bounded), so a keystroke parses a function, not a file."""
    start = text.rfind("\n", 0, offset) + 1
    for _ in range(_WINDOW_LINES_BEFORE):
        if start == 0:
            break
        head = text[start : start + 1]
        if head and not head.isspace() and head not in "})]" and not _continues(text, start):
            break
        start = text.rfind("\n", 0, start - 1) + 1
    end = text.find("\n", offset)
    end = len(text) if end < 0 else end
    for _ in range(_WINDOW_LINES_AFTER):
        if end >= len(text):
            break
        head = text[end + 1 : end + 2]
        if head and not head.isspace() and head not in "})]" and not _continues(text, end + 1):
            break  # the next top-level construct starts here
        nxt = text.find("\n", end + 1)
        end = len(text) if nxt < 0 else nxt
    return Window(start=start, end=end)


_CONTINUATIONS = ("else", "elif", "except", "finally", "catch")


def _continues(text: str, start: int) -> bool:
    """A top-level line that continues the statement above (`else:`), so not a start."""
    word = text[start : start + 8].split(None, 1)[0].rstrip(":{") if text[start : start + 1] else ""
    return word in _CONTINUATIONS


def decide_mode(syntax: Syntax, language_id: str, text: str, offset: int) -> Mode:
    line_start, line_end = line_bounds(text, offset)
    if text[line_start:offset].strip() or text[offset:line_end].strip():
        return Mode.SINGLE_LINE  # inside a statement, an expression or a comment
    window = parse_window(text, offset)
    local = text[window.start : window.end]
    empty_block = syntax.opens_empty_block(language_id, local, offset - window.start)
    if empty_block is None:
        empty_block = _opens_empty_block_by_text(text, offset)
    return Mode.MULTI_LINE if empty_block else Mode.SINGLE_LINE


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


def _opens_empty_block_by_text(text: str, offset: int) -> bool:
    """Fallback without a grammar: the last code line opens a block and nothing is under it."""
    head = text[:offset].rstrip()
    if not head.endswith(_OPENERS):
        return False
    header = head[head.rfind("\n") + 1 :]
    for line in text[offset:].split("\n", 20)[1:20]:
        if line.strip():
            return _indent(line) <= _indent(header)
    return True
