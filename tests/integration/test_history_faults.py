"""The history writer through database faults: the editor never waits, the user is told once.

Outages are real: PostgreSQL behind a TCP gate that the test closes (new connections
refused, open ones cut) and opens again. While it is closed, events wait in memory
(the oldest dropped beyond the bound, and counted); when it opens, they are written.
A database that cannot be used (one from a newer zi-coder) turns history off once,
without retries. What could not be written by shutdown is counted in the log.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from server.completion.types import Outcome
from server.history import faults
from server.history.database import create_engine_for, upgrade_to_head
from server.history.writer import HistoryWriter
from tests.support.history import completion_event
from tests.support.tcp_gate import Gate, behind, gate_for

PATIENCE_S = 30.0  # only a failing test waits this long


@pytest.fixture
def gate(postgres_url: str) -> Iterator[Gate]:
    gate = gate_for(postgres_url)
    try:
        yield gate
    finally:
        gate.close()


class Told:
    """What the writer told the user (its `on_problem` and `on_recovered`)."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.recovered: list[str] = []

    def writer(self, url: str, **options: object) -> HistoryWriter:
        writer = HistoryWriter(
            url,
            retry_s=(0.05, 0.2),
            on_problem=self.problems.append,
            on_recovered=self.recovered.append,
            **options,  # type: ignore[arg-type]
        )
        writer.start()
        return writer


def _until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.02)


def _completions(url: str) -> dict[str, str]:
    engine = create_engine_for(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.text("SELECT id, outcome FROM completions")).all()
    finally:
        engine.dispose()
    return {row.id: row.outcome for row in rows}


def test_events_recorded_while_the_database_is_down_are_written_when_it_is_back(
    gate: Gate, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server.history")
    told = Told()
    writer = told.writer(behind(gate, postgres_url))  # the gate closed: refused
    writer.completion_generated(completion_event("c1"))
    writer.outcome(completion_id="c1", outcome=Outcome.SHOWN)
    _until(lambda: bool(told.problems))
    assert not writer.flush(0.1)  # waiting in memory, and the caller was never blocked
    attempts = len(caplog.records)
    _until(lambda: len(caplog.records) > attempts)  # tried again, and failed again

    gate.open()
    writer.outcome(completion_id="c1", outcome=Outcome.ACCEPTED)
    assert writer.flush(PATIENCE_S)
    assert _completions(postgres_url) == {"c1": "accepted"}
    # The connections cut while in use: the same again.
    gate.close()
    writer.completion_generated(completion_event("c2"))
    _until(lambda: len(told.problems) == 2)
    gate.open()
    assert writer.flush(PATIENCE_S)
    writer.close()

    assert _completions(postgres_url) == {"c1": "accepted", "c2": "generated"}
    # Told once per outage, and once when it was over.
    assert len(told.problems) == len(told.recovered) == 2
    assert all("unreachable" in message for message in told.problems)
    assert all("reachable again" in message for message in told.recovered)
    # The log: a line per failed attempt, no traceback.
    failures = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(failures) >= 3 and not any(r.exc_info for r in failures)


def test_a_full_backlog_drops_the_oldest_events_and_says_how_many(
    gate: Gate, postgres_url: str
) -> None:
    told = Told()
    writer = told.writer(behind(gate, postgres_url), max_pending=3)
    writer.completion_generated(completion_event("first"))
    _until(lambda: bool(told.problems))
    for i in range(5):
        writer.completion_generated(completion_event(f"c{i}"))
    _until(lambda: writer.pending == 3)

    gate.open()
    assert writer.flush(PATIENCE_S)
    writer.close()

    assert set(_completions(postgres_url)) == {"c2", "c3", "c4"}  # the newest three
    [recovered] = told.recovered
    assert "3 events recorded while it was down were dropped" in recovered


def test_events_still_waiting_at_shutdown_are_counted_in_the_log(
    gate: Gate, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    told = Told()
    writer = told.writer(behind(gate, postgres_url))
    for i in range(4):
        writer.completion_generated(completion_event(f"c{i}"))
    _until(lambda: bool(told.problems))

    assert not writer.flush(0.1)
    writer.close()

    [lost] = [r for r in caplog.records if "lost" in r.getMessage()]
    assert lost.levelno == logging.WARNING
    assert lost.getMessage().startswith("4 history events were not written and are lost")


def test_a_database_from_a_newer_zi_coder_turns_history_off_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.sqlite3'}"
    engine = create_engine_for(url)
    upgrade_to_head(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    told = Told()
    writer = told.writer(url)

    writer.completion_generated(completion_event("c1"))
    assert writer.flush(PATIENCE_S)  # dropped at once: nothing waits for a retry
    writer.completion_generated(completion_event("c2"))
    assert writer.flush(PATIENCE_S)
    writer.close()

    [problem] = told.problems
    assert "written by a newer zi-coder" in problem and "history is off" in problem
    assert told.recovered == []
    assert writer.failed is not None
    assert _completions(url) == {}


def test_a_locked_sqlite_database_is_waited_out_and_a_refused_event_is_not(
    tmp_path: Path,
) -> None:
    """SQLite says "database is locked" once another process has held the write lock
    past the busy timeout (10 s for the writer; none here): that passes, a constraint
    does not."""
    url = f"sqlite:///{tmp_path / 'h.sqlite3'}"
    engine = create_engine_for(url)
    upgrade_to_head(engine)
    engine.dispose()
    impatient = sa.create_engine(url, connect_args={"timeout": 0})
    holder = sqlite3.connect(tmp_path / "h.sqlite3")
    holder.execute("BEGIN IMMEDIATE")  # another process writing
    try:
        with pytest.raises(sa.exc.OperationalError) as locked, impatient.begin() as connection:
            connection.execute(sa.text("DELETE FROM completions"))
    finally:
        holder.rollback()
        holder.close()
    with pytest.raises(sa.exc.IntegrityError) as refused, impatient.begin() as connection:
        connection.execute(sa.text("INSERT INTO completions (id) VALUES ('x')"))
    impatient.dispose()

    assert faults.unreachable(locked.value)
    assert not faults.unreachable(refused.value)
