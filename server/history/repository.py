"""Data access for the history: keyword-only functions over a Session.

Texts (prompts, responses, suggestions) are stored only with ``store_prompts``,
and then always through :func:`server.redact.redact`; their lengths always.
Model calls and survival checks are idempotent, and job rows are upserted so that
their events may arrive in any order: several servers may record the same shared
job result, and a retried batch must not fail on rows it already wrote.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Boolean, DateTime, Integer, func, literal, select, update
from sqlalchemy.orm import Session

from server.completion.recorder import (
    CompletionEvent,
    JobEvent,
    JobState,
    ModelCallEvent,
    SurvivalEvent,
)
from server.completion.types import Outcome
from server.history.models import (
    CompletionRecord,
    JobRecord,
    ModelCallRecord,
    SurvivalRecord,
    utc_day,
)

log = logging.getLogger(__name__)

# Never stored with a call's parameters: the texts themselves, and credentials a
# client's extra_body might carry.
_NOT_PARAMS = frozenset(
    {"prompt", "messages", "api_key", "apikey", "authorization", "headers", "extra_headers"}
)

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


def record_completion(
    *, session: Session, event: CompletionEvent, at: datetime, store_prompts: bool = False
) -> None:
    session.add(
        CompletionRecord(
            id=event.id,
            parent_id=event.parent_id,
            created_at=at,
            created_day=utc_day(at),
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
            text=stored_text(event.text, store_prompts),
            prompt=stored_text(event.prompt, store_prompts),
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


def record_model_call(
    *, session: Session, event: ModelCallEvent, at: datetime, store_prompts: bool
) -> None:
    """One model call, live or replayed (`event.replay_of`); a known id is left as it is."""
    values = {
        "id": event.id,
        "created_at": at,
        "kind": event.kind.value,
        "model": event.model,
        "endpoint": event.endpoint,
        "language": event.language,
        "template": event.template,
        "completion_id": event.completion_id,
        "job_id": event.job_id,
        "params": params_json(event.params),
        "prompt": stored_text(event.prompt, store_prompts, messages=True),
        "response": stored_text(event.response, store_prompts),
        "prompt_chars": len(event.prompt),
        "response_chars": len(event.response),
        "finish_reason": event.finish_reason,
        "prompt_tokens": event.prompt_tokens,
        "completion_tokens": event.completion_tokens,
        "first_token_ms": event.first_token_ms,
        "total_ms": event.total_ms,
        "error": event.error,
        "failed": event.error is not None,
        "replay": event.replay_of is not None,
        "replay_of": event.replay_of,
    }
    session.execute(_insert(session, ModelCallRecord).values(values).on_conflict_do_nothing())


def record_job(*, session: Session, event: JobEvent, at: datetime) -> None:
    """Upsert a job's row: QUEUED creates it, an end state sets status and times.

    Order-proof: an end that arrives first creates the row (its start estimated from
    the duration) and a later QUEUED leaves it alone. An end never overwrites the
    same end state: a job result reused by an identical request (or recorded by a
    second server sharing it) keeps the first run's times.
    """
    insert = _insert(session, JobRecord)
    if event.state is JobState.QUEUED:
        row = _job_row(event, status=JobState.QUEUED, created_at=at)
        session.execute(insert.values(row).on_conflict_do_nothing())
        return
    started = at - timedelta(milliseconds=event.duration_ms or 0.0)
    row = _job_row(event, status=event.state, created_at=started)
    row |= {"finished_at": at, "duration_ms": event.duration_ms, "error": event.error}
    statement = insert.values(row)
    new = statement.excluded
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[JobRecord.id],
            set_={
                "status": new.status,
                "finished_at": new.finished_at,
                "duration_ms": new.duration_ms,
                "error": new.error,
                "uri": func.coalesce(JobRecord.uri, new.uri),
                "language": func.coalesce(JobRecord.language, new.language),
            },
            where=JobRecord.status != event.state.value,
        )
    )


def record_survival(*, session: Session, event: SurvivalEvent, at: datetime) -> None:
    """Upsert one checkpoint of an accepted suggestion (by completion and `after_s`).

    Nothing is written for a completion this database does not hold (history was
    off when it was made): the row is selected from ``completions`` itself, in the
    one statement, so the foreign key can never fail a batch. The completion's time,
    day, language and model are copied with it (the statistics read them from here).
    """
    row = select(
        CompletionRecord.id,
        literal(event.after_s, Integer),
        CompletionRecord.created_at,
        CompletionRecord.created_day,
        CompletionRecord.language,
        CompletionRecord.model,
        literal(at, DateTime(timezone=True)),
        literal(event.accepted_chars, Integer),
        literal(event.kept_chars, Integer),
        literal(event.document_closed, Boolean),
    ).where(CompletionRecord.id == event.completion_id)
    statement = _insert(session, SurvivalRecord).from_select(
        [
            "completion_id",
            "after_s",
            "completion_created_at",
            "created_day",
            "language",
            "model",
            "checked_at",
            "accepted_chars",
            "kept_chars",
            "document_closed",
        ],
        row,
    )
    new = statement.excluded
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[SurvivalRecord.completion_id, SurvivalRecord.after_s],
            set_={
                "checked_at": new.checked_at,
                "accepted_chars": new.accepted_chars,
                "kept_chars": new.kept_chars,
                "document_closed": new.document_closed,
            },
        )
    )


def stored_text(text: str | None, store_prompts: bool, *, messages: bool = False) -> str | None:
    """`text` as the history may keep it: None unless `store_prompts`, else redacted.

    `messages`: `text` may be a chat prompt, a JSON list of messages; each message's
    content is then redacted on its own, since JSON escapes (a newline as ``\\n``)
    would hide multi-line secrets from the patterns.
    """
    if not store_prompts or text is None:
        return None
    from server.redact import redact

    if messages and text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, list) and all(isinstance(m, dict) for m in parsed):
            for message in parsed:
                if isinstance(message.get("content"), str):
                    message["content"] = redact(message["content"])
            return redact(json.dumps(parsed, ensure_ascii=False))
    return redact(text)


def params_json(params: dict[str, Any]) -> str:
    """A call's parameters as JSON: without its texts and credentials, redacted."""
    from server.redact import redact

    kept = {k: v for k, v in params.items() if k.lower() not in _NOT_PARAMS}
    return redact(json.dumps(kept, sort_keys=True, ensure_ascii=False, default=str))


def get_completion(*, session: Session, completion_id: str) -> CompletionRecord | None:
    return session.scalars(
        select(CompletionRecord).where(CompletionRecord.id == completion_id)
    ).first()


def now() -> datetime:
    return datetime.now(UTC)


def _job_row(event: JobEvent, *, status: JobState, created_at: datetime) -> dict[str, Any]:
    return {
        "id": event.id,
        "kind": event.kind,
        "function": event.function,
        "runner": event.runner,
        "uri": event.uri,
        "language": event.language,
        "status": status.value,
        "created_at": created_at,
    }


def _insert(session: Session, table: type[Any]) -> Any:
    """The dialect's INSERT, which has ON CONFLICT (SQLite and PostgreSQL alike)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table)
    raise NotImplementedError(f"history on {dialect} is not supported (SQLite or PostgreSQL)")
