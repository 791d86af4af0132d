"""Reading the figures of ``zi-coder stats`` from the history (SQLite and PostgreSQL).

:func:`query_stats` returns a :class:`~server.history.stats.Stats` (definitions
there). Every figure is aggregated by the database; Python only adds up group
rows (one per UTC day, language, model, source and outcome present):

- ``completions``: one query grouped by those five keys, with plain counts and
  sums (the cheapest aggregation per row; the rates are derived from them);
- ``completion_survival`` (which carries its completion's day, language and model:
  no join) grouped by them, at one checkpoint; ``model_calls`` by replay, kind and model;
  ``jobs`` by kind and status;
- percentiles (SQLite has no percentile function): with an index led by
  (``source``, the column), each one is an ``ORDER BY ... LIMIT 2 OFFSET k``
  that walks k index entries; without one, one window query per column sorts
  once (``row_number()`` over the values, keeping only the rows at the ranks
  the percentiles interpolate between). No latency list is ever fetched.

The days are ``created_day``, a stored UTC ``YYYY-MM-DD`` (the same on both
databases; computed from ``created_at`` in a history still at migration 0001).
Each GROUP BY reads an index in its own order, covering its sums
(``ix_completions_stats``, ``ix_completion_survival_stats``,
``ix_model_calls_stats``, migration 0002); ``bench/history_stats.py`` measures
them over a million completions.

Run the queries in one read transaction (``server/commands/stats.py`` does): the
percentiles' ranks come from the first query's counts.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from server.completion.types import Outcome, Source
from server.history.stats import (
    PERCENTS,
    TEN_MINUTES_S,
    Calls,
    Counts,
    Group,
    Histogram,
    Jobs,
    Kept,
    Latency,
    Stats,
    nice_step,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import InstrumentedAttribute
    from sqlalchemy.sql.elements import ColumnElement


def query_stats(
    *,
    connection: Connection,
    since: datetime | None,
    tables: Iterable[str] = ("completions", "model_calls", "jobs", "completion_survival"),
    histogram: bool = False,
) -> Stats:
    """All figures over what was created at or after `since` (None: all of it).

    `tables`: those present (a history written by an older zi-coder has only
    ``completions``; the others' figures are then left empty). `histogram`: also
    the latency histogram (the HTML report's).
    """
    from server.history.models import CompletionRecord as C

    present = set(tables)
    since = None if since is None else since.astimezone(UTC)  # SQLite compares UTC text
    groups = _CompletionGroups()
    for row in _completion_rows(connection, since, _day(connection)):
        groups.add(*row)

    checkpoint, closed = None, 0
    if "completion_survival" in present:
        checkpoint = _checkpoint(connection)
    if checkpoint is not None:
        for day, language, model, kept, documents_closed in _kept_groups(
            connection, since, checkpoint
        ):
            groups.add_kept(day, language, model, kept)
            closed += documents_closed

    window = [] if since is None else [C.created_at >= since]
    model_served = [C.source == Source.MODEL.value, *window]
    indexed = _indexed_pairs(connection)
    latency = _latency(connection, C.total_ms, model_served, groups.served, indexed)
    first_token = _latency(
        connection, C.first_token_ms, model_served, groups.with_first_token, indexed
    )
    calls, replays = _calls(connection, since) if "model_calls" in present else ((), ())
    languages = groups.groups("language")
    return Stats(
        totals=sum((g.counts for g in languages), Counts()),
        latency=latency,
        first_token=first_token,
        languages=languages,
        models=groups.groups("model"),
        days=tuple(sorted(groups.groups("day"), key=lambda g: g.name)),
        kept=sum((g.kept for g in languages), Kept()),
        checkpoint_s=checkpoint,
        documents_closed=closed,
        sources=tuple(sorted(groups.sources.items(), key=lambda s: (-s[1], s[0]))),
        calls=calls,
        replays=replays,
        jobs=_jobs(connection, since) if "jobs" in present else (),
        histogram=_histogram(connection, model_served, latency) if histogram else None,
    )


_OUTCOME_SLOTS = {
    Outcome.ACCEPTED.value: 2,
    Outcome.PARTIALLY_ACCEPTED.value: 3,
    Outcome.REJECTED.value: 4,
}


class _CompletionGroups:
    """Adds the grouped rows up by day, by language and by model (in plain lists: fast)."""

    def __init__(self) -> None:
        self.days: dict[str, list[int]] = {}
        self.languages: dict[str, list[int]] = {}
        self.models: dict[str, list[int]] = {}
        self.sums = {"day": self.days, "language": self.languages, "model": self.models}
        self.kept: dict[tuple[str, str], Kept] = defaultdict(Kept)
        self.sources: dict[str, int] = defaultdict(int)
        self.served = self.with_first_token = 0

    def add(
        self,
        day: str,
        language: str,
        model: str,
        source: str,
        outcome: str,
        n: int,
        characters: int,
        accepted_characters: int,
        with_first_token: int,
    ) -> None:
        # Sums: generated, shown, accepted, partially accepted, rejected, characters
        # accepted. `slot`: the one of accepted .. rejected this outcome adds to.
        slot, characters_accepted = _OUTCOME_SLOTS.get(outcome), 0
        if outcome == Outcome.ACCEPTED:
            characters_accepted = characters
        elif outcome == Outcome.PARTIALLY_ACCEPTED:
            characters_accepted = accepted_characters
        shown = outcome != Outcome.GENERATED
        for sums_by, key in ((self.days, day), (self.languages, language), (self.models, model)):
            sums = sums_by.get(key)
            if sums is None:
                sums = sums_by[key] = [0] * 6
            sums[0] += n
            if shown:
                sums[1] += n
            if slot is not None:
                sums[slot] += n
            sums[5] += characters_accepted
        self.sources[source] += n
        if source == Source.MODEL:
            self.served += n
            self.with_first_token += with_first_token

    def add_kept(self, day: str, language: str, model: str, kept: Kept) -> None:
        for by, key in (("day", day), ("language", language), ("model", model)):
            self.kept[by, key] += kept

    def groups(self, by: str) -> tuple[Group, ...]:
        """Most shown first."""
        groups = [
            Group(key, Counts(*sums), self.kept.get((by, key), Kept()))
            for key, sums in self.sums[by].items()
        ]
        groups.sort(key=lambda g: (-g.counts.shown, -g.counts.generated, g.name))
        return tuple(groups)


def _day(connection: Connection) -> ColumnElement[str] | InstrumentedAttribute[str]:
    """``completions.created_day``; a history at migration 0001 has none: the UTC date
    of ``created_at`` then, computed in the database's own terms."""
    from sqlalchemy import String, func, inspect

    from server.history.models import CompletionRecord as C

    if any(c["name"] == "created_day" for c in inspect(connection).get_columns("completions")):
        return C.created_day
    if connection.dialect.name == "sqlite":  # UTC text, "YYYY-MM-DD HH:MM:SS.ffffff"
        return func.substr(C.created_at, 1, 10, type_=String)
    return func.to_char(func.timezone("UTC", C.created_at), "YYYY-MM-DD", type_=String)


def _count_where(condition: Any) -> Any:
    from sqlalchemy import case, func

    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _completion_rows(
    connection: Connection,
    since: datetime | None,
    day: ColumnElement[str] | InstrumentedAttribute[str],
) -> Iterable[tuple[Any, ...]]:
    """(day, language, model, source, outcome, completions, sum of text lengths, sum of
    accepted lengths, completions with a first-token time): plain group keys and sums,
    the cheapest aggregation per row; Python derives the rest from them."""
    from sqlalchemy import func, select

    from server.history.models import CompletionRecord as C

    window = []
    if since is not None:
        # The day too (redundant): the index led by the day then reads only the days
        # of the period.
        window = [C.created_at >= since, day >= f"{since:%Y-%m-%d}"]
    query = (
        select(
            day,
            C.language,
            C.model,
            C.source,
            C.outcome,
            func.count(),
            func.coalesce(func.sum(C.text_length), 0),
            func.coalesce(func.sum(C.accepted_length), 0),
            func.count(C.first_token_ms),
        )
        .where(*window)
        .group_by(day, C.language, C.model, C.source, C.outcome)
    )
    for day_, language, model, source, outcome, *sums in connection.execute(query):
        yield (
            str(day_),
            str(language),
            str(model),
            str(source),
            str(outcome),
            *(int(v or 0) for v in sums),
        )


def _checkpoint(connection: Connection) -> int | None:
    """600 when the history has checks at 10 min, else its largest checkpoint."""
    from sqlalchemy import func, select

    from server.history.models import SurvivalRecord as S

    ten = select(S.after_s).where(S.after_s == TEN_MINUTES_S).limit(1)
    if connection.execute(ten).first() is not None:
        return TEN_MINUTES_S
    largest = connection.execute(select(func.max(S.after_s))).scalar()
    return None if largest is None else int(largest)


def _kept_groups(
    connection: Connection, since: datetime | None, checkpoint: int
) -> Iterable[tuple[str, str, str, Kept, int]]:
    """(day, language, model, kept, checks made after the document was closed).

    The checks carry their completion's time, day, language and model: no join, and
    ``ix_completion_survival_stats`` delivers the rows at the checkpoint in group order.
    """
    from sqlalchemy import case, func, select

    from server.history.models import SurvivalRecord as S

    window = []
    if since is not None:
        window = [S.created_day >= f"{since:%Y-%m-%d}", S.completion_created_at >= since]
    judged = S.document_closed.is_(False)
    query = (
        select(
            S.created_day,
            S.language,
            S.model,
            _count_where(judged),
            func.coalesce(func.sum(case((judged, S.accepted_chars), else_=0)), 0),
            func.coalesce(func.sum(case((judged, S.kept_chars), else_=0)), 0),
            _count_where(S.document_closed.is_(True)),
        )
        .where(S.after_s == checkpoint, *window)
        .group_by(S.created_day, S.language, S.model)
    )
    for day_, language, model, judged_, characters, kept, closed in connection.execute(query):
        yield str(day_), str(language), str(model), Kept(judged_, characters, kept), int(closed)


def _indexed_pairs(connection: Connection) -> set[tuple[str, str]]:
    """The (first, second) columns of the indexes on ``completions``."""
    import warnings

    from sqlalchemy import inspect
    from sqlalchemy.exc import SAWarning

    pairs = set()
    with warnings.catch_warnings():  # "skipped unsupported reflection of expression-based index"
        warnings.simplefilter("ignore", SAWarning)
        indexes = inspect(connection).get_indexes("completions")
    for index in indexes:
        names = index.get("column_names") or []
        if len(names) >= 2 and names[0] and names[1]:
            pairs.add((names[0], names[1]))
    return pairs


def _latency(
    connection: Connection,
    column: Any,
    where: list[Any],
    count: int,
    indexed: set[tuple[str, str]],
) -> Latency:
    """p50, p90, p99 of `column` over the `count` model-served rows matching `where`.

    With an index on (source, `column`), each percentile is an ``ORDER BY ...
    LIMIT 2 OFFSET k`` that walks k entries of the index. Without one, that would
    sort the table once per percentile, so a single window query sorts once:
    ``row_number()`` over the sorted values, keeping the rows at the wanted ranks.
    """
    from sqlalchemy import or_, select

    if count == 0:
        return Latency()
    positions = {p: (count - 1) * p / 100 for p in PERCENTS}
    lows = sorted({math.floor(x) for x in positions.values()})
    values: dict[int, float] = {}
    if ("source", column.key) in indexed:
        for low in lows:
            query = (
                select(column).where(column.is_not(None), *where).order_by(column).limit(2)
            ).offset(low)
            for rank, (value,) in enumerate(connection.execute(query), start=low):
                values[rank] = float(value)
    else:
        from sqlalchemy import func

        ranked = (
            select(column.label("value"), func.row_number().over(order_by=column).label("rank"))
            .where(column.is_not(None), *where)
            .subquery()
        )
        wanted = sorted({r for low in lows for r in (low, low + 1) if r < count})
        query = select(ranked.c.rank, ranked.c.value).where(
            or_(*(ranked.c.rank == r + 1 for r in wanted))
        )
        values = {int(rank) - 1: float(value) for rank, value in connection.execute(query)}

    def at(position: float) -> float | None:
        low, high = math.floor(position), math.ceil(position)
        if low not in values or high not in values:  # cannot happen within one snapshot
            return None
        return values[low] + (values[high] - values[low]) * (position - low)

    return Latency(count, *(at(positions[p]) for p in PERCENTS))


def _histogram(connection: Connection, where: list[Any], latency: Latency) -> Histogram | None:
    """Total times in about 40 bins of a round width up to the p99, one more above."""
    from sqlalchemy import Integer, case, cast, func, select

    from server.history.models import CompletionRecord as C

    if latency.p99_ms is None:
        return None
    width = nice_step(max(latency.p99_ms, 1.0) / 40)
    bins = max(1, math.ceil(latency.p99_ms / width))
    scaled = C.total_ms / width
    if connection.dialect.name == "sqlite":
        lower = cast(scaled, Integer)  # truncates: the floor of a non-negative number
    else:
        lower = cast(func.floor(scaled), Integer)
    bucket = case((C.total_ms >= bins * width, bins), else_=lower).label("bucket")
    inner = select(bucket).where(*where).subquery()
    query = select(inner.c.bucket, func.count()).group_by(inner.c.bucket)
    counts = [0] * (bins + 1)
    for index, n in connection.execute(query):
        counts[min(max(int(index), 0), bins)] += int(n)
    return Histogram(width, tuple(counts[:bins]), counts[bins])


def _calls(connection: Connection, since: datetime | None) -> tuple[tuple[Calls, ...], ...]:
    """Live calls and replays, by kind and model."""
    from sqlalchemy import func, select

    from server.history.models import ModelCallRecord as M

    query = (
        select(
            M.replay,
            M.kind,
            M.model,
            func.count(),
            _count_where(M.failed.is_(True)),
            func.coalesce(func.sum(M.prompt_tokens), 0),
            func.coalesce(func.sum(M.completion_tokens), 0),
            func.avg(M.total_ms),
        )
        .where(*([] if since is None else [M.created_at >= since]))
        .group_by(M.replay, M.kind, M.model)
    )
    live: list[Calls] = []
    replays: list[Calls] = []
    for replay, kind, model, n, errors, prompt, completion, mean in connection.execute(query):
        mean_ms = None if mean is None else float(mean)
        calls = Calls(
            str(kind), str(model), int(n), int(errors), int(prompt), int(completion), mean_ms
        )
        (replays if replay else live).append(calls)

    def order(c: Calls) -> tuple[int, str, str]:
        return -c.calls, c.kind, c.model

    return tuple(sorted(live, key=order)), tuple(sorted(replays, key=order))


def _jobs(connection: Connection, since: datetime | None) -> tuple[Jobs, ...]:
    from sqlalchemy import func, select

    from server.history.models import JobRecord as J

    query = (
        select(J.kind, J.status, func.count(), func.avg(J.duration_ms))
        .where(*([] if since is None else [J.created_at >= since]))
        .group_by(J.kind, J.status)
    )
    jobs = [
        Jobs(str(kind), str(status), int(n), None if mean is None else float(mean))
        for kind, status, n, mean in connection.execute(query)
    ]
    return tuple(sorted(jobs, key=lambda j: (j.kind, -j.count, j.status)))
