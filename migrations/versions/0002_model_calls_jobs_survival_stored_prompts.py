"""model calls, jobs, survival, stored prompts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Indexes for `zi-coder stats` (server/history/stats_*.py): each GROUP BY reads
# one in its own order and finds its sums in it (bench/history_stats.py measures).
# The day-led ones hold no time: --since compares it on its first day only.
COMPLETIONS_STATS = [
    "created_day",
    "language",
    "model",
    "source",
    "outcome",
    "text_length",
    "accepted_length",
    "first_token_ms",
]
SURVIVAL_STATS = [
    "after_s",
    "created_day",
    "language",
    "model",
    "document_closed",
    "accepted_chars",
    "kept_chars",
]
MODEL_CALLS_STATS = [
    "replay",
    "kind",
    "model",
    "created_at",
    "failed",
    "cancelled",
    "prompt_tokens",
    "completion_tokens",
    "total_ms",
]


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("function", sa.String(length=255), nullable=False),
        sa.Column("runner", sa.String(length=16), nullable=False),
        sa.Column("uri", sa.Text(), nullable=True),
        sa.Column("language", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_jobs")),
    )
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_jobs_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_jobs_status"), ["status"], unique=False)

    op.create_table(
        "model_calls",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=64), nullable=True),
        sa.Column("template", sa.String(length=32), nullable=True),
        sa.Column("completion_id", sa.String(length=32), nullable=True),
        sa.Column("job_id", sa.String(length=64), nullable=True),
        sa.Column("params", sa.Text(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=True),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("prompt_chars", sa.Integer(), nullable=False),
        sa.Column("response_chars", sa.Integer(), nullable=False),
        sa.Column("finish_reason", sa.String(length=32), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("first_token_ms", sa.Float(), nullable=True),
        sa.Column("total_ms", sa.Float(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("failed", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("cancelled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("replay", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("replay_of", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_calls")),
    )
    with op.batch_alter_table("model_calls", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_model_calls_completion_id"), ["completion_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_model_calls_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_model_calls_job_id"), ["job_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_model_calls_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_model_calls_replay_of"), ["replay_of"], unique=False)
        batch_op.create_index("ix_model_calls_stats", MODEL_CALLS_STATS, unique=False)

    op.create_table(
        "completion_survival",
        sa.Column("completion_id", sa.String(length=32), nullable=False),
        sa.Column("after_s", sa.Integer(), nullable=False),
        sa.Column("completion_created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_day", sa.String(length=10), nullable=False),
        sa.Column("language", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("accepted_chars", sa.Integer(), nullable=False),
        sa.Column("kept_chars", sa.Integer(), nullable=False),
        sa.Column("document_closed", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(
            ["completion_id"],
            ["completions.id"],
            name=op.f("fk_completion_survival_completion_id_completions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("completion_id", "after_s", name=op.f("pk_completion_survival")),
    )
    with op.batch_alter_table("completion_survival", schema=None) as batch_op:
        batch_op.create_index("ix_completion_survival_stats", SURVIVAL_STATS, unique=False)

    with op.batch_alter_table("completions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("text", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("prompt", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("created_day", sa.String(length=10), nullable=True))
    # The completions recorded at 0001: their UTC day (SQLite holds UTC text).
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute("UPDATE completions SET created_day = substr(created_at, 1, 10)")
    else:
        op.execute(
            "UPDATE completions SET created_day ="
            " to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
        )
    # A server of 0001 may still be writing (another editor window, a team mid-upgrade):
    # its rows get today's UTC date from the database (models.utc_today).
    today = "CURRENT_DATE" if sqlite else "to_char(timezone('UTC', now()), 'YYYY-MM-DD')"
    with op.batch_alter_table("completions", schema=None) as batch_op:
        batch_op.alter_column(
            "created_day",
            existing_type=sa.String(length=10),
            nullable=False,
            server_default=sa.text(today),
        )
        # Nothing reads completions by outcome alone (stats: ix_completions_stats).
        batch_op.drop_index("ix_completions_outcome")
        batch_op.create_index("ix_completions_stats", COMPLETIONS_STATS, unique=False)
        batch_op.create_index(
            "ix_completions_source_total_ms", ["source", "total_ms", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_completions_source_first_token_ms",
            ["source", "first_token_ms", "created_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("completions", schema=None) as batch_op:
        batch_op.drop_index("ix_completions_source_first_token_ms")
        batch_op.drop_index("ix_completions_source_total_ms")
        batch_op.drop_index("ix_completions_stats")
    with op.batch_alter_table("completions", schema=None) as batch_op:
        batch_op.create_index("ix_completions_outcome", ["outcome"], unique=False)
        batch_op.drop_column("created_day")
        batch_op.drop_column("prompt")
        batch_op.drop_column("text")

    with op.batch_alter_table("completion_survival", schema=None) as batch_op:
        batch_op.drop_index("ix_completion_survival_stats")
    op.drop_table("completion_survival")
    with op.batch_alter_table("model_calls", schema=None) as batch_op:
        batch_op.drop_index("ix_model_calls_stats")
        batch_op.drop_index(batch_op.f("ix_model_calls_replay_of"))
        batch_op.drop_index(batch_op.f("ix_model_calls_kind"))
        batch_op.drop_index(batch_op.f("ix_model_calls_job_id"))
        batch_op.drop_index(batch_op.f("ix_model_calls_created_at"))
        batch_op.drop_index(batch_op.f("ix_model_calls_completion_id"))

    op.drop_table("model_calls")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_jobs_status"))
        batch_op.drop_index(batch_op.f("ix_jobs_kind"))
        batch_op.drop_index(batch_op.f("ix_jobs_created_at"))

    op.drop_table("jobs")
