"""Generated tests that try to get out of the sandbox, the ways real code would.

Each case is a hostile test run by the real sandbox; the checks are made from
outside, on what the user would find afterwards: files in their home, in /tmp and
in the workspace untouched, no connection or datagram reaching a listener, a
process outside the run still alive. Python-level calls, raw ``_socket``,
``ctypes`` calls into libc and subprocesses (which do not inherit the socket
guard) are all tried, since only a kernel-enforced confinement holds against the
last three.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.actions import sandbox, sandbox_boot
from server.actions.sandbox import SandboxLimits, TestRun, run_pytest

LIMITS = SandboxLimits(cpu_s=10, memory_mb=1024, wall_s=60.0)
EXTERNAL = ("1.1.1.1", 443)  # a public address; connecting from this test process may work

# Skipped on a kernel without Landlock (< 5.13), except in CI, where the proof the
# sandbox confines writes must not vanish silently.
needs_landlock = pytest.mark.skipif(
    sandbox._landlock_abi() == 0 and not os.environ.get("CI"),
    reason="this kernel has no Landlock: writes are not confined",
)


def run(tests: str) -> TestRun:
    project = {"calc.py": "def add(a, b):\n    return a + b\n"}
    project["test_escape.py"] = textwrap.dedent(tests)
    return run_pytest(project, "test_escape.py", limits=LIMITS)


def assert_all_failed(result: TestRun, expected: int) -> None:
    assert result.error is None, result.error
    assert result.passed == (), f"escaped: {result.passed}"
    assert len(result.failed) == expected, sorted(result.failed)


# -- writes ------------------------------------------------------------------------------

WRITES = """
import ctypes, os, subprocess
import pytest

TARGETS = {targets!r}
IDS = list(TARGETS)

def existing(where):
    return os.path.join(TARGETS[where], "existing.txt")

def new(where, how):
    return os.path.join(TARGETS[where], "zi-escape-" + how)

@pytest.mark.parametrize("where", IDS)
def test_open_a_new_file(where):
    with open(new(where, "open"), "w") as f:
        f.write("escaped")

@pytest.mark.parametrize("where", IDS)
def test_overwrite_a_file(where):
    with open(existing(where), "w") as f:
        f.write("escaped")

@pytest.mark.parametrize("where", IDS)
def test_truncate_a_file(where):
    os.truncate(existing(where), 0)

@pytest.mark.parametrize("where", IDS)
def test_delete_a_file(where):
    os.remove(existing(where))

@pytest.mark.parametrize("where", IDS)
def test_move_a_file_into_the_run(where):
    os.rename(existing(where), "stolen.txt")

@pytest.mark.parametrize("where", IDS)
def test_make_a_directory(where):
    os.mkdir(new(where, "dir"))

@pytest.mark.parametrize("where", IDS)
def test_make_a_symlink(where):
    os.symlink("/etc/passwd", new(where, "link"))

@pytest.mark.parametrize("where", IDS)
def test_write_through_a_symlink_made_inside_the_run(where):
    os.symlink(TARGETS[where], "door-" + where)
    with open(os.path.join("door-" + where, "zi-escape-door"), "w") as f:
        f.write("escaped")

@pytest.mark.parametrize("where", IDS)
def test_libc_open_through_ctypes(where):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.open(new(where, "ctypes").encode(), os.O_WRONLY | os.O_CREAT, 0o644)
    assert fd >= 0, os.strerror(ctypes.get_errno())

@pytest.mark.parametrize("where", IDS)
def test_a_shell_in_a_subprocess(where):
    target = new(where, "shell")
    subprocess.run(["/bin/sh", "-c", "echo escaped > '" + target + "'"], check=True)
    assert os.path.exists(target)
"""
WRITE_WAYS = 10


@pytest.fixture
def outside(tmp_path: Path) -> Iterator[dict[str, Path]]:
    """Directories outside the run, each holding existing.txt: the user's home, the
    system temporary directory the run directories live in, and a workspace."""
    places = {
        "home": Path(tempfile.mkdtemp(prefix=".zi-sandbox-probe-", dir=Path.home())),
        "tmp": Path(tempfile.mkdtemp(prefix="zi-sandbox-probe-")),
        "workspace": tmp_path / "workspace",
    }
    places["workspace"].mkdir()
    for place in places.values():
        (place / "existing.txt").write_text("original")
    try:
        yield places
    finally:
        shutil.rmtree(places["home"], ignore_errors=True)
        shutil.rmtree(places["tmp"], ignore_errors=True)


@needs_landlock
def test_a_generated_test_cannot_write_outside_its_directory(outside: dict[str, Path]) -> None:
    result = run(WRITES.format(targets={k: str(v) for k, v in outside.items()}))
    assert_all_failed(result, WRITE_WAYS * len(outside))
    for where, place in outside.items():
        assert sorted(p.name for p in place.iterdir()) == ["existing.txt"], where
        assert (place / "existing.txt").read_text() == "original", where
    for case, text in result.failed.items():
        assert any(
            reason in text
            for reason in ("Permission denied", "Operation not permitted", "CalledProcessError")
        ), (case, text)


READS = """
import ctypes, os, subprocess
import pytest

