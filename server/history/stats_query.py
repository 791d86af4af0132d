"""Reading the figures of ``zi-coder stats`` from the history (SQLite and PostgreSQL).

:func:`query_stats` returns a :class:`~server.history.stats.Stats` (definitions
there). Every figure is aggregated by the database; Python only adds up group
rows (one per UTC day, language, model, source and outcome present):

- ``completions``: grouped by those five keys, with plain counts and sums (the
  cheapest aggregation per row; the rates are derived from them), in one query
  per connection, each over its share of the days;
- ``completion_survival`` (which carries its completion's day, language and model:
  no join) grouped by them, at one checkpoint; ``model_calls`` by replay, kind and model;
  ``jobs`` by kind and status;
- percentiles (SQLite has no percentile function): with an index led by
  (``source``, the column), each one is an ``ORDER BY ... LIMIT 2 OFFSET k`` that
  walks k index entries from the nearer end (p99 is a short walk down from the
  top); without one, one window query per column sorts once (``row_number()``
  over the values, keeping only the rows at the ranks the percentiles
  interpolate between). The HTML report's histogram counts each bin's range of
  the same index. No latency list is ever fetched.

The days are ``created_day``, a stored UTC ``YYYY-MM-DD`` (the same on both
databases; computed from ``created_at`` in a history still at migration 0001).
Each GROUP BY reads an index in its own order, covering its sums
(``ix_completions_stats``, ``ix_completion_survival_stats``,
``ix_model_calls_stats``, migration 0002). ``--since`` selects by day, and
compares the time only on the first day (``day > d OR created_at >= since``):
SQLite then reads the table row only for that day, so the day-led indexes need
no time column. ``bench/history_stats.py`` measures all this over a million
completions.

The queries may run on several connections at once, one query per connection at
a time (``server/commands/stats.py`` opens them on one snapshot): the scan of
``completions`` then runs beside those of the other tables. The tables are named
here with SQLAlchemy Core (``table()``), so reading the history imports no ORM.
"""

from __future__ import annotations

import math
import queue
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    Integer,
    String,
    and_,
    case,
    cast,
    column,
    func,
    inspect,
    literal,
    or_,
    select,
    table,
    union_all,
)

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
    from sqlalchemy.sql.elements import ColumnElement

T = TypeVar("T")


# The columns the statistics read (``models.py`` defines the tables), in SQLAlchemy
# Core: reading the history imports no ORM.
_AT = DateTime(timezone=True)
C = table(
    "completions",
    column("created_at", _AT),
    column("created_day", String),
    column("language", String),
    column("model", String),
    column("source", String),
    column("outcome", String),
    column("text_length", Integer),
    column("accepted_length", Integer),
    column("first_token_ms", Float),
    column("total_ms", Float),
).c
S = table(
    "completion_survival",
    column("after_s", Integer),
    column("completion_created_at", _AT),
    column("created_day", String),
    column("language", String),
    column("model", String),
    column("accepted_chars", Integer),
    column("kept_chars", Integer),
    column("document_closed", Boolean),
).c
M = table(
    "model_calls",
    column("created_at", _AT),
    column("replay", Boolean),
    column("kind", String),
    column("model", String),
    column("failed", Boolean),
    column("prompt_tokens", Integer),
    column("completion_tokens", Integer),
    column("total_ms", Float),
).c
J = table(
    "jobs",
    column("created_at", _AT),
    column("kind", String),
    column("status", String),
    column("duration_ms", Float),
).c


