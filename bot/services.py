"""The composition root: settings, database, knowledge and the core, built once."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import App
from bot.settings import Settings
from bot.storage.db import (
    SessionFactory,
    alembic_config,
    create_engine,
    current_revision,
    make_session_factory,
)
from handlers import ROUTES, weblogin
from handlers.tasks import sync_task_definitions
from knowledge import Knowledge, load_knowledge
from scheduler.policy import PushPolicy
from scheduler.schedule import LiveSchedule

__all__ = [
    "SchemaError",
    "Services",
    "build_services",
    "head_revision",
    "sync_task_definitions",
]


class SchemaError(Exception):
    """The database schema is not at the code's migration head."""


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


@dataclass
class Services:
    settings: Settings
    knowledge: Knowledge
    engine: AsyncEngine
    sessions: SessionFactory
    app: App
    schedule: LiveSchedule

    @property
    def policy(self) -> PushPolicy:
        """The push policy in force (the reminder schedule may change while running)."""
        return self.schedule.policy

    async def close(self) -> None:
        await self.app.flush_confirmations()
        await self.engine.dispose()


async def build_services(
    settings: Settings, *, knowledge: Knowledge | None = None, check_schema: bool = True
) -> Services:
    """Load the knowledge base (refusing an invalid one) and open the database."""
    knowledge = knowledge or load_knowledge(settings.knowledge_dir)
    engine = create_engine(settings.database_url)
    try:
        if check_schema:
            current = await current_revision(engine)
            head = head_revision()
            if current != head:
                found = (
                    f"lược đồ cơ sở dữ liệu đang ở phiên bản {current}"
                    if current
                    else "cơ sở dữ liệu chưa có bảng nào"
                )
                raise SchemaError(
                    f"{found}, mã này cần lược đồ phiên bản {head}: chạy `troly db upgrade` "
                    "(make run tự chạy lệnh này)"
                )
    except BaseException:
        await engine.dispose()
        raise
    sessions = make_session_factory(engine)
    schedule = LiveSchedule(settings)
    try:

        async def sync_definitions() -> None:
            async with sessions() as session:
                await sync_task_definitions(session, knowledge, settings.tasks_dir)
                await session.commit()

        try:
            await sync_definitions()
        except IntegrityError:
            # Another process starting at the same moment wrote the same definitions
            # first (two workers of a fresh database): compare again with what it wrote.
            await sync_definitions()
        async with sessions() as session:
            await schedule.refresh(session)
    except BaseException:
        await engine.dispose()
        raise
    app = App(
        knowledge=knowledge,
        sessions=sessions,
        zone=settings.zone,
        flood_limit=settings.flood_limit_per_minute,
        conversation_timeout_minutes=settings.conversation_timeout_minutes,
        bot_username=settings.telegram_bot_username,
        push_window=schedule.next_allowed,
        routes=weblogin.configure(ROUTES, settings.console_base_url),
        channels=[
            name
            for name, token in (
                ("telegram", settings.telegram_bot_token),
                ("zalo", settings.zalo_bot_token),
            )
            if token is not None
        ],
    )
    return Services(settings, knowledge, engine, sessions, app, schedule)
