"""The test sandbox with real subprocesses: results, limits, isolation, clean-up.

Every case runs real pytest in the sandbox on a small project written for the
occasion and checks what the code action's user would see: which tests passed,
why the others failed, and that nothing the tests did escaped the run.
"""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from server.actions import sandbox
from server.actions.sandbox import SandboxLimits, SandboxUnavailable, TestRun, run_pytest

CALC = "def add(a, b):\n    return a + b\n"
QUICK = SandboxLimits(cpu_s=4, memory_mb=512, wall_s=20.0)


def run(tests: str, limits: SandboxLimits = QUICK, **files: str) -> TestRun:
    """Run ``tests`` as tests/test_calc.py next to a package ``pkg`` holding calc.py."""
    project = {"pkg/__init__.py": "", "pkg/calc.py": CALC, **files}
    project["tests/test_calc.py"] = textwrap.dedent(tests)
    return run_pytest(project, "tests/test_calc.py", limits=limits)


@pytest.fixture
def run_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Where the sandbox creates its temporary directories during the test."""
    parent = tmp_path / "runs"
    parent.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(parent))
    yield parent


def sleepers(marker: str) -> list[psutil.Process]:
    """Live processes running ``sleep <marker>``."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        alive = process.info["status"] != psutil.STATUS_ZOMBIE
        if alive and process.info["cmdline"] == ["sleep", marker]:
            found.append(process)
    return found


def test_passing_and_failing_tests_are_named_in_order_with_the_failure_text() -> None:
    result = run(
        """
        import pytest
        from pkg.calc import add

        def test_add():
            assert add(1, 2) == 3

        def test_add_wrong():
            assert add(1, 2) == 4, "one and two"

        @pytest.mark.parametrize("a", [1, 2])
        def test_param(a):
            assert add(a, 0) == 1

        class TestCalc:
            def test_zero(self):
                assert add(0, 0) == 0

        def test_negative():
            assert add(-1, 1) == 0
        """
    )
    assert result.error is None
    assert not result.timed_out
    # A function with a failing case is not "passed", so keeping `passed` keeps only green code.
    assert result.passed == ("test_add", "test_zero", "test_negative")
    assert set(result.failed) == {"test_add_wrong", "test_param[2]"}
    assert "one and two" in result.failed["test_add_wrong"]
    assert "assert 3 == 4" in result.failed["test_add_wrong"]
    assert "assert 2 == 1" in result.failed["test_param[2]"]
    assert not result.all_passed
    assert "2 failed, 4 passed" in result.output


def test_all_passing_run() -> None:
    result = run("from pkg.calc import add\n\ndef test_add():\n    assert add(2, 2) == 4\n")
    assert result.all_passed
    assert result.passed == ("test_add",)
    assert result.isolation.endswith("socket-guard")


def test_a_src_layout_imports_like_the_project() -> None:
    project = {
        "src/pkg/__init__.py": "",
        "src/pkg/calc.py": CALC,
        "tests/test_calc.py": "from pkg.calc import add\n\ndef test_add():\n    assert add(1, 1)\n",
    }
    result = run_pytest(project, "tests/test_calc.py", limits=QUICK)
    assert result.all_passed, result.error


def test_async_tests_run_when_the_interpreter_has_pytest_asyncio() -> None:
    pytest.importorskip("pytest_asyncio")
    result = run(
        """
        import asyncio
        import pytest

        @pytest.mark.asyncio
        async def test_sleeps():
            await asyncio.sleep(0)
        """
    )
    assert result.all_passed, result.failed or result.error


def test_a_test_module_that_fails_to_import_is_an_error_and_nothing_passes() -> None:
    result = run("from pkg.calc import subtract\n\ndef test_add():\n    pass\n")
    assert result.error is not None
    assert "could not be collected" in result.error
    assert "cannot import name 'subtract'" in result.error
    assert result.passed == ()
    assert not result.all_passed


def test_a_looping_test_fails_alone_and_the_others_still_pass() -> None:
    result = run(
        """
        def test_loops():
            while True:
                pass

        def test_fine():
            pass
        """
    )
    assert result.error is None
    assert result.passed == ("test_fine",)
    assert "limit per test" in result.failed["test_loops"]
    assert "while True" in result.failed["test_loops"]  # the traceback shows where it looped


@pytest.mark.timeout(20)
def test_a_loop_the_per_test_budget_cannot_interrupt_is_stopped_by_the_cpu_limit() -> None:
    result = run(
        "def test_sum():\n    sum(range(10**12))\n",
        SandboxLimits(cpu_s=2, memory_mb=512, wall_s=15.0),
    )
    assert result.error is not None
    assert "CPU" in result.error
    assert not result.timed_out
    assert result.passed == ()


@pytest.mark.timeout(20)
def test_a_blocked_test_and_its_children_are_killed_at_the_wall_clock_limit(
    run_dirs: Path,
) -> None:
    marker = f"{random.randint(10**6, 10**7)}.5"
    result = run(
        f"""
        import os, signal, time

        def test_blocks():
            if os.fork() == 0:
                os.execv("/bin/sleep", ["sleep", "{marker}"])
            signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGALRM}})
            time.sleep(600)
        """,
        SandboxLimits(cpu_s=4, memory_mb=512, wall_s=3.0),
    )
    assert result.timed_out
    assert result.error is not None
    assert "longer than 3 s" in result.error
    assert sleepers(marker) == []
    assert list(run_dirs.iterdir()) == []


