"""The history migrations on a real SQLite file and a real PostgreSQL database.

Each test runs on both (`history_url`, tests/support/postgres.py): one head; up
from empty, down to base and up again; the models equal what the migrations
build (autogenerate would find nothing to write); a row written at 0001 is
still there, unchanged, at head.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from server.history.database import (
    SchemaTooNewError,
    create_engine_for,
    migrations_dir,
    upgrade_to_head,
)
from server.history.models import Base, CompletionRecord


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    return config


@pytest.fixture
def engine(history_url: str) -> Iterator[Engine]:
    engine = create_engine_for(history_url)
    try:
        yield engine
    finally:
        engine.dispose()


def _migrate(engine: Engine, direction: str, revision: str) -> None:
    """`alembic upgrade|downgrade revision`, on the engine's database."""
    config = _config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, direction)(config, revision)


def _tables(engine: Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def _revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


HEAD = ScriptDirectory.from_config(_config()).get_current_head()
HISTORY_TABLES = {"completions", "model_calls", "jobs", "completion_survival"}


def test_the_migrations_have_exactly_one_head() -> None:
    heads = ScriptDirectory.from_config(_config()).get_heads()
    assert len(heads) == 1, f"several heads, merge them: {heads}"


def test_up_from_empty_down_to_base_and_up_again(engine: Engine) -> None:
    assert _tables(engine) == set()
    _migrate(engine, "upgrade", "head")
    assert _tables(engine) == HISTORY_TABLES | {"alembic_version"}
    assert _revision(engine) == HEAD

    _migrate(engine, "downgrade", "base")
    # Alembic keeps its (now empty) version table; nothing of the history is left.
    assert _tables(engine) <= {"alembic_version"}
    assert _revision(engine) is None
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            leftovers = connection.execute(
                sa.text(
                    "SELECT relname FROM pg_class JOIN pg_namespace n ON n.oid = relnamespace"
                    " WHERE nspname = 'public' AND relname NOT LIKE 'alembic_version%'"
                )
            ).scalars()
            assert list(leftovers) == []  # no index, sequence or type left behind

    _migrate(engine, "upgrade", "head")
    assert _tables(engine) == HISTORY_TABLES | {"alembic_version"}
    assert _revision(engine) == HEAD


def _indexes(engine: Engine, table: str) -> set[str]:
    return {index["name"] or "" for index in sa.inspect(engine).get_indexes(table)}


def test_down_to_0001_is_the_schema_0001_built(engine: Engine) -> None:
    _migrate(engine, "upgrade", "0001")
    at_0001 = _indexes(engine, "completions")
    _migrate(engine, "upgrade", "head")
    assert "ix_completions_outcome" not in _indexes(engine, "completions")  # no query uses it
    assert "ix_model_calls_replay" not in _indexes(engine, "model_calls")  # ix_..._stats leads

    _migrate(engine, "downgrade", "0001")
    assert _indexes(engine, "completions") == at_0001
    assert "created_day" not in {c["name"] for c in sa.inspect(engine).get_columns("completions")}


def test_upgrade_to_head_is_idempotent(engine: Engine) -> None:
    upgrade_to_head(engine)
    upgrade_to_head(engine)
    assert _revision(engine) == HEAD


def test_a_database_from_a_newer_zi_coder_is_refused_and_left_alone(engine: Engine) -> None:
    upgrade_to_head(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))

    with pytest.raises(SchemaTooNewError, match="revision 9999, written by a newer zi-coder"):
        upgrade_to_head(engine)

    assert _revision(engine) == "9999"
    assert _tables(engine) == HISTORY_TABLES | {"alembic_version"}


def test_the_models_match_the_migrations(engine: Engine) -> None:
    upgrade_to_head(engine)
    with engine.connect() as connection:
        # The comparison `alembic revision --autogenerate` makes (migrations/env.py's
        # options), plus server defaults.
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_a_row_written_at_0001_survives_the_upgrade_to_head(engine: Engine) -> None:
    _migrate(engine, "upgrade", "0001")
    assert _tables(engine) == {"completions", "alembic_version"}
    created = datetime(2026, 11, 1, 12, 30, 15, 123456, tzinfo=UTC)
    decided = datetime(2026, 11, 1, 12, 30, 17, tzinfo=UTC)
    row = {
        "id": "a" * 32,
        "parent_id": "b" * 32,
        "created_at": created,
        "uri": "file:///src/app.py",
        "language": "python",
        "model": "qwen2.5-coder-1.5b",
        "template": "qwen",
        "mode": "single_line",
        "source": "model",
        "text_length": 12,
        "prompt_chars": 1500,
        "first_token_ms": 41.5,
        "total_ms": 88.25,
        "outcome": "partially_accepted",
        "accepted_length": 5,
        "shown_at": None,
        "decided_at": decided,
    }
    # The table as 0001 built it (not the model, which has 0002's columns too).
    completions_0001 = sa.Table("completions", sa.MetaData(), autoload_with=engine)
    assert "text" not in completions_0001.c
    with engine.begin() as connection:
        connection.execute(sa.insert(completions_0001), [row])

    _migrate(engine, "upgrade", "head")
    with Session(engine) as session:
        stored = session.get(CompletionRecord, "a" * 32)
        assert stored is not None
        read = {name: getattr(stored, name) for name in row}
        assert (stored.text, stored.prompt) == (None, None)
    # SQLite keeps no time zone: the server writes UTC, so naive values are UTC.
    for name in ("created_at", "decided_at"):
        value = read[name]
        assert isinstance(value, datetime)
        read[name] = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    assert read == row
