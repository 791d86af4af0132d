"""Data access for completion history: keyword-only functions over a Session."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from server.completion.recorder import CompletionEvent
from server.completion.types import Outcome
from server.history.models import CompletionRecord

# An outcome may only move forward: a late "shown" must not undo "accepted".
_MAY_REPLACE: dict[Outcome, tuple[Outcome, ...]] = {
    Outcome.SHOWN: (Outcome.GENERATED,),
    Outcome.REJECTED: (Outcome.GENERATED, Outcome.SHOWN),
    Outcome.PARTIALLY_ACCEPTED: (
        Outcome.GENERATED,
        Outcome.SHOWN,
        Outcome.REJECTED,
        Outcome.PARTIALLY_ACCEPTED,
    ),
    Outcome.ACCEPTED: (
        Outcome.GENERATED,
        Outcome.SHOWN,
        Outcome.REJECTED,
        Outcome.PARTIALLY_ACCEPTED,
    ),
}


def record_completion(*, session: Session, event: CompletionEvent, at: datetime) -> None:
    session.add(
        CompletionRecord(
            id=event.id,
            parent_id=event.parent_id,
            created_at=at,
            uri=event.uri,
            language=event.language,
            model=event.model,
            template=event.template,
            mode=event.mode,
            source=event.source,
            text_length=len(event.text),
            prompt_chars=event.prompt_chars,
            first_token_ms=event.first_token_ms,
            total_ms=event.total_ms,
            outcome=Outcome.GENERATED.value,
        )
    )


def record_outcome(
    *,
    session: Session,
    completion_id: str,
    outcome: Outcome,
    accepted_length: int | None,
    at: datetime,
) -> None:
    values: dict[str, object] = {"outcome": outcome.value}
    if outcome is Outcome.SHOWN:
        values["shown_at"] = at
    else:
        values["decided_at"] = at
    if accepted_length is not None:
        values["accepted_length"] = accepted_length
    session.execute(
        update(CompletionRecord)
        .where(CompletionRecord.id == completion_id)
        .where(CompletionRecord.outcome.in_([o.value for o in _MAY_REPLACE[outcome]]))
        .values(**values)
    )


def get_completion(*, session: Session, completion_id: str) -> CompletionRecord | None:
    return session.scalars(
        select(CompletionRecord).where(CompletionRecord.id == completion_id)
    ).first()


def now() -> datetime:
    return datetime.now(UTC)