def query_stats(
    *,
    connections: Sequence[Connection],
    since: datetime | None,
    tables: Iterable[str] = ("completions", "model_calls", "jobs", "completion_survival"),
    histogram: bool = False,
) -> Stats:
    """All figures over what was created at or after `since` (None: all of it).

    `connections`: one, or several reading the same snapshot; the queries are
    spread over them. `tables`: those present (a history written by an older
    zi-coder has only ``completions``; the others' figures are then left empty).
    `histogram`: also the latency histogram (the HTML report's).
    """
    present = set(tables)
    since = None if since is None else since.astimezone(UTC)  # SQLite compares UTC text
    first = connections[0]
    day = _day(first)
    indexed = _indexed_pairs(first)
    checkpoint = _checkpoint(first) if "completion_survival" in present else None
    model_served = [C.source == Source.MODEL.value]
    if since is not None:
        model_served.append(C.created_at >= since)

    with _Readers(connections) as readers:
        # The longest scans first (completions: one part per connection), the others
        # beside and after them.
        parts = _day_parts(first, day, since, len(connections))
        grouped = [readers.run(_completion_groups, since, day, part) for part in parts]
        calls = readers.run(_calls, since) if "model_calls" in present else None
        kept = None if checkpoint is None else readers.run(_kept_groups, since, checkpoint)
        jobs = readers.run(_jobs, since) if "jobs" in present else None
        groups = _CompletionGroups()
        for part in grouped:
            groups.merge(part.result())  # the percentiles' ranks come from their counts
        total = readers.run(_latency, C.total_ms, model_served, groups.served, indexed)
        first_token = readers.run(
            _latency, C.first_token_ms, model_served, groups.with_first_token, indexed
        )
        latency = total.result()
        plotted = None
        if histogram:
            plotted = readers.run(_histogram, model_served, latency, indexed)
        closed = 0
        if kept is not None:
            for group_day, language, model, figures, documents_closed in kept.result():
                groups.add_kept(group_day, language, model, figures)
                closed += documents_closed
        live, replays = ((), ()) if calls is None else calls.result()
        languages = groups.groups("language")
        return Stats(
            totals=sum((g.counts for g in languages), Counts()),
            latency=latency,
            first_token=first_token.result(),
            languages=languages,
            models=groups.groups("model"),
            days=tuple(sorted(groups.groups("day"), key=lambda g: g.name)),
            kept=sum((g.kept for g in languages), Kept()),
            checkpoint_s=checkpoint,
            documents_closed=closed,
            sources=tuple(sorted(groups.sources.items(), key=lambda s: (-s[1], s[0]))),
            calls=live,
            replays=replays,
            jobs=() if jobs is None else jobs.result(),
            histogram=None if plotted is None else plotted.result(),
        )


class _Readers:
    """Runs queries in threads, each on a connection no other query is using.

    sqlite3 releases the GIL while SQLite works, so two scans on two connections use
    two CPUs. With one connection, each query runs at once in the calling thread.
    """

    def __init__(self, connections: Sequence[Connection]) -> None:
        self._connections = connections
        self._free: queue.SimpleQueue[Connection] = queue.SimpleQueue()
        for connection in connections:
            self._free.put(connection)
        self._pool = None
        if len(connections) > 1:
            self._pool = ThreadPoolExecutor(len(connections), thread_name_prefix="zi-stats")

    def run(self, query: Callable[..., T], *args: Any) -> Future[T]:
        if self._pool is None:
            done: Future[T] = Future()
            done.set_result(query(self._connections[0], *args))
            return done

        def task() -> T:
            connection = self._free.get()  # never waits: no more threads than connections
            try:
                return query(connection, *args)
            finally:
                self._free.put(connection)

        return self._pool.submit(task)

    def __enter__(self) -> _Readers:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:  # on an error, the queries not started yet are dropped
            self._pool.shutdown(wait=True, cancel_futures=exc[0] is not None)


def _since_day(day: Any, at: Any, since: datetime | None) -> list[Any]:
    """Rows created at or after `since`, for a table with a day-led index: from
    ``since``'s day on, and on that first day only, from its time on. SQLite reads
    `at` from the table only when the day is the first one (its seek is deferred
    until a column not in the index is needed), so the index needs no time column."""
    if since is None:
        return []
    first = f"{since:%Y-%m-%d}"
    return [day >= first, or_(day > first, at >= since)]


def _day(connection: Connection) -> ColumnElement[str]:
    """``completions.created_day``; a history at migration 0001 has none: the UTC date
    of ``created_at`` then, computed in the database's own terms."""
    if any(c["name"] == "created_day" for c in inspect(connection).get_columns("completions")):
        return C.created_day
    if connection.dialect.name == "sqlite":  # UTC text, "YYYY-MM-DD HH:MM:SS.ffffff"
        return func.substr(C.created_at, 1, 10, type_=String)
    return func.to_char(func.timezone("UTC", C.created_at), "YYYY-MM-DD", type_=String)


