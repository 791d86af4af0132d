"""What became of the completions: the figures of ``zi-coder stats``, and their JSON.

The figures are frozen dataclasses (:class:`Stats` and its parts), read by
``stats_query.py`` (grouped queries, SQLite and PostgreSQL; the percentiles in
``stats_percentiles.py``); :func:`to_json` is
their ``--json`` form, the text report is ``report_text.py``, the HTML one
``report_html.py``. The command line is ``server/commands/stats.py``, opening the
database read-only ``reading.py``.

Definitions. Every row of ``completions`` is a suggestion the server produced
(requests that yielded no text are not recorded), ``generated`` counts them,
except type-ahead continuations: while the user types along a shown suggestion,
each keystroke's request is answered with the rest of it (``source``
``typeahead``, ``parent_id`` naming the suggestion, its *root*). A continuation
is no new suggestion: when one is accepted or rejected, its root is recorded
with that outcome too (``server.completion.outcomes``), and the figures count
the roots alone; the continuations are only counted, as requests *answered by
type-ahead*. *Shown*: any outcome past ``generated`` (shown, accepted, partially
accepted, rejected: an outcome only moves forward, and an accepted or rejected
suggestion was seen, even from clients that do not report "shown").
*Undecided*: shown, but neither accepted nor rejected (yet). Acceptance rate =
(accepted + partially accepted) / shown. Characters accepted = the full text of
accepted suggestions plus ``accepted_length`` of partially accepted ones: the
characters of the suggestions that went into the document as suggested, whether
typed along them or inserted by accepting (a suggestion taken after typing 5 of
its 20 characters counts 20, as when taken at once). *Kept*: of the characters
accepted, how many are still in the document at the survival checkpoint: 600 s
(10 min) when the history has checks at 600 s, else its largest checkpoint
(``history.survival_checkpoints_s`` may differ); checks made after the document
was closed judge nothing and are only counted; the checkpoint is the latest
with a check that judged something. *Cache hit rate*: suggestions whose
``source`` is not ``model`` (the shared cache, and requests joined to an
identical one in flight: none made a model call of its own) over all generated.
Latency figures cover only completions served by the model (``source =
"model"``). Percentiles interpolate linearly between ranks (numpy's default).
Days are UTC dates. Model calls: *errors* are failed calls, not those cancelled
by their caller (superseded while the user typed), which are counted apart and
left out of the mean time; token sums add what the calls reported, and only a
stream read to its end reports usage (``with_tokens`` says how many did). Model
calls made by ``zi-coder replay`` (``replay`` true) are listed apart and never
counted with live calls; a replay records no completion, so acceptance never
includes one. ``--since`` keeps completions, calls and jobs created at or after
the moment (survival: that of completions).

JSON keys (``--json``). Top level: ``database`` (URL, password hidden), ``since``
(ISO 8601 UTC or null), ``note`` (string or null), the *counts* (below) of all
suggestions, ``kept`` (below, plus ``checkpoint_s``: the checkpoint used, null
without survival checks, and ``documents_closed``: checks that could not judge),
``sources`` (``{source: suggestions}``: ``model``, ``shared_cache``,
``joined``), ``cache_hit_rate`` (fraction, null when nothing was generated),
``answered_by_typeahead`` (type-ahead continuations), ``latency_ms`` and
``first_token_ms`` (each ``{"count", "median", "p90", "p99"}``, milliseconds to
0.1, null when the count is 0), then three lists of *groups*: ``languages``
(most shown first), ``models`` (same), ``days`` (oldest first); ``model_calls``
and ``replays`` (lists of ``{"kind", "model", "calls", "errors", "cancelled",
"prompt_tokens", "completion_tokens", "with_tokens", "mean_ms"}``, most calls
first: the token sums are those of the ``with_tokens`` calls that reported
usage; ``mean_ms`` leaves the cancelled out), and ``jobs`` (``{"kind",
"status", "count", "mean_duration_ms"}``).

- *counts*: ``generated``, ``shown``, ``accepted``, ``partially_accepted``,
  ``rejected``, ``undecided``, ``acceptance_rate`` (fraction 0..1, null when
  nothing was shown), ``characters_accepted``.
- ``kept``: ``{"suggestions"`` (accepted suggestions judged at the checkpoint),
  ``"characters"`` (their accepted characters), ``"characters_kept"``,
  ``"rate"}`` (kept / characters, null when none was judged).
- a group: ``language``, ``model`` or ``day`` (``YYYY-MM-DD``), its *counts* and
  its ``kept``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

TABLE = "completions"
TEN_MINUTES_S = 600
PERCENTS = (50, 90, 99)


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
            self.generated + other.generated,
            self.shown + other.shown,
            self.accepted + other.accepted,
            self.partially_accepted + other.partially_accepted,
            self.rejected + other.rejected,
            self.characters_accepted + other.characters_accepted,
        )


@dataclass(frozen=True, slots=True)
class Kept:
    """Accepted characters judged at the survival checkpoint, and how many remained."""

    suggestions: int = 0
    characters: int = 0
    characters_kept: int = 0

    @property
    def rate(self) -> float | None:
        return self.characters_kept / self.characters if self.characters else None

    def __add__(self, other: Kept) -> Kept:
        return Kept(
            self.suggestions + other.suggestions,
            self.characters + other.characters,
            self.characters_kept + other.characters_kept,
        )


@dataclass(frozen=True, slots=True)
class Group:
    """The figures of one language, one model or one UTC day (``YYYY-MM-DD``)."""

    name: str
    counts: Counts
    kept: Kept = Kept()


@dataclass(frozen=True, slots=True)
class Latency:
    count: int = 0
    median_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None

    @classmethod
    def of(cls, values: Sequence[float]) -> Latency:
        """From the values themselves (tests, small lists); the query uses ranks."""
        if not values:
            return cls()
        ordered = sorted(values)
        return cls(len(ordered), *(percentile(ordered, p / 100) for p in PERCENTS))


@dataclass(frozen=True, slots=True)
class Histogram:
    """Model-served completions by total time: ``counts[i]`` in ``[i, i + 1) * width_ms``,
    then ``overflow`` at or above ``len(counts) * width_ms``."""

    width_ms: float
    counts: tuple[int, ...]
    overflow: int = 0


@dataclass(frozen=True, slots=True)
class Calls:
    """Model calls of one kind to one model."""

    kind: str
    model: str
    calls: int
    errors: int  # failed, cancellations not included
    cancelled: int
    prompt_tokens: int
    completion_tokens: int
    with_tokens: int  # calls that reported their usage: the token sums are theirs
    mean_ms: float | None  # cancelled calls left out


@dataclass(frozen=True, slots=True)
class Jobs:
    kind: str
    status: str
    count: int
    mean_duration_ms: float | None


@dataclass(frozen=True, slots=True)
class Stats:
    totals: Counts
    latency: Latency
    first_token: Latency
    languages: tuple[Group, ...] = ()
    models: tuple[Group, ...] = ()
    days: tuple[Group, ...] = ()
    kept: Kept = Kept()
    checkpoint_s: int | None = None  # None: no survival check recorded
    documents_closed: int = 0
    sources: tuple[tuple[str, int], ...] = ()  # (source, suggestions), most first
    typeahead: int = 0  # requests answered by type-ahead continuations
    calls: tuple[Calls, ...] = ()
    replays: tuple[Calls, ...] = ()
    jobs: tuple[Jobs, ...] = ()
    histogram: Histogram | None = None  # only when asked for (the HTML report)

    @classmethod
    def empty(cls) -> Stats:
        return cls(Counts(), Latency(), Latency())

    @property
    def cache_hits(self) -> int:
        return self.totals.generated - dict(self.sources).get("model", 0)

    @property
    def cache_hit_rate(self) -> float | None:
        generated = self.totals.generated
        return self.cache_hits / generated if generated else None


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """The `fraction` quantile of sorted, non-empty `ordered`, interpolated between ranks."""
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def nice_step(raw: float) -> float:
    """The smallest of 1, 2, 2.5 or 5 times a power of ten that is at least `raw`."""
    if raw <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw * (1 - 1e-9))


# -- JSON -----------------------------------------------------------------------------------


def to_json(
    stats: Stats, *, url: str, since: datetime | None, note: str | None = None
) -> dict[str, Any]:
    return {
        "database": url,
        "since": None if since is None else since.astimezone(UTC).isoformat(),
        "note": note,
        **_counts_json(stats.totals),
        "kept": {
            "checkpoint_s": stats.checkpoint_s,
            "documents_closed": stats.documents_closed,
            **_kept_json(stats.kept),
        },
        "sources": dict(stats.sources),
        "cache_hit_rate": stats.cache_hit_rate,
        "answered_by_typeahead": stats.typeahead,
        "latency_ms": _latency_json(stats.latency),
        "first_token_ms": _latency_json(stats.first_token),
        "languages": [_group_json("language", g) for g in stats.languages],
        "models": [_group_json("model", g) for g in stats.models],
        "days": [_group_json("day", g) for g in stats.days],
        "model_calls": [_calls_json(c) for c in stats.calls],
        "replays": [_calls_json(c) for c in stats.replays],
        "jobs": [
            {
                "kind": j.kind,
                "status": j.status,
                "count": j.count,
                "mean_duration_ms": _ms(j.mean_duration_ms),
            }
            for j in stats.jobs
        ],
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


def _kept_json(k: Kept) -> dict[str, Any]:
    return {
        "suggestions": k.suggestions,
        "characters": k.characters,
        "characters_kept": k.characters_kept,
        "rate": k.rate,
    }


def _group_json(key: str, group: Group) -> dict[str, Any]:
    return {key: group.name, **_counts_json(group.counts), "kept": _kept_json(group.kept)}


def _calls_json(c: Calls) -> dict[str, Any]:
    return {
        "kind": c.kind,
        "model": c.model,
        "calls": c.calls,
        "errors": c.errors,
        "cancelled": c.cancelled,
        "prompt_tokens": c.prompt_tokens,
        "completion_tokens": c.completion_tokens,
        "with_tokens": c.with_tokens,
        "mean_ms": _ms(c.mean_ms),
    }


def _latency_json(latency: Latency) -> dict[str, Any]:
    return {
        "count": latency.count,
        "median": _ms(latency.median_ms),
        "p90": _ms(latency.p90_ms),
        "p99": _ms(latency.p99_ms),
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)
