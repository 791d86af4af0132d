"""Changed lines since the last review, and review findings carried across edits."""

from __future__ import annotations

import pytest

from server.diagnostics.changes import carry_over, changed_regions, in_regions, opcodes
from server.diagnostics.types import Diagnostic, Severity

BASE = "".join(f"line {i}\n" for i in range(1, 11))  # "line 1\n" .. "line 10\n"


def edit(text: str, number: int, new: str) -> str:
    """`text` with its line `number` (1-based) replaced by `new` (lines with endings)."""
    lines = text.splitlines(keepends=True)
    return "".join(lines[: number - 1]) + new + "".join(lines[number:])


@pytest.mark.parametrize(
    ("old", "new", "regions"),
    [
        pytest.param(None, BASE, [(1, 10)], id="never-reviewed"),
        pytest.param(None, "", [(1, 1)], id="never-reviewed-empty"),
        pytest.param(BASE, BASE, [], id="unchanged"),
        pytest.param(BASE, edit(BASE, 4, "line four\n"), [(4, 4)], id="one-line"),
        pytest.param(BASE, edit(BASE, 4, "line 4\nnew a\nnew b\n"), [(5, 6)], id="insertion"),
        pytest.param(BASE, edit(BASE, 4, ""), [(4, 4)], id="deletion-marks-next-line"),
        pytest.param(BASE, edit(BASE, 10, ""), [(9, 9)], id="deletion-at-end-clamped"),
        pytest.param(
            BASE, edit(edit(BASE, 3, "x\n"), 8, "y\n"), [(3, 3), (8, 8)], id="two-regions"
        ),
        pytest.param(BASE, edit(edit(BASE, 3, "x\n"), 4, "y\n"), [(3, 4)], id="adjacent-merged"),
        pytest.param(BASE, edit(BASE, 2, "line 2\r\n"), [(2, 2)], id="line-ending-changed"),
        pytest.param(BASE, "", [(1, 1)], id="everything-deleted"),
        pytest.param("a\rb\rc\r", "a\rB\rc\r", [(2, 2)], id="cr-lines-as-lsp-counts"),
    ],
)
def test_changed_regions(old: str | None, new: str, regions: list[tuple[int, int]]) -> None:
    assert changed_regions(old, new) == regions


def test_a_repeated_line_does_not_confuse_the_diff() -> None:
    old = "pass\n" * 300
    new = "pass\n" * 150 + "x = 1\n" + "pass\n" * 150
    assert changed_regions(old, new) == [(151, 151)]


def review(line: int, end_line: int | None = None, col: int = 4) -> Diagnostic:
    """A review diagnostic on 0-based lines [line, end_line]."""
    return Diagnostic(
        start_line=line,
        start_col=col,
        end_line=line if end_line is None else end_line,
        end_col=6,
        severity=Severity.WARNING,
        message=f"finding on line {line + 1}",
        source="zi-review",
        code="bug",
        data={"category": "bug", "fix": "line X\n"},
    )


def lines_of(diagnostics: list[Diagnostic]) -> list[tuple[int, int]]:
    return [(d.start_line, d.end_line) for d in diagnostics]


def test_findings_below_an_insertion_move_down_with_their_lines() -> None:
    new = edit(BASE, 2, "line 2\ninserted\ninserted too\n")
    moved = carry_over([review(0), review(5, 6)], BASE, new)
    assert lines_of(moved) == [(0, 0), (7, 8)]
    assert moved[1].message == "finding on line 6" and moved[1].data == review(5).data
    assert (moved[1].start_col, moved[1].end_col) == (4, 6)


def test_findings_below_a_deletion_move_up() -> None:
    assert lines_of(carry_over([review(8)], BASE, edit(BASE, 3, ""))) == [(7, 7)]


def test_findings_on_changed_lines_are_dropped() -> None:
    new = edit(BASE, 5, "line five\n")
    kept = carry_over([review(4), review(3, 5), review(6)], BASE, new)
    assert lines_of(kept) == [(6, 6)]


def test_a_finding_across_an_insertion_is_dropped() -> None:
    new = edit(BASE, 5, "line 5\nin between\n")
    assert carry_over([review(4, 5)], BASE, new) == []


def test_nothing_changed_keeps_everything() -> None:
    findings = [review(0), review(2, 4), review(9)]
    assert carry_over(findings, BASE, BASE) == findings


@pytest.mark.parametrize(
    ("start", "end", "regions", "inside"),
    [
        (4, 4, [(5, 5)], True),
        (3, 3, [(5, 5)], False),
        (5, 5, [(5, 5)], False),
        (2, 6, [(5, 5)], True),
        (0, 0, [(3, 4), (1, 1)], True),
        (9, 9, [], False),
    ],
)
def test_in_regions_is_an_overlap_of_0_and_1_based_lines(
    start: int, end: int, regions: list[tuple[int, int]], inside: bool
) -> None:
    assert in_regions(review(start, end), regions) is inside


def test_opcodes_skip_the_common_head_and_tail_and_still_describe_the_edit() -> None:
    import random

    rng = random.Random(5)
    words = ["a\n", "b\n", "c\n", "pass\n", "\n", "x = 1\n"]
    for _ in range(300):
        a = [rng.choice(words) for _ in range(rng.randint(0, 30))]
        b = list(a)
        for _ in range(rng.randint(0, 3)):
            at = rng.randint(0, len(b))
            b[at : at + rng.randint(0, 2)] = [rng.choice(words) for _ in range(rng.randint(0, 2))]
        rebuilt: list[str] = []
        for tag, i1, i2, j1, j2 in opcodes(a, b):
            if tag == "equal":
                assert a[i1:i2] == b[j1:j2]
                rebuilt += a[i1:i2]
            else:
                rebuilt += b[j1:j2]
        assert rebuilt == b


def test_one_edited_line_in_a_long_file_is_found_exactly() -> None:
    old = "".join(f"line_{i} = {i}\n" for i in range(5000))
    new = old.replace("line_2500 = 2500\n", "line_2500 = -1\n")
    assert changed_regions(old, new) == [(2501, 2501)]


def test_edits_far_apart_in_a_huge_file_mark_everything_between_as_changed() -> None:
    lines = ["}\n", "\n", "    return x\n"] * 4000
    old = "".join(lines)
    new_lines = list(lines)
    new_lines[10] = "changed\n"
    new_lines[-10] = "changed too\n"
    regions = changed_regions(old, "".join(new_lines))
    assert regions == [(11, len(lines) - 9)]
