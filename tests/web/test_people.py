"""«Cán bộ» (the people of a unit, its children to drill down) and the unit search of
«Tổng quan»: scope, 403s, escaping, channels, blocked people, the last message, search
without diacritics, the late units with their last report, the search key's migration."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.storage.db import create_engine, make_session_factory, upgrade_database
from bot.storage.models import Person, PersonChannel, Unit
from handlers.units import search_units
from scheduler.outbox import mark_blocked
from tests.conftest import Clock
from tests.progress.conftest import Enrol
from tests.progress.test_rollup import report_for
from tests.web.conftest import People, person_id, unit_id
from tests.web.test_console import get_link, sign_in

Client = TestClient[web.Request, web.Application]


def names_in_table(html: str) -> list[str]:
    """The people's names as listed (the row headers of the people table)."""
    table = html.split('<table class="people">', 1)[1].split("</table>", 1)[0]
    return re.findall(r'<th scope="row">(.*?) <span class="muted">#\d+</span></th>', table)


def found_links(html: str) -> list[str]:
    """The unit ids the search listed."""
    if '<ul class="found">' not in html:
        return []
    block = html.split('<ul class="found">', 1)[1].split("</ul>", 1)[0]
    return re.findall(r'href="/tien-do\?unit=(\d+)"', block)


async def rename(engine: AsyncEngine, user_id: str, name: str) -> None:
    pid = await person_id(engine, user_id)
    async with make_session_factory(engine)() as session:
        person = await session.get(Person, pid)
        assert person is not None
        person.name = name
        session.add(person)
        await session.commit()


async def test_unit_admin_lists_people_and_drills_down(
    client: Client, people: People, tree: AsyncEngine
) -> None:
    await rename(tree, "hn-admin", "Trần Thị Hà")
    await rename(tree, "official", "Nguyễn Văn Bình")
    await sign_in(client, await get_link(people.hn_admin))
    own = await client.get("/can-bo")  # default: their own unit, Hà Nội
    html = await own.text()
    assert own.status == 200, html
    assert "Cán bộ — Đảng bộ thành phố Hà Nội" in html
    assert names_in_table(html) == ["Trần Thị Hà"]  # only HN's own people
    assert "quản trị đơn vị" in html
    # The children, with how many people each subtree has, linking further down.
    bd, ss = await unit_id(tree, "HN.BD"), await unit_id(tree, "HN.SS")
    assert re.search(rf'href="/can-bo\?unit={bd}">Đảng ủy phường Ba Đình</a></th>\s*'
                     r"<td>HN.BD</td>\s*<td>1</td>", html)  # fmt: skip
    assert re.search(rf'href="/can-bo\?unit={ss}">Đảng ủy xã Sóc Sơn</a></th>\s*'
                     r"<td>HN.SS</td>\s*<td>0</td>", html)  # fmt: skip

    # With the direct children's people.
    both = await (await client.get(f"/can-bo?unit={await unit_id(tree, 'HN')}&kem=1")).text()
    assert names_in_table(both) == ["Trần Thị Hà", "Nguyễn Văn Bình"]  # tree order
    assert f'<a href="/can-bo?unit={bd}">Đảng ủy phường Ba Đình</a>' in both

    # Down one level: the official, the trail back to HN but not above the scope.
    down = await (await client.get(f"/can-bo?unit={bd}")).text()
    assert names_in_table(down) == ["Nguyễn Văn Bình"]
    assert "cán bộ báo cáo" in down
    assert f'href="/can-bo?unit={await unit_id(tree, "HN")}"' in down
    assert f'href="/can-bo?unit={await unit_id(tree, "TW")}"' not in down
    assert "Chi bộ khu phố 1" in down  # its own child


async def test_scope_403_and_no_console_for_officials(
    client: Client, people: People, tree: AsyncEngine
) -> None:
    assert (await client.get("/can-bo")).status == 401  # not signed in
    await sign_in(client, await get_link(people.hn_admin))
    for code in ("HP", "HP.CH", "TW"):
        outside = await client.get(f"/can-bo?unit={await unit_id(tree, code)}")
        assert outside.status == 403, code
        assert "phạm vi mình quản lý" in await outside.text()
    assert (await client.get("/can-bo?unit=999999")).status == 404
    assert (await client.get("/can-bo?unit=abc")).status == 404

    # An official never gets a session; one demoted after signing in loses the page.
    refused = await people.official.say("/web")
    assert "/dang-nhap/" not in refused
    demoted = await person_id(tree, "hn-admin")
    async with make_session_factory(tree)() as session:
        person = await session.get(Person, demoted)
        assert person is not None
        person.role = "official"
        session.add(person)
        await session.commit()
    assert (await client.get("/can-bo")).status == 403


