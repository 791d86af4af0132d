"""Alembic environment: the history metadata and the server's own settings.

The server runs migrations in-process and hands over its connection through
``config.attributes["connection"]``; the ``alembic`` CLI builds an engine from
``ZI_DATABASE_URL`` (the same Settings object the server reads).
"""

from __future__ import annotations

from alembic import context

from server.history.models import Base

target_metadata = Base.metadata


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=True,  # SQLite can only alter tables by copying them
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from server.history.database import create_engine_for, lock_for_migrations
    from server.settings import Settings

    engine = create_engine_for(Settings().resolved_database_url())
    with engine.begin() as conn:
        # The same lock the server takes: `alembic upgrade` run by hand while editors
        # start servers must not race them into creating the tables twice.
        lock_for_migrations(conn)
        _run(conn)
    engine.dispose()


def run_migrations_offline() -> None:
    from server.settings import Settings

    context.configure(
        url=Settings().resolved_database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
