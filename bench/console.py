"""The web console (issue 13) on the 44,041-unit tree of bench/progress.py: the root's
«Tổng quan» page (target <= 300 ms server time), and a subtree invitation batch for a province
of 1,101 units — creating it, the XLSX sheet (target <= 2 s) and the QR print page; the unit
search of «Tổng quan» (``handlers.units.search_units``, whole tree) and the «Cán bộ» page.

Requests go through aiohttp's test client in this process; "server time" is measured by a
middleware around the handler (the client's round trip is printed beside it).
"""

from __future__ import annotations

import asyncio
import re
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from zoneinfo import ZoneInfo

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import func
from sqlmodel import col, select

from bench.progress import build_tree
from bot.app import App
from bot.core import utcnow
from bot.runner import freeze_startup_heap
from bot.services import Services
from bot.settings import load_settings
from bot.storage.db import create_engine, make_session_factory, upgrade_database
from bot.storage.models import Person, Unit
from handlers.units import search_units, unit_by_code
from knowledge import load_knowledge
from scheduler.schedule import LiveSchedule
from web.app import COOKIE, register_console
from web.auth import csrf_token, open_session

PROVINCE = "T00"  # 1 province + 100 communes + 1,000 grassroots organisations
CODE_RE = re.compile(r'name="ma" value="(TL-[A-Z0-9]{5}-[A-Z0-9]{5})"')
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _met(ok: bool) -> str:
    return "met" if ok else "NOT MET"


async def _run(directory: Path) -> None:
    url = f"sqlite+aiosqlite:///{directory / 'bench.db'}"
    engine = create_engine(url)
    try:
        await upgrade_database(engine)
        sessions = make_session_factory(engine)
        knowledge = load_knowledge(semantic=False)
        await build_tree(sessions, knowledge)

        now = utcnow()
        async with sessions() as db:
            root = await unit_by_code(db, "TW")
            province = await unit_by_code(db, PROVINCE)
            assert root is not None and root.id is not None and province is not None
            person = Person(name="Quản trị thử nghiệm", unit_id=root.id, role="admin")
            db.add(person)
            await db.flush()
            assert person.id is not None
            raw = await open_session(db, person.id, now)
            await db.commit()
            count = select(func.count()).where(col(Unit.path).startswith(province.path))
            subtree = (await db.exec(count)).one()
            units = (await db.exec(select(func.count()).select_from(Unit))).one()

        settings = load_settings(database_url=url, web_base_url="http://console.bench")
        app = App(
            knowledge=knowledge,
            sessions=sessions,
            zone=ZoneInfo("Asia/Ho_Chi_Minh"),
            bot_username="troly_bot",  # the sheet and the QR codes carry t.me links
            channels=("telegram", "zalo"),
        )
        services = Services(settings, knowledge, engine, sessions, app, LiveSchedule(settings))
        server_ms: list[float] = []

        @web.middleware
        async def timing(request: web.Request, handler: Handler) -> web.StreamResponse:
            t0 = time.perf_counter()
            try:
                return await handler(request)
            finally:
                server_ms.append((time.perf_counter() - t0) * 1000)

        console = web.Application(middlewares=[timing])
        register_console(console, services)
        cookies = {COOKIE: raw}
        csrf = csrf_token(raw)

        async with TestClient(TestServer(console)) as client:

            async def timed(method: str, path: str, **kwargs: object) -> tuple[bytes, float, float]:
                """(body, server ms, round trip ms) of one request that must answer 200."""
                t0 = time.perf_counter()
                response = await client.request(method, path, cookies=cookies, **kwargs)  # type: ignore[arg-type]
                body = await response.read()
                trip = (time.perf_counter() - t0) * 1000
                assert response.status == 200, (path, response.status, body[:500])
                return body, server_ms[-1], trip

            page, _, _ = await timed("GET", "/tien-do")  # warm-up (templates, caches)
            assert "Tổng quan tiến độ — Ban Chấp hành Trung ương" in page.decode()
            freeze_startup_heap()  # as `troly run` does once started
            server, trips = [], []
            for _ in range(10):
                _, ms, trip = await timed("GET", "/tien-do")
                server.append(ms)
                trips.append(trip)
            p50 = statistics.median(server)
            print(
                f"«Tổng quan» (/tien-do) for the root, {len(page) / 1e3:.0f} kB: server p50 "
                f"{p50:.0f} ms, max {max(server):.0f} ms (round trip p50 "
                f"{statistics.median(trips):.0f} ms); target <= 300 ms: {_met(max(server) <= 300)}"
            )

            # The unit search, over the whole tree: a few matches, 40,000 matches (the first
            # 21 by level and name), none (every row looked at).
            for query in ("xa 5 tinh 12", "chi bo", "khong ton tai"):
                times = []
                for _ in range(10):
                    async with sessions() as db:
                        t0 = time.perf_counter()
                        found = await search_units(db, query, scope=None, limit=21)
                        times.append((time.perf_counter() - t0) * 1000)
                print(
                    f"unit search «{query}» over {units:,} units: {len(found)} "
                    f"shown, p50 {statistics.median(times):.0f} ms, max {max(times):.0f} ms"
                )
            _, ms, _ = await timed("GET", "/tien-do", params={"q": "ba dinh"})
            print(f"  «Tổng quan» for the root with a search: server {ms:.0f} ms")
            for code in ("TW", PROVINCE):
                async with sessions() as db:
                    unit = await unit_by_code(db, code)
                    assert unit is not None
                _, ms, _ = await timed("GET", "/can-bo", params={"unit": str(unit.id)})
                _, kin, _ = await timed("GET", "/can-bo", params={"unit": str(unit.id), "kem": "1"})
                print(
                    f"«Cán bộ» (/can-bo) for {unit.name}: server {ms:.0f} ms; with its direct "
                    f"children's people {kin:.0f} ms"
                )

            form = {
                "csrf": csrf, "unit": PROVINCE, "pham_vi": "cay", "role": "official",
                "uses": "1", "days": "14",
            }  # fmt: skip
            made, create_ms, _ = await timed("POST", "/moi", data=form)
            codes = list(dict.fromkeys(CODE_RE.findall(made.decode())))
            assert len(codes) == subtree, (len(codes), subtree)
            print(
                f"subtree invitations for {PROVINCE} ({len(codes):,} units): batch created and "
                f"its page ({len(made) / 1e3:.0f} kB) in {create_ms / 1000:.2f} s"
            )
            back = {"csrf": csrf, "ma": codes}
            sheets, prints = [], []
            for _ in range(3):
                sheet, ms, _ = await timed("POST", "/moi/bang-ma.xlsx", data=back)
                sheets.append(ms)
                printed, ms, _ = await timed("POST", "/moi/in", data=back)
                prints.append(ms)
            assert sheet[:2] == b"PK" and printed.count(b"<svg") == len(codes)
            worst = max(sheets) / 1000
            print(
                f"  the XLSX sheet ({len(sheet) / 1e3:.0f} kB): p50 "
                f"{statistics.median(sheets) / 1000:.2f} s, max {worst:.2f} s; "
                f"target <= 2 s: {_met(worst <= 2)}"
            )
            print(
                f"  the QR print page ({len(printed) / 1e6:.1f} MB, one SVG per unit): p50 "
                f"{statistics.median(prints) / 1000:.2f} s, max {max(prints) / 1000:.2f} s"
            )
    finally:
        await engine.dispose()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(_run(Path(tmp)))
