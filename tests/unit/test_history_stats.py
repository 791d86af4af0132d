"""The pure parts of `zi-coder stats`: durations, percentiles, the text, JSON, SVG and HTML."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

import pytest

from server.commands.moments import parse_duration
from server.history import report_svg
from server.history.reading import masked
from server.history.report_html import render_html
from server.history.report_text import checkpoint_label, render_text
from server.history.stats import (
    Calls,
    Counts,
    Group,
    Histogram,
    Jobs,
    Kept,
    Latency,
    Stats,
    nice_step,
    percentile,
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
        ([7.0], 0.99, 7.0),
        ([1.0, 2.0], 0.5, 1.5),
        ([1.0, 2.0, 3.0], 0.5, 2.0),
        ([10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 90.0, 100.0], 0.9, 91.0),
        ([20.0, 30.0, 40.0, 60.0, 100.0], 0.9, 84.0),
        ([20.0, 30.0, 40.0, 60.0, 100.0], 0.99, 98.4),
    ],
)
def test_percentiles_interpolate_between_ranks(
    values: list[float], fraction: float, expected: float
) -> None:
    assert percentile(values, fraction) == pytest.approx(expected)


def test_latency_of_nothing_has_no_figures() -> None:
    assert Latency.of([]) == Latency(count=0, median_ms=None, p90_ms=None, p99_ms=None)
    latency = Latency.of([30.0, 10.0, 20.0])
    assert (latency.count, latency.median_ms, latency.p90_ms) == (3, 20.0, 28.0)
    assert latency.p99_ms == pytest.approx(29.8)


@pytest.mark.parametrize(
    ("raw", "step"),
    [(0.0, 1.0), (0.3, 0.5), (1.0, 1.0), (7.0, 10.0), (23.9, 25.0), (40.0, 50.0), (0.02, 0.02)],
)
def test_round_steps_for_bins_and_axes(raw: float, step: float) -> None:
    assert nice_step(raw) == pytest.approx(step)


@pytest.mark.parametrize(
    ("seconds", "label"),
    [(600, "after 10 min"), (120, "after 2 min"), (30, "after 30 s"), (90, "after 90 s")],
)
def test_checkpoint_labels(seconds: int, label: str) -> None:
    assert checkpoint_label(seconds) == label


# -- the text report ---------------------------------------------------------------------------


def _stats(*languages: Group, **figures: object) -> Stats:
    totals = sum((g.counts for g in languages), Counts())
    kept = sum((g.kept for g in languages), Kept())
    fields: dict[str, object] = {
        "totals": totals,
        "latency": Latency.of([41.0]),
        "first_token": Latency(),
        "languages": languages,
        "kept": kept,
        "sources": (("model", totals.generated),),
    }
    return Stats(**{**fields, **figures})  # type: ignore[arg-type]


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
    """VS Code's end-to-end test looks for the second of these, verbatim."""
    text = render_text(_stats(Group("python", counts)), url="sqlite://", period="all time")
    assert line in text.splitlines()


def test_the_text_report() -> None:
    stats = _stats(
        Group("typescriptreact", Counts(3, 2, 1, 0, 1, 12), Kept(1, 12, 9)),
        Group("go", Counts(1, 0, 0, 0, 0, 0)),
        checkpoint_s=600,
        documents_closed=2,
        sources=(("model", 2), ("shared_cache", 1), ("joined", 1)),
        typeahead=7,
        calls=(Calls("completion", "qwen-coder", 5, 1, 2, 500, 40, 3, 120.0),),
        jobs=(Jobs("review", "finished", 2, 2500.0),),
    )
    lines = render_text(stats, url="sqlite:///h.db", period="all time", note="hello").splitlines()

    assert lines[:12] == [
        "Zi Coder stats: sqlite:///h.db (all time)",
        "Note: hello",
        "Completions generated: 4, shown: 2",
        "Completions shown: 2, accepted: 1, partially accepted: 0, rejected: 1, undecided: 0",
        "Acceptance rate: 50.0 % (1 of 2 shown)",
        "Characters accepted: 12",
        "Latency: median 41 ms, p90 41 ms (1 completions from the model)",
        "Time to first token: - (0 completions)",
        "Characters kept after 10 min: 75.0 % (9 of 12 characters, 1 accepted suggestions; "
        "2 not judged, document closed)",
        "Cache hit rate: 50.0 % (2 of 4 without a model call: shared cache 1, joined 1)",
        "Answered by type-ahead: 7 requests (typing along a shown suggestion; not counted as "
        "suggestions)",
        "",
    ]
    rows = [" ".join(line.split()) for line in lines]
    assert rows[12:17] == [
        "By language (accepted: in full or in part)",
        "Language Shown Accepted Rate Chars accepted Kept after 10 min",
        "─" * 80,
        "typescriptreact 2 1 50.0 % 12 75.0 %",
        "go 0 0 - 0 -",
    ]
    assert "completion qwen-coder 5 1 2 120 ms" in rows
    assert "completion qwen-coder 500 40 3 of 5 calls" in rows  # the token sums: 3 calls'
    assert "review finished 2 2,500 ms" in rows
    assert all(line == line.rstrip() for line in lines)  # no padding left at line ends


