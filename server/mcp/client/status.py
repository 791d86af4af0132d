"""What `zi-coder mcp list` shows of a configured server: plain values, no SDK."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    IDLE = "idle"  # not used yet: servers start at first use
    CONNECTING = "connecting"
    READY = "ready"
    FAILED = "failed"  # `reason` says why; retried after a pause (2 s, doubling to 60 s)
    STOPPED = "stopped"


@dataclass(frozen=True)
class ToolStatus:
    name: str  # cleaned of escapes and invisible characters, like every server text here
    description: str  # first line, cleaned and cut: the server's words, untrusted
    allowed: bool  # named in the servers file: the only tools ever called
    pin: str  # "new" (pinned now), "pinned", or "changed" (not called until trusted)


@dataclass(frozen=True)
class ServerStatus:
    name: str
    transport: str  # "stdio" or "http"
    identity: str  # the command line or URL, secrets in it redacted
    state: State
    reason: str  # why it failed (or is still connecting), redacted; "" when ready
    tools: tuple[ToolStatus, ...] = ()
    resources: tuple[str, ...] = ()  # listed resource URIs (capped)
    missing_tools: tuple[str, ...] = ()  # allowed in the file, not offered by the server