def test_a_child_that_outlives_pytest_is_killed() -> None:
    marker = f"{random.randint(10**6, 10**7)}.25"
    result = run(
        f"""
        import os

        def test_forks():
            if os.fork() == 0:
                os.execv("/bin/sleep", ["sleep", "{marker}"])
        """
    )
    assert result.passed == ("test_forks",)
    assert sleepers(marker) == []


def test_a_memory_hog_fails_its_test_without_crashing_the_run() -> None:
    result = run(
        """
        def test_hog():
            blob = bytearray(2 * 1024**3)

        def test_fine():
            pass
        """
    )
    assert result.error is None
    assert result.passed == ("test_fine",)
    assert "MemoryError" in result.failed["test_hog"]


def test_a_huge_file_fails_its_test(run_dirs: Path) -> None:
    result = run(
        """
        def test_writes():
            with open("huge.bin", "wb") as f:
                f.seek(2**30)
                f.write(b"x")

        def test_fine():
            pass
        """
    )
    assert result.passed == ("test_fine",)
    assert "File too large" in result.failed["test_writes"]
    assert list(run_dirs.iterdir()) == []


def test_sys_exit_in_a_test_fails_only_that_test() -> None:
    result = run(
        """
        import sys

        def test_exits():
            sys.exit(3)

        def test_fine():
            pass
        """
    )
    assert result.error is None
    assert result.passed == ("test_fine",)
    assert "SystemExit" in result.failed["test_exits"]


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.setblocking(False)
    try:
        yield server
    finally:
        server.close()


def assert_nobody_connected(server: socket.socket) -> None:
    with pytest.raises(BlockingIOError):
        server.accept()


CONNECTS = """
import socket

def test_connects():
    socket.create_connection(("127.0.0.1", {port}), timeout=2).close()

def test_connects_under_the_guard():
    import _socket
    raw = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    raw.settimeout(2)
    raw.connect(("127.0.0.1", {port}))
"""


def test_the_network_is_unreachable(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    result = run(CONNECTS.format(port=port))
    assert "disabled in the Zi test sandbox" in result.failed["test_connects"]
    if result.isolation == "netns":  # the namespace stops even code that skips the guard
        assert "test_connects_under_the_guard" in result.failed
    assert_nobody_connected(listener)


def test_without_a_network_namespace_connections_are_refused_with_a_reason(
    listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "_netns_prefix", lambda: ())
    port = listener.getsockname()[1]
    result = run(CONNECTS.format(port=port).split("def test_connects_under")[0])
    assert "netns" not in result.isolation
    assert "disabled in the Zi test sandbox" in result.failed["test_connects"]
    assert_nobody_connected(listener)


def test_the_environment_is_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZI_SANDBOX_SECRET", "s3cret")
    result = run(
        """
        import os

        def test_no_secret():
            assert "ZI_SANDBOX_SECRET" not in os.environ

        def test_no_path():
            assert "PATH" not in os.environ
        """
    )
    assert result.all_passed, result.failed
    assert result.passed == ("test_no_secret", "test_no_path")


def test_files_are_written_inside_the_run_directory_which_is_removed(run_dirs: Path) -> None:
    result = run(
        """
        import os, tempfile
        from pathlib import Path

        def test_writes(tmp_path):
            here = Path.cwd()
            Path("relative.txt").write_text("x")
            fd, name = tempfile.mkstemp()
            os.close(fd)
            (tmp_path / "t.txt").write_text("x")
            (Path.home() / "h.txt").write_text("x")
            for written in (Path(name), tmp_path, Path.home()):
                assert written.resolve().is_relative_to(here.resolve()), written
        """
    )
    assert result.all_passed, result.failed
    assert list(run_dirs.iterdir()) == []


def test_output_is_truncated() -> None:
    result = run(
        "def test_noisy():\n    print('x' * 100_000)\n    assert False\n",
        SandboxLimits(cpu_s=4, memory_mb=512, wall_s=20.0, output_bytes=2_000),
    )
    assert "test_noisy" in result.failed
    assert len(result.output.encode()) < 2_200
    assert "bytes of output cut" in result.output
    assert "1 failed" in result.output  # the end of the report is kept


def test_missing_pytest_is_reported_as_unavailable(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", tmp_path / "venv"], check=True)
    with pytest.raises(SandboxUnavailable, match="pytest is not installed"):
        run_pytest(
            {"test_x.py": "def test_x():\n    pass\n"},
            "test_x.py",
            python=str(tmp_path / "venv" / "bin" / "python"),
        )


def test_missing_interpreter_is_reported_as_unavailable(tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailable, match="no Python interpreter"):
        run_pytest({"test_x.py": ""}, "test_x.py", python=str(tmp_path / "python"))


@pytest.mark.parametrize("path", ["/etc/passwd", "../escape.py", "a/../../escape.py"])
def test_paths_must_stay_inside_the_run_directory(path: str) -> None:
    with pytest.raises(ValueError, match="inside the run's directory"):
        run_pytest({path: "", "test_x.py": ""}, "test_x.py")
