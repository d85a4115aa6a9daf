"""Alembic environment: runs the app's migrations against DATABASE_URL under the migration lock.

`app.db.migrate` hands in its own connection (config.attributes["connection"]); the alembic CLI
gets a short-lived synchronous engine built from the app's settings.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine
from sqlalchemy.pool import NullPool

from app.db import lock_for_migrations
from app.models import Base
from app.settings import get_settings

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        lock_for_migrations(connection)
        context.run_migrations()


def run_offline() -> None:
    context.configure(
        url=get_settings().sqlalchemy_database_url.render_as_string(hide_password=False),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    shared = context.config.attributes.get("connection")
    if shared is not None:
        _run(shared)
        return
    engine = create_engine(get_settings().sqlalchemy_database_url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
