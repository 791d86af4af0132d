"""The code actions' domain values: what the edge hands in and gets back.

Regions are whole lines (0-based, end exclusive): the model rewrites lines, an
edit replaces lines, and a rebase moves lines, so no character offset in any
position encoding has to survive a round trip through a model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.actions.edits import LineEdit
from server.actions.kinds import DOCSTRING, IMPROVE, KINDS, QUICKFIX, TESTS

__all__ = ["DOCSTRING", "IMPROVE", "KINDS", "QUICKFIX", "TESTS"]


@dataclass(frozen=True)
class Snapshot:
    """A document as the server holds it at one version."""

    uri: str
    path: Path | None  # None for a URI that is not a local file
    language_id: str
    version: int | None
    text: str


@dataclass(frozen=True)
class Problem:
    """A diagnostic from the request's context, from any source."""

    index: int  # position in the request's diagnostics, so the edge can attach it
    start_line: int
    end_line: int  # inclusive
    message: str
    source: str | None = None
    code: str | None = None
    data: Any = None  # may carry a ready fix: {"fix": "replacement lines"}


@dataclass(frozen=True)
class ActionRequest:
    document: Snapshot
    start_line: int
    end_line: int  # inclusive
    empty_selection: bool
    problems: tuple[Problem, ...] = ()
    only: tuple[str, ...] | None = None  # the client's filter of kinds


@dataclass(frozen=True)
class Offer:
    title: str
    kind: str
    data: dict[str, Any]
    problem_index: int | None = None


@dataclass(frozen=True)
class Resolution:
    """Edits to apply, in order; files to create before them."""

    edits: tuple[LineEdit, ...]
    create: tuple[str, ...] = ()
    summary: str | None = None


class ActionError(Exception):
    """A user-facing reason why an action produced no edit."""


Progress = Callable[[str, "int | None"], None]
