"""Run model-written pytest tests against the user's current code, contained.

Generated tests are untrusted code, so each run gets a fresh temporary directory
(always removed), a subprocess in its own session (the whole process group is
killed when pytest returns or the wall clock runs out, so a forked child cannot
outlive the run), CPU-time, address-space and file-size limits (plus a process
count inside a user namespace), an empty environment and no network: a network
namespace (``unshare -rn``) when this machine allows one, and always a socket
guard installed before pytest imports anything. Landlock, where the kernel has it
(``server.actions.sandbox_boot``), confines writes to the run's directory and
reads to it and the system's and the interpreter's directories, refuses TCP and
stops signals to processes outside the run; a seccomp filter (x86_64,
aarch64) refuses IP, Unix and other sockets; both hold for ``ctypes`` and
subprocesses too. Each test also has a time budget of its own, so one looping test
fails with a traceback showing where it looped instead of costing the whole run
its results.

What is not contained: on a machine without Landlock, reads and writes anywhere
the user may (and a failure's text goes back to the model); without seccomp or a
network namespace, UDP from code that goes around the socket guard. The tests run
as the user.

Results come from pytest's junit XML report, never from scraping its output.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import platform
import selectors
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from server.actions import sandbox_boot

log = logging.getLogger(__name__)

_FILE_MB = 64  # largest file a test may write (RLIMIT_FSIZE)
_PROCESSES = 64  # processes per run; only enforceable inside a fresh user namespace
_PER_TEST_SHARE = 0.25  # each test's wall budget, as a share of min(cpu_s, wall_s)
_FAILURE_CHARS = 3000  # per failure text; the model repairing tests reads these
_ERROR_TAIL_CHARS = 2000  # output tail appended to a run-level error
_DRAIN_S = 1.0  # reading what is left in the pipe once the process group is dead
_NO_PYTEST = 121  # the bootstrap's exit status when `import pytest` fails
_NO_PYTEST_MARK = "zi-sandbox: pytest is not installed"
_PRIVATE = ".zi-sandbox"  # our junit report and pytest.ini, inside the run's directory

# Runs as `python -c` before pytest is imported: limits, Landlock, socket guard, pytest.
_BOOTSTRAP = Path(sandbox_boot.__file__).read_text(encoding="utf-8")
_CONFINE_FAILED = 122  # the bootstrap's exit status when Landlock was probed but failed
_CONFINE_FAILED_MARK = "zi-sandbox: could not confine the tests"


class SandboxUnavailable(RuntimeError):
    """Tests cannot be run at all here (no interpreter, or no pytest in it); says how to fix."""


@dataclass(frozen=True)
class SandboxLimits:
    """Per-run limits: CPU seconds, address space, wall clock, and captured output kept."""

    cpu_s: int = 10
    memory_mb: int = 1024
    wall_s: float = 30.0
    output_bytes: int = 64_000


@dataclass(frozen=True)
class TestRun:
    """What one sandboxed pytest run found.

    ``passed`` names test functions (the node id's last part without parameters,
    e.g. ``test_add``) none of whose cases failed, in collection order, so they can
    be kept as they are; ``failed`` is keyed by the node id's last part with
    parameters (``test_add[2-3]``) and holds the trimmed failure text.
    """

    __test__ = False  # not a pytest test class, whatever its name says

    passed: tuple[str, ...]
    failed: dict[str, str]
    error: str | None  # collection/import error, crash or limit hit; None if the run completed
    timed_out: bool  # stopped by the wall clock (the CPU limit shows in ``error`` only)
    output: str  # pytest's output, its middle cut to ``output_bytes``
    isolation: str  # "+"-joined: "netns" (unshare -rn), "landlock-<abi>", "seccomp", "socket-guard"

    @property
    def all_passed(self) -> bool:
        return self.error is None and not self.failed and bool(self.passed)


_DEFAULT_LIMITS = SandboxLimits()


def run_pytest(
    files: Mapping[str, str],
    test_path: str,
    *,
    limits: SandboxLimits = _DEFAULT_LIMITS,
    python: str | None = None,
) -> TestRun:
    """Run the tests in ``test_path`` against ``files`` (relative path -> content).

    Never raises for bad test code: import errors, crashes and limits hit come back
    in ``TestRun.error``. Raises ``SandboxUnavailable`` when ``python`` (default: this
    interpreter) is missing or has no pytest, and ``ValueError`` for a path that is
    absolute or leaves the run's directory.
    """
    interpreter = _interpreter(python)
    _check_paths(files, test_path)
    prefix = _netns_prefix()
    abi = _landlock_abi()
    machine = platform.machine() if sandbox_boot.seccomp_supported(platform.machine()) else None
    parts = (
        ("netns", prefix),
        (f"landlock-{abi}", abi),
        ("seccomp", machine),
        ("socket-guard", True),
    )
    isolation = "+".join(part for part, used in parts if used)
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="zi-sandbox-"))
    try:
        for relative, content in files.items():
            target = root / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
        private = root / _PRIVATE
        private.mkdir()
        junit = private / "junit.xml"
        ini = private / "pytest.ini"
        ini.write_text(_ini(root, files), encoding="utf-8")
        config = {
            "cpu_s": limits.cpu_s,
            "memory_bytes": limits.memory_mb * 2**20,
            "file_bytes": _FILE_MB * 2**20,
            "processes": _PROCESSES if prefix else None,
            "per_test_s": max(1.0, min(limits.cpu_s, limits.wall_s) * _PER_TEST_SHARE),
            "no_pytest_mark": _NO_PYTEST_MARK,
            "no_pytest_status": _NO_PYTEST,
            "landlock_abi": abi,
            "seccomp_machine": machine,
            "confine_failed_mark": _CONFINE_FAILED_MARK,
            "confine_failed_status": _CONFINE_FAILED,
            "args": [
                "-c",  # pytest < 7 has no --config-file
                str(ini),
                f"--rootdir={root}",
                f"--confcutdir={root}",
                "-p",
                "no:cacheprovider",
                "-q",
                "--tb=short",
                "--color=no",
                f"--junitxml={junit}",
                test_path,
            ],
        }
        argv = [*prefix, interpreter, "-c", _BOOTSTRAP, json.dumps(config)]
        status, timed_out, output = _execute(argv, root, _environment(root), limits)
        if status == _NO_PYTEST and output.startswith(_NO_PYTEST_MARK):
            raise SandboxUnavailable(
                f"pytest is not installed for {interpreter}; install it there "
                "(python -m pip install pytest) to run generated tests"
            )
        if status == _CONFINE_FAILED and output.startswith(_CONFINE_FAILED_MARK):
            raise SandboxUnavailable(output.strip())
        run = _result(status, timed_out, junit, output, limits, isolation)
    finally:
        _remove(root)
    log.info(
        "sandbox run: %d passed, %d failed, error=%s, %s, %.0f ms",
        len(run.passed),
        len(run.failed),
        "yes" if run.error else "no",
        isolation,
        (time.monotonic() - started) * 1000,
    )
    return run


def _interpreter(python: str | None) -> str:
    candidate = python or sys.executable
    found = shutil.which(candidate) if candidate else None
    if found is None:
        raise SandboxUnavailable(f"no Python interpreter at {candidate!r} to run tests with")
    # Absolute, not resolved: a venv's python is a symlink that must stay one.
    return os.path.abspath(found)


def _check_paths(files: Mapping[str, str], test_path: str) -> None:
    if test_path not in files:
        raise ValueError(f"the test file {test_path!r} is not among the files")
    for relative in files:
        path = PurePosixPath(relative)
        if not relative or path.is_absolute() or ".." in path.parts:
            raise ValueError(f"sandbox paths must stay inside the run's directory: {relative!r}")
        if path.parts[0] == _PRIVATE:
            raise ValueError(f"{_PRIVATE} is reserved for the sandbox: {relative!r}")


def _ini(root: Path, files: Mapping[str, str]) -> str:
    """pytest.ini naming the run's directory (and a src/ layout) as import roots.

    An explicit config file also stops pytest from picking up a pytest.ini or
    pyproject.toml that happens to sit above the temporary directory.
    """
    paths = [root]
    if any(PurePosixPath(relative).parts[0] == "src" for relative in files):
        paths.append(root / "src")
    return "[pytest]\npythonpath = " + " ".join(shlex.quote(str(p)) for p in paths) + "\n"


def _environment(root: Path) -> dict[str, str]:
    """Nothing from the server's environment; only what the run itself needs."""
    return {
        "HOME": str(root),
        "TMPDIR": str(root),  # tempfile and pytest's tmp_path land inside the run's directory
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONUTF8": "1",
        # Whatever plugins the interpreter has would change ordering (pytest-randomly) and
        # startup time (pytest-lsp imports pygls); the bootstrap loads pytest-asyncio only.
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
    }