async def test_admin_sees_every_unit(client: Client, people: People, tree: AsyncEngine) -> None:
    await sign_in(client, await get_link(people.admin))
    root = await (await client.get("/can-bo")).text()
    assert "Cán bộ — Ban Chấp hành Trung ương" in root
    assert "quản trị hệ thống" in root
    hp = await client.get(f"/can-bo?unit={await unit_id(tree, 'HP.CH')}")
    assert hp.status == 200
    assert "Chưa có cán bộ nào đăng ký ở Đảng ủy phường Cát Hải." in await hp.text()


async def test_channels_blocked_and_last_message(
    client: Client, people: People, tree: AsyncEngine, enrol: Enrol, clock: Clock
) -> None:
    on_telegram = await enrol("HN.SS", "official", user_id="tg-1", channel="telegram")
    on_zalo = await enrol("HN.SS", "official", user_id="zl-1", channel="zalo")
    await rename(tree, "tg-1", "Lê Văn Telegram")
    await rename(tree, "zl-1", "Phạm Thị Zalo")
    clock.advance(hours=5)  # 15:00 local time
    await on_zalo.say("Kết luận 185 là gì?")
    # The sender found that the Telegram person blocked the bot (Telegram answered 403).
    async with make_session_factory(tree)() as session:
        changed = await mark_blocked(session, channel="telegram", chat_id="tg-1", now=clock.now)
        await session.commit()
    assert changed == 1
    assert on_telegram.user_id == "tg-1"

    await sign_in(client, await get_link(people.hn_admin))
    html = await (await client.get(f"/can-bo?unit={await unit_id(tree, 'HN.SS')}")).text()
    rows = {
        name: row
        for name, row in re.findall(
            r'<th scope="row">(.*?) <span class="muted">#\d+</span></th>(.*?)</tr>', html, re.S
        )
    }
    assert set(rows) == {"Lê Văn Telegram", "Phạm Thị Zalo"}
    telegram, zalo = rows["Lê Văn Telegram"], rows["Phạm Thị Zalo"]
    assert "Telegram (đã chặn trợ lý)" in telegram and "Đã chặn trợ lý" in telegram
    assert "10:00 ngày 20/8/2025" in telegram  # their last message: the invitation code
    assert "Zalo" in zalo and "Đang hoạt động" in zalo and "chặn" not in zalo
    assert "15:00 ngày 20/8/2025" in zalo  # the question, five hours later

    # Deactivated people are listed as such.
    async with make_session_factory(tree)() as session:
        person = await session.get(Person, await person_id(tree, "zl-1"))
        assert person is not None
        person.active = False
        session.add(person)
        await session.commit()
    html = await (await client.get(f"/can-bo?unit={await unit_id(tree, 'HN.SS')}")).text()
    assert re.search(r"Phạm Thị Zalo.*?Đã khóa", html, re.S)


async def test_names_are_escaped(client: Client, people: People, tree: AsyncEngine) -> None:
    await rename(tree, "official", "<script>alert(1)</script>")
    async with make_session_factory(tree)() as session:
        unit = await session.get(Unit, await unit_id(tree, "HN.SS"))
        assert unit is not None
        unit.name = "<script>alert(2)</script>"
        session.add(unit)
        await session.commit()
    await sign_in(client, await get_link(people.hn_admin))
    pages = [
        f"/can-bo?unit={await unit_id(tree, 'HN.BD')}",
        f"/can-bo?unit={await unit_id(tree, 'HN')}&kem=1",
        f"/can-bo?unit={await unit_id(tree, 'HN.SS')}",
        "/tien-do?q=" + "<script>",
    ]
    for url in pages:
        html = await (await client.get(url)).text()
        assert "<script>" not in html, url
    html = await (await client.get(pages[0])).text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


