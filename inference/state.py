"""Which registry models run on this machine: one JSON file per loaded model.

``zi-coder models load`` starts vLLM detached and exits, so the only memory of
the running server is a small state file (name, pid, url, port, log file, start
time) in the state directory. Readers treat a file whose process is gone as
stale: the server died or the machine rebooted, and the model is simply not
loaded. Stopping a recorded server signals its whole process group (vLLM's
engine-core and workers live there too).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger(__name__)

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class LoadedModel(BaseModel):
    """The state file of one model started by ``zi-coder models load``."""

    model_config = ConfigDict(frozen=True)

    name: str
    pid: int = Field(gt=0)
    url: str
    port: int
    log_file: Path
    started_at: float = Field(default_factory=time.time, description="Unix time.")


def default_state_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_state_dir("zi-coder", appauthor=False)) / "models"


def state_path(state_dir: Path, name: str) -> Path:
    # Model names may hold `/` (Hugging Face style); the file name must not.
    return state_dir / f"{_SAFE_NAME.sub('_', name)}.json"


def write_state(state_dir: Path, model: LoadedModel) -> Path:
    """Write atomically, so a concurrent reader never sees half a file."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_path(state_dir, model.name)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(model.model_dump_json(indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_state(state_dir: Path, name: str) -> LoadedModel | None:
    """The loaded model ``name``, or None if no file, an unreadable one, or a stale one."""
    path = state_path(state_dir, name)
    model = _parse(path)
    if model is None or model.name != name:
        return None
    if not process_running(model.pid):
        # The server is gone (crash, reboot, kill): forget it.
        remove_state(state_dir, name)
        return None
    return model


def list_loaded(state_dir: Path) -> list[LoadedModel]:
    """Every model with a live process, by name."""
    if not state_dir.is_dir():
        return []
    names = [model.name for path in state_dir.glob("*.json") if (model := _parse(path))]
    return [model for name in sorted(names) if (model := read_state(state_dir, name))]


def remove_state(state_dir: Path, name: str) -> bool:
    """Delete the state file; False if there was none."""
    try:
        state_path(state_dir, name).unlink()
    except FileNotFoundError:
        return False
    return True


def process_running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie is not: it has exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, someone else's
    try:
        stat = (Path("/proc") / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return True  # no procfs (macOS): trust the pid
    # Field 3 of /proc/PID/stat, after the parenthesised command name, is the state.
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def looks_like_vllm(pid: int) -> bool:
    """Whether ``pid`` runs vLLM, as far as this platform can tell.

    Checked before signalling a recorded pid: after a reboot the pid of a
    "loaded model" may belong to an unrelated process, which must not be killed.
    """
    try:
        cmdline = (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists() and process_running(pid)
    except OSError:
        return False
    return b"vllm" in cmdline


def _parse(path: Path) -> LoadedModel | None:
    try:
        return LoadedModel.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, ValidationError):
        with contextlib.suppress(OSError):
            if path.is_file():
                path.unlink()  # corrupt: drop it rather than fail every command
        return None


# -- stopping a server's process group ------------------------------------------


def stop_process_group(
    pgid: int, grace_s: float = 20.0, proc: subprocess.Popen[bytes] | None = None
) -> bool:
    """SIGTERM the group, wait up to ``grace_s``, SIGKILL leftovers; True if it exited in time."""
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    clean = True
    while True:
        _reap(pgid, proc)
        if not group_alive(pgid):
            break
        if time.monotonic() > deadline:
            clean = False
            log.warning("vLLM (group %d) outlived %.0f s after SIGTERM: killing it", pgid, grace_s)
            _signal_group(pgid, signal.SIGKILL)
            deadline = time.monotonic() + 10.0
            grace_s = 10.0
        time.sleep(0.1)
    if proc is not None:
        proc.wait()
    return clean


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _reap(pid: int, proc: subprocess.Popen[bytes] | None) -> None:
    """Collect our own exited child, or it stays a zombie that still counts as alive."""
    if proc is not None:
        proc.poll()
        return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def group_alive(pgid: int) -> bool:
    """Whether any non-zombie process remains in process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    # Zombies still answer killpg(0); where nobody reaps orphans they would never go.
    for stat_file in proc.glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text(errors="replace").rpartition(")")[2].split()
        except OSError:
            continue
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False
