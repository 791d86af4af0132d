"""Job functions for the job-runner tests (registered, so workers accept them).

They leave their traces in files, so a test can see what ran, in which process,
and how often: every function takes a ``workdir`` (a temporary directory).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from inference.errors import ModelHTTPError
from server.jobs.execution import check_cancelled, report_progress
from server.jobs.spec import job_function


def _count(workdir: str, name: str) -> int:
    """Append one line to workdir/name; the number of lines so far (runs of a job)."""
    path = Path(workdir) / name
    with path.open("a") as f:
        f.write(f"{os.getpid()}\n")
    return len(path.read_text().splitlines())


@job_function
def add(workdir: str, a: int, b: int) -> dict[str, Any]:
    runs = _count(workdir, "add.count")
    report_progress(done=1, total=1)
    return {"sum": a + b, "runs": runs}


@job_function
def slow_count(workdir: str, seconds: float) -> int:
    runs = _count(workdir, "slow.count")
    time.sleep(seconds)
    return runs


@job_function
def fail_for_good(workdir: str) -> None:
    _count(workdir, "fail.count")
    raise ValueError("the request is malformed")


@job_function
def flaky(workdir: str) -> str:
    """Fails with a model 503 the first time (marker file absent), then succeeds."""
    attempts = _count(workdir, "flaky.count")
    marker = Path(workdir) / "flaky.marker"
    if not marker.exists():
        marker.write_text("failed once")
        raise ModelHTTPError(503, "engine overloaded")
    return f"ok after {attempts} attempts"


@job_function
def sleeper(workdir: str, seconds: float, started: str = "started") -> str:
    """Touches `started`, then sleeps in small steps, checking for cancellation."""
    (Path(workdir) / started).write_text(str(os.getpid()))
    deadline = time.monotonic() + seconds
    step = 0
    while time.monotonic() < deadline:
        check_cancelled()
        step += 1
        report_progress(step=step)
        time.sleep(0.05)
    (Path(workdir) / f"{started}.done").write_text("done")
    return "slept"


def not_registered(workdir: str) -> None:  # pragma: no cover - must never run
    _count(workdir, "forbidden.count")
