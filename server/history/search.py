"""Text search over the history: completions by file or suggestion text, model calls
by prompt, response or error. Texts are there only where ``history.store_prompts``
kept them (redacted); file names and errors always are.

A plain case-insensitive substring match, newest first: enough for "what did the
assistant suggest in billing.py" over a personal or team history, with no index to
maintain (the scan stops at ``limit`` rows in time order).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement
    from sqlalchemy.engine import Connection

SNIPPET_CHARS = 160  # around the first match


@dataclass(frozen=True, slots=True)
class Found:
    kind: str  # "completion", or a model call's kind (completion, code_action, review)
    table: str  # completions, model_calls
    id: str
    created_at: datetime
    model: str
    language: str | None
    where: str  # the field that matched: uri, text, prompt, response, error
    snippet: str
    outcome: str | None = None  # completions only


def search_history(connection: Connection, *, text: str, limit: int) -> list[Found]:
    """Rows whose fields contain `text` (any case), newest first, at most `limit`."""
    from sqlalchemy import func, or_, select

    from server.history.models import CompletionRecord, ModelCallRecord

    pattern = "%" + _escaped(text.lower()) + "%"

    def like(column: ColumnElement[str | None]) -> ColumnElement[bool]:
        return func.lower(column).like(pattern, escape="\\")

    completions = CompletionRecord.__table__.c
    calls = ModelCallRecord.__table__.c
    found: list[Found] = []
    rows = connection.execute(
        select(
            completions.id,
            completions.created_at,
            completions.model,
            completions.language,
            completions.uri,
            completions.text,
            completions.outcome,
        )
        .where(or_(like(completions.uri), like(completions.text)))
        .order_by(completions.created_at.desc())
        .limit(limit)
    )
    for row in rows:
        where, value = _first_match(text, uri=row.uri, text=row.text)
        found.append(
            Found(
                "completion",
                "completions",
                row.id,
                row.created_at,
                row.model,
                row.language,
                where,
                _snippet(value, text),
                row.outcome,
            )
        )
    rows = connection.execute(
        select(
            calls.id,
            calls.created_at,
            calls.kind,
            calls.model,
            calls.language,
            calls.prompt,
            calls.response,
            calls.error,
        )
        .where(or_(like(calls.prompt), like(calls.response), like(calls.error)))
        .where(calls.replay.is_(False))
        .order_by(calls.created_at.desc())
        .limit(limit)
    )
    for row in rows:
        where, value = _first_match(text, response=row.response, prompt=row.prompt, error=row.error)
        found.append(
            Found(
                row.kind,
                "model_calls",
                row.id,
                row.created_at,
                row.model,
                row.language,
                where,
                _snippet(value, text),
            )
        )
    found.sort(key=lambda item: item.created_at, reverse=True)
    return found[:limit]


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _first_match(needle: str, **fields: str | None) -> tuple[str, str]:
    for name, value in fields.items():
        if value and needle.lower() in value.lower():
            return name, value
    return next(iter(fields)), ""


def _snippet(value: str, needle: str) -> str:
    at = value.lower().find(needle.lower())
    start = max(at - SNIPPET_CHARS // 2, 0) if at >= 0 else 0
    piece = value[start : start + SNIPPET_CHARS]
    return ("…" if start else "") + piece + ("…" if start + SNIPPET_CHARS < len(value) else "")


def recent_history(connection: Connection, *, limit: int) -> list[Found]:
    """The newest `limit` suggestions and model calls (live ones: no replays)."""
    from sqlalchemy import select

    from server.history.models import CompletionRecord, ModelCallRecord

    completions = CompletionRecord.__table__.c
    calls = ModelCallRecord.__table__.c
    found = [
        Found("completion", "completions", row.id, row.created_at, row.model, row.language,
              "text", _snippet(row.text or "", ""), row.outcome)
        for row in connection.execute(
            select(completions.id, completions.created_at, completions.model,
                   completions.language, completions.text, completions.outcome)
            .order_by(completions.created_at.desc())
            .limit(limit)
        )
    ]  # fmt: skip
    found += [
        Found(row.kind, "model_calls", row.id, row.created_at, row.model, row.language,
              "error" if row.error else "response", _snippet(row.error or row.response or "", ""))
        for row in connection.execute(
            select(calls.id, calls.created_at, calls.kind, calls.model, calls.language,
                   calls.response, calls.error)
            .where(calls.replay.is_(False))
            .order_by(calls.created_at.desc())
            .limit(limit)
        )
    ]  # fmt: skip
    found.sort(key=lambda item: item.created_at, reverse=True)
    return found[:limit]