async def test_search_without_diacritics_within_the_scope(
    client: Client, people: People, tree: AsyncEngine
) -> None:
    bd = await unit_id(tree, "HN.BD")
    await sign_in(client, await get_link(people.admin))
    for query in ("ba dinh", "BA ĐÌNH", "  phuong   ba  ", "Ba Dinh HN"):
        page = await client.get("/tien-do", params={"q": query})
        html = await page.text()
        assert page.status == 200
        assert found_links(html) == [str(bd)], query
    html = await (await client.get("/tien-do", params={"q": "ba dinh"})).text()
    assert "thuộc Đảng bộ thành phố Hà Nội" in html  # the parent, to tell names apart
    # Several matches: the higher levels first (the code matches its child's code too).
    html = await (await client.get("/tien-do", params={"q": "hn.bd"})).text()
    assert found_links(html) == [str(bd), str(await unit_id(tree, "HN.BD.CB1"))]
    html = await (await client.get("/tien-do", params={"q": "thanh pho"})).text()
    assert found_links(html) == [str(await unit_id(tree, c)) for c in ("HN", "HP")]
    # LIKE's wildcards are plain characters here.
    for query in ("%", "_", "ba%dinh"):
        html = await (await client.get("/tien-do", params={"q": query})).text()
        assert found_links(html) == [], query
        assert "Không tìm thấy đơn vị nào" in html

    # A unit admin of Hà Nội finds nothing outside Hà Nội.
    await sign_in(client, await get_link(people.hn_admin))
    html = await (await client.get("/tien-do", params={"q": "cat hai"})).text()
    assert found_links(html) == []
    assert "Không tìm thấy đơn vị nào khớp với «cat hai»" in html
    html = await (await client.get("/tien-do", params={"q": "thanh pho"})).text()
    assert found_links(html) == [str(await unit_id(tree, "HN"))]
    html = await (await client.get("/tien-do", params={"q": "ba dinh"})).text()
    assert found_links(html) == [str(bd)]


async def test_search_follows_renames_by_import(tree: AsyncEngine) -> None:
    from bot.core import utcnow
    from handlers.units import UnitRow, apply_rows

    async with make_session_factory(tree)() as session:
        await apply_rows(
            session, [UnitRow(2, "HN.SS", "Đảng ủy xã Sóc Sơn Mới", "xa", "HN")], utcnow()
        )
        await session.commit()
        found = await search_units(session, "soc son moi", scope=None, limit=5)
        assert [u.code for u in found] == ["HN.SS"]
        assert await search_units(session, "   ", scope=None, limit=5) == []


async def test_late_units_show_their_last_report(
    client: Client, people: People, tree: AsyncEngine, clock: Clock
) -> None:
    await report_for(tree, "HN.SS", "stuck", "Thiếu nhân sự")
    clock.advance(days=400)  # every deadline has passed
    await sign_in(client, await get_link(people.hn_admin))
    html = await (await client.get("/tien-do")).text()
    ss = await unit_id(tree, "HN.SS")
    late = html.split('<ul class="late-units">', 1)[1].split("</ul>", 1)[0]
    assert re.search(
        rf'<a href="/tien-do\?unit={ss}">Đảng ủy xã Sóc Sơn \(HN.SS\)</a> — báo cáo gần nhất: '
        r"gặp vướng mắc, lúc \d\d:\d\d ngày \d+/\d+/\d{4}",
        late,
    ), late
    assert "Đảng ủy phường Ba Đình (HN.BD)</a> — chưa báo cáo" in late


async def test_migration_fills_the_search_key(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    try:
        await upgrade_database(engine, "0008")
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO unit (code, name, level, path, depth, created_at, updated_at) "
                    "VALUES ('HN.BD', 'Đảng ủy phường  Ba Đình', 'xa', '', 0, "
                    "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"
                )
            )
        await upgrade_database(engine)
        async with make_session_factory(engine)() as session:
            unit = (await session.exec(select(Unit).where(col(Unit.code) == "HN.BD"))).one()
            assert unit.search_key == "dang uy phuong ba dinh hn.bd"
            assert [u.code for u in await search_units(session, "ba dinh", scope=None, limit=5)]
            channels = await session.exec(select(PersonChannel))
            assert channels.all() == []
    finally:
        await engine.dispose()
