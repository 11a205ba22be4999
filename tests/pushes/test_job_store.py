"""The scheduler's job store and the chats share one database: a chat holding the write lock
(SQLite has one writer at a time) makes the job store wait, never fail, and the waiting never
stalls the event loop that serves the chats (which would keep the lock from being released)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.storage.db import SessionFactory, create_engine, make_session_factory
from bot.storage.models import MessageLog
from knowledge import Knowledge
from scheduler.jobs import build_scheduler, job_store, refresh_plan
from scheduler.policy import PushPolicy
from tests.progress.conftest import build_tree

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
POLICY = PushPolicy(zone=ZONE)
HOLD = 1.5  # seconds a chat keeps its write transaction open


@pytest.fixture
async def tree_db(db_url: str, knowledge: Knowledge) -> AsyncIterator[AsyncEngine]:
    """Units and tasks on both databases."""
    engine = create_engine(db_url)
    await build_tree(engine, knowledge)
    yield engine
    await engine.dispose()


def url_of(engine: AsyncEngine) -> str:
    return engine.url.render_as_string(hide_password=False)


def test_the_job_store_engine_has_the_applications_settings(db_url: str) -> None:
    engine = job_store(db_url).engine
    try:
        with engine.connect() as connection:
            if engine.dialect.name == "sqlite":
                pragmas = {
                    name: connection.execute(text(f"PRAGMA {name}")).scalar()
                    for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
                }
                assert pragmas == {
                    "journal_mode": "wal",
                    "synchronous": 1,  # NORMAL
                    "foreign_keys": 1,
                    "busy_timeout": 30000,  # not sqlite3's default 5 s
                }
            else:
                assert engine.dialect.driver == "psycopg"
                assert engine.pool._pre_ping  # a connection cut while idle is replaced
                assert connection.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


async def chat_writing(
    sessions: SessionFactory, locked: asyncio.Event, events: list[str], text: str
) -> None:
    """What dispatch does: the incoming message is written (the transaction now holds the
    write lock), the handler awaits for a while, then everything is committed once."""
    async with sessions() as session:
        session.add(
            MessageLog(channel="telegram", user_id="u1", chat_id="u1", kind="text", text=text)
        )
        await session.flush()
        events.append("locked")
        locked.set()
        await asyncio.sleep(HOLD)
        await session.commit()
        events.append("committed")


async def logged(sessions: SessionFactory) -> list[str | None]:
    async with sessions() as session:
        return list((await session.exec(select(MessageLog.text))).all())


async def test_planning_waits_for_a_chat_that_holds_the_write_lock(
    tree_db: AsyncEngine,
) -> None:
    sessions = make_session_factory(tree_db)
    scheduler = build_scheduler(url_of(tree_db), POLICY)
    scheduler.start(paused=True)
    try:
        events: list[str] = []
        locked = asyncio.Event()
        chat = asyncio.create_task(chat_writing(sessions, locked, events, "câu hỏi"))
        await locked.wait()
        events.append("planning")
        now = datetime(2025, 8, 20, 3, tzinfo=UTC)
        report = await refresh_plan(scheduler, sessions, POLICY, now)  # no OperationalError
        events.append("planned")
        await chat
        ids = {job.id for job in await asyncio.to_thread(scheduler.get_jobs)}
    finally:
        await asyncio.to_thread(scheduler.shutdown, False)
    assert report.planned > 0
    assert {"reminder:dai-hoi-thang-8:before:3", "broadcasts:monitor", "reminders:plan"} <= ids
    assert await logged(sessions) == ["câu hỏi"]  # the chat was not held up either
    if tree_db.dialect.name == "sqlite":
        # The job store waited for the chat's commit, and the chat could commit meanwhile.
        assert events == ["locked", "planning", "committed", "planned"]
    else:
        assert set(events) == {"locked", "planning", "committed", "planned"}


timeline: list[str] = []


async def record_fire(name: str) -> None:
    """A job stored by reference (``tests.pushes.test_job_store:record_fire``)."""
    timeline.append(name)


async def test_a_job_falling_due_while_a_chat_holds_the_lock_runs_and_is_settled(
    tree_db: AsyncEngine,
) -> None:
    """The scheduler's own bookkeeping after a job ran (here: removing a date job; for the
    broadcast monitor: storing its next run time) waits for the lock too, off the loop: the job
    runs while the chat holds the lock, and is settled in the store once the chat commits."""
    sessions = make_session_factory(tree_db)
    timeline.clear()
    scheduler = build_scheduler(url_of(tree_db), POLICY)
    scheduler.start()
    try:
        await asyncio.to_thread(
            scheduler.add_job,
            "tests.pushes.test_job_store:record_fire",
            trigger="date",
            run_date=datetime.now(UTC) + timedelta(seconds=0.5),  # falls due during the hold
            args=["fired"],
            id="test:once",
        )
        await chat_writing(sessions, asyncio.Event(), timeline, "báo cáo")
        for _ in range(200):
            if await asyncio.to_thread(scheduler.get_job, "test:once") is None:
                break
            await asyncio.sleep(0.05)
        left = await asyncio.to_thread(scheduler.get_job, "test:once")
    finally:
        await asyncio.to_thread(scheduler.shutdown, False)
    assert timeline == ["locked", "fired", "committed"]
    assert left is None  # the date job, having run, was removed from the store
    assert await logged(sessions) == ["báo cáo"]
