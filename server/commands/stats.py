"""``zi-coder stats [--since DURATION] [--json] [--html FILE]``: the history's figures.

Reads the history database the language server writes (``ZI_DATABASE_URL``,
else the SQLite file in the user data directory: ``Settings.resolved_database_url``)
and prints the figures of ``server.history.stats``: a text report (rich tables on
a terminal, the same without colour when piped), or JSON with ``--json``;
``--html FILE`` also writes a self-contained HTML report (``report_html.py``).
VS Code's "Zi: Show Completion Stats" shows the stdout in an editor.

Strictly read-only: SQLite is opened with ``mode=ro``, PostgreSQL in a READ ONLY
transaction, and a missing file or table is reported as "no history yet" (a
report of zeros with a note, exit 0), never created or migrated. All queries run
in one transaction, so the figures are of one moment even while the server
writes. A database that cannot be opened or read, or an HTML file that cannot be
written, is one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from server.history.stats import TABLE, Stats, to_json

if TYPE_CHECKING:
    from pathlib import Path

    from sqlalchemy.engine import Connection, Engine

_DURATION = re.compile(r"(\d+)([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


# -- the command -----------------------------------------------------------------


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stats = commands.add_parser(
        "stats",
        help="acceptance, characters kept, latency, cache hits, model calls and jobs, "
        "from the history database",
    )
    stats.add_argument(
        "--since",
        metavar="DURATION",
        type=parse_duration,
        help="only completions of the last DURATION, e.g. 30m, 12h, 7d, 2w (default: all time)",
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
    from pydantic import ValidationError
    from sqlalchemy.exc import SQLAlchemyError

    from server.commands import fail, say
    from server.settings import Settings

    duration: Duration | None = args.since
    try:
        url = Settings().resolved_database_url()
    except ValidationError as exc:
        return fail(f"stats: invalid settings: {' '.join(str(exc).split())}")
    since: datetime | None = None
    period = "all time"
    if duration is not None:
        since = datetime.now(UTC) - duration.delta
        period = f"last {duration.text}, since {since:%Y-%m-%d %H:%M} UTC"
    shown_url = masked(url)
    html: Path | None = args.html
    try:
        stats = read_stats(url, since=since, histogram=html is not None)
    except (SQLAlchemyError, ImportError, OSError) as exc:  # a bad URL, no driver, no server
        return fail(f"stats: cannot read the history database {shown_url}: {_describe(exc)}")
    note = None if stats is not None else f"no history yet at {shown_url}"
    stats = stats or Stats.empty()
    if html is not None:
        from server.history.report_html import render_html

        page = render_html(stats, url=shown_url, period=period, note=note)
        try:
            _write_atomically(html, page)
        except OSError as exc:
            return fail(f"stats: cannot write {html}: {_describe(exc)}")
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


@dataclass(frozen=True, slots=True)
class Duration:
    text: str
    delta: timedelta


def parse_duration(text: str) -> Duration:
    """``30m``, ``12h``, ``7d`` or ``2w``, as argparse's ``type`` (errors exit 2)."""
    match = _DURATION.fullmatch(text.strip().lower())
    problem = f"expected a duration like 30m, 12h, 7d or 2w, got {text!r}"
    if match is None or int(match[1]) == 0:
        raise argparse.ArgumentTypeError(problem)
    try:
        delta = timedelta(**{_UNITS[match[2]]: int(match[1])})
        datetime.now(UTC) - delta  # the start must stay within datetime's range
    except OverflowError:
        raise argparse.ArgumentTypeError(f"{text!r} reaches back too far") from None
    return Duration(text=match[0], delta=delta)


# -- reading ------------------------------------------------------------------------


def read_stats(url: str, *, since: datetime | None, histogram: bool = False) -> Stats | None:
    """The figures in the database at `url`; None when it holds no history (yet)."""
    from sqlalchemy import inspect

    from server.history.stats_query import query_stats

    engine = open_readonly(url)
    if engine is None:
        return None
    try:
        with engine.connect() as connection:
            _one_snapshot(connection)
            tables = set(inspect(connection).get_table_names())
            if TABLE not in tables:
                return None
            return query_stats(
                connection=connection, since=since, tables=tables, histogram=histogram
            )
    finally:
        engine.dispose()


def _one_snapshot(connection: Connection) -> None:
    """Make every query of `connection` read the same, unchanging moment.

    PostgreSQL: a REPEATABLE READ, READ ONLY transaction. SQLite: an explicit
    BEGIN (the driver starts none for SELECTs), which in WAL mode keeps the
    snapshot of its first read; the connection's end rolls it back.
    """
    if connection.dialect.name == "postgresql":
        connection.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    elif connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN")


def open_readonly(url: str) -> Engine | None:
    """An engine to read `url` with; None when a SQLite database does not exist.

    A SQLite file is opened ``mode=ro`` (it cannot be written, nor created); other
    databases get the server's engine, and this module only ever SELECTs.
    """
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

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
    )


def masked(url: str) -> str:
    """`url` with any password hidden, for messages."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return re.sub(r"(://[^/@:]*:)[^/@]*@", r"\1***@", url)


def _describe(exc: BaseException) -> str:
    # SQLAlchemy wraps the driver's error; its own text adds SQL and a link on more lines.
    inner = getattr(exc, "orig", None)
    shown = inner if isinstance(inner, BaseException) else exc
    return f"{type(shown).__name__}: {_one_line(shown)}"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no detail)"
