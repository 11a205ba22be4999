"""Alembic environment. Used programmatically (``troly db upgrade``) with a connection
handed in through ``config.attributes``, or from the ``alembic`` command line."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import bot.storage.models  # noqa: F401 - registers the tables

target_metadata = SQLModel.metadata
# Serialises concurrent upgrades of one PostgreSQL database (two processes starting at once).
MIGRATION_LOCK_KEY = 0x7472_6F6C_795F_6462  # "troly_db"


def run_migrations(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_from_command_line() -> None:
    from bot.settings import load_settings
    from bot.storage.db import create_engine

    url = context.config.get_main_option("sqlalchemy.url") or load_settings().database_url
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(run_migrations)
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    asyncio.run(run_from_command_line())
