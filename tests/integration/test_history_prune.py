"""`zi-coder history prune` on a real SQLite file and a real PostgreSQL database.

The fixture history (`--older-than 30d`; ages back from now):

    table                rows (age)                                   pruned
    completions          old-a (40 d), old-b (31 d), keep-a (29 d),   old-a, old-b
                         keep-b (1 h)
    completion_survival  old-a x2, old-b x1, keep-a x1                the 3 of old-*
    model_calls          call-old-1..3 (45 d), call-new (2 d)         call-old-*
    jobs                 job-old (60 d), job-new-1..2 (1 d)           job-old
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from server.cli import main
from server.commands import history as history_command
from server.history import repository
from server.history.database import create_engine_for, upgrade_to_head
from server.history.models import (
    JobRecord,
    ModelCallRecord,
    SurvivalRecord,
    utc_day,
)
from tests.e2e.conftest import server_env
from tests.support.history import completion_event

_DAY = timedelta(days=1)
_AGES = {
    "old-a": 40 * _DAY,
    "old-b": 31 * _DAY,
    "keep-a": 29 * _DAY,
    "keep-b": timedelta(hours=1),
}
_SURVIVAL = {"old-a": [30, 120], "old-b": [30], "keep-a": [600]}
_CALLS = {"call-old-1": 45 * _DAY, "call-old-2": 45 * _DAY, "call-old-3": 45 * _DAY}
_CALLS["call-new"] = 2 * _DAY
_JOBS = {"job-old": 60 * _DAY, "job-new-1": _DAY, "job-new-2": _DAY}


def _call(ident: str, at: datetime) -> ModelCallRecord:
    return ModelCallRecord(
        id=ident,
        created_at=at,
        kind="completion",
        model="m",
        endpoint="http://127.0.0.1:8000/v1",
        params="{}",
        prompt_chars=100,
        response_chars=5,
        total_ms=9.0,
    )


def _job(ident: str, at: datetime) -> JobRecord:
    return JobRecord(
        id=ident,
        kind="review",
        function="server.jobs.review",
        runner="in-process",
        status="finished",
        created_at=at,
    )


def write_history(url: str) -> None:
    engine = create_engine_for(url)
    upgrade_to_head(engine)
    now = repository.now()
    with Session(engine) as session, session.begin():
        for ident, age in _AGES.items():
            event = completion_event(ident)
            repository.record_completion(session=session, event=event, at=now - age)
        session.add_all(
            SurvivalRecord(
                completion_id=ident,
                after_s=after,
                # The completion's (record_survival copies them from it).
                completion_created_at=now - _AGES[ident],
                created_day=utc_day(now - _AGES[ident]),
                language="python",
                model="m",
                checked_at=now,
                accepted_chars=5,
                kept_chars=5,
            )
            for ident, checkpoints in _SURVIVAL.items()
            for after in checkpoints
        )
        session.add_all(_call(ident, now - age) for ident, age in _CALLS.items())
        session.add_all(_job(ident, now - age) for ident, age in _JOBS.items())
    engine.dispose()


def contents(url: str) -> dict[str, set[object]]:
    engine = create_engine_for(url)
    with engine.connect() as connection:

        def column(query: str) -> set[object]:
            return set(connection.execute(sa.text(query)).scalars())

        found = {
            "completions": column("SELECT id FROM completions"),
            "survival": column("SELECT completion_id || ':' || after_s FROM completion_survival"),
            "calls": column("SELECT id FROM model_calls"),
            "jobs": column("SELECT id FROM jobs"),
        }
    engine.dispose()
    return found


ALL = {
    "completions": set(_AGES),
    "survival": {f"{ident}:{after}" for ident, afters in _SURVIVAL.items() for after in afters},
    "calls": set(_CALLS),
    "jobs": set(_JOBS),
}
PRUNED_30D = {
    "completions": {"keep-a", "keep-b"},
    "survival": {"keep-a:600"},
    "calls": {"call-new"},
    "jobs": {"job-new-1", "job-new-2"},
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.upper().startswith("ZI_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ZI_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture
def history(history_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    write_history(history_url)
    monkeypatch.setenv("ZI_DATABASE_URL", history_url)
    return history_url


def prune(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["history", "prune", *args])
    out, err = capsys.readouterr()
    return code, out, err


def _cutoff(out: str) -> datetime:
    stamp = out.rsplit("(before ", 1)[1].removesuffix(" UTC)\n")
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M")


def test_dry_run_counts_and_deletes_nothing(
    history: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = prune(capsys, "--older-than", "30d", "--dry-run")

    assert (code, err) == (0, "")
    assert out.startswith(
        "Would delete 2 completions (and their 3 survival checks), 3 model calls, 1 job "
        "older than 30d (before "
    )
    assert contents(history) == ALL


def test_prune_deletes_what_is_older_and_keeps_the_rest(
    history: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history_command, "CHUNK", 2)  # several chunks per table

    code, out, err = prune(capsys, "--older-than", "30d")

    assert (code, err) == (0, "")
    assert out.startswith(
        "Deleted 2 completions (and their 3 survival checks), 3 model calls, 1 job "
        "older than 30d (before "
    )
    expected = repository.now().replace(tzinfo=None) - 30 * _DAY
    assert abs(_cutoff(out) - expected) < timedelta(minutes=2)
    assert contents(history) == PRUNED_30D

    code, out, _ = prune(capsys, "--older-than", "30d")  # nothing left to prune
    assert code == 0
    assert out.startswith("Deleted 0 completions, 0 model calls, 0 jobs older than 30d (before ")
    assert contents(history) == PRUNED_30D


def test_a_shorter_duration_prunes_more(history: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = prune(capsys, "--older-than", "2w")

    assert code == 0
    assert out.startswith("Deleted 3 completions (and their 4 survival checks), 3 model calls")
    assert contents(history)["completions"] == {"keep-b"}


def test_a_database_not_at_head_is_reported_not_migrated(
    history_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from alembic import command
    from alembic.config import Config
    from alembic.migration import MigrationContext

    from server.history.database import migrations_dir

    engine = create_engine_for(history_url)
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
    monkeypatch.setenv("ZI_DATABASE_URL", history_url)

    code, out, err = prune(capsys, "--older-than", "30d")

    assert (code, out) == (1, "")
    assert "is at revision 0001, not at this zi-coder's 0002" in err
    assert "start the language server" in err
    with engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == "0001"
    engine.dispose()


def test_an_empty_database_is_reported_not_migrated(
    history_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = create_engine_for(history_url)
    with engine.connect():  # SQLite: the file now exists, without tables
        pass
    monkeypatch.setenv("ZI_DATABASE_URL", history_url)

    code, out, err = prune(capsys, "--older-than", "30d")

    assert (code, out) == (1, "")
    assert "is at revision none (no history tables)" in err
    assert sa.inspect(engine).get_table_names() == []
    engine.dispose()


def test_a_missing_sqlite_file_is_reported_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nothing-here.sqlite3"
    monkeypatch.setenv("ZI_DATABASE_URL", f"sqlite:///{missing}")

    code, out, err = prune(capsys, "--older-than", "30d")

    assert (code, out) == (1, "")
    assert err == f"zi-coder: history prune: no history database at sqlite:///{missing}\n"
    assert not missing.exists()


def test_an_unreachable_server_is_one_line_on_stderr(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Port 1 on loopback: nothing listens there, the connection is refused at once.
    monkeypatch.setenv("ZI_DATABASE_URL", "postgresql://zi:secret@127.0.0.1:1/history")

    code, out, err = prune(capsys, "--older-than", "30d")

    assert (code, out) == (1, "")
    assert err.startswith("zi-coder: history prune: cannot prune the history database ")
    assert "postgresql://zi:***@127.0.0.1:1/history" in err
    assert "secret" not in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("bad", ["30", "0d", "thirty days", "-5d"])
def test_a_bad_duration_is_a_usage_error(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["history", "prune", f"--older-than={bad}"])
    assert exit_info.value.code == 2
    assert "expected a duration like 30m, 12h, 7d or 2w" in capsys.readouterr().err


def test_the_installed_command_prunes_a_bare_postgresql_url(postgres_url: str) -> None:
    """`zi-coder history prune` as a user runs it, with libpq's URL (no driver named)."""
    write_history(postgres_url)
    bare = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    result = subprocess.run(
        [sys.executable, "-m", "server", "history", "prune", "--older-than", "30d"],
        env=server_env(ZI_DATABASE_URL=bare),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("Deleted 2 completions (and their 3 survival checks)")
    assert contents(postgres_url) == PRUNED_30D
