"""Tool pins: trust on first use for the tools of configured MCP servers.

A server can change what a tool does between sessions while keeping its name (a "rug
pull"). Each tool is pinned the first time it is listed: a fingerprint of what defines
it (name, title, description, schemas, annotations). A different fingerprint later
makes the tool *changed*: it is not called until the user runs ``zi-coder mcp trust``,
which re-pins it. Pins are a per-user trust decision, kept in a small JSON file
(written atomically) next to our other state; a running language server re-reads it
when its mtime changes, so a trust from the command line applies at once.

No ``mcp`` SDK import: callers pass tools as plain dicts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Mapping
from contextlib import suppress
from enum import StrEnum
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: The fields of an MCP Tool (python names) that define it; ``_meta`` and icons are noise.
PINNED_FIELDS = frozenset(
    {"name", "title", "description", "input_schema", "output_schema", "annotations"}
)
_VERSION = 1


class PinState(StrEnum):
    NEW = "new"  # first sight: pinned now
    PINNED = "pinned"  # as pinned
    CHANGED = "changed"  # differs from its pin: not called until trusted


def fingerprint(tool: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a tool's defining fields (others are ignored)."""
    fields = {key: value for key, value in tool.items() if key in PINNED_FIELDS}
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def server_key(name: str, identity: str) -> str:
    """Pins belong to a server name *and* what it runs (or where it is): the same name
    pointed at another program starts from scratch. Hashed: a command line may hold
    secrets, and this file need not."""
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return f"{name}@{digest}"


class Pins:
    """The pins file. Not thread-safe: used from the MCP client's own thread only (or a
    command-line process); across processes the last writer wins, after re-reading."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._servers: dict[str, dict[str, str]] = {}
        self._seen: tuple[int, int] | None = None  # (mtime_ns, size) of what was read

    def check(self, server: str, fingerprints: Mapping[str, str]) -> dict[str, PinState]:
        """Each listed tool's state; pins the ones never seen (and saves them)."""
        self._reload_if_changed()
        pinned = self._servers.get(server, {})
        states = {
            name: PinState.NEW
            if name not in pinned
            else PinState.PINNED
            if pinned[name] == value
            else PinState.CHANGED
            for name, value in fingerprints.items()
        }
        new = {name: fingerprints[name] for name, state in states.items() if state is PinState.NEW}
        if new:
            self._update(server, new)
        return states

    def trust(self, server: str, fingerprints: Mapping[str, str], tools: Iterable[str]) -> None:
        """Re-pin `tools` of `server` at their current fingerprints (``mcp trust``)."""
        chosen = {name: fingerprints[name] for name in tools}
        if chosen:
            self._update(server, chosen)

    def _update(self, server: str, pins: Mapping[str, str]) -> None:
        self._reload_if_changed()  # another process may have trusted something meanwhile
        self._servers.setdefault(server, {}).update(pins)
        try:
            self._save()
        except OSError as exc:  # kept in memory for this process: pinned all the same
            log.warning("cannot save MCP tool pins to %s: %s", self.path, exc)

    def _reload_if_changed(self) -> None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            self._seen = None
            return
        except OSError as exc:
            log.warning("cannot read MCP tool pins %s: %s", self.path, exc)
            return
        seen = (stat.st_mtime_ns, stat.st_size)
        if seen == self._seen:
            return
        self._seen = seen
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            servers = data["servers"]
            self._servers = {
                str(server): {str(tool): str(value) for tool, value in tools.items()}
                for server, tools in servers.items()
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            # Unreadable pins would pin every tool anew: keep the file for a look, and
            # keep what this process knew.
            log.warning("MCP tool pins %s are unreadable (%s); kept as .bad", self.path, exc)
            with suppress(OSError):
                self.path.replace(self.path.with_suffix(".bad"))

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"version": _VERSION, "servers": self._servers}, indent=1, sort_keys=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".mcp-pins.")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text + "\n")
            os.replace(temporary, self.path)
        except BaseException:
            with suppress(OSError):
                os.unlink(temporary)
            raise
        stat = self.path.stat()
        self._seen = (stat.st_mtime_ns, stat.st_size)
