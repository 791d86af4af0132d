"""The HTML report of ``zi-coder stats --html FILE``: one self-contained page.

No script, no external file, no request: the style is inline, the three plots are
inline SVG drawn by ``report_svg.py`` (acceptance and characters kept per UTC
day, the latency histogram of model-served completions with its percentiles,
acceptance by language), and a Content-Security-Policy of ``default-src 'none'``
keeps it so. With the plots, the same tables as the text report; all the days
last. Every plot has a title, axis labels and a text description; tables have
captions and header cells, so the page reads with a screen reader too.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from server.history import report_svg
from server.history.report_text import (
    CALLS_CAPTION,
    CALLS_HEADERS,
    LATENCY_HEADERS,
    LATENCY_TITLE,
    SOURCE_NAMES,
    TOKENS_CAPTION,
    cache_line,
    calls_rows,
    checkpoint_label,
    kept_column,
    kept_line,
    latency_rows,
    ms,
    rate,
    typeahead_line,
)
from server.history.stats import Calls, Group, Stats

MAX_LANGUAGES = 20

_STYLE = """
:root { color-scheme: light dark; --muted: #667; --line: #ccd; --stripe: #f4f5f8; }
@media (prefers-color-scheme: dark) {
  :root { --muted: #99a; --line: #445; --stripe: #1d2027; }
  body { background: #121418; color: #e6e6e6; }
}
body { font: 15px/1.5 system-ui, sans-serif; margin: 0; }
main { max-width: 64rem; margin: 0 auto; padding: 1.5rem; }
h1 { margin-bottom: 0.2rem; }
h2 { margin-top: 2.2rem; border-bottom: 1px solid var(--line); }
.meta, .note, figcaption, caption { color: var(--muted); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(12rem, 1fr)); gap: 0.8rem; }
.cards div { border: 1px solid var(--line); border-radius: 6px; padding: 0.6rem 0.8rem; }
.cards dt { color: var(--muted); font-size: 0.85rem; }
.cards dd { margin: 0; font-size: 1.5rem; font-weight: 600; }
.cards dd small { display: block; font-size: 0.8rem; font-weight: normal; color: var(--muted); }
figure { margin: 1rem 0; overflow-x: auto; }
svg { max-width: 100%; height: auto; }
table { border-collapse: collapse; margin: 1rem 0; min-width: 50%; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.3rem; }
th, td { padding: 0.25rem 0.7rem; border-bottom: 1px solid var(--line); }
th { text-align: left; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: var(--stripe); }
"""


def render_html(
    stats: Stats, *, url: str, period: str, note: str | None = None, now: datetime | None = None
) -> str:
    made = (now or datetime.now(UTC)).astimezone(UTC)
    body = [
        "<h1>Zi Coder stats</h1>",
        f'<p class="meta">Database <code>{escape(url)}</code>, {escape(period)}. '
        f"Made {made:%Y-%m-%d %H:%M} UTC by <code>zi-coder stats</code>.</p>",
    ]
    if note:
        body.append(f'<p class="note">Note: {escape(note)}</p>')
    body += _summary(stats)
    # The plots first, each with its short table; the long table of days last.
    body += _section("Acceptance over time", _days_plot(stats), "")
    body += _section("Latency", _latency_plot(stats), _latency_table(stats))
    body += _section(
        "Acceptance by language", _languages_plot(stats), _groups_table(stats, "languages")
    )
    body += _section("By model", "", _groups_table(stats, "models"))
    body += _section(
        "Model calls",
        "",
        _calls_table("Live model calls, by kind and model", stats.calls)
        + _calls_table("Replays (zi-coder replay), not counted above", stats.replays)
        + f"<p>{escape(CALLS_CAPTION)} {escape(TOKENS_CAPTION)}</p>"
        + _sources_table(stats),
    )
    body += _section("Jobs", "", _jobs_table(stats))
    body += _section("By day", "", _groups_table(stats, "days"))
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            # Nothing may be fetched: no script, image, font or style from elsewhere.
            '<meta http-equiv="Content-Security-Policy" '
            "content=\"default-src 'none'; style-src 'unsafe-inline'\">",
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta name="color-scheme" content="light dark">',
            f"<title>Zi Coder stats ({escape(period)})</title>",
            f"<style>{_STYLE}</style>",
            "</head>",
            "<body>",
            "<main>",
            *body,
            "</main>",
            "</body>",
            "</html>",
            "",
        ]
    )


def _section(title: str, plot: str, tables: str) -> list[str]:
    return ["<section>", f"<h2>{escape(title)}</h2>", plot, tables, "</section>"]


def _summary(stats: Stats) -> list[str]:
    t, latency = stats.totals, stats.latency
    cards = [
        ("Acceptance rate", rate(t.acceptance_rate), f"{t.taken:,} of {t.shown:,} shown"),
        (
            f"Characters kept {checkpoint_label(stats.checkpoint_s)}",
            rate(stats.kept.rate),
            f"{stats.kept.characters_kept:,} of {stats.kept.characters:,} judged",
        ),
        ("Cache hit rate", rate(stats.cache_hit_rate), f"of {t.generated:,} generated"),
        (
            "Latency p50 / p90 / p99",
            ms(latency.median_ms),
            f"p90 {ms(latency.p90_ms)}, p99 {ms(latency.p99_ms)}",
        ),
        ("Characters accepted", f"{t.characters_accepted:,}", f"{t.undecided:,} undecided"),
    ]
    items = [
        f"<div><dt>{escape(name)}</dt><dd>{escape(value)}<small>{escape(detail)}</small></dd></div>"
        for name, value, detail in cards
    ]
    lines = [escape(line) for line in (kept_line(stats), cache_line(stats), typeahead_line(stats))]
    return [
        "<section>",
        "<h2>Summary</h2>",
        f'<dl class="cards">{"".join(items)}</dl>',
        f"<p>{'<br>'.join(lines)}</p>",
        "</section>",
    ]


# -- plots -------------------------------------------------------------------------------


def _days_plot(stats: Stats) -> str:
    days = stats.days
    if not any(d.counts.shown for d in days):
        return "<p>No suggestion was shown in this period: nothing to plot.</p>"
    labels = [d.name[5:] for d in days]  # MM-DD; the axis title gives the years
    rates = [d.counts.acceptance_rate for d in days]
    kept = [d.kept.rate for d in days] if stats.checkpoint_s is not None else None
    shown = [(d.counts.acceptance_rate, d.name) for d in days if d.counts.shown]
    low, high = min(shown), max(shown)
    years = sorted({d.name[:4] for d in days})
    description = (
        f"Acceptance rate per UTC day, {days[0].name} to {days[-1].name}: lowest "
        f"{rate(low[0])} on {low[1]}, highest {rate(high[0])} on {high[1]}, "
        f"{rate(stats.totals.acceptance_rate)} over the period."
    )
    if kept is not None:
        description += (
            f" Line: characters kept {checkpoint_label(stats.checkpoint_s)}, "
            f"{rate(stats.kept.rate)} over the period."
        )
    svg = report_svg.rate_bars(
        ident="zi-days",
        title="Acceptance rate per day",
        description=description,
        labels=labels,
        rates=rates,
        notes=[f"{rate(d.counts.acceptance_rate)} of {d.counts.shown:,} shown" for d in days],
        x_label=f"Day (UTC, {years[0] if len(years) == 1 else f'{years[0]} to {years[-1]}'})",
        y_label="Accepted / shown",
        line=kept,
        bar_name="accepted",
        line_name=f"characters kept {checkpoint_label(stats.checkpoint_s)}",
    )
    return _figure(svg, "Bars: suggestions accepted (in full or in part) over those shown.")


def _latency_plot(stats: Stats) -> str:
    h, latency = stats.histogram, stats.latency
    if h is None or not latency.count:
        return "<p>No completion was served by the model in this period: nothing to plot.</p>"
    marks = [
        (name, value)
        for name, value in (
            ("p50", latency.median_ms),
            ("p90", latency.p90_ms),
            ("p99", latency.p99_ms),
        )
        if value is not None
    ]
    description = (
        f"Total time of {latency.count:,} model-served completions in bins of "
        f"{h.width_ms:g} ms: median {ms(latency.median_ms)}, p90 {ms(latency.p90_ms)}, "
        f"p99 {ms(latency.p99_ms)}; {h.overflow:,} at or above "
        f"{h.width_ms * len(h.counts):g} ms."
    )
    svg = report_svg.histogram(
        ident="zi-latency",
        title="Latency of model-served completions",
        description=description,
        width_ms=h.width_ms,
        counts=h.counts,
        overflow=h.overflow,
        marks=marks,
        x_label="Total time, request to last token (ms)",
        y_label="Completions",
    )
    return _figure(svg, "Dashed lines: the 50th, 90th and 99th percentiles.")


def _languages_plot(stats: Stats) -> str:
    languages = [g for g in stats.languages if g.counts.shown][:MAX_LANGUAGES]
    if not languages:
        return "<p>No suggestion was shown in this period: nothing to plot.</p>"
    notes = [
        f"{rate(g.counts.acceptance_rate)} ({g.counts.taken:,} of {g.counts.shown:,})"
        for g in languages
    ]
    description = "Acceptance rate by language, most shown first: " + "; ".join(
        f"{g.name} {note}" for g, note in zip(languages, notes, strict=True)
    )
    svg = report_svg.rate_rows(
        ident="zi-languages",
        title="Acceptance rate by language",
        description=description + ".",
        labels=[g.name for g in languages],
        rates=[g.counts.acceptance_rate for g in languages],
        notes=notes,
        x_label="Accepted / shown",
    )
    more = len([g for g in stats.languages if g.counts.shown]) - len(languages)
    extra = f" The {more} other languages are in the table." if more > 0 else ""
    return _figure(svg, f"Accepted in full or in part, over shown.{extra}")


def _figure(svg: str, caption: str) -> str:
    return f"<figure>\n{svg}\n<figcaption>{escape(caption)}</figcaption>\n</figure>"


# -- tables ------------------------------------------------------------------------------------


def _table(caption: str, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    if not rows:
        return f"<p>{escape(caption)}: none.</p>"
    head = "".join(
        f'<th scope="col"{" class=n" if i else ""}>{escape(h)}</th>' for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + f'<th scope="row">{escape(row[0])}</th>'
        + "".join(f'<td class="n">{escape(cell)}</td>' for cell in row[1:])
        + "</tr>"
        for row in rows
    )
    return (
        f"<table><caption>{escape(caption)}</caption><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def _groups_table(stats: Stats, which: str) -> str:
    groups: tuple[Group, ...] = getattr(stats, which)
    first = {"days": "Day (UTC)", "languages": "Language", "models": "Model"}[which]
    kept = kept_column(stats.checkpoint_s)
    headers = [first, "Generated", "Shown", "Accepted", "Partly", "Rate", "Chars accepted", kept]
    rows = [
        [
            g.name,
            f"{g.counts.generated:,}",
            f"{g.counts.shown:,}",
            f"{g.counts.accepted:,}",
            f"{g.counts.partially_accepted:,}",
            rate(g.counts.acceptance_rate),
            f"{g.counts.characters_accepted:,}",
            rate(g.kept.rate),
        ]
        for g in groups
    ]
    return _table(f"Completions by {first.split()[0].lower()}", headers, rows)


def _latency_table(stats: Stats) -> str:
    return _table(LATENCY_TITLE, LATENCY_HEADERS, latency_rows(stats))


def _calls_table(caption: str, calls: Sequence[Calls]) -> str:
    return _table(caption, CALLS_HEADERS, calls_rows(calls))


def _sources_table(stats: Stats) -> str:
    generated = stats.totals.generated
    rows = [
        [
            SOURCE_NAMES.get(source, source),
            f"{n:,}",
            rate(n / generated if generated else None),
        ]
        for source, n in stats.sources
    ]
    return _table("Where suggestions came from", ["Source", "Suggestions", "Share"], rows)


def _jobs_table(stats: Stats) -> str:
    rows = [[j.kind, j.status, f"{j.count:,}", ms(j.mean_duration_ms)] for j in stats.jobs]
    return _table("Jobs, by kind and status", ["Kind", "Status", "Jobs", "Mean duration"], rows)
