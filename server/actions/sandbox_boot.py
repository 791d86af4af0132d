"""The sandbox's first code: run as ``python -c`` before pytest imports anything.

``server.actions.sandbox`` passes this file's text to the interpreter with a JSON
config. In order, it sets resource limits, confines the process with Landlock
(kernel-enforced and inherited by every child, so ``ctypes``, ``os`` calls and
subprocesses are held too), installs a socket guard (a readable error for the
common case), then runs pytest with a per-test time budget.

Landlock (Linux >= 5.13, unprivileged): writes are allowed only beneath the run's
directory (and to /dev/null); reads there and in the system's and the
interpreter's directories (:func:`readable`), so a test cannot read the user's
keys, the workspace's .env or the server's environment in /proc and put them in
the failure text the model reads; from ABI 4 no TCP bind or connect at all; from
ABI 6 no signals to processes outside the sandbox (a test cannot kill the editor's
server) and no abstract Unix sockets outside it. The
parent probes the ABI (:func:`landlock_abi`) and passes it in; if the confinement
then fails, the run stops with ``confine_failed_status`` instead of running
unconfined.

It must run on whatever Python the project uses, so it sticks to the stdlib and
plain syntax. ``os._exit`` at the end: a stray non-daemon thread or atexit
handler from a test must not hold the run open after the report is written.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import socket
import stat
import sys
from typing import Any

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446  # the same on every architecture
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38

# Filesystem rights (the ABI that introduced them): everything that changes the tree.
_WRITE_FILE, _READ_FILE, _READ_DIR = 1 << 1, 1 << 2, 1 << 3
_READS = _READ_FILE | _READ_DIR
_WRITES_V1 = _WRITE_FILE | sum(1 << bit for bit in range(4, 13))  # remove_*, make_*
_REFER = 1 << 13  # ABI 2: rename/link across directories
_TRUNCATE = 1 << 14  # ABI 3
_FILE_RIGHTS = 1 | _WRITE_FILE | _READ_FILE | _TRUNCATE  # execute, write, read, truncate
_SYSTEM_DIRS = (
    *("/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin", "/etc", "/opt", "/dev"),
    *("/nix/store", "/gnu/store", "/sys/devices/system/cpu"),
)
_NET_TCP = (1 << 0) | (1 << 1)  # ABI 4: bind, connect
_SCOPES = (1 << 0) | (1 << 1)  # ABI 6: abstract Unix sockets, signals


# seccomp: socket() for anything but netlink, io_uring (which can open sockets without
# the socket syscall) and other ABIs' syscalls (int 0x80, x32) fail with EACCES.
_ARCHES = {  # platform.machine() -> (AUDIT_ARCH_*, __NR_socket)
    "x86_64": (0xC000003E, 41),
    "aarch64": (0xC00000B7, 198),
}
_NR_IO_URING_SETUP = 425
_AF_NETLINK = 16
_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 22, 2
_ALLOW, _DENY = 0x7FFF0000, 0x00050000 | 13  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO | EACCES
_LD, _JEQ, _JGE, _RET = 0x20, 0x15, 0x35, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, JGE|K, BPF_RET|K


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _syscall(number: int, *args: Any) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    result = int(libc.syscall(ctypes.c_long(number), *args))
    if result < 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))
    return result


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 when there is none (or not Linux)."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        return _syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    except (OSError, AttributeError):
        return 0


def readable() -> list[str]:
    """What a test may read besides its own directory: the system's programs, libraries
    and configuration, and this interpreter with everything on its path. Not the home
    directory, /tmp, /proc (other processes' environments) or the workspace."""
    found = [
        *_SYSTEM_DIRS,
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        os.path.dirname(os.path.realpath(sys.executable)),
        *(path for path in sys.path if path),
    ]
    return [path for path in dict.fromkeys(found) if os.path.exists(path)]


def confine(abi: int, writable: str, readable: list[str]) -> None:
    """Restrict this process and its future children: see the module docstring."""
    writes = _WRITES_V1 | (_REFER if abi >= 2 else 0) | (_TRUNCATE if abi >= 3 else 0)
    net = _NET_TCP if abi >= 4 else 0
    scoped = _SCOPES if abi >= 6 else 0
    attr = (ctypes.c_uint64 * 3)(writes | _READS, net, scoped)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = _syscall(
        _CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0)
    )
    try:
        file_writes = _WRITE_FILE | (_TRUNCATE if abi >= 3 else 0)
        rules = [(writable, writes | _READS), (os.devnull, file_writes | _READ_FILE)]
        rules += [(path, _READS) for path in readable]
        for path, access in rules:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                if not stat.S_ISDIR(os.fstat(fd).st_mode):
                    access &= _FILE_RIGHTS  # a rule on a file takes only a file's rights
                rule = _PathBeneath(access, fd)
                _syscall(
                    _ADD_RULE,
                    ctypes.c_long(ruleset),
                    ctypes.c_long(_RULE_PATH_BENEATH),
                    ctypes.byref(rule),
                    ctypes.c_uint32(0),
                )
            finally:
                os.close(fd)
        _no_new_privileges()
        _syscall(_RESTRICT_SELF, ctypes.c_long(ruleset), ctypes.c_uint32(0))
    finally:
        os.close(ruleset)


def seccomp_supported(machine: str) -> bool:
    return sys.platform.startswith("linux") and machine in _ARCHES


def _no_new_privileges() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, ctypes.c_ulong(1), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")


