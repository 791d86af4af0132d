"""``zi-coder stats [--since DURATION] [--json]``: the history's figures, read-only.

Reads the history database the language server writes (``ZI_DATABASE_URL``,
else the SQLite file in the user data directory: ``Settings.resolved_database_url``)
and prints ``server.history.stats``'s figures; VS Code's "Zi: Show Completion
Stats" shows this stdout in an editor. Strictly read-only: SQLite is opened
with ``mode=ro`` and a missing file or table is reported as "no history yet"
(a report of zeros with a note, exit 0), never created or migrated. A database
that cannot be opened or read is one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from server.history.stats import TABLE, Stats, query_stats, render_text, to_json

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

_DURATION = re.compile(r"(\d+)([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


# -- the command -----------------------------------------------------------------


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    stats = commands.add_parser(
        "stats", help="acceptance rate and latency of completions, from the history database"
    )
    stats.add_argument(
        "--since",
        metavar="DURATION",
        type=parse_duration,
        help="only completions of the last DURATION, e.g. 30m, 12h, 7d, 2w (default: all time)",
    )
    stats.add_argument("--json", action="store_true", help="print the figures as JSON")
    stats.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError
    from sqlalchemy.exc import SQLAlchemyError

    from server.commands import fail
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
    try:
        stats = read_stats(url, since=since)
    except (SQLAlchemyError, ImportError, OSError) as exc:  # a bad URL, no driver, no server
        return fail(f"stats: cannot read the history database {shown_url}: {_describe(exc)}")
    note = None if stats is not None else f"no history yet at {shown_url}"
    stats = stats or Stats.empty()
    if args.json:
        out = json.dumps(to_json(stats, url=shown_url, since=since, note=note), indent=2)
    else:
        out = render_text(stats, url=shown_url, period=period, note=note)
    sys.stdout.write(out + "\n")
    return 0


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


def read_stats(url: str, *, since: datetime | None) -> Stats | None:
    """The figures in the database at `url`; None when it holds no history (yet)."""
    from sqlalchemy import inspect

    engine = open_readonly(url)
    if engine is None:
        return None
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table(TABLE):
                return None
            return query_stats(connection=connection, since=since)
    finally:
        engine.dispose()


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
