"""Step 6, post-processing: turn raw model text into something worth showing.

Trim to the enclosing block, drop what the file already has after the cursor,
balance brackets against the suffix, drop empty or repetitive text, and reject a
completion that adds parse errors. Every function is pure; `clean` chains them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from server.completion.types import Mode
from server.syntax import Syntax

_PAIRS = {")": "(", "]": "[", "}": "{"}
_OPEN = frozenset("([{")
_REPEATED_CHUNK = re.compile(r"(.{1,12}?)\1{4,}", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Surroundings:
    """What the pipeline knows around the cursor, for cleaning a completion."""

    language_id: str
    before: str  # parse window text up to the cursor
    after: str  # parse window text from the cursor
    header_indent: int  # indentation of the line that opened the block (multi-line)

    @property
    def rest_of_line(self) -> str:
        return self.after.split("\n", 1)[0]


def first_line(raw: str) -> str:
    return raw.split("\n", 1)[0].rstrip()


def trim_to_block(raw: str, header_indent: int) -> str:
    """Keep lines until one dedents to the header's level (the block is over)."""
    lines = raw.split("\n")
    kept = [lines[0]]
    for line in lines[1:]:
        if line.strip() and _indent(line) <= header_indent:
            break
        kept.append(line)
    return "\n".join(kept).rstrip()


def block_is_complete(raw: str, header_indent: int) -> bool:
    """Streaming check: a later non-blank line has dedented, so stop reading."""
    return any(line.strip() and _indent(line) <= header_indent for line in raw.split("\n")[1:])


def drop_suffix_overlap(text: str, after: str) -> str:
    """Remove trailing lines the file already has right after the cursor."""
    suffix_lines = [line.strip() for line in after.split("\n")[1:] if line.strip()][:20]
    if not suffix_lines:
        return text
    lines = text.split("\n")
    # The model wrote its way into existing code: cut where the next existing line starts.
    anchor = suffix_lines[0]
    if len(anchor) >= 4:
        for i, line in enumerate(lines[1:], start=1):
            if line.strip() == anchor:
                return "\n".join(lines[:i]).rstrip()
    return text


def drop_rest_of_line_overlap(text: str, rest_of_line: str) -> str:
    """`foo(|)` + "a, b)" → "a, b": don't repeat what already follows the cursor."""
    rest = rest_of_line.strip()
    if rest and text.rstrip().endswith(rest):
        return text.rstrip()[: -len(rest)]
    return text


def balance_brackets(text: str, rest_of_line: str) -> str:
    """Drop unmatched trailing closers that the rest of the line already supplies."""
    depth: list[str] = []
    unmatched_tail = 0
    for ch in text:
        if ch in _OPEN:
            depth.append(ch)
            unmatched_tail = 0
        elif ch in _PAIRS:
            if depth and depth[-1] == _PAIRS[ch]:
                depth.pop()
                unmatched_tail = 0
            else:
                unmatched_tail += 1
        elif not ch.isspace():
            unmatched_tail = 0
    if not unmatched_tail:
        return text
    stripped = text.rstrip()
    tail = "".join(ch for ch in stripped[-unmatched_tail * 2 :] if ch in _PAIRS)[-unmatched_tail:]
    supplied = rest_of_line.lstrip()[: len(tail)]
    if tail and supplied == tail:
        return stripped[: len(stripped) - len(tail)]
    return text


def is_repetitive(text: str) -> bool:
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    for i in range(len(lines) - 2):
        if lines[i] == lines[i + 1] == lines[i + 2]:
            return True
    if len(lines) >= 6 and len(set(lines)) * 3 <= len(lines):
        return True
    match = _REPEATED_CHUNK.search(text)
    return match is not None and len(match.group(0)) * 2 >= len(text.strip()) > 8


def adds_parse_errors(syntax: Syntax, around: Surroundings, text: str) -> bool:
    base = syntax.error_count(around.language_id, around.before + around.after)
    if base is None:
        return False
    with_completion = syntax.error_count(around.language_id, around.before + text + around.after)
    return with_completion is not None and with_completion > base


def clean(raw: str, *, mode: Mode, around: Surroundings, syntax: Syntax) -> str | None:
    """The text to show, or None when nothing worth showing is left."""
    if mode is Mode.SINGLE_LINE:
        text = first_line(raw)
        text = drop_rest_of_line_overlap(text, around.rest_of_line)
    else:
        text = trim_to_block(raw, around.header_indent)
        text = drop_suffix_overlap(text, around.after)
    text = balance_brackets(text, around.rest_of_line)
    if not text.strip() or is_repetitive(text):
        return None
    if adds_parse_errors(syntax, around, text):
        return None
    return text


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))
