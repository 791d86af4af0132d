"""`zi-coder stats` over a real SQLite history written by the server's own repository.

The fixture history (figures worked out by hand in each test):

    id   language  age   source     outcome             text  accepted  total ms  first token
    py1  python    1 h   model      accepted            6     -         40        10
    py2  python    1 h   model      partially_accepted  9     3         20        5
    py3  python    1 h   model      rejected            4     -         30        8
    py4  python    1 h   model      shown (undecided)   4     -         60        12
    rs1  rust      1 h   model      rejected            5     -         100       50
    rs2  rust      1 h   typeahead  generated           2     -         0.5       -
    old  python    10 d  model      accepted            20    -         1000      200

No PostgreSQL here: the test suite has no PostgreSQL server fixture (and the
project no driver), so only SQLite is exercised.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from server.cli import main
from server.completion.recorder import CompletionEvent
from server.completion.types import Outcome
from server.history import repository
from server.history.database import create_engine_for, upgrade_to_head
from tests.e2e.conftest import server_env

_HOUR, _TEN_DAYS = timedelta(hours=1), timedelta(days=10)
_PARTIAL = Outcome.PARTIALLY_ACCEPTED

# fmt: off
_ROWS: list[tuple[str, str, timedelta, str, Outcome, str, int | None, float, float | None]] = [
    ("py1", "python", _HOUR, "model", Outcome.ACCEPTED, "abcdef", None, 40, 10),
    ("py2", "python", _HOUR, "model", _PARTIAL, "x = 1 + 2", 3, 20, 5),
    ("py3", "python", _HOUR, "model", Outcome.REJECTED, "pass", None, 30, 8),
    ("py4", "python", _HOUR, "model", Outcome.SHOWN, "None", None, 60, 12),
    ("rs1", "rust", _HOUR, "model", Outcome.REJECTED, "Ok(x)", None, 100, 50),
    ("rs2", "rust", _HOUR, "typeahead", Outcome.GENERATED, "()", None, 0.5, None),
    ("old", "python", _TEN_DAYS, "model", Outcome.ACCEPTED, "x" * 20, None, 1000, 200),
]
# fmt: on


def write_history(url: str) -> None:
    """The table above, through the migrations and the repository the server uses."""
    engine = create_engine_for(url)
    upgrade_to_head(engine)
    now = repository.now()
    with Session(engine) as session, session.begin():
        for ident, language, age, source, outcome, text, partial, total, first in _ROWS:
            at = now - age
            event = CompletionEvent(
                id=ident,
                parent_id=None,
                uri=f"file:///{ident}",
                language=language,
                model="scripted-coder",
                template="qwen",
                mode="single_line",
                source=source,
                text=text,
                prompt_chars=100,
                first_token_ms=first,
                total_ms=total,
            )
            repository.record_completion(session=session, event=event, at=at)
            if outcome is not Outcome.GENERATED:
                # As the server does: shown first, then the decision.
                repository.record_outcome(
                    session=session,
                    completion_id=ident,
                    outcome=Outcome.SHOWN,
                    accepted_length=None,
                    at=at,
                )
            if outcome not in (Outcome.GENERATED, Outcome.SHOWN):
                repository.record_outcome(
                    session=session,
                    completion_id=ident,
                    outcome=outcome,
                    accepted_length=partial,
                    at=at,
                )
    engine.dispose()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.upper().startswith("ZI_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ZI_STATE_DIR", str(tmp_path / "state"))


@pytest.fixture
def history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'history.sqlite3'}"
    write_history(url)
    monkeypatch.setenv("ZI_DATABASE_URL", url)
    return url


def stats(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["stats", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_all_time_as_text(history: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = stats(capsys)

    assert (code, err) == (0, "")
    assert out.splitlines() == [
        f"Zi Coder stats: {history} (all time)",
        "Completions generated: 7, shown: 6",
        "Completions shown: 6, accepted: 2, partially accepted: 1, rejected: 2, undecided: 1",
        "Acceptance rate: 50.0 % (3 of 6 shown)",
        "Characters accepted: 29",  # 6 + 3 + 20
        # model latencies 20 30 40 60 100 1000; the type-ahead's 0.5 ms is left out
        "Latency: median 50 ms, p90 550 ms (6 completions from the model)",
        "Time to first token: median 11 ms, p90 125 ms (6 completions)",
        "By language (accepted: in full or in part):",
        "  python         5 shown     3 accepted   60.0 %",
        "  rust           1 shown     0 accepted   0.0 %",
    ]


def test_since_leaves_older_completions_out(
    history: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = stats(capsys, "--since", "7d")

    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith(f"Zi Coder stats: {history} (last 7d, since ")
    assert lines[0].endswith(" UTC)")
    assert lines[1:8] == [
        "Completions generated: 6, shown: 5",
        "Completions shown: 5, accepted: 1, partially accepted: 1, rejected: 2, undecided: 1",
        "Acceptance rate: 40.0 % (2 of 5 shown)",
        "Characters accepted: 9",
        "Latency: median 40 ms, p90 84 ms (5 completions from the model)",
        "Time to first token: median 10 ms, p90 35 ms (5 completions)",
        "By language (accepted: in full or in part):",
    ]

    code, out, _ = stats(capsys, "--since", "7d", "--json")
    assert json.loads(out)["first_token_ms"] == {"count": 5, "median": 10.0, "p90": 34.8}

    _, recent, _ = stats(capsys, "--since", "30m")
    assert "Completions generated: 0, shown: 0" in recent.splitlines()
    assert "Acceptance rate: - (0 of 0 shown)" in recent.splitlines()


def test_json_has_the_same_figures(history: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = stats(capsys, "--json", "--since", "2w")

    assert code == 0
    figures = json.loads(out)
    assert figures["database"] == history
    assert figures["since"].endswith("+00:00")
    assert figures["note"] is None
    assert {k: figures[k] for k in ("generated", "shown", "undecided")} == {
        "generated": 7,
        "shown": 6,
        "undecided": 1,
    }
    assert (figures["accepted"], figures["partially_accepted"], figures["rejected"]) == (2, 1, 2)
    assert figures["acceptance_rate"] == 0.5
    assert figures["characters_accepted"] == 29
    assert figures["latency_ms"] == {"count": 6, "median": 50.0, "p90": 550.0}
    assert figures["first_token_ms"] == {"count": 6, "median": 11.0, "p90": 125.0}
    assert [(x["language"], x["shown"], x["accepted"]) for x in figures["languages"]] == [
        ("python", 5, 2),
        ("rust", 1, 0),
    ]
    assert figures["languages"][0]["acceptance_rate"] == 0.6
    assert figures["languages"][1]["generated"] == 2


def test_reading_leaves_the_database_as_it_was(
    history: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "history.sqlite3"
    before = hashlib.sha256(database.read_bytes()).hexdigest()
    assert stats(capsys)[0] == 0
    assert hashlib.sha256(database.read_bytes()).hexdigest() == before


def test_it_reads_while_the_server_is_writing(
    history: str, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = create_engine_for(history)
    try:
        with Session(engine) as session, session.begin():  # a write held open (WAL)
            event = CompletionEvent(
                id="new",
                parent_id=None,
                uri="file:///new",
                language="go",
                model="scripted-coder",
                template="qwen",
                mode="single_line",
                source="model",
                text="nil",
                prompt_chars=10,
                first_token_ms=1.0,
                total_ms=2.0,
            )
            repository.record_completion(session=session, event=event, at=repository.now())
            session.flush()

            code, out, err = stats(capsys)

            assert (code, err) == (0, "")
            assert "Completions generated: 7, shown: 6" in out.splitlines()  # not "new" yet
        assert "Completions generated: 8, shown: 6" in stats(capsys)[1].splitlines()
    finally:
        engine.dispose()


def test_a_missing_database_is_an_empty_report_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'absent.sqlite3'}"
    monkeypatch.setenv("ZI_DATABASE_URL", url)

    code, out, err = stats(capsys)

    assert (code, err) == (0, "")
    assert out.splitlines()[:2] == [
        f"Zi Coder stats: {url} (all time)",
        f"Note: no history yet at {url}",
    ]
    assert "Acceptance rate: - (0 of 0 shown)" in out.splitlines()
    assert not (tmp_path / "absent.sqlite3").exists()  # reading must not create it

    code, out, _ = stats(capsys, "--json")
    assert code == 0
    assert json.loads(out)["note"] == f"no history yet at {url}"


def test_a_database_without_the_table_is_no_history_yet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "other.sqlite3"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE unrelated (x INTEGER)")
    connection.close()
    monkeypatch.setenv("ZI_DATABASE_URL", f"sqlite:///{path}")

    code, out, _ = stats(capsys)

    assert code == 0
    assert out.splitlines()[1] == f"Note: no history yet at sqlite:///{path}"
    with sqlite3.connect(path) as connection:  # and it was not migrated
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
    connection.close()
    assert tables == {"unrelated"}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url", "ArgumentError"),
        ("nosuchdb://host/db", "NoSuchModuleError"),
        ("postgresql://zi:s3cret@127.0.0.1:9/zi", "postgresql://zi:***@127.0.0.1:9/zi"),
        ("sqlite:///{tmp}/garbage.sqlite3", "file is not a database"),
    ],
)
def test_a_database_it_cannot_open_is_one_line_and_exit_1(
    url: str,
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "garbage.sqlite3").write_bytes(b"not sqlite at all, " * 100)
    monkeypatch.setenv("ZI_DATABASE_URL", url.format(tmp=tmp_path))

    code, out, err = stats(capsys)

    assert (code, out) == (1, "")
    assert len(err.splitlines()) == 1, err
    assert err.startswith("zi-coder: stats: cannot read the history database ")
    assert expected in err
    assert "s3cret" not in err


def test_a_bad_since_is_a_usage_error(history: str, capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("7", "d7", "-1d", "0h", "1y", "99999999w"):
        with pytest.raises(SystemExit) as exit_:
            main(["stats", f"--since={bad}"])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert "argument --since:" in err and repr(bad) in err, err


def test_the_installed_command_in_a_subprocess(history: str, tmp_path: Path) -> None:
    zi_coder = Path(sys.executable).with_name("zi-coder")
    result = subprocess.run(
        [str(zi_coder), "stats", "--since", "7d"],
        env=server_env(ZI_DATABASE_URL=history, ZI_STATE_DIR=str(tmp_path / "state")),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "Acceptance rate: 40.0 % (2 of 5 shown)" in result.stdout.splitlines()

    broken = subprocess.run(
        [str(zi_coder), "stats"],
        env=server_env(ZI_DATABASE_URL="nosuchdb://host/db"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert broken.returncode == 1
    assert broken.stdout == ""
    assert len(broken.stderr.splitlines()) == 1 and "Traceback" not in broken.stderr