@functools.cache
def _landlock_abi() -> int:
    """The kernel's Landlock ABI (probed once); 0 when writes cannot be confined here."""
    abi = sandbox_boot.landlock_abi()
    if not abi:
        log.warning(
            "Landlock is not available on this kernel: generated tests run without a limit "
            "on where they write (they still run with an empty environment in a temporary "
            "directory, and without network when unshare -rn is permitted)"
        )
    return abi


@functools.cache
def _netns_prefix() -> tuple[str, ...]:
    """``unshare -rn`` if it works on this machine (probed once), else nothing."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    prefix = (unshare, "--map-root-user", "--net", "--")
    try:
        probe = subprocess.run(
            [*prefix, "true"],
            env={},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ()
    if probe.returncode != 0:
        log.info("unshare -rn is not permitted here; sandboxed tests rely on the socket guard")
        return ()
    return prefix


class _Output:
    """The first and last halves of ``limit`` bytes of output; the middle is counted."""

    def __init__(self, limit: int) -> None:
        self._half = max(1, limit // 2)
        self._head = bytearray()
        self._tail = bytearray()
        self._total = 0

    def add(self, data: bytes) -> None:
        self._total += len(data)
        room = self._half - len(self._head)
        if room > 0:
            self._head += data[:room]
            data = data[room:]
        self._tail += data
        if len(self._tail) > 2 * self._half:
            del self._tail[: len(self._tail) - self._half]

    def text(self) -> str:
        tail = bytes(self._tail[-self._half :])
        cut = self._total - len(self._head) - len(tail)
        middle = f"\n[... {cut} bytes of output cut ...]\n".encode() if cut > 0 else b""
        return (bytes(self._head) + middle + tail).decode("utf-8", errors="replace")


def _execute(
    argv: list[str], root: Path, env: dict[str, str], limits: SandboxLimits
) -> tuple[int, bool, str]:
    """Run ``argv``; return its exit status (negative: signal), whether it timed out, output."""
    sink = _Output(limits.output_bytes)
    try:
        process = subprocess.Popen(
            argv,
            cwd=root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        raise SandboxUnavailable(f"cannot start the test process: {exc}") from exc
    assert process.stdout is not None
    stdout = process.stdout
    timed_out = False
    try:
        timed_out = not _pump(process.pid, stdout, sink, time.monotonic() + limits.wall_s)
    finally:
        # The leader is not reaped yet, so its process group id cannot have been reused.
        _kill_group(process.pid)
        status = process.wait()
        _drain(stdout, sink)
        stdout.close()
    return status, timed_out, sink.text()


def _pump(pid: int, stdout: IO[bytes], sink: _Output, deadline: float) -> bool:
    """Copy output until the process exits (True) or the deadline passes (False).

    Waits for the process, not for end of file: a forked child holding the pipe
    open must not keep the run going until the wall clock runs out.
    """
    fd = stdout.fileno()
    os.set_blocking(fd, False)
    pidfd = _pidfd(pid)
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        if pidfd is not None:
            selector.register(pidfd, selectors.EVENT_READ)
        try:
            while not _exited(pid):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                wait = remaining if pidfd is not None else min(remaining, 0.05)
                for key, _ in selector.select(wait):
                    if key.fd == fd and not _read_into(fd, sink):
                        selector.unregister(fd)  # end of file; keep waiting for the exit
        finally:
            if pidfd is not None:
                os.close(pidfd)
    return True


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when ``pid`` exits (Linux >= 5.3), if available."""
    opener: Callable[[int], int] | None = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        return opener(pid)
    except OSError:
        return None


