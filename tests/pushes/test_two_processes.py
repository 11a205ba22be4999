"""Two assistant processes on one PostgreSQL database: only the leader runs the scheduler,
each reminder round fires once, and when the leader is killed the other process takes over
without firing the rounds already sent again."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.storage.db import create_engine, make_session_factory
from bot.storage.models import OutboxMessage, Person, PersonChannel, ReminderRun, Task, Unit
from handlers.units import UnitRow, apply_rows
from tests.conftest import _truncate_all
from tests.fakes.botapi_server import FakeBotAPI

ROOT = Path(__file__).resolve().parents[2]
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
COMMUNES = 3


class Child:
    """A ``tests.pushes.leader_child`` process and the lines it printed."""

    def __init__(self, name: str, process: asyncio.subprocess.Process) -> None:
        self.name = name
        self.process = process
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(raw.decode().rstrip())

    @property
    def leading(self) -> bool:
        return "LEADER" in self.lines

    def fired(self) -> list[str]:
        """The reminder rounds this process fired (``scheduler.reminders`` log lines)."""
        pattern = re.compile(r"^scheduler\.reminders: reminder (\S+): ")
        return [m.group(1) for line in self.lines if (m := pattern.match(line))]

    async def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        await self._reader

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        await self._reader


async def spawn(name: str, db_url: str, api_url: str, env: dict[str, str]) -> Child:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.pushes.leader_child",
        db_url,
        api_url,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    return Child(name, process)


async def until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def task(code: str, due: date) -> Task:
    return Task(
        code=code,
        title=f"Nhiệm vụ {code}",
        levels=["xa"],
        due=due,
        due_text=f"trước ngày {due:%d/%m/%Y}",
        citation="Kết luận phiên họp, mục 1",
        origin="test",
    )


@pytest.fixture
async def pg(postgres_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(postgres_database)
    await _truncate_all(engine)
    yield engine
    await _truncate_all(engine)
    await engine.dispose()


async def test_two_processes_fire_each_reminder_once(
    pg: AsyncEngine, postgres_database: str
) -> None:
    # A round due two minutes ago (within the grace window: caught up when the leader starts)
    # for a deadline tomorrow: the reminder time is set from the real clock, which APScheduler
    # judges misfires by.
    fire_at = datetime.now(UTC).astimezone(ZONE) - timedelta(minutes=2)
    env = {
        "REMINDER_OFFSETS_DAYS": "1",
        "REMINDER_TIME": f"{fire_at:%H:%M}",
        "QUIET_HOURS": "",
        "NON_WORKING_DAYS": "",
        "WEEKLY_DIGEST": "",
        "TIMEZONE": "Asia/Ho_Chi_Minh",
    }
    due = fire_at.date() + timedelta(days=1)
    sessions = make_session_factory(pg)
    now = datetime.now(UTC)
    chats = [str(7_000 + i) for i in range(COMMUNES)]
    async with sessions() as session:
        rows = [UnitRow(2, "T1", "Tỉnh Một", "truc_thuoc_tw", "")]
        rows += [UnitRow(3 + i, f"T1.X{i}", f"Xã {i}", "xa", "T1") for i in range(COMMUNES)]
        await apply_rows(session, rows, now)
        communes = (await session.exec(select(Unit.id).where(Unit.level == "xa"))).all()
        for unit_id, chat in zip(sorted(u for u in communes if u), chats, strict=True):
            person = Person(name=f"Cán bộ {chat}", unit_id=unit_id, role="official")
            session.add(person)
            await session.flush()
            await session.exec(
                insert(PersonChannel).values(
                    person_id=person.id, channel="telegram", user_id=chat, chat_id=chat,
                    linked_at=now,
                )
            )  # fmt: skip
        session.add(task("nhiem-vu-a", due))
        await session.commit()

    async with FakeBotAPI() as api:
        children = [await spawn(n, postgres_database, api.url, env) for n in ("one", "two")]
        try:
            await until(lambda: any(c.leading for c in children), 60, "a leader")
            leader = next(c for c in children if c.leading)
            standby = next(c for c in children if c is not leader)
            await until(lambda: len(api.delivered()) >= COMMUNES, 30, "the first round")
            await asyncio.sleep(1.5)  # time for a second scheduler to misbehave
            assert not standby.leading
            assert leader.fired() == ["nhiem-vu-a/before/1"] and standby.fired() == []

            # A second task appears, then the leader dies: the standby takes over, fires the
            # new round and not the one already sent.
            async with sessions() as session:
                session.add(task("nhiem-vu-b", due))
                await session.commit()
            await leader.kill()
            await until(lambda: standby.leading, 30, "the takeover")
            await until(lambda: len(api.delivered()) >= 2 * COMMUNES, 30, "the second round")
            await asyncio.sleep(1.5)
            assert standby.fired() == ["nhiem-vu-b/before/1"]
        finally:
            for child in children:
                await child.stop()

        texts = Counter((r.chat_id, r.text.splitlines()[0]) for r in api.delivered())
        assert texts == Counter(
            {(chat, f"NHẮC VIỆC: Nhiệm vụ nhiem-vu-{code}"): 1 for chat in chats for code in "ab"}
        ), "\n".join(line for c in children for line in c.lines)
    async with sessions() as session:
        runs = (await session.exec(select(ReminderRun.key).order_by(col(ReminderRun.key)))).all()
        statuses = Counter((await session.exec(select(OutboxMessage.status))).all())
    assert runs == ["reminder:nhiem-vu-a:before:1", "reminder:nhiem-vu-b:before:1"]
    assert statuses == {"sent": 2 * COMMUNES}
