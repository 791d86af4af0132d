"""What the history writer makes of a database error: wait it out, drop, or stop.

- :class:`Unreachable`: the database cannot be reached for now (SQLite "database is
  locked" past the busy timeout; PostgreSQL refusing, closing or losing the
  connection). The writer keeps the events and tries again later.
- :class:`Refused`: the database refused these events (a constraint, a value it
  cannot store). Retrying cannot help; they are dropped.
- :class:`Unusable`: the database cannot hold this zi-coder's history at all (from a
  newer zi-coder, a path that cannot be created). History is off for the process.

Messages are one line, without credentials: they go to the log and to the user.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from server.history.database import SchemaTooNewError

T = TypeVar("T")


class Unreachable(Exception):
    """The database cannot be reached now; the same write may succeed later."""


class Refused(Exception):
    """The database refused the write; it would refuse it again."""


class Unusable(Exception):
    """The database cannot be used by this zi-coder; nothing will be written."""


def classified(
    function: Callable[..., T], *args: object, otherwise: type[Exception] = Refused
) -> T:
    """`function(*args)`, its errors raised as :class:`Unreachable`, :class:`Unusable`
    or `otherwise` (what an error that is neither means where it happens)."""
    try:
        return function(*args)
    except SchemaTooNewError as exc:
        raise Unusable(str(exc)) from exc
    except Exception as exc:
        if unreachable(exc):
            raise Unreachable(describe(exc)) from exc
        raise otherwise(describe(exc)) from exc


def unreachable(exc: BaseException) -> bool:
    """Whether `exc` says the database is out of reach for now, not that it refused."""
    from sqlalchemy import exc as sa

    if isinstance(exc, sa.DBAPIError):
        if exc.connection_invalidated:
            return True
        if not isinstance(exc, sa.OperationalError | sa.InterfaceError):
            return False  # integrity, data, programming errors: the statement's fault
        if type(exc.orig).__module__.startswith("sqlite3"):
            # Another process holds the write lock past the busy timeout. Other
            # SQLite operational errors (no such table, read-only file) stay.
            text = str(exc.orig).lower()
            return "locked" in text or "busy" in text
        # PostgreSQL (psycopg): connection refused, closed, lost, the server starting
        # or shutting down, too many clients: all about reaching it.
        return True
    return isinstance(exc, sa.DisconnectionError | sa.TimeoutError | ConnectionError | TimeoutError)


def describe(exc: BaseException) -> str:
    """`exc` in one line, the driver's error rather than SQLAlchemy's wrapper (which
    quotes the statement and its parameters), redacted."""
    from sqlalchemy import exc as sa

    from server.redact import redact

    cause = exc.orig if isinstance(exc, sa.DBAPIError) and exc.orig is not None else exc
    text = str(cause).strip().split("\n", 1)[0][:300]
    name = type(cause).__name__
    return redact(f"{name}: {text}" if text else name)


def display_url(url: str) -> str:
    """The database URL as messages show it: the password hidden."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy reads: its error says so elsewhere
        from server.redact import redact

        return redact(url)
