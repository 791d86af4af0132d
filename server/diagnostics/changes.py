"""Which lines changed since the last review, and carrying its findings across edits.

A review is slow and costs model time, so on save only the changed lines are
reviewed (the rest of the file is context), and the findings of the previous
review that sit on untouched lines are kept, moved to where those lines are now.
Lines are compared as LSP numbers them (``split_lines``), line endings included.
"""

from __future__ import annotations

import dataclasses
from difflib import SequenceMatcher

from server.actions.edits import split_lines
from server.diagnostics.types import Diagnostic


def changed_regions(old: str | None, new: str) -> list[tuple[int, int]]:
    """The 1-based inclusive line ranges of `new` that differ from `old`, merged.

    No `old` (never reviewed): the whole file. Deleted lines mark the line now at
    the place they were taken from, so the code around a deletion is reviewed.
    """
    new_lines = split_lines(new)
    last = max(1, len(new_lines))
    if old is None:
        return [(1, last)]
    spans: list[tuple[int, int]] = []
    for tag, _i1, _i2, j1, j2 in opcodes(split_lines(old), new_lines):
        if tag == "equal":
            continue
        if j1 == j2:  # a pure deletion
            line = min(j1 + 1, last)
            spans.append((line, line))
        else:
            spans.append((j1 + 1, j2))
    return _merged(spans)


Opcode = tuple[str, int, int, int, int]

# Beyond this many line pairs between the first and the last edit, lines are not matched:
# SequenceMatcher without autojunk takes ~1 s on 3,000 x 3,000 lines full of repeats.
MAX_MATCHED = 1_000_000


def opcodes(a: list[str], b: list[str]) -> list[Opcode]:
    """difflib's opcodes from `a` to `b`, with the common head and tail skipped first.

    A save usually changes a few lines of a long file: comparing only the middle
    keeps a 5,000-line file at a few ms instead of ~200 ms (SequenceMatcher without
    autojunk is quadratic-ish in what it is given).
    """
    shortest = min(len(a), len(b))
    head = 0
    while head < shortest and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < shortest - head and a[len(a) - 1 - tail] == b[len(b) - 1 - tail]:
        tail += 1
    found: list[Opcode] = [("equal", 0, head, 0, head)] if head else []
    a_mid, b_mid = a[head : len(a) - tail], b[head : len(b) - tail]
    if len(a_mid) * len(b_mid) > MAX_MATCHED:
        # Edits far apart in a big file: call everything between them changed rather
        # than spend seconds matching (their findings are dropped, the lines re-reviewed).
        found.append(("replace", head, len(a) - tail, head, len(b) - tail))
    else:
        middle = SequenceMatcher(None, a_mid, b_mid, autojunk=False)
        for tag, i1, i2, j1, j2 in middle.get_opcodes():
            if i1 != i2 or j1 != j2:
                found.append((tag, i1 + head, i2 + head, j1 + head, j2 + head))
    if tail:
        found.append(("equal", len(a) - tail, len(a), len(b) - tail, len(b)))
    return found


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def carry_over(diagnostics: list[Diagnostic], old: str, new: str) -> list[Diagnostic]:
    """Diagnostics computed on `old`, moved onto `new`.

    One is kept only when all its lines are in a block of lines that did not
    change; it moves with that block (columns unchanged). One touching a changed
    line is dropped: the code it was about is gone or different.
    """
    ops = opcodes(split_lines(old), split_lines(new))
    blocks = [(i1, i2, j1) for tag, i1, i2, j1, _j2 in ops if tag == "equal"]
    moved: list[Diagnostic] = []
    for d in diagnostics:
        for i1, i2, j1 in blocks:
            if i1 <= d.start_line and d.end_line < i2:
                shift = j1 - i1
                moved.append(
                    dataclasses.replace(
                        d, start_line=d.start_line + shift, end_line=d.end_line + shift
                    )
                )
                break
    return moved


def in_regions(d: Diagnostic, regions: list[tuple[int, int]]) -> bool:
    """Whether `d` (0-based lines) overlaps one of `regions` (1-based, inclusive)."""
    return any(d.start_line <= end - 1 and start - 1 <= d.end_line for start, end in regions)
