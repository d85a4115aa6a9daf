"""Alembic environment: runs the app's migrations against DATABASE_URL under the migration lock.

`app.db.migrate` hands in its own connection (config.attributes["connection"]); the alembic CLI
gets a one-connection engine built from the database settings (DATABASE_URL and the rest).
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from app.db import lock_for_migrations, migration_engine
from app.models import Base
from app.settings import get_database_settings

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata)
    with context.begin_transaction():
        lock_for_migrations(connection)
        context.run_migrations()


def run_offline() -> None:
    context.configure(
        dialect_name="postgresql",
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_on_own_engine() -> None:
    engine = migration_engine(get_database_settings())
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


def run_online() -> None:
    shared = context.config.attributes.get("connection")
    if shared is not None:
        _run(shared)
        return
    asyncio.run(_run_on_own_engine())


if context.is_offline_mode():
    run_offline()
else:
    run_online()
