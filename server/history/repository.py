"""Data access for the history: events turned into rows, written in batches.

The writer thread (``server.history.writer``) calls :func:`write_events` with a
batch; the ``record_*`` functions write one event in a caller's Session (replays,
tests). Both run the same statements (``server.history.statements``, built once)
on the same rows.

Speed: the writer runs in the server's process and holds the GIL while it works,
so every millisecond it spends is one a request may wait. A batch runs each
statement once over all its rows (executemany): tens of microseconds per event,
where building an ORM statement per event cost 1 to 2 ms.

Order: a batch runs its completions first, then model calls, jobs, outcomes and
survival checks, so an outcome or a check finds its completion even when both are
in the same batch; outcomes keep their order among themselves, and jobs theirs.

Rules the statements keep:

- an outcome only moves forward: a late "shown" must not undo "accepted";
- completions and model calls are inserted once (a known id is left as it is), so a
  batch written again after a failure does no harm;
- job rows are upserted so that their events may arrive in any order: several
  servers may record the same shared job result;
- a survival check is written only for a completion this database holds.

Texts (prompts, responses, suggestions) are stored only with ``store_prompts``,
and then always through :func:`server.redact.redact`; their lengths always.
Endpoints are stored without user, password or query string, and error texts
(which quote the URL they failed on) the same way, then redacted.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from server.completion import recorder
from server.completion.recorder import (
    CompletionEvent,
    JobEvent,
    JobState,
    ModelCallEvent,
    OutcomeEvent,
    SurvivalEvent,
)
from server.completion.types import Outcome
from server.history.models import CANCELLED, CompletionRecord, utc_day
from server.history.statements import MAY_REPLACE_PARAMS, Statements, statements

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session
    from sqlalchemy.sql.expression import Executable

log = logging.getLogger(__name__)

Event = CompletionEvent | OutcomeEvent | ModelCallEvent | JobEvent | SurvivalEvent

# Never stored with a call's parameters: the texts themselves, and credentials a
# client's extra_body might carry.
_NOT_PARAMS = frozenset(
    {"prompt", "messages", "api_key", "apikey", "authorization", "headers", "extra_headers"}
)

# -- writing a batch ----------------------------------------------------------------


def write_events(*, connection: Connection, events: Iterable[tuple[Event, bool]]) -> None:
    """Write (event, store_prompts) pairs in `connection`'s transaction, one
    executemany per statement (see the module's docstring for the order)."""
    for statement, rows in planned(statements(connection.dialect.name), events):
        connection.execute(statement, rows)


def planned(
    built: Statements, events: Iterable[tuple[Event, bool]]
) -> list[tuple[Executable, list[dict[str, Any]]]]:
    """The statements to run for `events`, in order, each with its rows."""
    completions: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    jobs: list[tuple[Executable, list[dict[str, Any]]]] = []
    outcomes: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    for event, store_prompts in events:
        if isinstance(event, OutcomeEvent):
            outcomes.append(outcome_row(event))
        elif isinstance(event, CompletionEvent):
            completions.append(completion_row(event, event.at, store_prompts))
        elif isinstance(event, ModelCallEvent):
            calls.append(model_call_row(event, event.at, store_prompts))
        elif isinstance(event, JobEvent):
            statement = built.job_queued if event.state is JobState.QUEUED else built.job_end
            row = job_row(event, event.at)
            if jobs and jobs[-1][0] is statement:  # a run of one statement: one executemany
                jobs[-1][1].append(row)
            else:
                jobs.append((statement, [row]))
        else:
            checks.append(survival_row(event, event.at))
    steps: list[tuple[Executable, list[dict[str, Any]]]] = []
    if completions:
        steps.append((built.completion, completions))
    if calls:
        steps.append((built.model_call, calls))
    steps.extend(jobs)
    if outcomes:
        steps.append((built.outcome, outcomes))
    if checks:
        steps.append((built.survival, checks))
    return steps


# -- rows -----------------------------------------------------------------------------


def completion_row(event: CompletionEvent, at: datetime, store_prompts: bool) -> dict[str, Any]:
    return {
        "id": event.id,
        "parent_id": event.parent_id,
        "created_at": at,
        "created_day": utc_day(at),
        "uri": event.uri,
        "language": event.language,
        "model": event.model,
        "template": event.template,
        "mode": event.mode,
        "source": event.source,
        "text_length": len(event.text),
        "prompt_chars": event.prompt_chars,
        "first_token_ms": event.first_token_ms,
        "total_ms": event.total_ms,
        "outcome": Outcome.GENERATED.value,
        "text": stored_text(event.text, store_prompts),
        "prompt": stored_text(event.prompt, store_prompts),
    }


def outcome_row(event: OutcomeEvent) -> dict[str, Any]:
    shown = event.outcome is Outcome.SHOWN
    return {
        "completion_id": event.completion_id,
        **MAY_REPLACE_PARAMS[event.outcome],
        "new_outcome": event.outcome.value,
        "new_shown_at": event.at if shown else None,
        "new_decided_at": None if shown else event.at,
        "new_accepted_length": event.accepted_length,
    }


def model_call_row(event: ModelCallEvent, at: datetime, store_prompts: bool) -> dict[str, Any]:
    return {
        "id": event.id,
        "created_at": at,
        "kind": event.kind.value,
        "model": event.model,
        "endpoint": safe_endpoint(event.endpoint),
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
        "error": safe_error(event.error),
        "failed": event.error not in (None, CANCELLED),
        "cancelled": event.error == CANCELLED,
        "replay": event.replay_of is not None,
        "replay_of": event.replay_of,
    }


def job_row(event: JobEvent, at: datetime) -> dict[str, Any]:
    """QUEUED creates the row; an end creates it too if it comes first (its start
    estimated from the duration), and a later QUEUED then leaves it alone."""
    row: dict[str, Any] = {
        "id": event.id,
        "kind": event.kind,
        "function": event.function,
        "runner": event.runner,
        "uri": event.uri,
        "language": event.language,
        "status": event.state.value,
    }
    if event.state is JobState.QUEUED:
        row["created_at"] = at
        return row
    row["created_at"] = at - timedelta(milliseconds=event.duration_ms or 0.0)
    row["finished_at"] = at
    row["duration_ms"] = event.duration_ms
    row["error"] = safe_error(event.error)
    return row


def survival_row(event: SurvivalEvent, at: datetime) -> dict[str, Any]:
    return {
        "check_of": event.completion_id,
        "check_after_s": event.after_s,
        "check_at": at,
        "check_accepted_chars": event.accepted_chars,
        "check_kept_chars": event.kept_chars,
        "check_closed": event.document_closed,
    }


# -- one event in a caller's Session ----------------------------------------------------


def record_completion(
    *,
    session: Session,
    event: CompletionEvent,
    at: datetime | None = None,
    store_prompts: bool = False,
) -> None:
    """`event`, created at `at` (default: when the event was made)."""
    _one(session, event.at if at is None else at, event, store_prompts)


def record_outcome(
    *,
    session: Session,
    completion_id: str,
    outcome: Outcome,
    accepted_length: int | None,
    at: datetime,
) -> None:
    _one(session, at, OutcomeEvent(completion_id, outcome, accepted_length, at=at), False)


def record_model_call(
    *,
    session: Session,
    event: ModelCallEvent,
    at: datetime | None = None,
    store_prompts: bool,
) -> None:
    """One model call, live or replayed (`event.replay_of`); a known id is left as it is."""
    _one(session, event.at if at is None else at, event, store_prompts)


def record_job(*, session: Session, event: JobEvent, at: datetime | None = None) -> None:
    """Upsert a job's row: QUEUED creates it, an end state sets status and times.

    Order-proof: an end that arrives first creates the row (its start estimated from
    the duration) and a later QUEUED leaves it alone. An end never overwrites the
    same end state: a job result reused by an identical request (or recorded by a
    second server sharing it) keeps the first run's times.
    """
    _one(session, event.at if at is None else at, event, False)


def record_survival(*, session: Session, event: SurvivalEvent, at: datetime | None = None) -> None:
    """Upsert one checkpoint of an accepted suggestion (by completion and `after_s`);
    nothing for a completion this database does not hold."""
    _one(session, event.at if at is None else at, event, False)


def _one(session: Session, at: datetime, event: Event, store_prompts: bool) -> None:
    session.flush()  # rows the caller added through the ORM come first
    stamped = event if event.at == at else replace(event, at=at)
    built = statements(session.get_bind().dialect.name)
    for statement, rows in planned(built, [(stamped, store_prompts)]):
        session.connection().execute(statement, rows)


# -- what may be stored -----------------------------------------------------------------


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
    kept = {k: v for k, v in params.items() if k.lower() not in _NOT_PARAMS}
    return _redacted(json.dumps(kept, sort_keys=True, ensure_ascii=False, default=str))


@functools.lru_cache(maxsize=256)  # calls of one kind and model share their parameters
def _redacted(text: str) -> str:
    from server.redact import redact

    return redact(text)


@functools.lru_cache(maxsize=64)  # a server calls a handful of endpoints
def safe_endpoint(url: str) -> str:
    """`url` without user, password, query string or fragment (``http://user:key@host/v1?
    api_key=...`` is stored as ``http://host/v1``), and redacted."""
    from urllib.parse import urlsplit, urlunsplit

    from server.redact import redact

    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL (an unbalanced "[", say): what redaction leaves
        return redact(url)
    host = parts.netloc.rpartition("@")[2]
    return redact(urlunsplit((parts.scheme, host, parts.path, "", "")))


# A URL in an error text, up to the next space or quote (punctuation after it is
# the sentence's: "cannot reach http://host/v1: refused").
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")
_AFTER_URL = ".,:;!?)]}"


def safe_error(text: str | None) -> str | None:
    """An error text as the history keeps it: its URLs as :func:`safe_endpoint`
    stores them, the rest redacted (errors quote the base URL they failed on)."""
    if text is None:
        return None
    from server.redact import redact

    return redact(_URL.sub(_safe_url, text))


def _safe_url(match: re.Match[str]) -> str:
    url = match.group().rstrip(_AFTER_URL)
    return safe_endpoint(url) + match.group()[len(url) :]


def get_completion(*, session: Session, completion_id: str) -> CompletionRecord | None:
    return session.scalars(
        select(CompletionRecord).where(CompletionRecord.id == completion_id)
    ).first()


def now() -> datetime:
    return recorder.now()
