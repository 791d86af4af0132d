"""A real ``zi-coder worker`` subprocess for tests (integration and end-to-end)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

REPO = Path(__file__).resolve().parents[2]


class WorkerProcess:
    """``python -m server worker [--kind KIND]`` in its own session."""

    def __init__(self, url: str, log_path: Path, kind: str | None = None) -> None:
        self.url = url
        self.log_path = log_path
        self.args = [sys.executable, "-m", "server", "worker"]
        if kind is not None:
            self.args += ["--kind", kind]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {**os.environ, "ZI_REDIS_URL": self.url, "ZI_LOG_LEVEL": "INFO"}
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                self.args,
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        connection = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_path.read_text()
            if connection.scard("rq:workers"):
                return
            time.sleep(0.05)
        raise AssertionError(f"worker did not register:\n{self.log_path.read_text()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (worker and its work horses)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=15)

    def kill_all(self) -> None:
        """SIGKILL the worker and its work horses (rq's horse calls setsid: it is in a
        session of its own, so killing the worker's group alone would leave it running)."""
        if self.proc is None:
            return
        horses = _children(self.proc.pid)
        self.kill(signal.SIGKILL)
        for pid in horses:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.kill(signal.SIGTERM)
        except subprocess.TimeoutExpired:
            self.kill(signal.SIGKILL)


def _children(pid: int) -> list[int]:
    """Direct children of `pid`, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found
