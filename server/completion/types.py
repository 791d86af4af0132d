"""Domain values of the completion pipeline (no LSP types here)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Mode(StrEnum):
    SINGLE_LINE = "single_line"
    MULTI_LINE = "multi_line"


class Source(StrEnum):
    """Where a completion's text came from; recorded with each completion."""

    MODEL = "model"
    TYPEAHEAD = "typeahead"
    SHARED_CACHE = "shared_cache"
    JOINED = "joined"  # an identical request was already in flight


class Outcome(StrEnum):
    GENERATED = "generated"
    SHOWN = "shown"
    ACCEPTED = "accepted"
    PARTIALLY_ACCEPTED = "partially_accepted"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Document:
    """A snapshot of an open document, as the pipeline needs it."""

    uri: str
    language_id: str
    version: int
    text: str

    @property
    def path(self) -> str:
        """A short, relative-looking path for prompt headers."""
        uri = self.uri
        for scheme in ("file://", "untitled:"):
            if uri.startswith(scheme):
                uri = uri[len(scheme) :]
        return uri


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    document: Document
    offset: int  # cursor as an index into document.text
    line: int  # cursor line and character in the client's units, for staleness checks
    character: int
    invoked: bool = False  # explicitly asked for (vs. automatic while typing)


@dataclass(frozen=True, slots=True)
class Completion:
    id: str
    text: str
    mode: Mode
    source: Source
    model: str
    template: str
    parent_id: str | None = None  # the completion a type-ahead hit continues


@dataclass(frozen=True, slots=True)
class Timing:
    """Milliseconds per stage, logged and recorded."""

    total_ms: float
    first_token_ms: float | None = None
    prompt_ms: float | None = None