def _count_where(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


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

    def add(self, row: Sequence[Any]) -> None:
        """One row of :func:`_completion_groups`' query."""
        day, language, model, source, outcome, n, characters, accepted_characters, timed = row
        # Sums: generated, shown, accepted, partially accepted, rejected, characters
        # accepted. `slot`: the one of accepted .. rejected this outcome adds to.
        slot, characters_accepted = _OUTCOME_SLOTS.get(outcome), 0
        if outcome == Outcome.ACCEPTED:
            characters_accepted = characters or 0
        elif outcome == Outcome.PARTIALLY_ACCEPTED:
            characters_accepted = accepted_characters or 0
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
            self.with_first_token += timed

    def merge(self, other: _CompletionGroups) -> None:
        """Adds `other`'s sums, of other days, to these (languages and models add up)."""
        for by, sums_by in self.sums.items():
            for key, sums in other.sums[by].items():
                mine = sums_by.setdefault(key, [0] * 6)
                mine[:] = [a + b for a, b in zip(mine, sums, strict=True)]
        for source, n in other.sources.items():
            self.sources[source] += n
        self.served += other.served
        self.with_first_token += other.with_first_token

    def add_kept(self, day: str, language: str, model: str, kept: Kept) -> None:
        for by, key in (("day", day), ("language", language), ("model", model)):
            self.kept[by, key] += kept

    def groups(self, by: str) -> tuple[Group, ...]:
        """Most shown first."""
        groups = [
            Group(str(key), Counts(*map(int, sums)), self.kept.get((by, key), Kept()))
            for key, sums in self.sums[by].items()
        ]
        groups.sort(key=lambda g: (-g.counts.shown, -g.counts.generated, g.name))
        return tuple(groups)


def _day_parts(
    connection: Connection, day: ColumnElement[str], since: datetime | None, parts: int
) -> list[tuple[str | None, str | None]]:
    """Ranges of days [from, to) (None: open) that split the completions into `parts`
    scans of about the same length: the days between the first and the last, cut
    in equal spans. One range (everything) for one part, or without ``created_day``."""
    if parts < 2 or day is not C.created_day:
        return [(None, None)]
    # Two queries: SQLite finds a min() or a max() alone in the index at once.
    first: str | None = f"{since:%Y-%m-%d}" if since is not None else None
    first = first or connection.execute(select(func.min(day))).scalar()
    last = connection.execute(select(func.max(day))).scalar()
    if first is None or last is None or first >= last:
        return [(None, None)]
    start = date.fromisoformat(first)
    span = (date.fromisoformat(last) - start).days + 1
    cuts = sorted(
        {f"{start + timedelta(days=span * i // parts):%Y-%m-%d}" for i in range(1, parts)}
    )
    edges: list[str | None] = [None, *cuts, None]
    return list(pairwise(edges))


def _completion_groups(
    connection: Connection,
    since: datetime | None,
    day: ColumnElement[str],
    days: tuple[str | None, str | None] = (None, None),
) -> _CompletionGroups:
    """Completions grouped by (day, language, model, source, outcome), with their
    count, sum of text lengths, sum of accepted lengths and count of first-token
    times: plain group keys and sums, the cheapest aggregation per row; Python
    derives the rest from them. `days`: only those in [from, to) (None: open)."""
    keys = (day, C.language, C.model, C.source, C.outcome)
    window = _since_day(day, C.created_at, since)
    if days[0] is not None:
        window.append(day >= days[0])
    if days[1] is not None:
        window.append(day < days[1])
    query = (
        select(
            *keys,
            func.count(),
            func.sum(C.text_length),
            func.sum(C.accepted_length),
            func.count(C.first_token_ms),
        )
        .where(*window)
        .group_by(*keys)
    )
    groups = _CompletionGroups()
    for row in connection.execute(query):
        groups.add(row)
    return groups


def _checkpoint(connection: Connection) -> int | None:
    """600 when the history has checks at 10 min, else its largest checkpoint."""
    ten = select(S.after_s).where(S.after_s == TEN_MINUTES_S).limit(1)
    if connection.execute(ten).first() is not None:
        return TEN_MINUTES_S
    largest = connection.execute(select(func.max(S.after_s))).scalar()
    return None if largest is None else int(largest)


def _kept_groups(
    connection: Connection, since: datetime | None, checkpoint: int
) -> list[tuple[str, str, str, Kept, int]]:
    """(day, language, model, kept, checks made after the document was closed).

    The checks carry their completion's time, day, language and model: no join, and
    ``ix_completion_survival_stats`` delivers the rows at the checkpoint in group order.
    """
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
        .where(S.after_s == checkpoint, *_since_day(S.created_day, S.completion_created_at, since))
        .group_by(S.created_day, S.language, S.model)
    )
    return [
        (str(day), str(language), str(model), Kept(int(n), int(chars), int(kept)), int(closed))
        for day, language, model, n, chars, kept, closed in connection.execute(query)
    ]