def refuse_sockets(machine: str) -> None:
    """A seccomp filter on this process and its future children: no IP, Unix (a
    Docker or database socket on disk), packet or vsock sockets at all, whatever
    calls ``socket()``; ``socketpair()`` (asyncio's self-pipe) still works."""
    arch, nr_socket = _ARCHES[machine]
    program = [
        (_LD, 0, 0, 4),  # seccomp_data.arch
        (_JEQ, 1, 0, arch),
        (_RET, 0, 0, _DENY),  # another ABI (int 0x80 on x86_64)
        (_LD, 0, 0, 0),  # seccomp_data.nr
        (_JGE, 6, 0, 0x40000000),  # x32 syscalls -> deny
        (_JEQ, 5, 0, _NR_IO_URING_SETUP),  # -> deny
        (_JEQ, 1, 0, nr_socket),
        (_RET, 0, 0, _ALLOW),
        (_LD, 0, 0, 16),  # seccomp_data.args[0], low half: the address family
        (_JEQ, 0, 1, _AF_NETLINK),
        (_RET, 0, 0, _ALLOW),
        (_RET, 0, 0, _DENY),
    ]
    filters = (_SockFilter * len(program))(*(_SockFilter(*op) for op in program))
    fprog = _SockFprog(len(program), filters)
    _no_new_privileges()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP) failed")


def _limit(kind: int, soft: int, hard: int | None = None) -> None:
    hard = soft if hard is None else hard
    ceiling = resource.getrlimit(kind)[1]
    if ceiling != resource.RLIM_INFINITY:
        soft, hard = min(soft, ceiling), min(hard, ceiling)
    resource.setrlimit(kind, (soft, hard))


def _guard_sockets(filtered: bool) -> None:
    """Refuse IP sockets in Python with a message a failing test shows (and the model
    repairing it reads); Landlock, seccomp and the network namespace are what hold
    against code that goes around this. `filtered`: seccomp refuses every socket but
    netlink, so say so when one is made rather than let it fail with a bare EACCES."""
    families = (socket.AF_INET, socket.AF_INET6)
    message = "network access is disabled in the Zi test sandbox"
    refused = (*families, socket.AF_UNIX) if filtered else families
    create = socket.socket.__init__

    def created(self: socket.socket, family: Any = -1, *args: Any, **kwargs: Any) -> None:
        wrapping = kwargs.get("fileno", args[2] if len(args) > 2 else None) is not None
        if not wrapping and (socket.AF_INET if family in (-1, None) else family) in refused:
            raise PermissionError(13, message)
        create(self, family, *args, **kwargs)

    socket.socket.__init__ = created  # type: ignore[method-assign]

    def guard(name: str) -> None:
        original = getattr(socket.socket, name)

        def guarded(self: socket.socket, *args: Any, **kwargs: Any) -> Any:
            if self.family in families:
                raise PermissionError(13, message)
            return original(self, *args, **kwargs)

        setattr(socket.socket, name, guarded)

    for name in ("connect", "connect_ex", "bind", "sendto", "sendmsg"):
        guard(name)
    resolve = socket.getaddrinfo

    def getaddrinfo(
        host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> Any:
        return resolve(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)

    def no_lookup(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "name lookup is disabled in the Zi test sandbox")

    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = socket.gethostbyname_ex = socket.gethostbyaddr = no_lookup


def _run_pytest(config: dict[str, Any]) -> int:
    try:
        import pytest
    except ImportError:
        sys.stderr.write(config["no_pytest_mark"] + " for " + sys.executable + "\n")
        sys.stderr.flush()
        os._exit(config["no_pytest_status"])

    class PerTestBudget:
        def __init__(self, seconds: float) -> None:
            self.seconds = seconds

        def expired(self, signum: int, frame: Any) -> None:
            raise TimeoutError(
                f"the test ran longer than {self.seconds:g} s (the Zi sandbox's limit per test)"
            )

        @pytest.hookimpl(hookwrapper=True)
        def pytest_runtest_call(self, item: Any) -> Any:
            previous = signal.signal(signal.SIGALRM, self.expired)
            signal.setitimer(signal.ITIMER_REAL, self.seconds)
            try:
                yield
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)

    args = list(config["args"])
    import importlib.util

    if importlib.util.find_spec("pytest_asyncio") is not None:  # the plugin tests commonly need
        args[:0] = [
            "-p",
            "pytest_asyncio.plugin",
            "-o",
            "asyncio_default_fixture_loop_scope=function",
        ]
    return int(pytest.main(args, plugins=[PerTestBudget(config["per_test_s"])]))


def main() -> None:
    config = json.loads(sys.argv[1])
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_CPU, config["cpu_s"], config["cpu_s"] + 1)
    _limit(resource.RLIMIT_AS, config["memory_bytes"])
    _limit(resource.RLIMIT_FSIZE, config["file_bytes"])
    if config["processes"]:
        _limit(resource.RLIMIT_NPROC, config["processes"])
    try:
        if config["landlock_abi"]:
            confine(config["landlock_abi"], os.getcwd(), readable())
        if config["seccomp_machine"]:
            refuse_sockets(config["seccomp_machine"])
    except OSError as exc:
        sys.stderr.write(f"{config['confine_failed_mark']}: {exc}\n")
        sys.stderr.flush()
        os._exit(config["confine_failed_status"])
    _guard_sockets(bool(config["seccomp_machine"]))
    sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]
    code = _run_pytest(config)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
