"""The history's writes as statements built once per dialect, with bound parameters.

Building a statement (an ORM ``update(...).values(...)``, a dialect's
``insert(...).on_conflict_do_nothing()``) cost more than running it: 1 to 2 ms of
CPU per event, in the server's process, holding the GIL. These are built once per
dialect; SQLAlchemy compiles each once (the engine's compiled cache), and
``repository`` runs each over all the rows of a batch (executemany).

Rows are dicts of the bound parameters: for the INSERTs, the table's columns
(every column, so no Python-side default runs per row); for the others, the names
below (none is a column of the table written, which SQLAlchemy reserves).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Boolean, DateTime, Integer, Table, bindparam, func, select, update

from server.completion.types import Outcome
from server.history.models import (
    CompletionRecord,
    JobRecord,
    ModelCallRecord,
    SurvivalRecord,
)

if TYPE_CHECKING:
    from sqlalchemy.sql.expression import Executable

# An outcome may only move forward: a late "shown" must not undo "accepted".
_MAY_REPLACE: dict[Outcome, tuple[Outcome, ...]] = {
    Outcome.SHOWN: (Outcome.GENERATED,),
    Outcome.REJECTED: (Outcome.GENERATED, Outcome.SHOWN),
    Outcome.PARTIALLY_ACCEPTED: (
        Outcome.GENERATED,
        Outcome.SHOWN,
        Outcome.REJECTED,
        Outcome.PARTIALLY_ACCEPTED,
    ),
    Outcome.ACCEPTED: (
        Outcome.GENERATED,
        Outcome.SHOWN,
        Outcome.REJECTED,
        Outcome.PARTIALLY_ACCEPTED,
    ),
}
# One UPDATE serves every outcome: `outcome IN (:from0, ..., :from3)`, padded with
# repeats, so a batch's outcomes run as one executemany, in their order.
_FROM_SLOTS = max(len(v) for v in _MAY_REPLACE.values())
MAY_REPLACE_PARAMS: dict[Outcome, dict[str, str]] = {
    outcome: {
        f"from{i}": (allowed[i] if i < len(allowed) else allowed[0]).value
        for i in range(_FROM_SLOTS)
    }
    for outcome, allowed in _MAY_REPLACE.items()
}

_SURVIVAL_COLUMNS = [
    "completion_id",
    "after_s",
    "completion_created_at",
    "created_day",
    "language",
    "model",
    "checked_at",
    "accepted_chars",
    "kept_chars",
    "document_closed",
]


@dataclass(frozen=True, slots=True)
class Statements:
    """The history's writes, for one dialect; rows are dicts of bound parameters."""

    completion: Executable
    outcome: Executable
    model_call: Executable
    job_queued: Executable
    job_end: Executable
    survival: Executable


_STATEMENTS: dict[str, Statements] = {}


def statements(dialect: str) -> Statements:
    """The statements for `dialect` (``sqlite`` or ``postgresql``), built on first use."""
    built = _STATEMENTS.get(dialect)
    if built is None:  # two threads may both build them: the same statements, no harm
        built = _STATEMENTS[dialect] = _build(dialect)
    return built


def _build(dialect: str) -> Statements:
    insert = _insert_for(dialect)
    completions_table, jobs_table = _table(CompletionRecord), _table(JobRecord)
    completions, jobs = completions_table.c, jobs_table.c

    outcome = (
        update(completions_table)
        .where(completions.id == bindparam("completion_id"))
        .where(completions.outcome.in_([bindparam(f"from{i}") for i in range(_FROM_SLOTS)]))
        .values(
            outcome=bindparam("new_outcome"),
            # NULL: left as it is ("shown" sets shown_at, a decision decided_at).
            shown_at=func.coalesce(
                bindparam("new_shown_at", type_=completions.shown_at.type), completions.shown_at
            ),
            decided_at=func.coalesce(
                bindparam("new_decided_at", type_=completions.decided_at.type),
                completions.decided_at,
            ),
            accepted_length=func.coalesce(
                bindparam("new_accepted_length", type_=Integer), completions.accepted_length
            ),
        )
    )

    job_end = insert(jobs_table)
    new_job = job_end.excluded
    job_end = job_end.on_conflict_do_update(
        index_elements=[jobs.id],
        set_={
            "status": new_job.status,
            "finished_at": new_job.finished_at,
            "duration_ms": new_job.duration_ms,
            "error": new_job.error,
            "uri": func.coalesce(jobs.uri, new_job.uri),
            "language": func.coalesce(jobs.language, new_job.language),
        },
        # The same end again (a result reused by an identical request, or recorded
        # by a second server sharing it) keeps the first run's times.
        where=jobs.status != new_job.status,
    )

    # Selected from `completions` itself, in the one statement: nothing is written for
    # a completion this database does not hold (history was off when it was made), so
    # the foreign key can never fail a batch. The completion's time, day, language and
    # model are copied with it (the statistics read them from here).
    checked = select(
        completions.id,
        bindparam("check_after_s", type_=Integer),
        completions.created_at,
        completions.created_day,
        completions.language,
        completions.model,
        bindparam("check_at", type_=DateTime(timezone=True)),
        bindparam("check_accepted_chars", type_=Integer),
        bindparam("check_kept_chars", type_=Integer),
        bindparam("check_closed", type_=Boolean),
    ).where(completions.id == bindparam("check_of"))
    survival = insert(_table(SurvivalRecord)).from_select(_SURVIVAL_COLUMNS, checked)
    new_check = survival.excluded
    survival = survival.on_conflict_do_update(
        index_elements=[SurvivalRecord.completion_id, SurvivalRecord.after_s],
        set_={
            "checked_at": new_check.checked_at,
            "accepted_chars": new_check.accepted_chars,
            "kept_chars": new_check.kept_chars,
            "document_closed": new_check.document_closed,
        },
    )
    return Statements(
        completion=insert(completions_table).on_conflict_do_nothing(),
        outcome=outcome,
        model_call=insert(_table(ModelCallRecord)).on_conflict_do_nothing(),
        job_queued=insert(jobs_table).on_conflict_do_nothing(),
        job_end=job_end,
        survival=survival,
    )


def _table(model: type[Any]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def _insert_for(dialect: str) -> Any:
    """The dialect's INSERT, which has ON CONFLICT (SQLite and PostgreSQL alike)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert
    raise NotImplementedError(f"history on {dialect} is not supported (SQLite or PostgreSQL)")
