"""Fixtures for the progress features: tasks synced from the knowledge base, a small party
hierarchy, and officials enrolled through the real invitation path."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import App
from bot.core import utcnow
from bot.services import sync_task_definitions
from bot.storage.db import make_session_factory
from handlers.people import create_invite
from handlers.units import UnitRow, apply_rows, unit_by_code
from knowledge import Knowledge
from tests.conftest import Chat

TREE = [
    ("TW", "Ban Chấp hành Trung ương", "trung_uong", ""),
    ("HN", "Đảng bộ thành phố Hà Nội", "truc_thuoc_tw", "TW"),
    ("HN.BD", "Đảng ủy phường Ba Đình", "xa", "HN"),
    ("HN.SS", "Đảng ủy xã Sóc Sơn", "xa", "HN"),
    ("HN.BD.CB1", "Chi bộ khu phố 1", "co_so", "HN.BD"),
    ("HP", "Đảng bộ thành phố Hải Phòng", "truc_thuoc_tw", "TW"),
    ("HP.CH", "Đảng ủy phường Cát Hải", "xa", "HP"),
]

Enrol = Callable[..., Awaitable[Chat]]


async def build_tree(engine: AsyncEngine, knowledge: Knowledge) -> None:
    async with make_session_factory(engine)() as session:
        rows = [UnitRow(i + 2, *values) for i, values in enumerate(TREE)]
        await apply_rows(session, rows, utcnow())
        await sync_task_definitions(session, knowledge, None)
        await session.commit()


@pytest.fixture
async def tree(engine: AsyncEngine, knowledge: Knowledge) -> AsyncEngine:
    await build_tree(engine, knowledge)
    return engine


async def invite_code(
    engine: AsyncEngine,
    unit_code: str,
    role: str,
    *,
    uses: int = 1,
    days: int = 14,
    now: datetime | None = None,
) -> str:
    async with make_session_factory(engine)() as session:
        unit = await unit_by_code(session, unit_code)
        assert unit is not None
        code = await create_invite(
            session,
            unit=unit,
            role=role,
            uses=uses,
            days=days,
            created_by="test",
            now=now or utcnow(),
        )
        await session.commit()
        return code


@pytest.fixture
def enrol(tree: AsyncEngine, app: App) -> Enrol:
    """``await enrol("HN.BD", "official", user_id="u1")`` -> a Chat already enrolled."""

    async def make(
        unit_code: str, role: str, *, user_id: str, channel: str = "console", buttons: bool = False
    ) -> Chat:
        code = await invite_code(tree, unit_code, role)
        chat = Chat(app, channel=channel, user_id=user_id, buttons=buttons)
        text = await chat.say(code)
        assert "đã được ghi nhận là" in text, text
        return chat

    return make
