"""Percentiles and the histogram of one latency column, read from the database.

SQLite has no percentile function, and a latency list is never fetched. With an
index led by (``source``, the column) (migration 0002), each percentile is an
``ORDER BY ... LIMIT 2 OFFSET k`` that walks k index entries from the nearer end
(p99 is a short walk down from the top), and each histogram bin is a count of
one range of the same index: no sort at all. Without one, one window query
sorts once (``row_number()`` over the values, keeping only the rows at the
ranks the percentiles interpolate between), and one GROUP BY counts the bins.
Percentiles interpolate linearly between ranks (numpy's default), as
:func:`server.history.stats.percentile` does over a list.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, and_, case, cast, func, inspect, literal, or_, select, union_all

from server.history.stats import PERCENTS, Histogram, Latency, nice_step

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection


def indexed_pairs(connection: Connection, table: str) -> set[tuple[str, str]]:
    """The (first, second) columns of `table`'s indexes."""
    import warnings

    from sqlalchemy.exc import SAWarning

    pairs = set()
    with warnings.catch_warnings():  # "skipped unsupported reflection of expression-based index"
        warnings.simplefilter("ignore", SAWarning)
        indexes = inspect(connection).get_indexes(table)
    for index in indexes:
        names = index.get("column_names") or []
        if len(names) >= 2 and names[0] and names[1]:
            pairs.add((names[0], names[1]))
    return pairs


def latency(
    connection: Connection, column: Any, where: list[Any], count: int, *, indexed: bool
) -> Latency:
    """p50, p90, p99 of `column` over the `count` rows matching `where`.

    `indexed`: an index leads with the columns `where` fixes, then `column`: each
    percentile walks it from whichever end is nearer. Else a single window query
    sorts once, instead of once per percentile.
    """
    if count == 0:
        return Latency()
    positions = {p: (count - 1) * p / 100 for p in PERCENTS}
    lows = sorted({math.floor(x) for x in positions.values()})
    values: dict[int, float] = {}
    present = [column.is_not(None), *where]
    if indexed:
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


def histogram(
    connection: Connection, column: Any, where: list[Any], of: Latency, *, indexed: bool
) -> Histogram | None:
    """`column`'s values in about 40 bins of a round width up to `of`'s p99, one more
    above. `indexed`: as for :func:`latency`; each bin is then a count of one range
    of the index (one walk of it in all, no sort). Else one GROUP BY of the bins."""
    if of.p99_ms is None:
        return None
    width = nice_step(max(of.p99_ms, 1.0) / 40)
    bins = max(1, math.ceil(of.p99_ms / width))
    counts = [0] * (bins + 1)
    if indexed:
        # Bin 0 also holds anything below 0; the last, `bins`, everything from its start.
        ranges = []
        for index in range(bins + 1):
            bounds = [column >= index * width] if index > 0 else []
            bounds += [column < (index + 1) * width] if index < bins else []
            in_range = and_(*where, *bounds)
            ranges.append(select(literal(index), func.count()).where(in_range))
        rows = connection.execute(union_all(*ranges))
    else:
        scaled = column / width
        if connection.dialect.name == "sqlite":
            lower = cast(scaled, Integer)  # truncates: the floor of a non-negative number
        else:
            lower = cast(func.floor(scaled), Integer)
        bucket = case((column >= bins * width, bins), else_=lower).label("bucket")
        inner = select(bucket).where(*where).subquery()
        rows = connection.execute(select(inner.c.bucket, func.count()).group_by(inner.c.bucket))
    for index, n in rows:
        counts[min(max(int(index), 0), bins)] += int(n)
    return Histogram(width, tuple(counts[:bins]), counts[bins])
