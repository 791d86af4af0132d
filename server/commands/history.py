"""``zi-coder history prune --older-than DURATION [--dry-run]``: delete old history.

Deletes the completions (with their ``completion_survival`` rows), model calls
and jobs created before now minus DURATION from the history database the
language server writes (``ZI_DATABASE_URL``, else the SQLite file in the user
data directory), on SQLite and PostgreSQL alike, and prints how many rows of
each went; ``--dry-run`` counts them and deletes nothing.

It never creates nor migrates the database: one that is missing, or not at the
migrations' head (older or newer than this zi-coder), is reported on stderr with
exit status 1; the language server migrates it when it starts. Rows go in chunks
of ``CHUNK``, one short transaction each, so servers writing to the same database
meanwhile wait for one chunk at most (SQLite has a single writer). A SQLite file
keeps its size: the freed pages are reused by new history.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from server.commands.moments import Duration, parse_duration
from server.history.reading import masked

if TYPE_CHECKING:
    from sqlalchemy import Select
    from sqlalchemy.engine import Connection, Engine

    from server.history.models import CompletionRecord, JobRecord, ModelCallRecord

    _Table = type[CompletionRecord] | type[ModelCallRecord] | type[JobRecord]

CHUNK = 500  # rows per transaction


class NotAtHeadError(Exception):
    """The database is not at the migrations' head: pruning could miss or break tables."""


@dataclass(frozen=True, slots=True)
class PruneCounts:
    completions: int
    survival_checks: int
    model_calls: int
    jobs: int


# -- the command -----------------------------------------------------------------


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    history = commands.add_parser("history", help="maintain the history database")
    actions = history.add_subparsers(dest="history_command", required=True, metavar="ACTION")
    prune = actions.add_parser(
        "prune",
        help="delete completions, model calls and jobs older than a duration",
        description=(
            "Delete the completions (with their survival checks), model calls and jobs "
            "created before now minus DURATION. The database must be at the current "
            "schema: start the language server once after an upgrade."
        ),
    )
    prune.add_argument(
        "--older-than",
        metavar="DURATION",
        type=parse_duration,
        required=True,
        help="delete what was created more than DURATION ago, e.g. 12h, 30d, 8w",
    )
    prune.add_argument("--dry-run", action="store_true", help="only count what would be deleted")
    prune.set_defaults(run=run_prune)


def run_prune(args: argparse.Namespace) -> int:
    from pydantic import ValidationError
    from sqlalchemy.exc import SQLAlchemyError

    from server.commands import fail
    from server.errors import describe
    from server.settings import Settings

    duration: Duration = args.older_than
    try:
        url = Settings().resolved_database_url()
    except ValidationError as exc:
        return fail(f"history prune: invalid settings: {' '.join(str(exc).split())}")
    shown_url = masked(url)
    if _missing_sqlite_file(url):
        return fail(f"history prune: no history database at {shown_url}")
    before = datetime.now(UTC) - duration.delta
    try:
        counts = prune_database(url, before=before, dry_run=args.dry_run)
    except NotAtHeadError as exc:
        return fail(f"history prune: the history database {shown_url} {exc}")
    except (SQLAlchemyError, ImportError, OSError) as exc:  # a bad URL, no driver, no server
        return fail(
            f"history prune: cannot prune the history database {shown_url}: {describe(exc)}"
        )
    sys.stdout.write(summary(counts, duration=duration, before=before, dry_run=args.dry_run))
    return 0


def summary(counts: PruneCounts, *, duration: Duration, before: datetime, dry_run: bool) -> str:
    """``Deleted 12 completions, 40 model calls, 3 jobs older than 30d (before … UTC)``."""
    completions = _plural(counts.completions, "completion")
    if counts.survival_checks:
        completions += f" (and their {_plural(counts.survival_checks, 'survival check')})"
    verb = "Would delete" if dry_run else "Deleted"
    tables = f"{completions}, {_plural(counts.model_calls, 'model call')}, "
    tables += _plural(counts.jobs, "job")
    return f"{verb} {tables} older than {duration.text} (before {before:%Y-%m-%d %H:%M} UTC)\n"


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


