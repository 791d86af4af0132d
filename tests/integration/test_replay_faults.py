"""``zi-coder replay`` through faults: a model answer cut off or never coming, a
history database that cannot be reached. Each failure is one line on stderr (no
traceback), the replay ends, and a failed replay is recorded with its error.

The fixture history (SQLite, then PostgreSQL) and the scripted model are
test_replay's.
"""

from __future__ import annotations

import socket

import pytest

from tests.integration.test_replay import (  # noqa: F401 (fixtures used by name)
    clean_env,
    history,
    model,
    replay,
    replay_json,
    replays,
)
from tests.support.scripted_model import Reply, ScriptedModel

PASSWORD = "s3cret-Pa55word"


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Reply(text="return 1", drop_after=1), "broke off"),
        (Reply(hang=True), "timed out"),
    ],
    ids=["stream-cut", "silent"],
)
def test_a_completion_cut_off_or_never_answered_is_one_line_and_recorded(
    history: str,  # noqa: F811
    model: ScriptedModel,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    fault: Reply,
    error: str,
) -> None:
    monkeypatch.setenv("ZI_INFERENCE__READ_TIMEOUT_S", "1")
    model.queue(fault)  # the first completion replayed meets it, the rest do not

    code, report, err = replay_json(capsys, "--kind", "completion", "--concurrency", "1")

    assert code == 0 and "Traceback" not in err
    (failure,) = [line for line in err.splitlines() if " failed: " in line]
    assert failure.startswith("zi-coder: replay of ") and error in failure
    assert report["failed"] == 1 and report["replayed"] > 1  # the rest replayed all the same
    failed = [row for row in replays(history).values() if row["error"]]
    assert len(failed) == 1 and error in failed[0]["error"]


def test_an_unreachable_history_database_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("ZI_DATABASE_URL", f"postgresql://zi:{PASSWORD}@127.0.0.1:{port}/zi")

    code, out, err = replay(capsys, "--since", "7d")

    assert code == 1 and out == ""
    [line] = err.strip().splitlines()
    assert line.startswith("zi-coder: replay: cannot read the history database")
    assert f"127.0.0.1:{port}" in line and PASSWORD not in line