SECRETS = {secrets!r}

@pytest.mark.parametrize("where", list(SECRETS))
def test_open(where):
    print(open(SECRETS[where]).read())

@pytest.mark.parametrize("where", list(SECRETS))
def test_libc_open_through_ctypes(where):
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.open(SECRETS[where].encode(), os.O_RDONLY) >= 0, os.strerror(ctypes.get_errno())

@pytest.mark.parametrize("where", list(SECRETS))
def test_cat_in_a_subprocess(where):
    subprocess.run(["/bin/cat", SECRETS[where]], check=True)

def test_list_the_home_directory():
    os.listdir({home!r})

def test_the_system_and_python_are_readable():
    import json, sqlite3, decimal  # the standard library, C extensions included
    assert open("/etc/hostname" if os.path.exists("/etc/hostname") else "/etc/passwd").read()
"""
READ_WAYS = 3


@needs_landlock
def test_a_generated_test_cannot_read_the_users_files(outside: dict[str, Path]) -> None:
    """Keys in the home directory, the workspace's .env, the server's environment in
    /proc: a failing test's output goes to the model, so none of it may be read."""
    secrets = {
        "home": str(outside["home"] / "existing.txt"),
        "tmp": str(outside["tmp"] / "existing.txt"),
        "workspace-env": str(outside["workspace"] / ".env"),
        "server-environment": f"/proc/{os.getpid()}/environ",
    }
    Path(secrets["workspace-env"]).write_text("API_KEY=sk-live-original\n")
    result = run(READS.format(secrets=secrets, home=str(Path.home())))
    assert result.error is None, result.error
    assert result.passed == ("test_the_system_and_python_are_readable",)
    assert len(result.failed) == READ_WAYS * len(secrets) + 1
    assert "original" not in result.output and "sk-live" not in result.output


# -- network -------------------------------------------------------------------------------

CONNECTS = """
import ctypes, os, socket, struct, subprocess, sys
import _socket
import pytest

ADDRESSES = {addresses!r}
IDS = list(ADDRESSES)

@pytest.mark.parametrize("where", IDS)
def test_create_connection(where):
    socket.create_connection(ADDRESSES[where], timeout=3).close()

@pytest.mark.parametrize("where", IDS)
def test_raw_socket_around_the_guard(where):
    host, port = ADDRESSES[where]
    raw = _socket.socket(_socket.AF_INET6 if ":" in host else _socket.AF_INET, _socket.SOCK_STREAM)
    raw.settimeout(3)
    raw.connect((host, port))

@pytest.mark.parametrize("where", IDS)
def test_libc_connect_through_ctypes(where):
    host, port = ADDRESSES[where]
    libc = ctypes.CDLL(None, use_errno=True)
    if ":" in host:
        fd = libc.socket(socket.AF_INET6, socket.SOCK_STREAM, 0)
        packed = struct.pack("!HHI16sI", 0, port, 0, socket.inet_pton(socket.AF_INET6, host), 0)
        address = struct.pack("H", socket.AF_INET6) + packed[2:]
    else:
        fd = libc.socket(socket.AF_INET, socket.SOCK_STREAM, 0)
        address = struct.pack("H", socket.AF_INET) + struct.pack("!H", port)
        address += socket.inet_aton(host) + bytes(8)
    assert fd >= 0, os.strerror(ctypes.get_errno())
    status = libc.connect(fd, address, len(address))
    assert status == 0, os.strerror(ctypes.get_errno())

@pytest.mark.parametrize("where", IDS)
def test_a_python_subprocess_without_the_guard(where):
    host, port = ADDRESSES[where]
    code = "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)"
    subprocess.run([sys.executable, "-c", code, host, str(port)], check=True, timeout=10)

def test_a_name_lookup():
    socket.getaddrinfo("example.com", 80)

def test_a_name_lookup_through_libc():
    libc = ctypes.CDLL(None, use_errno=True)
    result = ctypes.c_void_p()
    assert libc.getaddrinfo(b"example.com", b"80", None, ctypes.byref(result)) == 0

def test_a_dns_query_to_a_resolver_around_the_guard():
    query = b"\\x12\\x34\\x01\\x00\\x00\\x01\\x00\\x00\\x00\\x00\\x00\\x00"
    query += b"\\x07example\\x03com\\x00\\x00\\x01\\x00\\x01"
    raw = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    raw.settimeout(3)
    raw.sendto(query, ("127.0.0.1", {resolver_port}))
    raw.recv(512)
"""
CONNECT_WAYS = 4
LOOKUP_WAYS = 3


