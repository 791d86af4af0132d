"""Several server processes sharing one history database, on SQLite and PostgreSQL.

Real processes (multiprocessing's fork server, never forks of pytest), each with
the server's own `HistoryWriter` driven from an asyncio loop as the language
server drives it:

- four processes write 200 completions and their outcomes each, at once, in many
  small batches: every row and every outcome is there afterwards;
- processes starting at the same moment on an empty database all migrate it
  (`upgrade_to_head`) without error: the migration lock makes one do the work.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import sqlalchemy as sa

from server.completion.types import Outcome
from server.history.database import create_engine_for, migrations_dir, upgrade_to_head
from server.history.writer import HistoryWriter
from tests.support.history import completion_event

if TYPE_CHECKING:
    from tests.support.postgres import PostgresServer

PROCESSES = 4
PER_PROCESS = 200
_JOIN_S = 240  # for all the processes of a test together; the machine may be busy
# Real processes, forked from a fork server that has imported the history modules
# once (not from pytest): four fresh interpreters importing SQLAlchemy and Alembic
# at once cost 10 s on a busy 2-CPU machine.
_PRELOAD = [
    __name__,
    "alembic.command",
    "alembic.runtime.migration",
    "sqlalchemy.orm",
    "sqlalchemy.dialects.postgresql.psycopg",
    "sqlalchemy.dialects.sqlite.pysqlite",
]


def _processes() -> Any:
    """The fork server context, preloading the history modules (set when first used)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    return context


def _ident(prefix: str, i: int) -> str:
    return f"{prefix}-{i:05d}"


def _final(i: int) -> tuple[Outcome, int | None]:
    """The outcome completion `i` ends with (after being shown), and its accepted length."""
    return [
        (Outcome.ACCEPTED, None),
        (Outcome.REJECTED, None),
        (Outcome.PARTIALLY_ACCEPTED, i % 5 + 1),
        (Outcome.SHOWN, None),
    ][i % 4]


async def _record(writer: HistoryWriter, prefix: str, count: int) -> None:
    for i in range(count):
        ident = _ident(prefix, i)
        writer.completion_generated(completion_event(ident))
        writer.outcome(completion_id=ident, outcome=Outcome.SHOWN)
        outcome, accepted = _final(i)
        if outcome is not Outcome.SHOWN:
            writer.outcome(completion_id=ident, outcome=outcome, accepted_length=accepted)
        if i % 10 == 9:
            await asyncio.sleep(0.002)  # let the hand-over timer fire: many small batches
    assert writer.flush(60), "history writer did not drain"


def _write_history(url: str, prefix: str, count: int, start: Any) -> None:
    """One server process: its writer, fed from an event loop like the server's."""
    writer = HistoryWriter(url, batch_size=16, handover_s=0.001)
    writer.start()
    start.wait(_JOIN_S)  # every process writes at the same time
    asyncio.run(_record(writer, prefix, count))
    writer.close()
    assert writer.failed is None, writer.failed


def _migrate(urls: list[str], start: Any) -> None:
    """One server process starting on each of `urls`, in step with the others."""
    for url in urls:
        engine = create_engine_for(url)
        start.wait(_JOIN_S)
        upgrade_to_head(engine)
        engine.dispose()


def _run_all(target: Any, args_per_process: list[tuple[Any, ...]]) -> None:
    """Run `target(*args, start)` in one process per args; all must exit 0."""
    context = _processes()
    start = context.Barrier(len(args_per_process))
    procs = [context.Process(target=target, args=(*args, start)) for args in args_per_process]
    for proc in procs:
        proc.start()
    deadline = time.monotonic() + _JOIN_S
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
    for proc in procs:
        if proc.is_alive():
            proc.kill()
            proc.join()
    assert [proc.exitcode for proc in procs] == [0] * len(procs)


@pytest.mark.timeout(_JOIN_S + 60)
def test_several_processes_writing_at_once_lose_nothing(history_url: str) -> None:
    engine = create_engine_for(history_url)
    upgrade_to_head(engine)
    prefixes = [f"p{n}" for n in range(PROCESSES)]

    _run_all(_write_history, [(history_url, prefix, PER_PROCESS) for prefix in prefixes])

    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT id, outcome, accepted_length, shown_at FROM completions")
        ).all()
    engine.dispose()
    assert len(rows) == PROCESSES * PER_PROCESS
    stored = {row.id: (row.outcome, row.accepted_length) for row in rows}
    expected = {
        _ident(prefix, i): (_final(i)[0].value, _final(i)[1])
        for prefix in prefixes
        for i in range(PER_PROCESS)
    }
    assert stored == expected
    assert all(row.shown_at is not None for row in rows)  # no "shown" was lost either
    assert Counter(outcome for outcome, _ in stored.values()) == {
        "accepted": PROCESSES * PER_PROCESS // 4,
        "rejected": PROCESSES * PER_PROCESS // 4,
        "partially_accepted": PROCESSES * PER_PROCESS // 4,
        "shown": PROCESSES * PER_PROCESS // 4,
    }


def _assert_at_head(url: str) -> None:
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(migrations_dir())).get_current_head()
    engine = create_engine_for(url)
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_heads() == (head,)
        tables = set(sa.inspect(connection).get_table_names())
    engine.dispose()
    assert {"completions", "model_calls", "jobs", "completion_survival"} <= tables


ROUNDS = 5  # without the locks, about 4 rounds in 10 failed on SQLite


@pytest.mark.timeout(_JOIN_S + 60)
def test_processes_starting_together_on_an_empty_sqlite_database_all_migrate(
    tmp_path: Path,
) -> None:
    urls = [f"sqlite:///{tmp_path / f'history-{n}.sqlite3'}" for n in range(ROUNDS)]
    _run_all(_migrate, [(urls,), (urls,)])
    for url in urls:
        _assert_at_head(url)


@pytest.mark.timeout(_JOIN_S + 60)
def test_processes_starting_together_on_an_empty_postgres_database_all_migrate(
    postgres_server: PostgresServer,
) -> None:
    names = [postgres_server.create_database() for _ in range(ROUNDS)]
    try:
        urls = [postgres_server.url(name) for name in names]
        _run_all(_migrate, [(urls,), (urls,)])
        for url in urls:
            _assert_at_head(url)
    finally:
        for name in names:
            postgres_server.drop_database(name)
