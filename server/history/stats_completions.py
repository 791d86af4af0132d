"""``zi-coder stats``: the completions, grouped by (day, language, model, source,
outcome), and added up by day, by language and by model.

One GROUP BY reads ``ix_completions_stats`` in its own order and finds its sums in
it; :func:`day_parts` splits the days so that several connections share the scan.
Type-ahead continuations (``source`` ``typeahead``: the only rows with a
``parent_id``) are counted apart, never as suggestions: the grouping by
``source`` separates them, so the index covers it as it is.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from server.completion.types import Outcome, Source
from server.history.stats import Counts, Group, Kept
from server.history.stats_tables import C, since_day

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.sql.elements import ColumnElement


_OUTCOME_SLOTS = {
    Outcome.ACCEPTED.value: 2,
    Outcome.PARTIALLY_ACCEPTED.value: 3,
    Outcome.REJECTED.value: 4,
}


class CompletionGroups:
    """Adds the grouped rows up by day, by language and by model (in plain lists: fast)."""

    def __init__(self) -> None:
        self.days: dict[str, list[int]] = {}
        self.languages: dict[str, list[int]] = {}
        self.models: dict[str, list[int]] = {}
        self.sums = {"day": self.days, "language": self.languages, "model": self.models}
        self.kept: dict[tuple[str, str], Kept] = defaultdict(Kept)
        self.sources: dict[str, int] = defaultdict(int)
        self.served = self.with_first_token = self.typeahead = 0

    def add(self, row: Sequence[Any]) -> None:
        """One row of :func:`completion_groups`' query."""
        day, language, model, source, outcome, n, characters, accepted_characters, timed = row
        if source == Source.TYPEAHEAD:
            # A continuation of a suggestion as the user types it: no suggestion of its
            # own (its outcome is its root's too; outcomes.py).
            self.typeahead += n
            return
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

    def merge(self, other: CompletionGroups) -> None:
        """Adds `other`'s sums, of other days, to these (languages and models add up)."""
        for by, sums_by in self.sums.items():
            for key, sums in other.sums[by].items():
                mine = sums_by.setdefault(key, [0] * 6)
                mine[:] = [a + b for a, b in zip(mine, sums, strict=True)]
        for source, n in other.sources.items():
            self.sources[source] += n
        self.served += other.served
        self.with_first_token += other.with_first_token
        self.typeahead += other.typeahead

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


def day_parts(
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


def completion_groups(
    connection: Connection,
    since: datetime | None,
    day: ColumnElement[str],
    days: tuple[str | None, str | None] = (None, None),
) -> CompletionGroups:
    """Completions grouped by (day, language, model, source, outcome), with their
    count, sum of text lengths, sum of accepted lengths and count of first-token
    times: plain group keys and sums, the cheapest aggregation per row; Python
    derives the rest from them. `days`: only those in [from, to) (None: open)."""
    keys = (day, C.language, C.model, C.source, C.outcome)
    window = since_day(day, C.created_at, since)
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
    groups = CompletionGroups()
    for row in connection.execute(query):
        groups.add(row)
    return groups