def _exited(pid: int) -> bool:
    """Whether ``pid`` has exited, without reaping it (WNOWAIT)."""
    flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
    try:
        return os.waitid(os.P_PID, pid, flags) is not None
    except ChildProcessError:
        return True


def _read_into(fd: int, sink: _Output) -> bool:
    """Read what is available; False at end of file."""
    try:
        data = os.read(fd, 65536)
    except BlockingIOError:
        return True
    if not data:
        return False
    sink.add(data)
    return True


def _drain(stdout: IO[bytes], sink: _Output) -> None:
    """What is still in the pipe; bounded, as a child that left the group may hold it open."""
    fd = stdout.fileno()
    deadline = time.monotonic() + _DRAIN_S
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while (remaining := deadline - time.monotonic()) > 0:
            if selector.select(remaining) and not _read_into(fd, sink):
                return


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _remove(root: Path) -> None:
    """Remove the run's directory, even where a test took away permissions."""

    def retry(function: Callable[..., Any], path: str, *_: Any) -> None:
        for target in (os.path.dirname(path), path):
            with contextlib.suppress(OSError):
                os.chmod(target, 0o700)
        function(path)

    try:
        if sys.version_info >= (3, 12):
            shutil.rmtree(root, onexc=retry)
        else:
            shutil.rmtree(root, onerror=retry)
    except OSError as exc:
        log.warning("could not remove the sandbox directory %s: %s", root, exc)


