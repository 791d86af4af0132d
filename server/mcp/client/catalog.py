"""What a server offers, as last listed: its tools, each with its pin state, and its
resource URIs; which of them a request may use.

Every listing is checked against the pins (pins.py): an allowed tool that changed since
it was confirmed is not called, and the user is told once which command confirms it,
under a key of its own (``mcp:SERVER:tool:NAME``): two changed tools are two warnings,
and the server answering again (``mcp:SERVER``) does not clear them.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Protocol

from mcp.types import Tool

from server.mcp.client.config import ServerSpec, identity
from server.mcp.client.content import first_line, one_line
from server.mcp.client.pins import PINNED_FIELDS, Pins, PinState, fingerprint, server_key
from server.mcp.client.status import ToolStatus
from server.notify import Level

if TYPE_CHECKING:
    from mcp import Client

MAX_PAGES = 20  # of any listing
MAX_LISTED = 500  # tools or resources kept from a listing


class Reporter(Protocol):
    """What the user is told through (server.notify.Notifier fits)."""

    def problem(
        self, key: str, message: str, *, lasting: bool = False, level: Level = Level.WARNING
    ) -> None: ...

    def resolved(self, key: str, message: str) -> None: ...


class Catalog:
    def __init__(self, spec: ServerSpec, *, pins: Pins, reporter: Reporter) -> None:
        self.spec = spec
        self.tools: dict[str, Tool] = {}
        self.resources: list[str] = []
        self.pin_states: dict[str, PinState] = {}
        self._pins, self._pin_key = pins, server_key(spec.name, identity(spec))
        self._fingerprints: dict[str, str] = {}
        self._reporter = reporter
        self._told: set[tuple[str, str]] = set()  # (tool, fingerprint) told as changed

    async def list_from(self, client: Client, *, tools: bool, resources: bool) -> None:
        """Re-list the tools and/or the resources the server offers (paged, capped)."""
        if tools:
            self.adopt_tools(await _all_tools(client))
        if resources:
            self.resources = await _all_resources(client)

    def adopt_tools(self, tools: Sequence[Tool]) -> None:
        self.tools = {tool.name: tool for tool in tools}
        self._fingerprints = {
            tool.name: fingerprint(
                tool.model_dump(mode="json", exclude_none=True, include=set(PINNED_FIELDS))
            )
            for tool in tools
        }
        self._check_pins()

    def recheck(self) -> None:
        """Re-read the pins if a tool is held back: a `zi-coder mcp trust` may have run."""
        if any(state is PinState.CHANGED for state in self.pin_states.values()):
            self._check_pins()

    def usable(self, tool: str) -> bool:
        return self.pin_states.get(tool) in (PinState.NEW, PinState.PINNED)

    def matching_resources(self, limit: int) -> list[str]:
        patterns = self.spec.resources
        return [uri for uri in self.resources if any(fnmatchcase(uri, p) for p in patterns)][:limit]

    def trust(self, tools: Sequence[str]) -> list[str]:
        """Re-pin `tools` (every listed tool when empty) as listed now."""
        unknown = [name for name in tools if name not in self._fingerprints]
        if unknown:
            raise ValueError(
                f"MCP server '{self.spec.name}' offers no tool named {', '.join(unknown)}"
            )
        chosen = list(tools) or list(self._fingerprints)
        self._pins.trust(self._pin_key, self._fingerprints, chosen)
        self._check_pins()
        return chosen

    def tool_statuses(self) -> tuple[ToolStatus, ...]:
        return tuple(
            ToolStatus(
                name=one_line(name),
                description=first_line(tool.description),
                allowed=name in self.spec.tools,
                pin=self.pin_states.get(name, PinState.NEW).value,
            )
            for name, tool in self.tools.items()
        )

    def resource_statuses(self) -> tuple[str, ...]:
        return tuple(one_line(uri) for uri in self.resources)

    def missing_tools(self) -> tuple[str, ...]:
        return tuple(name for name in self.spec.tools if name not in self.tools)

    def _check_pins(self) -> None:
        before = self.pin_states
        self.pin_states = self._pins.check(self._pin_key, self._fingerprints)
        server = self.spec.name
        for name in self.spec.tools:  # the others are never called: no news
            state, key = self.pin_states.get(name), tool_key(server, name)
            if state is PinState.CHANGED and (name, self._fingerprints[name]) not in self._told:
                self._told.add((name, self._fingerprints[name]))
                self._reporter.problem(
                    key,
                    f"tool '{name}' of MCP server '{server}' changed since it was confirmed; "
                    f"not used until `zi-coder mcp trust {server} {name}`",
                    lasting=True,
                )
            elif state is PinState.PINNED and before.get(name) is PinState.CHANGED:
                self._reporter.resolved(key, f"tool '{name}' of MCP server '{server}' is trusted")


def tool_key(server: str, tool: str) -> str:
    """The notifier key of a tool's warnings; the server's own is ``mcp:SERVER``."""
    return f"mcp:{server}:tool:{tool}"


async def _all_tools(client: Client) -> list[Tool]:
    tools: list[Tool] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools += page.tools
        cursor = page.next_cursor
        if cursor is None or len(tools) >= MAX_LISTED:
            break
    return tools[:MAX_LISTED]


async def _all_resources(client: Client) -> list[str]:
    uris: list[str] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = await client.list_resources(cursor=cursor)
        uris += [str(resource.uri) for resource in page.resources]
        cursor = page.next_cursor
        if cursor is None or len(uris) >= MAX_LISTED:
            break
    return uris[:MAX_LISTED]
