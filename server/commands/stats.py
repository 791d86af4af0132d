"""``zi-coder stats [--since WHEN] [--json] [--html FILE]``: the history's figures.

Reads the history database the language server writes (``ZI_DATABASE_URL``,
else the SQLite file in the user data directory: ``server.history.location``)
and prints the figures of ``server.history.stats``: a text report (rich tables on
a terminal, the same without colour when piped), or JSON with ``--json``;
``--html FILE`` also writes a self-contained HTML report (``report_html.py``).
VS Code's "Zi: Show Completion Stats" shows the stdout in an editor.

Strictly read-only (``server.history.reading``): a missing database or table is
reported as "no history yet" (a report of zeros with a note, exit 0), never
created or migrated. A database that cannot be opened or read, or an HTML file
that cannot be written, is one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import sys
from typing import TYPE_CHECKING

from server.commands.moments import Moment, since_type

if TYPE_CHECKING:
    from pathlib import Path

    from server.history.stats import Stats


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
    from server.history.reading import masked, read_stats
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
