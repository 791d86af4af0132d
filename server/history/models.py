"""History schema (SQLAlchemy 2). Alembic migrations in ``migrations/`` build it.

- ``completions``: one suggestion the server produced and what the user did with it.
- ``model_calls``: every call to a model, of every kind (completion, code action,
  review), live or replayed; the prompt and response only when
  ``history.store_prompts`` is on (redacted first).
- ``jobs``: code-action and review jobs and their status.
- ``completion_survival``: for accepted suggestions, how much of the accepted text
  is still in the document 30 s, 2 min and 10 min later.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    false,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.functions import FunctionElement

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utc_day(at: datetime) -> str:
    """`at`'s UTC date, ``YYYY-MM-DD`` (naive: already UTC, as SQLite returns it)."""
    return (at if at.tzinfo is None else at.astimezone(UTC)).strftime("%Y-%m-%d")


def _created_day(context: Any) -> str:
    """The default of ``completions.created_day``: the row's own ``created_at``'s."""
    return utc_day(context.get_current_parameters()["created_at"])


# The error of a model call cancelled by its caller (server.completion.recorder.call_error):
# while the user types, shared calls are cancelled all the time; that is no failure.
CANCELLED = "cancelled"


def _failed(context: Any) -> bool:
    """The default of ``model_calls.failed``: whether the row has an error, other
    than a cancellation."""
    return context.get_current_parameters().get("error") not in (None, CANCELLED)


def _cancelled(context: Any) -> bool:
    """The default of ``model_calls.cancelled``: whether the call was cancelled."""
    return bool(context.get_current_parameters().get("error") == CANCELLED)


class utc_today(FunctionElement[str]):  # lower case, as SQLAlchemy names its functions
    """Today's UTC date as ``YYYY-MM-DD`` text, computed by the database: the server
    default of ``completions.created_day``, for rows that do not give it (a server of
    migration 0001 still writing to a history upgraded under it)."""

    type = String()
    inherit_cache = True


@compiles(utc_today)
def _utc_today_sqlite(element: utc_today, compiler: Any, **kw: Any) -> str:
    return "CURRENT_DATE"  # SQLite's is UTC, YYYY-MM-DD


@compiles(utc_today, "postgresql")
def _utc_today_postgresql(element: utc_today, compiler: Any, **kw: Any) -> str:
    # CURRENT_DATE would be the session's time zone's date, in its DateStyle.
    return "to_char(timezone('UTC', now()), 'YYYY-MM-DD')"


class CompletionRecord(Base):
    """One suggestion the server produced, and what the user did with it."""

    __tablename__ = "completions"
    __table_args__ = (
        # `zi-coder stats`: the GROUP BY (day, language, model, source, outcome) reads
        # this index in its own order (no sort of every row) and finds its sums in it.
        # No created_at: --since compares it on its first day only (from the table).
        Index(
            "ix_completions_stats",
            "created_day",
            "language",
            "model",
            "source",
            "outcome",
            "text_length",
            "accepted_length",
            "first_token_ms",
        ),
        # Each latency percentile walks k entries of one of these instead of sorting.
        Index("ix_completions_source_total_ms", "source", "total_ms", "created_at"),
        Index("ix_completions_source_first_token_ms", "source", "first_token_ms", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    parent_id: Mapped[str | None] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    # created_at's UTC date, YYYY-MM-DD: what the statistics group by, the same text
    # on every database (filled from created_at when not given; by the database,
    # today's, for a writer that does not know the column).
    created_day: Mapped[str] = mapped_column(
        String(10), default=_created_day, server_default=utc_today()
    )
    uri: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(255))
    template: Mapped[str] = mapped_column(String(32))
    mode: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    text_length: Mapped[int] = mapped_column(Integer)
    prompt_chars: Mapped[int] = mapped_column(Integer)
    first_token_ms: Mapped[float | None] = mapped_column(Float)
    total_ms: Mapped[float] = mapped_column(Float)
    outcome: Mapped[str] = mapped_column(String(24))
    accepted_length: Mapped[int | None] = mapped_column(Integer)
    shown_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # The suggestion's text and the prompt, only with history.store_prompts (redacted).
    text: Mapped[str | None] = mapped_column(Text)
    prompt: Mapped[str | None] = mapped_column(Text)


class ModelCallRecord(Base):
    """One request to a model: what was asked, what came back, how fast, at what cost."""

    __tablename__ = "model_calls"
    __table_args__ = (
        # `zi-coder stats`: calls grouped in this index's order, their sums read from it.
        Index(
            "ix_model_calls_stats",
            "replay",
            "kind",
            "model",
            "created_at",
            "failed",
            "cancelled",
            "prompt_tokens",
            "completion_tokens",
            "total_ms",
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    kind: Mapped[str] = mapped_column(String(24), index=True)  # completion, code_action, review
    model: Mapped[str] = mapped_column(String(255))
    endpoint: Mapped[str] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(64))
    template: Mapped[str | None] = mapped_column(String(32))
    # The completion this call produced (kind completion), or the job that made it.
    completion_id: Mapped[str | None] = mapped_column(String(32), index=True)
    job_id: Mapped[str | None] = mapped_column(String(64), index=True)
    params: Mapped[str] = mapped_column(Text)  # the request's parameters as JSON, prompt excluded
    prompt: Mapped[str | None] = mapped_column(Text)  # only with history.store_prompts
    response: Mapped[str | None] = mapped_column(Text)  # only with history.store_prompts
    prompt_chars: Mapped[int] = mapped_column(Integer)
    response_chars: Mapped[int] = mapped_column(Integer)
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    first_token_ms: Mapped[float | None] = mapped_column(Float)
    total_ms: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    # What the statistics count (the error's text is no index key): an error other
    # than a cancellation (failed), a cancellation (cancelled, with error "cancelled").
    failed: Mapped[bool] = mapped_column(Boolean, default=_failed, server_default=false())
    cancelled: Mapped[bool] = mapped_column(Boolean, default=_cancelled, server_default=false())
    # Replays (zi-coder replay) are recorded too, and never counted as live traffic
    # (queries on it alone use ix_model_calls_stats, which it leads).
    replay: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    replay_of: Mapped[str | None] = mapped_column(String(32), index=True)


class JobRecord(Base):
    """A code-action or review job, from submission to its end."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(24), index=True)  # code_action, review
    function: Mapped[str] = mapped_column(String(255))
    runner: Mapped[str] = mapped_column(String(16))  # rq, in-process
    uri: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    duration_ms: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)


class SurvivalRecord(Base):
    """How much of an accepted suggestion is still in the document `after_s` later."""

    __tablename__ = "completion_survival"
    __table_args__ = (
        # `zi-coder stats`: the checks at one checkpoint, grouped in this index's order
        # and read from it alone (no join to completions; --since as for completions).
        Index(
            "ix_completion_survival_stats",
            "after_s",
            "created_day",
            "language",
            "model",
            "document_closed",
            "accepted_chars",
            "kept_chars",
        ),
    )

    completion_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("completions.id", ondelete="CASCADE"), primary_key=True
    )
    after_s: Mapped[int] = mapped_column(Integer, primary_key=True)  # 30, 120, 600
    # The completion's, copied when the check is recorded: the statistics group the
    # checks by them without a join.
    completion_created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_day: Mapped[str] = mapped_column(String(10))  # completions.created_day
    language: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(255))
    checked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_chars: Mapped[int] = mapped_column(Integer)
    kept_chars: Mapped[int] = mapped_column(Integer)
    # Document closed or gone before the checkpoint: nothing could be judged.
    document_closed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