@dataclass(frozen=True)
class _Case:
    name: str
    outcome: str  # passed | failed | skipped | collection
    text: str


def _read_junit(path: Path) -> list[_Case] | None:
    try:
        tree = ElementTree.parse(path)
    except (OSError, ElementTree.ParseError):
        return None
    cases = []
    for case in tree.iter("testcase"):
        name = case.get("name", "")
        problem = next((child for child in case if child.tag in ("failure", "error")), None)
        if problem is not None:
            text = _trim((problem.text or problem.get("message") or "").strip(), _FAILURE_CHARS)
            collection = problem.get("message") == "collection failure"
            cases.append(_Case(name, "collection" if collection else "failed", text))
        elif case.find("skipped") is not None:
            cases.append(_Case(name, "skipped", ""))
        else:
            cases.append(_Case(name, "passed", ""))
    return cases


def _result(
    status: int,
    timed_out: bool,
    junit: Path,
    output: str,
    limits: SandboxLimits,
    isolation: str,
) -> TestRun:
    cases = _read_junit(junit)
    failed = {c.name: c.text for c in cases or () if c.outcome == "failed"}
    failed_functions = {name.split("[", 1)[0] for name in failed}
    passed = tuple(
        dict.fromkeys(
            function
            for c in cases or ()
            if c.outcome == "passed"
            and (function := c.name.split("[", 1)[0]) not in failed_functions
        )
    )
    collection = [c.text for c in cases or () if c.outcome == "collection"]
    error = _error(status, timed_out, cases is not None, collection, limits)
    if error is not None and not collection:
        error = f"{error}\n{_trim(output, _ERROR_TAIL_CHARS, keep_head=False)}".rstrip()
    return TestRun(passed, failed, error, timed_out, output, isolation)


def _error(
    status: int,
    timed_out: bool,
    reported: bool,
    collection: list[str],
    limits: SandboxLimits,
) -> str | None:
    if timed_out:
        return f"the tests ran longer than {limits.wall_s:g} s and were stopped"
    if status == -signal.SIGXCPU or status == -signal.SIGKILL:
        return (
            f"the tests used more than {limits.cpu_s} s of CPU time and were stopped"
            if status == -signal.SIGXCPU
            else "the test process was killed (CPU or memory limit)"
        )
    if status < 0:
        try:
            return f"the test process died of {signal.Signals(-status).name}"
        except ValueError:
            return f"the test process died of signal {-status}"
    if collection:
        return "the tests could not be collected:\n" + "\n\n".join(collection)
    if not reported:
        return f"pytest stopped before writing its report (exit status {status})"
    if status in (0, 1, 5):  # all passed, some failed, none collected
        return None
    reasons = {2: "pytest was interrupted", 3: "pytest hit an internal error"}
    return reasons.get(status, f"pytest exited with status {status}")


def _trim(text: str, limit: int, *, keep_head: bool = True) -> str:
    """``text`` cut to about ``limit`` characters, keeping its end (where errors are)."""
    if len(text) <= limit:
        return text
    if not keep_head:
        return "[...]\n" + text[-limit:]
    head = limit // 4
    return f"{text[:head]}\n[...]\n{text[-(limit - head) :]}"
