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
# A degenerate model loops on a chunk. Short literal runs such as `[0, 0, 0, 0]`
# or a `# -----` rule need more copies, or have no word character at all.
_REPEATED_CHUNK = re.compile(r"(.{1,12}?)\1{3,}", re.DOTALL)


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


def cut_at_stops(raw: str, stops: tuple[str, ...]) -> str:
    """The text before the first end-of-answer string the server did not apply."""
    cut = len(raw)
    for stop in stops:
        if stop and (at := raw.find(stop)) >= 0:
            cut = min(cut, at)
    return raw[:cut]


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
    stack: list[str] = []
    unmatched: set[int] = set()
    for i, ch in enumerate(text):
        if ch in _OPEN:
            stack.append(ch)
        elif ch in _PAIRS:
            if stack and stack[-1] == _PAIRS[ch]:
                stack.pop()
            else:
                unmatched.add(i)
    if not unmatched:
        return text
    cut = len(text.rstrip())
    while cut > 0 and (text[cut - 1].isspace() or cut - 1 in unmatched):
        cut -= 1
    tail = "".join(ch for ch in text[cut:] if not ch.isspace())
    supplied = "".join(rest_of_line.split())[: len(tail)]
    if tail and supplied == tail:
        return text[:cut]
    return text


def is_repetitive(text: str) -> bool:
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    for i in range(len(lines) - 2):
        if lines[i] == lines[i + 1] == lines[i + 2]:
            return True
    if len(lines) >= 6 and len(set(lines)) * 3 <= len(lines):
        return True
    for match in _REPEATED_CHUNK.finditer(text):
        chunk, run = match.group(1), match.group(0)
        copies_needed = 6 if len(chunk) <= 3 else 4
        if (
            any(ch.isalnum() for ch in chunk)
            and len(run) // len(chunk) >= copies_needed
            and len(run) * 5 >= len(text.strip()) * 3
        ):
            return True
    return False


def continues_statement(line_before: str, text: str, rest_of_line: str) -> bool:
    """`f(a,` + `b,`: a one-line suggestion that leaves a call or literal open on purpose.

    Its parse has errors until the next lines exist, so the parse check cannot judge
    it. Only a clean opening counts: brackets match so far, one stays open, and the
    text ends where a statement goes on (an opener or a comma).
    """
    if not text.rstrip().endswith(("(", "[", "{", ",")):
        return False
    stack: list[str] = []
    for ch in line_before + text + rest_of_line:
        if ch in _OPEN:
            stack.append(ch)
        elif ch in _PAIRS and (not stack or stack.pop() != _PAIRS[ch]):
            return False  # a mismatch is an error, not a continuation
    return bool(stack)


def adds_parse_errors(syntax: Syntax, around: Surroundings, text: str) -> bool:
    with_completion = syntax.error_count(around.language_id, around.before + text + around.after)
    if not with_completion:
        return False  # clean (or no grammar): the usual case costs one parse, not two
    base = syntax.error_count(around.language_id, around.before + around.after)
    return base is not None and with_completion > base


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
    line_before = around.before[around.before.rfind("\n") + 1 :]
    if mode is Mode.SINGLE_LINE and continues_statement(line_before, text, around.rest_of_line):
        return text
    if adds_parse_errors(syntax, around, text):
        return None
    return text


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))