def test_names_are_printed_as_they_are() -> None:
    """A language or model name is never read as rich markup."""
    stats = _stats(Group("[bold]x[/bold]", Counts(1, 1, 1, 0, 0, 3)))
    assert "[bold]x[/bold]" in render_text(stats, url="sqlite://", period="all time")


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
        "kept": {
            "checkpoint_s": None,
            "documents_closed": 0,
            "suggestions": 0,
            "characters": 0,
            "characters_kept": 0,
            "rate": None,
        },
        "sources": {},
        "cache_hit_rate": None,
        "answered_by_typeahead": 0,
        "latency_ms": {"count": 0, "median": None, "p90": None, "p99": None},
        "first_token_ms": {"count": 0, "median": None, "p90": None, "p99": None},
        "languages": [],
        "models": [],
        "days": [],
        "model_calls": [],
        "replays": [],
        "jobs": [],
    }


def test_the_json_since_is_utc() -> None:
    since = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert to_json(Stats.empty(), url="x", since=since)["since"] == "2026-01-02T03:04:05+00:00"


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


# -- SVG and HTML ------------------------------------------------------------------------------


def test_plots_escape_their_text_and_describe_themselves() -> None:
    svg = report_svg.rate_rows(
        ident="t",
        title="By <language>",
        description="a & b",
        labels=["<script>alert(1)</script>", "go"],
        rates=[0.5, None],
        notes=["50.0 %", "-"],
        x_label="Accepted / shown",
    )
    assert svg.startswith('<svg role="img" ')
    assert 'aria-labelledby="t-title t-desc"' in svg
    assert '<title id="t-title">By &lt;language&gt;</title>' in svg
    assert '<desc id="t-desc">a &amp; b</desc>' in svg
    assert "<script" not in svg and "&lt;script&gt;alert(1)&lt;/script&gt;" in svg
    assert svg.count("<rect") == 1  # no bar without a rate


def test_the_histogram_marks_its_percentiles() -> None:
    svg = report_svg.histogram(
        ident="h",
        title="Latency",
        description="d",
        width_ms=25.0,
        counts=[1, 3, 0, 2],
        overflow=1,
        marks=[("p50", 30.0), ("p99", 120.0)],
        x_label="ms",
        y_label="Completions",
    )
    assert svg.count("<rect") == 5
    assert "<title>25 to 50 ms: 3</title>" in svg
    assert "<title>100 ms or more: 1</title>" in svg
    assert ">p50 30 ms</text>" in svg and ">p99 120 ms</text>" in svg
    assert ">≥ 100</text>" in svg


def test_an_empty_page_says_there_is_nothing_to_plot() -> None:
    page = render_html(Stats.empty(), url="sqlite:///h.db", period="all time", note="no history")
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("nothing to plot") == 3 and "<svg" not in page
    assert "Note: no history" in page
    assert "http://" not in page and "https://" not in page


def test_a_page_with_figures() -> None:
    day = Group("2026-11-20", Counts(10, 8, 3, 1, 2, 50), Kept(3, 40, 30))
    stats = _stats(
        Group("<b>lang</b>", Counts(10, 8, 3, 1, 2, 50), Kept(3, 40, 30)),
        latency=Latency(6, 50.0, 550.0, 955.0),
        histogram=Histogram(25.0, (1, 2, 0), 3),
        days=(day,),
        checkpoint_s=600,
    )
    page = render_html(
        stats, url="sqlite:///h.db", period="all time", now=datetime(2026, 11, 21, tzinfo=UTC)
    )
    assert page.count("<svg") == 3
    assert "&lt;b&gt;lang&lt;/b&gt;" in page and "<b>lang" not in page
    assert "Made 2026-11-21 00:00 UTC" in page
    assert "Day (UTC, 2026)" in page


def test_the_text_shows_the_last_31_days() -> None:
    days = tuple(
        Group(f"2026-01-{d:02}" if d <= 31 else f"2026-02-{d - 31:02}", Counts(1, 1, 1, 0, 0, 1))
        for d in range(1, 41)
    )
    text = render_text(_stats(*days[:1], days=days), url="sqlite://", period="all time")
    lines = [" ".join(line.split()) for line in text.splitlines()]
    assert "2026-01-09 1 1 100.0 % 1 -" not in lines
    assert "2026-01-10 1 1 100.0 % 1 -" in lines and "2026-02-09 1 1 100.0 % 1 -" in lines
    assert "the last 31 of 40 days (all: --json, --html)" in lines
