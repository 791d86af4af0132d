"""Using the test MCP servers (tests/support/mcp_servers/*.py) from a test: a servers
file naming them, what they recorded in the MCP_TEST_CALLS file, whether one runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import psutil

SERVERS = Path(__file__).resolve().parent / "mcp_servers"


def server_table(
    name: str, script: str, *args: str, calls: Path | None = None, **extra: str
) -> str:
    """A [servers.NAME] table starting one of the test servers with our Python;
    `calls`: where it records what it is asked; `extra`: more keys, as TOML values."""
    lines = [
        f"[servers.{name}]",
        f"command = {json.dumps(sys.executable)}",
        f"args = {json.dumps([str(SERVERS / script), *args])}",
    ]
    if calls is not None:
        lines.append(f"env = {{ MCP_TEST_CALLS = {json.dumps(str(calls))} }}")
    lines += [f"{key} = {value}" for key, value in extra.items()]
    return "\n".join(lines) + "\n"


def docs_server(calls: Path) -> str:
    """The well-behaved `docs` server as a servers file: its docs://api/* resources
    and its `lookup` tool, asked about the symbol and language of the request."""
    return server_table(
        "docs", "well_behaved.py", calls=calls, resources=json.dumps(["docs://api/*"])
    ) + (
        "[servers.docs.tools.lookup]\n"
        'arguments = { symbol = "{symbol}", language = "{language}" }\n'
    )


def recorded(calls: Path, event: str | None = None) -> list[dict[str, Any]]:
    """What the servers recorded so far (of one kind: "start", "call", ...), in order."""
    if not calls.exists():
        return []
    found = [json.loads(line) for line in calls.read_text().splitlines() if line.strip()]
    return [entry for entry in found if event is None or entry["event"] == event]


def started(calls: Path) -> list[int]:
    """The server processes started so far, by pid."""
    return [entry["pid"] for entry in recorded(calls, "start")]


def alive(pid: int) -> bool:
    """Whether `pid` still runs (an orphan nobody reaped yet counts as ended)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