@pytest.fixture
def listeners() -> Iterator[dict[str, socket.socket]]:
    """A TCP listener on IPv4 and on IPv6 loopback, and a UDP "resolver" on IPv4."""
    made = {
        "ipv4": socket.socket(socket.AF_INET, socket.SOCK_STREAM),
        "ipv6": socket.socket(socket.AF_INET6, socket.SOCK_STREAM),
        "udp": socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
    }
    made["ipv4"].bind(("127.0.0.1", 0))
    made["ipv6"].bind(("::1", 0))
    made["udp"].bind(("127.0.0.1", 0))
    for name in ("ipv4", "ipv6"):
        made[name].listen()
    for listener in made.values():
        listener.setblocking(False)
    try:
        yield made
    finally:
        for listener in made.values():
            listener.close()


@pytest.mark.parametrize("netns", [True, False], ids=["netns", "without-netns"])
def test_a_generated_test_reaches_no_network(
    listeners: dict[str, socket.socket], netns: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Also where unshare is not permitted (Ubuntu's AppArmor policy, containers):
    then Landlock and seccomp alone must hold."""
    if not netns:
        monkeypatch.setattr(sandbox, "_netns_prefix", lambda: ())
    addresses = {
        "loopback4": ("127.0.0.1", listeners["ipv4"].getsockname()[1]),
        "loopback6": ("::1", listeners["ipv6"].getsockname()[1]),
        "external": EXTERNAL,
    }
    tests = CONNECTS.format(addresses=addresses, resolver_port=listeners["udp"].getsockname()[1])
    result = run(tests)
    assert_all_failed(result, CONNECT_WAYS * len(addresses) + LOOKUP_WAYS)
    for name, listener in listeners.items():
        with pytest.raises(BlockingIOError):  # nothing connected, no datagram arrived
            listener.recvfrom(512) if name == "udp" else listener.accept()
    for case, text in result.failed.items():
        assert "timed out" not in text, (case, text)  # refused at once, not left to hang


UNIX = """
import _socket, ctypes, os, socket, struct

def test_connect_to_a_unix_socket():
    raw = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    raw.connect({path!r})

def test_connect_through_ctypes():
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0)
    assert fd >= 0, os.strerror(ctypes.get_errno())
    address = struct.pack("H", socket.AF_UNIX) + {path!r}.encode() + bytes(1)
    assert libc.connect(fd, address, len(address)) == 0, os.strerror(ctypes.get_errno())

def test_socketpair_still_works():
    left, right = socket.socketpair()
    left.sendall(b"x")
    assert right.recv(1) == b"x"
"""


@pytest.mark.skipif(
    not sandbox_boot.seccomp_supported(platform.machine()), reason="no seccomp filter here"
)
def test_a_generated_test_cannot_reach_a_unix_socket_on_disk(tmp_path: Path) -> None:
    """A Docker, database or desktop-bus socket is one connect() away from the user's
    machine; no network namespace or Landlock ABI up to 7 stops that, the filter does."""
    path = tmp_path / "daemon.sock"
    daemon = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    daemon.bind(str(path))
    daemon.listen()
    daemon.setblocking(False)
    try:
        result = run(UNIX.format(path=str(path)))
        assert result.passed == ("test_socketpair_still_works",)
        assert set(result.failed) == {
            "test_connect_to_a_unix_socket",
            "test_connect_through_ctypes",
        }
        with pytest.raises(BlockingIOError):
            daemon.accept()
    finally:
        daemon.close()


# -- signals ---------------------------------------------------------------------------------

KILLS = """
import os, signal

def test_kill_a_process_outside():
    os.kill({pid}, signal.SIGKILL)

def test_kill_the_process_that_started_the_run():
    os.kill(os.getppid(), 0)
"""


@pytest.mark.skipif(sandbox._landlock_abi() < 6, reason="signal scoping needs Landlock ABI 6")
def test_a_generated_test_cannot_signal_processes_outside_the_run() -> None:
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        result = run(KILLS.format(pid=bystander.pid))
        assert_all_failed(result, 2)
        assert bystander.poll() is None, "the sandboxed test killed a process outside the run"
    finally:
        bystander.kill()
        bystander.wait()
