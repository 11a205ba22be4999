"""Fixtures for the push tests: databases with people, the fake Bot API server, the real
aiogram client on it, and a fast-configured sender."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from sqlalchemy import func
from sqlmodel import select

from bot.core import Transport
from bot.storage.db import SessionFactory, create_engine, make_session_factory
from bot.storage.models import Broadcast, OutboxMessage, Person, PersonChannel, Unit
from scheduler.limits import ChannelLimits, RetryPolicy
from scheduler.outbox import Recipient, enqueue_broadcast
from scheduler.sender import Sender
from scheduler.transports import TelegramTransport
from tests.fakes.botapi_server import FakeBotAPI

FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.02, max_delay=0.2, jitter=0.5)


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[SessionFactory]:
    """Both databases."""
    engine = create_engine(db_url)
    yield make_session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def sqlite_sessions(sqlite_url: str) -> AsyncIterator[SessionFactory]:
    engine = create_engine(sqlite_url)
    yield make_session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI() as server:
        yield server


@pytest.fixture
async def telegram(api: FakeBotAPI) -> AsyncIterator[TelegramTransport]:
    bot = Bot(api.token, session=AiohttpSession(api=TelegramAPIServer.from_base(api.url)))
    yield TelegramTransport(bot, request_timeout=5)
    await bot.session.close()


def make_sender(sessions: SessionFactory, transport: Transport, **limits: Any) -> Sender:
    """A sender with limits raised and delays shrunk so that tests stay fast."""
    options: dict[str, Any] = {"rate": 500.0, "per_chat_interval": 0.0, "max_in_flight": 4}
    options.update(limits)
    extra = {k: options.pop(k) for k in ("batch_size", "retry", "clock") if k in options}
    return Sender(
        sessions,
        [transport],
        limits={"telegram": ChannelLimits(**options)},
        retry=extra.get("retry", FAST_RETRY),
        batch_size=extra.get("batch_size"),
        poll_interval=0.05,
        cancel_check_interval=0.05,
        delivery_timeout=5,
        **({"clock": extra["clock"]} if "clock" in extra else {}),
    )


async def run_until(
    sender: Sender, condition: Callable[[], Awaitable[bool] | bool], timeout: float = 10
) -> None:
    """Run the sender until ``condition`` holds, then stop it gracefully."""
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    try:
        deadline = time.monotonic() + timeout
        while True:
            result = condition()
            if not isinstance(result, bool):
                result = await result
            if result:
                break
            if task.done():
                task.result()
                raise AssertionError("the sender stopped by itself")
            if time.monotonic() > deadline:
                raise AssertionError("condition not reached in time")
            await asyncio.sleep(0.02)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def add_people(sessions: SessionFactory, chats: list[str]) -> dict[str, int]:
    """One person per chat, linked on Telegram (user id = chat id); returns chat -> person."""
    async with sessions() as session:
        unit = Unit(code=f"u{len(chats)}-{chats[0]}", name="Đảng ủy xã", level="xa")
        session.add(unit)
        await session.flush()
        assert unit.id is not None
        people: dict[str, int] = {}
        for chat in chats:
            person = Person(name=f"Đồng chí {chat}", unit_id=unit.id, role="official")
            session.add(person)
            await session.flush()
            assert person.id is not None
            session.add(
                PersonChannel(person_id=person.id, channel="telegram", user_id=chat, chat_id=chat)
            )
            people[chat] = person.id
        await session.commit()
    return people


async def make_broadcast(
    sessions: SessionFactory,
    chats: list[str],
    text: str = "Thông báo: họp chi bộ lúc 8 giờ",
    *,
    now: datetime | None = None,
) -> int:
    async with sessions() as session:
        broadcast = Broadcast(text=text, audience="test", created_by="admin")
        if now is not None:
            broadcast.created_at = now
        session.add(broadcast)
        await session.flush()
        await enqueue_broadcast(
            session, broadcast, [Recipient("telegram", c) for c in chats], now=now
        )
        await session.commit()
        assert broadcast.id is not None
        return broadcast.id


async def rows(sessions: SessionFactory, **where: Any) -> list[OutboxMessage]:
    async with sessions() as session:
        statement = select(OutboxMessage).order_by(OutboxMessage.id)  # type: ignore[arg-type]
        for name, value in where.items():
            statement = statement.where(getattr(OutboxMessage, name) == value)
        return list((await session.exec(statement)).all())


async def count_status(sessions: SessionFactory) -> dict[str, int]:
    async with sessions() as session:
        result = await session.exec(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        )
        return {status: int(n) for status, n in result.all()}
