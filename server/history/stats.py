"""What became of the completions: the figures of ``zi-coder stats``, and their text and JSON.

:func:`query_stats` (one grouped aggregate query plus one fetch of the latency
columns; SQLite and PostgreSQL) returns a frozen :class:`Stats`; :func:`render_text`
and :func:`to_json` present it. Reading the database and the command line are in
``server/commands/stats.py``.

Definitions. Every row of ``completions`` is a suggestion the server produced
(requests that yielded no text are not recorded), ``generated`` counts them.
A suggestion counts as *shown* when the client reported it shown or when it was
accepted, partially accepted or rejected (clients without the proposed API only
approximate "shown"; an accepted suggestion was seen). *Undecided*: shown, but
neither accepted nor rejected (yet). Acceptance rate = (accepted + partially
accepted) / shown. Characters accepted = the full text of accepted suggestions
plus ``accepted_length`` of partially accepted ones. Latency figures cover only
completions that reached the model (``source = "model"``): the type-ahead, the
shared cache and joined requests answer without a model call of their own.
Percentiles interpolate linearly between ranks (numpy's default).

JSON keys (``--json``): ``database`` (URL, password hidden), ``since`` (ISO 8601
UTC or null), ``note`` (string or null), ``generated``, ``shown``, ``accepted``,
``partially_accepted``, ``rejected``, ``undecided``, ``acceptance_rate``
(fraction 0..1, null when nothing was shown), ``characters_accepted``,
``latency_ms`` and ``first_token_ms`` (each ``{"count", "median", "p90"}``,
milliseconds to 0.1, null when the count is 0), and ``languages``: a list of
objects with ``language`` and the same count keys, most shown first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

TABLE = "completions"


# -- the figures ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Counts:
    generated: int = 0
    shown: int = 0
    accepted: int = 0
    partially_accepted: int = 0
    rejected: int = 0
    characters_accepted: int = 0

    @property
    def undecided(self) -> int:
        return self.shown - self.accepted - self.partially_accepted - self.rejected

    @property
    def taken(self) -> int:
        """Accepted in full or in part: the acceptance rate's numerator."""
        return self.accepted + self.partially_accepted

    @property
    def acceptance_rate(self) -> float | None:
        return self.taken / self.shown if self.shown else None

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            generated=self.generated + other.generated,
            shown=self.shown + other.shown,
            accepted=self.accepted + other.accepted,
            partially_accepted=self.partially_accepted + other.partially_accepted,
            rejected=self.rejected + other.rejected,
            characters_accepted=self.characters_accepted + other.characters_accepted,
        )


@dataclass(frozen=True, slots=True)
class Latency:
    count: int = 0
    median_ms: float | None = None
    p90_ms: float | None = None

    @classmethod
    def of(cls, values: Sequence[float]) -> Latency:
        if not values:
            return cls()
        ordered = sorted(values)
        return cls(len(ordered), percentile(ordered, 0.5), percentile(ordered, 0.9))


@dataclass(frozen=True, slots=True)
class LanguageStats:
    language: str
    counts: Counts


