"""Planning a reminder round for 50,000 units (one enrolled official each) on SQLite."""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, insert
from sqlmodel import select

from bot.core import utcnow
from bot.runner import freeze_startup_heap
from bot.services import sync_task_definitions
from bot.storage.db import create_engine, make_session_factory, upgrade_database
from bot.storage.models import OutboxMessage, Person, PersonChannel, Unit
from handlers.units import UnitRow, apply_rows
from knowledge import load_knowledge
from scheduler.policy import PushPolicy
from scheduler.reminders import fire_reminder

UNITS = 50_000
PROVINCES = 50


async def _run(directory: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{directory / 'bench.db'}")
    try:
        await upgrade_database(engine)
        sessions = make_session_factory(engine)
        rows = [UnitRow(2, "TW", "Trung ương", "trung_uong", "")]
        rows += [
            UnitRow(len(rows) + 2 + p, f"T{p}", f"Tỉnh {p}", "truc_thuoc_tw", "TW")
            for p in range(PROVINCES)
        ]
        per = UNITS // PROVINCES
        rows += [
            UnitRow(len(rows) + 2 + i, f"T{i // per}.X{i}", f"Xã {i}", "xa", f"T{i // per}")
            for i in range(UNITS)
        ]
        now = utcnow()
        async with sessions() as session:
            await apply_rows(session, rows, now)
            await sync_task_definitions(session, load_knowledge(semantic=False), None)
            communes = (await session.exec(select(Unit.id).where(Unit.level == "xa"))).all()
            await session.exec(
                insert(Person),
                params=[
                    {"name": f"Cán bộ {i}", "unit_id": uid, "role": "official", "active": True,
                     "created_at": now}
                    for i, uid in enumerate(communes)
                ],
            )  # fmt: skip
            people = (await session.exec(select(Person.id))).all()
            await session.exec(
                insert(PersonChannel),
                params=[
                    {"person_id": pid, "channel": "telegram" if pid % 3 else "zalo",
                     "user_id": str(10_000 + pid), "chat_id": str(10_000 + pid),
                     "linked_at": now}
                    for pid in people
                ],
            )  # fmt: skip
            await session.commit()
        print(f"{len(communes):,} commune units, one enrolled official each")
        policy = PushPolicy(zone=ZoneInfo("Asia/Ho_Chi_Minh"))
        freeze_startup_heap()  # as `troly run` does once started
        fire_at = datetime(2025, 8, 28, 1, tzinfo=UTC)  # 08:00 local, three days before
        start = time.perf_counter()
        async with sessions() as session:
            reminders, _ = await fire_reminder(
                session,
                task_code="dai-hoi-thang-8",
                kind="before",
                number=3,
                now=fire_at,
                policy=policy,
            )
            await session.commit()
        elapsed = time.perf_counter() - start
        async with sessions() as session:
            rows_in_outbox = (
                await session.exec(select(func.count()).select_from(OutboxMessage))
            ).one()
        print(
            f"planning one reminder round: {reminders:,} reminders queued in {elapsed:.1f} s "
            f"(target <= 10 s); outbox rows: {rows_in_outbox:,}"
        )
        start = time.perf_counter()
        async with sessions() as session:
            again, _ = await fire_reminder(
                session, task_code="dai-hoi-thang-8", kind="before", number=3, now=fire_at,
                policy=policy,
            )  # fmt: skip
            await session.commit()
        print(
            f"  the same round fired again: {again} new rows in "
            f"{time.perf_counter() - start:.1f} s (idempotent)"
        )
    finally:
        await engine.dispose()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_run(Path(tmp)))
