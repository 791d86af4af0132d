"""The history's tables as ``zi-coder stats`` reads them, and the ``--since`` filter.

The columns the statistics read (``models.py`` defines the tables), in SQLAlchemy
Core (``table()``): reading the history imports no ORM.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Boolean, DateTime, Float, Integer, String, column, func, inspect, or_, table

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.sql.elements import ColumnElement

_AT = DateTime(timezone=True)
C = table(
    "completions",
    column("created_at", _AT),
    column("created_day", String),
    column("language", String),
    column("model", String),
    column("source", String),
    column("outcome", String),
    column("text_length", Integer),
    column("accepted_length", Integer),
    column("first_token_ms", Float),
    column("total_ms", Float),
).c
S = table(
    "completion_survival",
    column("after_s", Integer),
    column("completion_created_at", _AT),
    column("created_day", String),
    column("language", String),
    column("model", String),
    column("accepted_chars", Integer),
    column("kept_chars", Integer),
    column("document_closed", Boolean),
).c
M = table(
    "model_calls",
    column("created_at", _AT),
    column("replay", Boolean),
    column("kind", String),
    column("model", String),
    column("failed", Boolean),
    column("cancelled", Boolean),
    column("prompt_tokens", Integer),
    column("completion_tokens", Integer),
    column("total_ms", Float),
).c
J = table(
    "jobs",
    column("created_at", _AT),
    column("kind", String),
    column("status", String),
    column("duration_ms", Float),
).c


def since_day(day: Any, at: Any, since: datetime | None) -> list[Any]:
    """Rows created at or after `since`, for a table with a day-led index: from
    ``since``'s day on, and on that first day only, from its time on. SQLite reads
    `at` from the table only when the day is the first one (its seek is deferred
    until a column not in the index is needed), so the index needs no time column."""
    if since is None:
        return []
    first = f"{since:%Y-%m-%d}"
    return [day >= first, or_(day > first, at >= since)]


def day_column(connection: Connection) -> ColumnElement[str]:
    """``completions.created_day``; a history at migration 0001 has none: the UTC date
    of ``created_at`` then, computed in the database's own terms."""
    if any(c["name"] == "created_day" for c in inspect(connection).get_columns("completions")):
        return C.created_day
    if connection.dialect.name == "sqlite":  # UTC text, "YYYY-MM-DD HH:MM:SS.ffffff"
        return func.substr(C.created_at, 1, 10, type_=String)
    return func.to_char(func.timezone("UTC", C.created_at), "YYYY-MM-DD", type_=String)
