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
    matcher = SequenceMatcher(None, split_lines(old), new_lines, autojunk=False)
    spans: list[tuple[int, int]] = []
    for tag, _i1, _i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        if j1 == j2:  # a pure deletion
            line = min(j1 + 1, last)
            spans.append((line, line))
        else:
            spans.append((j1 + 1, j2))
    return _merged(spans)


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
    matcher = SequenceMatcher(None, split_lines(old), split_lines(new), autojunk=False)
    blocks = [(i1, i2, j1) for tag, i1, i2, j1, _j2 in matcher.get_opcodes() if tag == "equal"]
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
