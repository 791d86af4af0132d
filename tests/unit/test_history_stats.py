"""The pure parts of `zi-coder stats`: durations, percentiles, the text and JSON shapes."""

from __future__ import annotations

import argparse
from datetime import timedelta

import pytest

from server.commands.stats import masked, parse_duration
from server.history.stats import (
    Counts,
    LanguageStats,
    Latency,
    Stats,
    percentile,
    render_text,
    to_json,
)


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("30m", timedelta(minutes=30)),
        ("12h", timedelta(hours=12)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        (" 7D ", timedelta(days=7)),
    ],
)
def test_durations(text: str, delta: timedelta) -> None:
    assert parse_duration(text).delta == delta


@pytest.mark.parametrize("text", ["", "7", "d", "7 d", "1.5h", "-1d", "0m", "3y", "99999999w"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=repr(text)):
        parse_duration(text)


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [
        ([7.0], 0.5, 7.0),
        ([7.0], 0.9, 7.0),
        ([1.0, 2.0], 0.5, 1.5),
        ([1.0, 2.0, 3.0], 0.5, 2.0),
        ([10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0], 0.9, 91.0),
        ([20.0, 30.0, 40.0, 60.0, 100.0], 0.9, 84.0),
    ],
)
def test_percentiles_interpolate_between_ranks(
    values: list[float], fraction: float, expected: float
) -> None:
    assert percentile(values, fraction) == pytest.approx(expected)


def test_latency_of_nothing_has_no_figures() -> None:
    assert Latency.of([]) == Latency(count=0, median_ms=None, p90_ms=None)
    assert Latency.of([30.0, 10.0, 20.0]) == Latency(count=3, median_ms=20.0, p90_ms=28.0)


def _stats(*languages: LanguageStats) -> Stats:
    totals = sum((s.counts for s in languages), Counts())
    return Stats(totals, Latency.of([41.0]), Latency(), tuple(languages))


@pytest.mark.parametrize(
    ("counts", "line"),
    [
        (Counts(), "Acceptance rate: - (0 of 0 shown)"),
        (Counts(generated=1, shown=1, accepted=1), "Acceptance rate: 100.0 % (1 of 1 shown)"),
        (
            Counts(generated=4, shown=3, accepted=1, partially_accepted=1, rejected=1),
            "Acceptance rate: 66.7 % (2 of 3 shown)",
        ),
        (Counts(generated=8, shown=8, rejected=8), "Acceptance rate: 0.0 % (0 of 8 shown)"),
    ],
)
def test_the_acceptance_rate_line(counts: Counts, line: str) -> None:
    text = render_text(_stats(LanguageStats("python", counts)), url="sqlite://", period="all time")
    assert line in text.splitlines()


def test_the_text_report() -> None:
    stats = _stats(
        LanguageStats("typescriptreact", Counts(3, 2, 1, 0, 1, 12)),
        LanguageStats("go", Counts(1, 0, 0, 0, 0, 0)),
    )
    assert render_text(
        stats, url="sqlite:///h.db", period="all time", note="hello"
    ).splitlines() == [
        "Zi Coder stats: sqlite:///h.db (all time)",
        "Note: hello",
        "Completions generated: 4, shown: 2",
        "Completions shown: 2, accepted: 1, partially accepted: 0, rejected: 1, undecided: 0",
        "Acceptance rate: 50.0 % (1 of 2 shown)",
        "Characters accepted: 12",
        "Latency: median 41 ms, p90 41 ms (1 completions from the model)",
        "Time to first token: - (0 completions)",
        "By language (accepted: in full or in part):",
        "  typescriptreact     2 shown     1 accepted   50.0 %",
        "  go                  0 shown     0 accepted   -",
    ]


def test_the_json_report_of_nothing() -> None:
    assert to_json(Stats.empty(), url="sqlite://", since=None, note="none") == {
        "database": "sqlite://",
        "since": None,
        "note": "none",
        "generated": 0,
        "shown": 0,
        "accepted": 0,
        "partially_accepted": 0,
        "rejected": 0,
        "undecided": 0,
        "acceptance_rate": None,
        "characters_accepted": 0,
        "latency_ms": {"count": 0, "median": None, "p90": None},
        "first_token_ms": {"count": 0, "median": None, "p90": None},
        "languages": [],
    }


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://zi:pw@db:5432/zi", "postgresql+psycopg://zi:***@db:5432/zi"),
        ("sqlite:////home/me/history.sqlite3", "sqlite:////home/me/history.sqlite3"),
        ("not a url://zi:pw@db", "not a url://zi:***@db"),
    ],
)
def test_passwords_never_reach_the_output(url: str, shown: str) -> None:
    assert masked(url) == shown
