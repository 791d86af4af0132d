"""``zi-coder stats [--since WHEN] [--json] [--html FILE]``: the history's figures.

Reads the history database the language server writes (``ZI_DATABASE_URL``,
else the SQLite file in the user data directory: ``server.history.location``)
and prints the figures of ``server.history.stats``: a text report (rich tables on
a terminal, the same without colour when piped), or JSON with ``--json``;
``--html FILE`` also writes a self-contained HTML report (``report_html.py``).
VS Code's "Zi: Show Completion Stats" shows the stdout in an editor.

Strictly read-only: SQLite is opened with ``mode=ro``, PostgreSQL in a READ ONLY
transaction, and a missing file or table is reported as "no history yet" (a
report of zeros with a note, exit 0), never created or migrated. All queries read
one snapshot, so the figures are of one moment even while the server writes; on
SQLite they run on two connections at once (the same snapshot), using two CPUs.
A database that cannot be opened or read, or an HTML file that cannot be
written, is one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import re
import sys
from typing import TYPE_CHECKING

from server.commands.moments import Moment, since_type

if TYPE_CHECKING:
    from datetime import datetime
    from pathlib import Path

    from sqlalchemy.engine import Connection, Engine

    from server.history.stats import Stats

# SQLite: connections reading at once (the scan of completions beside those of the
# other tables, which take about as long together), and tries at a shared snapshot.
_READERS = 2
_SNAPSHOT_TRIES = 5


# -- the command -----------------------------------------------------------------


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stats = commands.add_parser(
        "stats",
        help="acceptance, characters kept, latency, cache hits, model calls and jobs, "
        "from the history database",
    )
    stats.add_argument(
        "--since",
        metavar="WHEN",
        type=since_type,
        help="only what was created from WHEN on: a duration back from now (30m, 12h, 7d, "
        "2w) or a UTC date or time (2025-01-31, 2025-01-31T14:00) (default: all time)",
    )
    stats.add_argument("--json", action="store_true", help="print the figures as JSON")
    stats.add_argument(
        "--html",
        metavar="FILE",
        type=_path,
        help="also write a self-contained HTML report with plots to FILE",
    )
    stats.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    # A short command that imports big libraries: the cyclic GC would walk their
    # objects over and over (pydantic's, SQLAlchemy's), and once more at exit, for
    # nothing (about 0.3 s of CPU of the 2 s budget; bench/history_stats.py).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    atexit.register(gc.freeze)  # the collection at exit skips what exists by then
    try:
        return _run(args)
    finally:
        if gc_was_enabled:
            gc.enable()


def _run(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from server.commands import fail, say
    from server.errors import describe
    from server.history.location import database_url_from_environment
    from server.history.stats import Stats, to_json

    moment: Moment | None = args.since
    url = database_url_from_environment()  # not Settings: pydantic alone takes 0.3 s
    since = None if moment is None else moment.at
    period = "all time" if moment is None else _period(moment)
    shown_url = masked(url)
    html: Path | None = args.html
    try:
        stats = read_stats(url, since=since, histogram=html is not None)
    except (SQLAlchemyError, ImportError, OSError) as exc:  # a bad URL, no driver, no server
        return fail(f"stats: cannot read the history database {shown_url}: {describe(exc)}")
    note = None if stats is not None else f"no history yet at {shown_url}"
    stats = stats or Stats.empty()
    if html is not None:
        from server.history.report_html import render_html

        page = render_html(stats, url=shown_url, period=period, note=note)
        try:
            _write_atomically(html, page)
        except OSError as exc:
            return fail(f"stats: cannot write {html}: {describe(exc)}")
    if args.json:
        out = json.dumps(to_json(stats, url=shown_url, since=since, note=note), indent=2)
        sys.stdout.write(out + "\n")
    else:
        _print_text(stats, url=shown_url, period=period, note=note)
    if html is not None:
        say(f"stats: wrote the HTML report to {html}")
    return 0


def _print_text(stats: Stats, *, url: str, period: str, note: str | None) -> None:
    """Rich tables in colour on a terminal; piped, the same characters without colour."""
    from rich.console import Console

    from server.history.report_text import PIPED_WIDTH, render_text, write_text

    if sys.stdout.isatty():
        write_text(Console(highlight=False), stats, url=url, period=period, note=note)
    else:
        text = render_text(stats, url=url, period=period, note=note, width=PIPED_WIDTH)
        sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _path(text: str) -> Path:
    from pathlib import Path

    return Path(text).expanduser()


def _write_atomically(path: Path, text: str) -> None:
    """A reader (a browser reloading) sees the old report or the new one, never half."""
    import os
    import tempfile

    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _period(moment: Moment) -> str:
    since = f"since {moment.at:%Y-%m-%d %H:%M} UTC"
    return since if moment.ago is None else f"last {moment.ago.text}, {since}"


# -- reading ------------------------------------------------------------------------


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
