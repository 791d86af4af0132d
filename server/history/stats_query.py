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
- the latency percentiles and histogram of model-served completions:
  ``stats_percentiles.py`` (each walks an index; no latency list is fetched).

The completions' grouping is ``stats_completions.py`` (type-ahead continuations
are counted apart there), the tables and the ``--since`` filter
``stats_tables.py``.

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
a time (``reading.py`` opens them on one snapshot): the scan of
``completions`` then runs beside those of the other tables.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import case, func, select

from server.completion.types import Source
from server.history.aggregates import count_where, sum_where
from server.history.stats import TEN_MINUTES_S, Calls, Counts, Jobs, Kept, Stats
from server.history.stats_completions import CompletionGroups, completion_groups, day_parts
from server.history.stats_percentiles import histogram as latency_histogram
from server.history.stats_percentiles import indexed_pairs, latency
from server.history.stats_tables import C, J, M, S, day_column, since_day

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

T = TypeVar("T")


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
    day = day_column(first)
    indexed = indexed_pairs(first, "completions")
    checkpoint = _checkpoint(first) if "completion_survival" in present else None
    model_served = [C.source == Source.MODEL.value]
    if since is not None:
        model_served.append(C.created_at >= since)

    with _Readers(connections) as readers:
        # The longest scans first (completions: one part per connection), the others
        # beside and after them.
        parts = day_parts(first, day, since, len(connections))
        grouped = [readers.run(completion_groups, since, day, part) for part in parts]
        calls = readers.run(_calls, since) if "model_calls" in present else None
        kept = None if checkpoint is None else readers.run(_kept_groups, since, checkpoint)
        jobs = readers.run(_jobs, since) if "jobs" in present else None
        groups = CompletionGroups()
        for part in grouped:
            groups.merge(part.result())  # the percentiles' ranks come from their counts
        # Percentiles of the model-served, each walking its (source, column) index if any.
        walks = {name: ("source", name) in indexed for name in ("total_ms", "first_token_ms")}
        total = readers.run(
            latency, C.total_ms, model_served, groups.served, indexed=walks["total_ms"]
        )
        first_token = readers.run(
            latency,
            C.first_token_ms,
            model_served,
            groups.with_first_token,
            indexed=walks["first_token_ms"],
        )
        served = total.result()
        plotted = None
        if histogram:
            plotted = readers.run(
                latency_histogram, C.total_ms, model_served, served, indexed=walks["total_ms"]
            )
        closed = 0
        if kept is not None:
            for group_day, language, model, figures, documents_closed in kept.result():
                groups.add_kept(group_day, language, model, figures)
                closed += documents_closed
        live, replays = ((), ()) if calls is None else calls.result()
        languages = groups.groups("language")
        return Stats(
            totals=sum((g.counts for g in languages), Counts()),
            latency=served,
            first_token=first_token.result(),
            languages=languages,
            models=groups.groups("model"),
            days=tuple(sorted(groups.groups("day"), key=lambda g: g.name)),
            kept=sum((g.kept for g in languages), Kept()),
            checkpoint_s=checkpoint,
            documents_closed=closed,
            sources=tuple(sorted(groups.sources.items(), key=lambda s: (-s[1], s[0]))),
            typeahead=groups.typeahead,
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

    def run(self, query: Callable[..., T], *args: Any, **kwargs: Any) -> Future[T]:
        if self._pool is None:
            done: Future[T] = Future()
            done.set_result(query(self._connections[0], *args, **kwargs))
            return done

        def task() -> T:
            connection = self._free.get()  # never waits: no more threads than connections
            try:
                return query(connection, *args, **kwargs)
            finally:
                self._free.put(connection)

        return self._pool.submit(task)

    def __enter__(self) -> _Readers:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:  # on an error, the queries not started yet are dropped
            self._pool.shutdown(wait=True, cancel_futures=exc[0] is not None)


def _checkpoint(connection: Connection) -> int | None:
    """The checkpoint whose checks the figures show: 600 (10 min) when a check there
    judged something, else the latest such; else (every check came after its
    document closed) the latest. A closed document's acceptance gets a check at every
    checkpoint still ahead at once, so one may be at 600 before any judged there."""
    judged = S.document_closed.is_(False)
    ten = select(S.after_s).where(S.after_s == TEN_MINUTES_S, judged).limit(1)
    if connection.execute(ten).first() is not None:
        return TEN_MINUTES_S
    # Walks ix_completion_survival_stats down from its end to the first judged check.
    latest = select(S.after_s).where(judged).order_by(S.after_s.desc()).limit(1)
    found = connection.execute(latest).scalar()
    if found is None:
        found = connection.execute(select(func.max(S.after_s))).scalar()
    return None if found is None else int(found)


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
            count_where(judged),
            sum_where(judged, S.accepted_chars),
            sum_where(judged, S.kept_chars),
            count_where(S.document_closed.is_(True)),
        )
        .where(S.after_s == checkpoint, *since_day(S.created_day, S.completion_created_at, since))
        .group_by(S.created_day, S.language, S.model)
    )
    return [
        (str(day), str(language), str(model), Kept(int(n), int(chars), int(kept)), int(closed))
        for day, language, model, n, chars, kept, closed in connection.execute(query)
    ]


def _calls(
    connection: Connection, since: datetime | None
) -> tuple[tuple[Calls, ...], tuple[Calls, ...]]:
    """Live calls and replays, by kind and model. Cancelled calls are neither errors
    nor in the mean time (cut short by their caller); token sums count the calls
    that reported usage (a stream stopped early reports none)."""
    live_time = case((M.cancelled.is_(False), M.total_ms))  # NULL: left out of the mean
    query = (
        select(
            M.replay,
            M.kind,
            M.model,
            func.count(),
            count_where(M.failed.is_(True) & M.cancelled.is_(False)),
            count_where(M.cancelled.is_(True)),
            func.coalesce(func.sum(M.prompt_tokens), 0),
            func.coalesce(func.sum(M.completion_tokens), 0),
            func.count(M.completion_tokens),
            func.avg(live_time),
        )
        .where(*([] if since is None else [M.created_at >= since]))
        .group_by(M.replay, M.kind, M.model)
    )
    live: list[Calls] = []
    replays: list[Calls] = []
    for (
        replay,
        kind,
        model,
        n,
        errors,
        cancelled,
        prompt,
        output,
        reported,
        mean,
    ) in connection.execute(query):
        calls = Calls(
            str(kind),
            str(model),
            calls=int(n),
            errors=int(errors),
            cancelled=int(cancelled),
            prompt_tokens=int(prompt),
            completion_tokens=int(output),
            with_tokens=int(reported),
            mean_ms=None if mean is None else float(mean),
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
