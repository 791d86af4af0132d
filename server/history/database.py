"""Engines and migrations for the history database (SQLite alone, PostgreSQL for teams).

Several processes share one database: every language server of a user (one per
editor window) on SQLite, a whole team's on PostgreSQL. Hence:

- SQLite is tuned for one writer at a time and many readers (WAL, a busy timeout,
  ``synchronous=NORMAL``); writers keep their transactions short (the history
  writer: one transaction per batch, its first statement a write);
- ``upgrade_to_head`` takes the database's migration lock first, so that servers
  starting at the same moment on an empty database do not both create the tables.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import URL, Connection, Engine

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key held while migrating ("zicoder1" in ASCII): any constant
# works, as long as every zi-coder version uses the same one.
MIGRATION_LOCK_KEY = 0x7A69_636F_6465_7231

_BUSY_TIMEOUT_MS = 10_000


def create_engine_for(url: str) -> Engine:
    from sqlalchemy import create_engine, event

    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": _BUSY_TIMEOUT_MS / 1000})

        @event.listens_for(engine, "connect")
        def _tune(dbapi_connection: Any, _record: Any) -> None:
            # One writer, many readers: WAL lets readers run during a write, and the
            # busy timeout makes concurrent server processes wait instead of failing.
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            _switch_to_wal(cursor)
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(with_driver(url), pool_pre_ping=True)


def _switch_to_wal(cursor: Any) -> None:
    """``PRAGMA journal_mode=WAL``, retried while another connection holds the file.

    Only the first connection to a new file changes the mode (it persists); it needs
    the file to itself, and SQLite answers "database is locked" at once, without the
    busy timeout, when two processes open a new database at the same moment.
    """
    import sqlite3
    import time

    deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def with_driver(url: str) -> str | URL:
    """`url`, with psycopg (3) named as the driver of a bare ``postgresql://`` URL.

    People write libpq's ``postgresql://user@host/db`` (or Heroku's ``postgres://``);
    SQLAlchemy would read both as psycopg2, which is not installed.
    """
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    return url


def migrations_dir() -> Path:
    import migrations

    return Path(migrations.__file__).parent


def upgrade_to_head(engine: Engine) -> None:
    """Apply Alembic migrations on `engine` (idempotent; safe with concurrent starts).

    All of it runs in one transaction that first takes the migration lock, so a
    second process starting at the same moment waits, then finds the database at
    head and has nothing to do.
    """
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    with engine.begin() as connection:
        lock_for_migrations(connection)
        refuse_unknown_revision(connection)
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


class SchemaTooNewError(RuntimeError):
    """The database was migrated by a newer zi-coder: this one cannot know its tables."""


def refuse_unknown_revision(connection: Connection) -> None:
    """Raise :class:`SchemaTooNewError` when the database is at a revision this
    zi-coder's migrations do not contain (Alembic would fail with a bare traceback)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    known = {script.revision for script in ScriptDirectory(str(migrations_dir())).walk_revisions()}
    unknown = set(MigrationContext.configure(connection).get_current_heads()) - known
    if unknown:
        raise SchemaTooNewError(
            f"the history database is at schema revision {', '.join(sorted(unknown))}, "
            "written by a newer zi-coder than this one: upgrade zi-coder to use it"
        )


def lock_for_migrations(connection: Connection) -> None:
    """Take the migration lock in `connection`'s transaction (held until it ends)."""
    backend = connection.dialect.name
    if backend == "sqlite":
        # Python's sqlite3 begins a transaction only before INSERT/UPDATE/DELETE: the
        # version check and the DDL would run outside one, and two processes would both
        # see no tables and both create them. BEGIN IMMEDIATE takes the write lock now
        # (waiting up to busy_timeout), and the commit at the end of engine.begin()
        # ends it. Caveat for migrations: PRAGMA foreign_keys is fixed inside a
        # transaction, and it is ON, so a batch migration that recreates `completions`
        # deletes its completion_survival rows (ON DELETE CASCADE) unless it saves them.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif backend == "postgresql":
        from sqlalchemy import text

        # Released at commit or rollback: a crashed migration cannot leave it held.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
