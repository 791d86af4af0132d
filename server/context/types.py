"""What a feature asks for (ContextRequest) and what it gets back (ContextItem)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

Purpose = Literal["review", "actions"]


@dataclass(frozen=True)
class ContextRequest:
    """What the heavy job is about; the values configured tool arguments may name.

    ``symbol`` is the identifier the action or problem is about (may be empty);
    ``problem`` a diagnostic's message for a fix (may be empty). Never document text:
    a configured MCP server only ever learns these few fields.
    """

    purpose: Purpose
    language_id: str
    path: str
    symbol: str = ""
    problem: str = ""


@dataclass(frozen=True)
class ContextItem:
    """One piece of reference data: untrusted, already stripped of control characters
    and cut to size, not yet fenced."""

    server: str
    source: str  # "resource docs://api/x" or "tool search_docs"
    text: str

    def as_job_arg(self) -> dict[str, str]:
        return {"server": self.server, "source": self.source, "text": self.text}

    @classmethod
    def from_job_arg(cls, data: dict[str, Any]) -> ContextItem:
        return cls(str(data["server"]), str(data["source"]), str(data["text"]))


class ContextSource(Protocol):
    async def context_for(self, request: ContextRequest) -> list[ContextItem]:
        """Items for `request` within the source's own deadline; never raises ([] on trouble)."""
        ...

    async def aclose(self) -> None:
        """Stop whatever the source started (servers, threads); idempotent."""
        ...

    def close(self) -> None:
        """`aclose` for a process ending now, with no loop left to await on (LSP `exit`
        without `shutdown`, stdin closed): blocks until stopped; idempotent. Whatever
        the source started in its own process group would outlive the process otherwise."""
        ...


class NoContext:
    """No configured source: nothing to add."""

    async def context_for(self, request: ContextRequest) -> list[ContextItem]:
        return []

    async def aclose(self) -> None:
        return None

    def close(self) -> None:
        return None
