"""The diagnostics' domain values, free of LSP types.

Positions are 0-based lines and *code point* columns into the document's text
(lines as LSP numbers them: split after ``\\n``, ``\\r\\n`` or ``\\r``); the edge
converts columns to the client's position encoding.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any


class Severity(IntEnum):
    """LSP's DiagnosticSeverity values: lower is more severe."""

    ERROR = 1
    WARNING = 2
    INFORMATION = 3
    HINT = 4

    @classmethod
    def from_name(cls, name: str) -> Severity:
        return cls[name.strip().upper()]


@dataclass(frozen=True)
class Diagnostic:
    start_line: int
    start_col: int
    end_line: int
    end_col: int  # exclusive
    severity: Severity
    message: str
    source: str  # "tree-sitter", "ruff", "pyflakes", "zi-review", "zi"
    code: str | None = None
    data: dict[str, Any] | None = None  # review findings: {"fix": str, "category": str}
    unnecessary: bool = False  # rendered faded (LSP DiagnosticTag.Unnecessary)

    def key(self) -> tuple[Any, ...]:
        """Identity for de-duplication and result ids."""
        return (
            self.start_line,
            self.start_col,
            self.end_line,
            self.end_col,
            int(self.severity),
            self.message,
            self.source,
            self.code,
        )
