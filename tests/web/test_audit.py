"""«Nhật ký» on the console: sign-ins and the invitations made and revoked on the web are
logged as the web's; the page shows the log newest first within the reader's scope, filters
by action and by unit, pages back, escapes what people typed and is refused to officials."""

from __future__ import annotations

import re

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.core import utcnow
from bot.storage.db import make_session_factory
from bot.storage.models import AuditEntry, Person
from handlers.audit import CLI, Actor, record
from tests.web.conftest import People, person_id, set_role, token_of, unit_id
from tests.web.test_console import csrf_of, get_link, sign_in
from tests.web.test_invites import CODE_RE, create
from web.audit import PAGE

Client = TestClient[web.Request, web.Application]
ROW = '<td class="summary">'


async def entries(engine: AsyncEngine) -> list[AuditEntry]:
    async with make_session_factory(engine)() as session:
        rows = await session.exec(select(AuditEntry).order_by(col(AuditEntry.id)))
        return list(rows.all())


async def rename(engine: AsyncEngine, user_id: str, name: str) -> None:
    async with make_session_factory(engine)() as session:
        person = await session.get(Person, await person_id(engine, user_id))
        assert person is not None
        person.name = name
        session.add(person)
        await session.commit()


async def named(engine: AsyncEngine) -> None:
    """People enrolled without a display name are all «Đồng chí»: tell them apart."""
    await rename(engine, "admin", "Trần Văn Trung")
    await rename(engine, "hn-admin", "Nguyễn Thị Hà")


async def page(client: Client, url: str = "/nhat-ky", status: int = 200) -> str:
    response = await client.get(url)
    html = await response.text()
    assert response.status == status, html
    return html


async def test_web_actions_are_logged_as_the_webs(
    client: Client, people: People, tree: AsyncEngine
) -> None:
    await named(tree)
    token = await get_link(people.hn_admin)
    assert (await sign_in(client, token)).status == 303
    csrf = csrf_of(await page(client, "/moi"))
    hn_admin = await person_id(tree, "hn-admin")
    link, signed = await entries(tree)
    assert (link.action, link.via, link.person_id) == ("web.link", "console", hn_admin)
    assert (signed.action, signed.via, signed.person_id, signed.unit_id) == (
        "web.sign_in",
        "web",
        hn_admin,
        await unit_id(tree, "HN"),
    )
    assert signed.summary == "Nguyễn Thị Hà (Đảng bộ thành phố Hà Nội) đăng nhập trang quản trị."

    made = await create(client, csrf, "HN")  # the subtree: one entry for the batch of 4
    codes = set(CODE_RE.findall(await made.text()))
    assert len(codes) == 4
    one = await create(client, csrf, "HN.SS", pham_vi="mot", role="unit_admin", uses="2")
    [single] = set(CODE_RE.findall(await one.text()))
    batch, alone = (await entries(tree))[2:]
    assert (batch.action, batch.via, batch.person_id, batch.unit_id) == (
        "invite.create",
        "web",
        hn_admin,
        await unit_id(tree, "HN"),
    )
    assert batch.summary == (
        "Tạo 4 mã mời vai trò cán bộ báo cáo cho Đảng bộ thành phố Hà Nội (HN) và các đơn vị "
        "trực thuộc; 1 người dùng mỗi mã, hiệu lực 14 ngày."
    )
    assert (alone.action, alone.via, alone.unit_id) == (
        "invite.create",
        "web",
        await unit_id(tree, "HN.SS"),
    )
    assert "vai trò quản trị đơn vị; 2 người dùng" in alone.summary

    invite = alone.details["invites"][0] if alone.details else None
    revoked = await client.post(
        "/moi/thu-hoi", data={"csrf": csrf, "id": str(invite)}, allow_redirects=False
    )
    assert revoked.status == 303
    last = (await entries(tree))[-1]
    assert (last.action, last.via, last.person_id) == ("invite.revoke", "web", hn_admin)
    assert len(await entries(tree)) == 5

    # No code, no token anywhere in the log — nor on the page.
    stored = " ".join(f"{e.summary} {e.details}" for e in await entries(tree))
    html = await page(client)
    for secret in (*codes, single, token):
        assert secret not in stored and secret.replace("-", "") not in stored
        assert secret not in html
    assert "Đăng nhập trang quản trị" in html and "Trang quản trị" in html  # action, channel
    assert "Nguyễn Thị Hà (Đảng bộ thành phố Hà Nội)" in html


