"""History on a real SQLite file: migrations, outcome rules, concurrent writers."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from server.completion.recorder import CompletionEvent
from server.completion.types import Outcome
from server.history.database import create_engine_for, migrations_dir, upgrade_to_head
from server.history.models import Base
from server.history.writer import HistoryWriter
from tests.support.history import completion_event


def _event(i: int, prefix: str = "c") -> CompletionEvent:
    return completion_event(f"{prefix}{i:030d}"[:32])


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    return config


def test_migrations_have_one_head() -> None:
    assert len(ScriptDirectory.from_config(_config()).get_heads()) == 1


def test_upgrade_from_empty_to_head_and_back_down(tmp_path: Path) -> None:
    from alembic import command

    engine = create_engine_for(f"sqlite:///{tmp_path / 'h.sqlite3'}")
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    assert "completions" in inspect(engine).get_table_names()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert "completions" not in inspect(engine).get_table_names()


def test_models_match_the_migrations(tmp_path: Path) -> None:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'h.sqlite3'}")
    upgrade_to_head(engine)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_sqlite_is_tuned_for_one_writer_and_many_readers(tmp_path: Path) -> None:
    engine = create_engine_for(f"sqlite:///{tmp_path / 'h.sqlite3'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10000


def test_outcomes_only_move_forward(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite3"
    writer = HistoryWriter(f"sqlite:///{db}")
    writer.start()
    writer.completion_generated(_event(1))
    writer.completion_generated(_event(2))
    first, second = _event(1).id, _event(2).id
    writer.outcome(completion_id=first, outcome=Outcome.SHOWN)
    writer.outcome(completion_id=first, outcome=Outcome.ACCEPTED)
    writer.outcome(completion_id=first, outcome=Outcome.REJECTED)  # too late: stays accepted
    writer.outcome(completion_id=second, outcome=Outcome.SHOWN)
    writer.outcome(completion_id=second, outcome=Outcome.PARTIALLY_ACCEPTED, accepted_length=4)
    writer.outcome(completion_id="no-such-id", outcome=Outcome.ACCEPTED)  # ignored, no crash
    assert writer.flush(10)
    writer.close()
    with sqlite3.connect(db) as conn:
        rows = dict(conn.execute("select id, outcome from completions").fetchall())
        length = conn.execute(
            "select accepted_length from completions where id = ?", (second,)
        ).fetchone()
    assert rows == {first: "accepted", second: "partially_accepted"}
    assert length == (4,)


def test_a_broken_database_url_turns_history_off_without_blocking(tmp_path: Path) -> None:
    writer = HistoryWriter(f"sqlite:///{tmp_path / 'missing-dir' / 'x' / 'h.sqlite3'}")
    writer.start()
    writer.completion_generated(_event(1))
    assert writer.flush(10)  # the event is dropped, the caller is never stuck
    assert writer.failed is not None
    writer.close()


def _write_many(url: str, prefix: str, count: int) -> None:
    writer = HistoryWriter(url, batch_size=7)
    writer.start()
    for i in range(count):
        writer.completion_generated(_event(i, prefix))
        writer.outcome(completion_id=_event(i, prefix).id, outcome=Outcome.SHOWN)
    assert writer.flush(60)
    writer.close()


def test_several_processes_writing_at_once_lose_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.sqlite3'}"
    upgrade_to_head(create_engine_for(url))
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(url, p, 300)) for p in "abc"]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    with sqlite3.connect(tmp_path / "h.sqlite3") as conn:
        total, shown = conn.execute(
            "select count(*), sum(outcome = 'shown') from completions"
        ).fetchone()
    assert (total, shown) == (900, 900)
