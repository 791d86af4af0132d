"""Reading the history database without ever writing it: the figures of
``zi-coder stats`` (and the MCP ``stats`` tool), history search, and the URL as
messages may show it.

Strictly read-only: SQLite is opened with ``mode=ro``, PostgreSQL in a READ ONLY
transaction, and a missing file or table reads as "no history yet" (None, or no
rows), never created or migrated. The figures are read on one snapshot, so they
are of one moment even while the server writes; on SQLite the queries run on two
connections at once (the same snapshot), using two CPUs. Imports are lazy: the
stats command has a 2 s budget (``bench/history_stats.py``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.engine import Connection, Engine

    from server.history.search import Found
    from server.history.stats import Stats

# SQLite: connections reading at once (the scan of completions beside those of the
# other tables, which take about as long together), and tries at a shared snapshot.
_READERS = 2
_SNAPSHOT_TRIES = 5


def read_stats(url: str, *, since: datetime | None, histogram: bool = False) -> Stats | None:
    """The figures in the database at `url`; None when it holds no history (yet)."""
    from contextlib import ExitStack

    from sqlalchemy import inspect

    from server.history.stats import TABLE
    from server.history.stats_query import query_stats

    engine = open_readonly(url)
    if engine is None:
        return None
    try:
        with ExitStack() as stack:
            first = stack.enter_context(engine.connect())
            readers = [first]
            if first.dialect.name == "sqlite":
                readers += [stack.enter_context(engine.connect()) for _ in range(_READERS - 1)]
            readers = _one_snapshot(readers)
            tables = set(inspect(first).get_table_names())
            if TABLE not in tables:
                return None
            return query_stats(connections=readers, since=since, tables=tables, histogram=histogram)
    finally:
        engine.dispose()


def read_history(url: str, *, text: str | None, limit: int) -> list[Found]:
    """The newest rows containing `text` (any case), or just the newest for None;
    nothing when the database holds no history (yet). At most `limit`."""
    from sqlalchemy import inspect

    from server.history.search import recent_history, search_history

    engine = open_readonly(url)
    if engine is None:
        return []
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("model_calls"):
                return []  # no history yet, or one from before model calls were kept
            if text is None:
                return recent_history(connection, limit=limit)
            return search_history(connection, text=text, limit=limit)
    finally:
        engine.dispose()


def _one_snapshot(connections: list[Connection]) -> list[Connection]:
    """Those of `connections` to query, all reading the same, unchanging moment.

    PostgreSQL: the first one alone, in a REPEATABLE READ, READ ONLY transaction.
    SQLite: each in an explicit BEGIN (the driver starts none for SELECTs), which
    in WAL mode keeps the snapshot of its first read; the connections' end rolls
    them back. Their first reads must see the same commits: the first connection
    reads ``PRAGMA data_version`` (it changes with every commit of another
    connection) outside a transaction, the others begin, and it begins last with
    the same PRAGMA as its first read. The same version: no commit came between,
    all read one moment. Else they try again; under a writer that never pauses,
    the first connection reads alone.
    """
    first = connections[0]
    if first.dialect.name == "postgresql":
        first.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        return [first]
    if first.dialect.name != "sqlite":
        return [first]
    for _ in range(_SNAPSHOT_TRIES):
        before = first.exec_driver_sql("PRAGMA data_version").scalar()
        for other in connections[1:]:
            other.exec_driver_sql("BEGIN")
            other.exec_driver_sql("PRAGMA data_version").scalar()  # the first read
        first.exec_driver_sql("BEGIN")
        if first.exec_driver_sql("PRAGMA data_version").scalar() == before:
            return connections
        for connection in connections:
            connection.rollback()
    first.exec_driver_sql("BEGIN")
    return [first]


def open_readonly(url: str) -> Engine | None:
    """An engine to read `url` with; None when a SQLite database does not exist.

    A SQLite file is opened ``mode=ro`` (it cannot be written, nor created); other
    databases get the server's engine, and this module only ever SELECTs.
    """
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    from server.history.database import create_engine_for

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine_for(url)
    import sqlite3
    from pathlib import Path

    database = parsed.database or ""
    if database in ("", ":memory:"):
        return None  # a fresh in-memory database: nothing was ever written to it
    if database.startswith("file:"):
        return create_engine_for(url)  # a SQLite URI names its own mode
    path = Path(database).expanduser().resolve()
    if not path.is_file():
        return None
    # Not create_engine_for: its PRAGMAs set the journal mode, which is a write.
    uri = f"{path.as_uri()}?mode=ro"
    return create_engine(
        "sqlite://",
        creator=lambda: sqlite3.connect(uri, uri=True, timeout=10, check_same_thread=False),
        poolclass=NullPool,  # "sqlite://" alone would get one connection per thread
    )


def masked(url: str) -> str:
    """`url` with any password hidden, for messages."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)