async def test_scope_filters_and_officials(
    client: Client, people: People, tree: AsyncEngine
) -> None:
    await named(tree)
    hp = await unit_id(tree, "HP.CH")
    async with make_session_factory(tree)() as session:
        now = utcnow()
        record(session, CLI, "units.import", "Nhập danh sách 7 đơn vị toàn quốc.", now=now)
        record(session, CLI, "invite.revoke", "Thu hồi mã mời ở Cát Hải.", now=now, unit_id=hp)
        await session.commit()
    await sign_in(client, await get_link(people.admin))
    await client.post("/dang-xuat", data={"csrf": csrf_of(await page(client))})
    await sign_in(client, await get_link(people.hn_admin))

    # The unit admin of Hà Nội: their subtree only.
    html = await page(client)
    assert "Phạm vi: Đảng bộ thành phố Hà Nội (HN) và các đơn vị trực thuộc." in html
    assert "Nguyễn Thị Hà (Đảng bộ thành phố Hà Nội) đăng nhập" in html
    assert "Trần Văn Trung" not in html  # the root admin's sign-in is at TW, above them
    assert "Cát Hải" not in html and "toàn quốc" not in html
    assert html.index("đăng nhập trang quản trị.") < html.index("Tạo liên kết đăng nhập trang")
    assert (await client.get("/nhat-ky?unit=HP")).status == 403
    assert (await client.get("/nhat-ky?unit=tw")).status == 403
    unknown = await page(client, "/nhat-ky?unit=HN.XX", status=400)
    assert "Không tìm thấy đơn vị có mã «HN.XX»" in unknown

    # The root admin: everything; filters by action and by unit (its subtree).
    await client.post("/dang-xuat", data={"csrf": csrf_of(html)})
    await sign_in(client, await get_link(people.admin))
    html = await page(client)
    assert "Phạm vi: toàn hệ thống." in html
    for seen in ("toàn quốc", "Cát Hải", "Trần Văn Trung (Ban Chấp hành", "Nguyễn Thị Hà (Đảng bộ"):
        assert seen in html, seen
    assert "Người vận hành (dòng lệnh)" in html and "Dòng lệnh" in html
    revokes = await page(client, "/nhat-ky?action=invite.revoke")
    assert revokes.count(ROW) == 1, revokes
    assert "Cát Hải" in revokes and "toàn quốc" not in revokes
    assert '<option value="invite.revoke" selected>' in revokes
    hp_only = await page(client, "/nhat-ky?unit=hp")
    assert "Cát Hải" in hp_only and "toàn quốc" not in hp_only and "Nguyễn Thị Hà" not in hp_only
    nothing = await page(client, "/nhat-ky?unit=HP&action=web.sign_in")
    assert "Chưa có mục nào khớp bộ lọc." in nothing
    assert ROW not in await page(client, "/nhat-ky?action=xoa-het&before=1")  # nothing older

    # An official has no console, this page included.
    await set_role(tree, "admin", "official")
    assert (await client.get("/nhat-ky")).status == 403


async def test_pages_back_with_a_cursor(client: Client, people: People, tree: AsyncEngine) -> None:
    await sign_in(client, await get_link(people.admin))  # entries 1 and 2
    async with make_session_factory(tree)() as session:
        for number in range(1, PAGE + 11):
            record(session, CLI, "units.import", f"Lần nhập thứ {number}.", now=utcnow())
        await session.commit()
    total = PAGE + 12
    first = await page(client)
    assert first.count(ROW) == PAGE
    assert f"Lần nhập thứ {PAGE + 10}." in first and "Lần nhập thứ 10." not in first
    assert "Mới nhất" not in first
    older = re.search(r'href="/nhat-ky\?([^"]*before=\d+[^"]*)">Cũ hơn', first)
    assert older is not None
    second = await page(client, "/nhat-ky?" + older.group(1).replace("&amp;", "&"))
    assert second.count(ROW) == total - PAGE
    assert "Lần nhập thứ 10." in second and "Lần nhập thứ 1." in second
    assert "Đăng nhập trang quản trị" in second  # the oldest: the link and the sign-in
    assert "Cũ hơn" not in second and "Mới nhất" in second
    filtered = await page(client, "/nhat-ky?action=units.import")
    link = re.search(r'href="/nhat-ky\?([^"]*)">Cũ hơn', filtered)
    assert link is not None and "action=units.import" in link.group(1)  # filters kept


async def test_names_are_escaped(client: Client, people: People, tree: AsyncEngine) -> None:
    await rename(tree, "hn-admin", "<script>alert(1)</script>")
    token = token_of(await people.hn_admin.say("/web"))  # the summary holds the name
    await sign_in(client, token)
    async with make_session_factory(tree)() as session:
        record(session, Actor("web", None), "report.correct", 'Sửa "<b>x</b>" & <i>', now=utcnow())
        await session.commit()
    await client.post("/dang-xuat", data={"csrf": csrf_of(await page(client))})
    await sign_in(client, await get_link(people.admin))
    html = await page(client)
    assert "<script>alert(1)</script>" not in html and "<b>x</b>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; (Đảng bộ thành phố Hà Nội)" in html
    assert "Sửa &#34;&lt;b&gt;x&lt;/b&gt;&#34; &amp; &lt;i&gt;" in html
