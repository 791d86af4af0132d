"""The text report of ``zi-coder stats``: summary lines, then tables (rich).

The summary lines come first and never change shape: VS Code's "Zi: Show
Completion Stats" shows this output in an editor, and its end-to-end test looks
for ``Acceptance rate: 100.0 % (1 of 1 shown)``. They are written unwrapped. The
tables follow; on a terminal rich draws them in colour at the terminal's width,
piped (the editor, a file) the same characters without colour codes at
:data:`PIPED_WIDTH` columns. rich is imported only here, when a report is drawn.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING

from server.history.stats import Calls, Counts, Group, Kept, Latency, Stats

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

PIPED_WIDTH = 100
MAX_DAYS = 31  # the text shows the last days; --json and --html have them all
SOURCE_NAMES = {"shared_cache": "shared cache", "joined": "joined"}


def render_text(
    stats: Stats, *, url: str, period: str, note: str | None = None, width: int = PIPED_WIDTH
) -> str:
    """The report as plain text (no colour codes), tables `width` columns wide at most."""
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(
        file=buffer, width=width, force_terminal=False, color_system=None, highlight=False
    )
    write_text(console, stats, url=url, period=period, note=note)
    return "\n".join(line.rstrip() for line in buffer.getvalue().rstrip().splitlines())


def write_text(
    console: Console, stats: Stats, *, url: str, period: str, note: str | None = None
) -> None:
    for line in summary_lines(stats, url=url, period=period, note=note):
        console.out(line, highlight=False)
    if not stats.totals.generated:
        console.out("By language: none", highlight=False)
    kept_label = kept_column(stats.checkpoint_s)
    groups = (
        ("By language (accepted: in full or in part)", "Language", stats.languages),
        ("By model", "Model", stats.models),
        ("By day (UTC)", "Day", stats.days[-MAX_DAYS:]),
    )
    tables: list[Table] = []
    for title, first, rows in groups:
        caption = None
        if first == "Day" and len(stats.days) > MAX_DAYS:
            caption = f"the last {MAX_DAYS} of {len(stats.days)} days (all: --json, --html)"
        if rows:
            tables.append(_group_table(title, first, rows, kept_label, caption))
    if stats.latency.count:
        tables.append(_latency_table(stats))
    if stats.calls:
        tables += _calls_tables("Model calls", "model calls", stats.calls)
    if stats.replays:
        title = "Replays (zi-coder replay; not counted above)"
        tables += _calls_tables(title, "replays", stats.replays)
    if stats.jobs:
        tables.append(_jobs_table(stats))
    for table in tables:
        console.line()
        console.print(table)


# -- the summary lines ---------------------------------------------------------------------


def summary_lines(stats: Stats, *, url: str, period: str, note: str | None = None) -> list[str]:
    t = stats.totals
    lines = [f"Zi Coder stats: {url} ({period})"]
    if note:
        lines.append(f"Note: {note}")
    lines += [
        f"Completions generated: {t.generated}, shown: {t.shown}",
        f"Completions shown: {t.shown}, accepted: {t.accepted}, "
        f"partially accepted: {t.partially_accepted}, rejected: {t.rejected}, "
        f"undecided: {t.undecided}",
        f"Acceptance rate: {rate(t.acceptance_rate)} ({t.taken} of {t.shown} shown)",
        f"Characters accepted: {t.characters_accepted}",
        f"Latency: {_latency(stats.latency)} ({stats.latency.count} completions from the model)",
        f"Time to first token: {_latency(stats.first_token)} "
        f"({stats.first_token.count} completions)",
        kept_line(stats),
        cache_line(stats),
        typeahead_line(stats),
    ]
    return lines


def kept_line(stats: Stats) -> str:
    if stats.checkpoint_s is None:
        return "Characters kept: - (no survival checks recorded)"
    k = stats.kept
    closed = f"; {stats.documents_closed} not judged, document closed" * bool(
        stats.documents_closed
    )
    return (
        f"Characters kept {checkpoint_label(stats.checkpoint_s)}: {rate(k.rate)} "
        f"({k.characters_kept} of {k.characters} characters, "
        f"{k.suggestions} accepted suggestions{closed})"
    )


def cache_line(stats: Stats) -> str:
    generated = stats.totals.generated
    parts = [
        f"{SOURCE_NAMES.get(source, source)} {n}"
        for source, n in stats.sources
        if source != "model"
    ]
    detail = f": {', '.join(parts)}" if parts else ""
    return (
        f"Cache hit rate: {rate(stats.cache_hit_rate)} ({stats.cache_hits} of {generated} "
        f"without a model call{detail})"
    )


def typeahead_line(stats: Stats) -> str:
    return (
        f"Answered by type-ahead: {stats.typeahead} requests "
        "(typing along a shown suggestion; not counted as suggestions)"
    )


def kept_column(seconds: int | None) -> str:
    return "Kept" if seconds is None else f"Kept {checkpoint_label(seconds)}"


def checkpoint_label(seconds: int | None) -> str:
    """``after 10 min``, ``after 30 s``; ``-`` without a checkpoint."""
    if seconds is None:
        return "-"
    if seconds % 60 == 0 and seconds >= 60:
        return f"after {seconds // 60} min"
    return f"after {seconds} s"


def rate(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def _latency(latency: Latency) -> str:
    if latency.median_ms is None or latency.p90_ms is None:
        return "-"
    return f"median {latency.median_ms:.0f} ms, p90 {latency.p90_ms:.0f} ms"


# -- the tables --------------------------------------------------------------------------


def _table(title: str, columns: list[str], caption: str | None = None, *, text: int = 1) -> Table:
    """A table whose first `text` columns are words (left), the others figures (right)."""
    from rich import box
    from rich.table import Table

    table = Table(
        title=title,
        caption=caption,
        title_justify="left",
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        title_style="bold",
        header_style="bold cyan",
        pad_edge=False,
    )
    for index, name in enumerate(columns):
        words = index < text
        table.add_column(name, justify="left" if words else "right", no_wrap=not words)
    return table


def _cells(*values: str) -> list[Text]:
    from rich.text import Text

    return [Text(value) for value in values]  # never markup: names are the user's


def _group_table(
    title: str, first: str, groups: tuple[Group, ...], kept_label: str, caption: str | None
) -> Table:
    columns = [first, "Shown", "Accepted", "Rate", "Chars accepted", kept_label]
    table = _table(title, columns, caption)
    for group in groups:
        table.add_row(*_cells(group.name, *_group_figures(group.counts, group.kept)))
    return table


def _group_figures(counts: Counts, kept: Kept) -> list[str]:
    return [
        f"{counts.shown:,}",
        f"{counts.taken:,}",
        rate(counts.acceptance_rate),
        f"{counts.characters_accepted:,}",
        rate(kept.rate),
    ]


def _latency_table(stats: Stats) -> Table:
    table = _table(LATENCY_TITLE, LATENCY_HEADERS)
    for row in latency_rows(stats):
        table.add_row(*_cells(*row))
    return table


def _calls_tables(title: str, what: str, calls: tuple[Calls, ...]) -> list[Table]:
    """The calls, then their tokens: one table of all of it would not fit in 100 columns."""
    rows = calls_rows(calls)
    tables = []
    for name, columns, caption in (
        (title, _CALL_COLUMNS, CALLS_CAPTION),
        (f"Tokens of the {what}", _TOKEN_COLUMNS, TOKENS_CAPTION),
    ):
        table = _table(name, [CALLS_HEADERS[i] for i in columns], caption, text=2)
        for row in rows:
            table.add_row(*_cells(*(row[i] for i in columns)))
        tables.append(table)
    return tables


def _jobs_table(stats: Stats) -> Table:
    table = _table("Jobs", ["Kind", "Status", "Jobs", "Mean duration"], text=2)
    for j in stats.jobs:
        table.add_row(*_cells(j.kind, j.status, f"{j.count:,}", ms(j.mean_duration_ms)))
    return table


# -- rows both reports show ----------------------------------------------------------------

LATENCY_TITLE = "Latency of model-served completions"
LATENCY_HEADERS = ["", "Completions", "p50", "p90", "p99"]
CALLS_HEADERS = [
    *("Kind", "Model", "Calls", "Errors", "Cancelled", "Mean"),
    *("Prompt tokens", "Output tokens", "Tokens reported by"),
]
CALLS_CAPTION = "Cancelled: superseded while typing; not errors, not in the mean."
TOKENS_CAPTION = "Sums of the calls that reported usage (a stream read to its end)."
_CALL_COLUMNS = (0, 1, 2, 3, 4, 5)
_TOKEN_COLUMNS = (0, 1, 6, 7, 8)


def latency_rows(stats: Stats) -> list[list[str]]:
    return [
        [name, f"{lat.count:,}", ms(lat.median_ms), ms(lat.p90_ms), ms(lat.p99_ms)]
        for name, lat in (("Total", stats.latency), ("First token", stats.first_token))
    ]


def calls_rows(calls: Sequence[Calls]) -> list[list[str]]:
    """One row per kind and model, :data:`CALLS_HEADERS`' cells. The token sums are
    those of the calls that reported usage (a stream stopped early reports none)."""
    return [
        [
            c.kind,
            c.model,
            f"{c.calls:,}",
            f"{c.errors:,}",
            f"{c.cancelled:,}",
            ms(c.mean_ms),
            f"{c.prompt_tokens:,}",
            f"{c.completion_tokens:,}",
            f"{c.with_tokens:,} of {c.calls:,} calls",
        ]
        for c in calls
    ]


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"
