"""Migrations: they reproduce the models exactly and can go down and up again."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import bot.storage.models  # noqa: F401 - registers the tables
from bot.services import head_revision
from bot.storage.db import alembic_config, create_engine, current_revision, upgrade_database


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, SQLModel.metadata))


def _downgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, "base")


async def test_models_match_migrations_and_round_trip(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as connection:
            assert await connection.run_sync(_diff) == []
        async with engine.begin() as connection:
            await connection.run_sync(_downgrade)
        assert await current_revision(engine) is None
        await upgrade_database(engine)
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_upgrade_redacts_invitation_codes_already_stored(db_url: str) -> None:
    """Codes typed before redaction existed are replaced where they are stored."""
    from datetime import UTC, datetime

    from sqlalchemy import text

    engine = create_engine(db_url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_downgrade)
        await upgrade_database(engine, "0004")
        rows = [
            "/start TLABCDEFGHJK",
            "tl-abcde-fghjk",
            "Mã mời của tôi: TL-ABCDE-FGHJK nhé",
            "TL-AAAAA-AAAAB",
            "Ai ký Kết luận 185?",
        ]
        async with engine.begin() as connection:
            for value in rows:
                await connection.execute(
                    text(
                        "INSERT INTO message_log (channel, user_id, chat_id, kind, text, "
                        "created_at) VALUES ('zalo', 'u', 'u', 'text', :t, :c)"
                    ),
                    {"t": value, "c": datetime.now(UTC)},
                )
        await upgrade_database(engine)
        async with engine.connect() as connection:
            stored = (
                await connection.execute(text("SELECT text FROM message_log ORDER BY id"))
            ).scalars()
            stored = list(stored)
        assert stored == [
            "/start TL-*****-*****",
            "TL-*****-*****",
            "Mã mời của tôi: TL-*****-***** nhé",
            "TL-*****-*****",
            "Ai ký Kết luận 185?",
        ]
    finally:
        await engine.dispose()
