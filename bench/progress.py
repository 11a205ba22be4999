"""Progress roll-up at national scale: 40 provinces x 100 communes x 10 grassroots
organisations (44,041 units), the knowledge base's 5 tasks, random reports, on SQLite."""

from __future__ import annotations

import asyncio
import random
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import insert
from sqlmodel import select

from bot.app import App
from bot.core import IncomingMessage, utcnow
from bot.runner import freeze_startup_heap
from bot.services import sync_task_definitions
from bot.storage.db import create_engine, make_session_factory, upgrade_database
from bot.storage.models import ProgressEvent, ProgressStatus, Task, Unit
from handlers.people import create_invite
from handlers.reports import chart_png, write_workbook
from handlers.rollup import compute, render_text
from handlers.units import UnitRow, apply_rows, unit_by_code
from knowledge import Knowledge, load_knowledge

PROVINCES, COMMUNES, GRASSROOTS = 40, 100, 10


def _rows() -> list[UnitRow]:
    rows = [UnitRow(2, "TW", "Ban Chấp hành Trung ương", "trung_uong", "")]
    for p in range(PROVINCES):
        province = f"T{p:02d}"
        rows.append(
            UnitRow(len(rows) + 2, province, f"Đảng bộ tỉnh số {p + 1}", "truc_thuoc_tw", "TW")
        )
        for c in range(COMMUNES):
            commune = f"{province}.X{c:03d}"
            rows.append(
                UnitRow(len(rows) + 2, commune, f"Đảng ủy xã {c + 1} tỉnh {p + 1}", "xa", province)
            )
            rows.extend(
                UnitRow(
                    len(rows) + 2 + g, f"{commune}.C{g:02d}", f"Chi bộ {g + 1}", "co_so", commune
                )
                for g in range(GRASSROOTS)
            )
    return rows


async def _random_reports(sessions, seed: int = 11) -> int:  # type: ignore[no-untyped-def]
    rng = random.Random(seed)
    now = utcnow()
    async with sessions() as session:
        tasks = list((await session.exec(select(Task))).all())
        units = (await session.exec(select(Unit.id, Unit.level))).all()
        events, statuses = [], []
        for task in tasks:
            for unit_id, level in units:
                if level not in task.levels:
                    continue
                roll = rng.random()
                if roll < 0.15:
                    continue  # no report
                status = "done" if roll < 0.75 else ("doing" if roll < 0.93 else "stuck")
                key = f"bench:{unit_id}:{task.id}"
                events.append(
                    {
                        "unit_id": unit_id, "task_id": task.id, "status": status,
                        "done_on": task.due - timedelta(days=rng.randint(0, 20))
                        if status == "done" else None,
                        "note": "Ghi chú thử nghiệm" if status == "stuck" else None,
                        "channel": rng.choice(["telegram", "zalo"]),
                        "idempotency_key": key, "created_at": now,
                    }
                )  # fmt: skip
        await session.exec(insert(ProgressEvent), params=events)  # type: ignore[call-overload]
        ids = {
            key: event_id
            for key, event_id in (
                await session.exec(select(ProgressEvent.idempotency_key, ProgressEvent.id))
            ).all()
        }
        for event in events:
            statuses.append(
                {
                    "unit_id": event["unit_id"], "task_id": event["task_id"],
                    "status": event["status"], "done_on": event["done_on"], "note": event["note"],
                    "channel": event["channel"], "event_id": ids[event["idempotency_key"]],
                    "updated_at": now,
                }
            )  # fmt: skip
        await session.exec(insert(ProgressStatus), params=statuses)  # type: ignore[call-overload]
        await session.commit()
        return len(events)


async def build_tree(sessions, knowledge: Knowledge) -> None:  # type: ignore[no-untyped-def]
    """The 44,041-unit tree, the knowledge base's tasks and random reports (printed)."""
    rows = _rows()
    start = time.perf_counter()
    async with sessions() as session:
        await apply_rows(session, rows, utcnow())
        await sync_task_definitions(session, knowledge, None)
        await session.commit()
    print(f"imported {len(rows):,} units in {time.perf_counter() - start:.1f} s")
    count = await _random_reports(sessions)
    print(f"{count:,} random reports on 5 tasks")


async def _run(directory: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{directory / 'bench.db'}")
    try:
        await upgrade_database(engine)
        sessions = make_session_factory(engine)
        knowledge = load_knowledge(semantic=False)
        await build_tree(sessions, knowledge)

        async with sessions() as session:
            root = await unit_by_code(session, "TW")
            assert root is not None
            code = await create_invite(
                session, unit=root, role="admin", uses=1, days=1, created_by="bench", now=utcnow()
            )
            await session.commit()
        zone = ZoneInfo("Asia/Ho_Chi_Minh")
        app = App(knowledge=knowledge, sessions=sessions, zone=zone, flood_limit=10_000)

        def message(text: str) -> IncomingMessage:
            return IncomingMessage(channel="telegram", user_id="admin", chat_id="1", text=text)

        await app.dispatch(message(code), buttons=True)
        await app.dispatch(message("/tiendo"), buttons=True)  # warm-up (imports, caches)
        freeze_startup_heap()  # as `troly run` does once started

        rollups, whole = [], []
        for _ in range(10):
            async with sessions() as session:
                t0 = time.perf_counter()
                rollup = await compute(session, root, utcnow().date())
                render_text(rollup, utcnow())
                rollups.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            replies = await app.dispatch(message("/tiendo"), buttons=True)
            whole.append((time.perf_counter() - t0) * 1000)
        charts = []
        for _ in range(5):
            t0 = time.perf_counter()
            png = chart_png(rollup)
            charts.append((time.perf_counter() - t0) * 1000)
        chart_ms = statistics.median(charts)
        assert replies and png
        print(
            f"/tiendo for the root: roll-up and text p50 {statistics.median(rollups):.0f} ms, "
            f"max {max(rollups):.0f} ms (target <= 200 ms)"
        )
        print(
            f"  the whole /tiendo through dispatch (roll-up, text, {len(rollup.children)}-bar "
            f"chart): p50 {statistics.median(whole):.0f} ms; the chart alone p50 {chart_ms:.0f} ms"
        )
        path = directory / "bao-cao.xlsx"
        t0 = time.perf_counter()
        async with sessions() as session:
            await write_workbook(session, rollup, path, zone, utcnow())
        print(
            f"report workbook for the root ({path.stat().st_size / 1e6:.1f} MB): "
            f"{time.perf_counter() - t0:.2f} s (target <= 5 s)"
        )
    finally:
        await engine.dispose()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_run(Path(tmp)))