def _indexed_pairs(connection: Connection) -> set[tuple[str, str]]:
    """The (first, second) columns of the indexes on ``completions``."""
    import warnings

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
    LIMIT 2 OFFSET k`` that walks k entries of the index, from whichever end is
    nearer. Without one, that would sort the table once per percentile, so a
    single window query sorts once: ``row_number()`` over the sorted values,
    keeping the rows at the wanted ranks.
    """
    if count == 0:
        return Latency()
    positions = {p: (count - 1) * p / 100 for p in PERCENTS}
    lows = sorted({math.floor(x) for x in positions.values()})
    values: dict[int, float] = {}
    present = [column.is_not(None), *where]
    if ("source", column.key) in indexed:
        for low in lows:
            high = min(low + 1, count - 1)
            if low < count - 1 - high:  # nearer the bottom: ranks low, high upwards
                query = select(column).where(*present).order_by(column).offset(low)
                ranks: Iterable[int] = range(low, high + 1)
            else:  # nearer the top: ranks high, low downwards
                query = select(column).where(*present).order_by(column.desc())
                query = query.offset(count - 1 - high)
                ranks = range(high, low - 1, -1)
            rows = connection.execute(query.limit(high - low + 1))
            for rank, (value,) in zip(ranks, rows, strict=False):
                values[rank] = float(value)
    else:
        ranked = (
            select(column.label("value"), func.row_number().over(order_by=column).label("rank"))
            .where(*present)
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


def _histogram(
    connection: Connection, where: list[Any], latency: Latency, indexed: set[tuple[str, str]]
) -> Histogram | None:
    """Total times in about 40 bins of a round width up to the p99, one more above.

    With the (source, total_ms) index, each bin is a count of one range of it: one
    walk of the index in all, no sort. Without it, one GROUP BY of the bins.
    """
    if latency.p99_ms is None:
        return None
    width = nice_step(max(latency.p99_ms, 1.0) / 40)
    bins = max(1, math.ceil(latency.p99_ms / width))
    counts = [0] * (bins + 1)
    if ("source", "total_ms") in indexed:
        # Bin 0 also holds anything below 0; the last, `bins`, everything from its start.
        ranges = []
        for index in range(bins + 1):
            bounds = [C.total_ms >= index * width] if index > 0 else []
            bounds += [C.total_ms < (index + 1) * width] if index < bins else []
            in_range = and_(*where, *bounds)
            ranges.append(select(literal(index), func.count()).where(in_range))
        rows = connection.execute(union_all(*ranges))
    else:
        scaled = C.total_ms / width
        if connection.dialect.name == "sqlite":
            lower = cast(scaled, Integer)  # truncates: the floor of a non-negative number
        else:
            lower = cast(func.floor(scaled), Integer)
        bucket = case((C.total_ms >= bins * width, bins), else_=lower).label("bucket")
        inner = select(bucket).where(*where).subquery()
        rows = connection.execute(select(inner.c.bucket, func.count()).group_by(inner.c.bucket))
    for index, n in rows:
        counts[min(max(int(index), 0), bins)] += int(n)
    return Histogram(width, tuple(counts[:bins]), counts[bins])


def _calls(
    connection: Connection, since: datetime | None
) -> tuple[tuple[Calls, ...], tuple[Calls, ...]]:
    """Live calls and replays, by kind and model."""
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
