"""Waiting in end-to-end tests for what the server did, never for a length of time.

The server writes its history off the event loop and applies a client's settings
in its own time, so tests poll for the outcome they expect: rows in the history
database, or the message the server logs once new settings are in force. Polls
are async: pytest-lsp's client reads the server's messages on the test's loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from pytest_lsp import LanguageClient

Rows = list[dict[str, Any]]

SETTINGS_APPLIED = "settings updated from the client"  # server/lsp/features/lifecycle.py
PATIENCE_S = 15.0  # only a failing test waits this long


async def rows_until(db_url: str, sql: str, ready: Callable[[Rows], bool] = bool) -> Rows:
    """The rows of `sql` in the SQLite history at `db_url` once `ready(rows)` (by
    default: once there are any), or as they are after :data:`PATIENCE_S`."""
    path = Path(db_url.removeprefix("sqlite:///"))
    deadline = time.monotonic() + PATIENCE_S
    while True:
        rows = _rows(path, sql)
        if ready(rows) or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.05)


def _rows(path: Path, sql: str) -> Rows:
    if not path.exists():  # connecting would create it under the server's feet
        return []
    try:
        with closing(sqlite3.connect(path)) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(row) for row in conn.execute(sql).fetchall()]
    except sqlite3.OperationalError:
        return []  # not migrated yet


def settings_updates(client: LanguageClient) -> int:
    """How many times the server has reported client settings put in force."""
    return sum(SETTINGS_APPLIED in message.message for message in client.log_messages)


async def settings_applied(client: LanguageClient, after: int) -> None:
    """Until the server reports client settings put in force once more than `after`
    times (read :func:`settings_updates` before sending them)."""
    deadline = time.monotonic() + PATIENCE_S
    while settings_updates(client) <= after:
        if time.monotonic() > deadline:
            seen = [message.message for message in client.log_messages]
            raise AssertionError(f"new settings not reported in force; the server logged {seen}")
        await asyncio.sleep(0.02)