# -- pruning -----------------------------------------------------------------------


def prune_database(url: str, *, before: datetime, dry_run: bool) -> PruneCounts:
    """Prune the history at `url` (which must be at head) of rows created before `before`."""
    from server.history.database import create_engine_for

    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            _check_at_head(connection)
        if dry_run:
            return count_older(engine=engine, before=before)
        return delete_older(engine=engine, before=before)
    finally:
        engine.dispose()


def _check_at_head(connection: Connection) -> None:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from server.history.database import migrations_dir

    heads = set(ScriptDirectory(str(migrations_dir())).get_heads())
    current = set(MigrationContext.configure(connection).get_current_heads())
    if current != heads:
        at = ", ".join(sorted(current)) or "none (no history tables)"
        raise NotAtHeadError(
            f"is at revision {at}, not at this zi-coder's {', '.join(sorted(heads))}: "
            "start the language server once to migrate it, then prune"
        )


def count_older(*, engine: Engine, before: datetime) -> PruneCounts:
    """What `delete_older` would delete."""
    from sqlalchemy import select

    from server.history.models import CompletionRecord, JobRecord, ModelCallRecord, SurvivalRecord

    old_completions = select(CompletionRecord.id).where(CompletionRecord.created_at < before)
    with engine.connect() as connection:
        return PruneCounts(
            completions=_count_rows(connection, old_completions),
            survival_checks=_count_rows(
                connection,
                select(SurvivalRecord.after_s).where(
                    SurvivalRecord.completion_id.in_(old_completions)
                ),
            ),
            model_calls=_count_rows(
                connection, select(ModelCallRecord.id).where(ModelCallRecord.created_at < before)
            ),
            jobs=_count_rows(connection, select(JobRecord.id).where(JobRecord.created_at < before)),
        )


def delete_older(*, engine: Engine, before: datetime) -> PruneCounts:
    """Delete the rows created before `before`, `CHUNK` at a time; the counts deleted."""
    from sqlalchemy import delete

    from server.history.models import CompletionRecord, JobRecord, ModelCallRecord, SurvivalRecord

    completions = survival_checks = 0
    while True:
        with engine.begin() as connection:
            ids = _older_ids(connection, CompletionRecord, before)
            if not ids:
                break
            # The foreign key cascades too, but only where SQLite enforces foreign keys.
            survival_checks += connection.execute(
                delete(SurvivalRecord).where(SurvivalRecord.completion_id.in_(ids))
            ).rowcount
            completions += connection.execute(
                delete(CompletionRecord).where(CompletionRecord.id.in_(ids))
            ).rowcount
    return PruneCounts(
        completions=completions,
        survival_checks=survival_checks,
        model_calls=_delete_older_rows(engine, ModelCallRecord, before),
        jobs=_delete_older_rows(engine, JobRecord, before),
    )


def _delete_older_rows(engine: Engine, model: _Table, before: datetime) -> int:
    from sqlalchemy import delete

    deleted = 0
    while True:
        with engine.begin() as connection:
            ids = _older_ids(connection, model, before)
            if not ids:
                return deleted
            deleted += connection.execute(delete(model).where(model.id.in_(ids))).rowcount


def _older_ids(connection: Connection, model: _Table, before: datetime) -> list[str]:
    """Up to `CHUNK` ids of `model`'s rows created before `before`."""
    from sqlalchemy import select

    query = select(model.id).where(model.created_at < before).limit(CHUNK)
    return list(connection.scalars(query))


def _count_rows(connection: Connection, query: Select[Any]) -> int:
    from sqlalchemy import func, select

    return int(connection.scalar(select(func.count()).select_from(query.subquery())) or 0)


# -- helpers -------------------------------------------------------------------------


def _missing_sqlite_file(url: str) -> bool:
    """A SQLite URL naming a file that does not exist (connecting would create it)."""
    from pathlib import Path

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return False  # reported when connecting
    if parsed.get_backend_name() != "sqlite":
        return False
    database = parsed.database or ""
    if database.startswith("file:"):
        return False  # a SQLite URI names its own mode
    return database in ("", ":memory:") or not Path(database).expanduser().is_file()