@dataclass(frozen=True, slots=True)
class Stats:
    totals: Counts
    latency: Latency
    first_token: Latency
    languages: tuple[LanguageStats, ...]

    @classmethod
    def empty(cls) -> Stats:
        return cls(Counts(), Latency(), Latency(), ())


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The `fraction` quantile of sorted, non-empty `ordered`, interpolated between ranks."""
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def query_stats(*, connection: Connection, since: datetime | None) -> Stats:
    """All figures over completions created at or after `since` (None: all of them)."""
    from sqlalchemy import case, func, or_, select

    from server.completion.types import Outcome, Source
    from server.history.models import CompletionRecord as C

    def count_where(condition: Any) -> Any:
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    decided = (Outcome.ACCEPTED, Outcome.PARTIALLY_ACCEPTED, Outcome.REJECTED)
    shown = or_(C.shown_at.is_not(None), C.outcome.in_([o.value for o in decided]))
    characters = case(
        (C.outcome == Outcome.ACCEPTED.value, C.text_length),
        (C.outcome == Outcome.PARTIALLY_ACCEPTED.value, func.coalesce(C.accepted_length, 0)),
        else_=0,
    )
    grouped = select(
        C.language,
        func.count(),
        count_where(shown),
        count_where(C.outcome == Outcome.ACCEPTED.value),
        count_where(C.outcome == Outcome.PARTIALLY_ACCEPTED.value),
        count_where(C.outcome == Outcome.REJECTED.value),
        func.coalesce(func.sum(characters), 0),
    ).group_by(C.language)
    timings = select(C.total_ms, C.first_token_ms).where(C.source == Source.MODEL.value)
    if since is not None:
        since = since.astimezone(UTC)  # SQLite compares the stored UTC text
        grouped = grouped.where(C.created_at >= since)
        timings = timings.where(C.created_at >= since)

    languages = [
        LanguageStats(str(language), Counts(*(int(v) for v in figures)))
        for language, *figures in connection.execute(grouped)
    ]
    languages.sort(key=lambda s: (-s.counts.shown, -s.counts.generated, s.language))
    totals = sum((s.counts for s in languages), Counts())
    rows = connection.execute(timings).all()
    return Stats(
        totals=totals,
        latency=Latency.of([float(total) for total, _ in rows]),
        first_token=Latency.of([float(first) for _, first in rows if first is not None]),
        languages=tuple(languages),
    )


# -- presenting --------------------------------------------------------------------------


def render_text(stats: Stats, *, url: str, period: str, note: str | None = None) -> str:
    t = stats.totals
    lines = [f"Zi Coder stats: {url} ({period})"]
    if note:
        lines.append(f"Note: {note}")
    lines += [
        f"Completions generated: {t.generated}, shown: {t.shown}",
        f"Completions shown: {t.shown}, accepted: {t.accepted}, "
        f"partially accepted: {t.partially_accepted}, rejected: {t.rejected}, "
        f"undecided: {t.undecided}",
        f"Acceptance rate: {_rate(t)} ({t.taken} of {t.shown} shown)",
        f"Characters accepted: {t.characters_accepted}",
        f"Latency: {_latency(stats.latency)} ({stats.latency.count} completions from the model)",
        f"Time to first token: {_latency(stats.first_token)} "
        f"({stats.first_token.count} completions)",
    ]
    if not stats.languages:
        lines.append("By language: none")
        return "\n".join(lines)
    lines.append("By language (accepted: in full or in part):")
    width = max(10, *(len(s.language) for s in stats.languages))
    for s in stats.languages:
        c = s.counts
        lines.append(
            f"  {s.language:<{width}} {c.shown:>5} shown {c.taken:>5} accepted   {_rate(c)}"
        )
    return "\n".join(lines)


def to_json(
    stats: Stats, *, url: str, since: datetime | None, note: str | None = None
) -> dict[str, Any]:
    return {
        "database": url,
        "since": None if since is None else since.astimezone(UTC).isoformat(),
        "note": note,
        **_counts_json(stats.totals),
        "latency_ms": _latency_json(stats.latency),
        "first_token_ms": _latency_json(stats.first_token),
        "languages": [{"language": s.language, **_counts_json(s.counts)} for s in stats.languages],
    }


def _counts_json(c: Counts) -> dict[str, Any]:
    return {
        "generated": c.generated,
        "shown": c.shown,
        "accepted": c.accepted,
        "partially_accepted": c.partially_accepted,
        "rejected": c.rejected,
        "undecided": c.undecided,
        "acceptance_rate": c.acceptance_rate,
        "characters_accepted": c.characters_accepted,
    }


def _latency_json(latency: Latency) -> dict[str, Any]:
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value, 1)

    return {"count": latency.count, "median": ms(latency.median_ms), "p90": ms(latency.p90_ms)}


def _rate(counts: Counts) -> str:
    rate = counts.acceptance_rate
    return "-" if rate is None else f"{rate * 100:.1f} %"


def _latency(latency: Latency) -> str:
    if latency.median_ms is None or latency.p90_ms is None:
        return "-"
    return f"median {latency.median_ms:.0f} ms, p90 {latency.p90_ms:.0f} ms"
