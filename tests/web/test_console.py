"""The web console, route by route: sign-in by one-time link, sessions, CSRF, scope,
escaping, the progress page and its Excel download."""

from __future__ import annotations

import io
from http.cookies import SimpleCookie

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from openpyxl import load_workbook
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.app import App
from bot.storage.db import make_session_factory
from bot.storage.models import Unit, WebLogin, WebSession
from handlers.weblogin import hash_token
from knowledge import Knowledge
from tests.conftest import Chat, Clock
from tests.web.conftest import People, make_services, set_role, token_of, unit_id
from web.app import COOKIE, LOGIN_COOKIE, create_web_app

Client = TestClient[web.Request, web.Application]


async def get_link(chat: Chat) -> str:
    return token_of(await chat.say("/web"))


async def sign_in(client: Client, token: str) -> web.StreamResponse:
    form = await client.get(f"/dang-nhap/{token}")
    assert form.status == 200, await form.text()
    assert "Đăng nhập" in await form.text()
    csrf = form.cookies[LOGIN_COOKIE].value
    return await client.post(f"/dang-nhap/{token}", data={"csrf": csrf}, allow_redirects=False)


def csrf_of(html: str) -> str:
    marker = 'name="csrf" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


async def test_chat_link_signs_in_once_and_shows_the_progress(
    client: Client, people: People, tree: AsyncEngine
) -> None:
    reply = await people.hn_admin.say("/web")
    assert "dùng một lần, hiệu lực 10 phút" in reply
    token = token_of(reply)
    async with make_session_factory(tree)() as session:
        stored = [row.token_hash for row in (await session.exec(select(WebLogin))).all()]
    assert stored == [hash_token(token)]  # only the hash is kept

    signed = await sign_in(client, token)
    assert signed.status == 303 and signed.headers["Location"] == "/tien-do"
    cookie = SimpleCookie(signed.headers["Set-Cookie"])[COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/"
    assert not cookie["secure"]  # the console is at http:// here

    page = await client.get("/tien-do")
    html = await page.text()
    assert page.status == 200, html
    assert "Tổng quan tiến độ — Đảng bộ thành phố Hà Nội" in html
    assert "Đảng ủy phường Ba Đình" in html and "Đảng ủy xã Sóc Sơn" in html  # children
    assert "Đảng bộ thành phố Hải Phòng" not in html  # outside the scope
    assert "Chưa báo cáo" in html and "Tải tệp Excel" in html
    assert page.headers["Referrer-Policy"] == "no-referrer"
    async with make_session_factory(tree)() as session:
        sessions = (await session.exec(select(WebSession))).all()
    assert len(sessions) == 1 and sessions[0].session_hash == hash_token(cookie.value)

    # The same link again: a clear page, whether opened or submitted.
    again = await client.get(f"/dang-nhap/{token}")
    assert again.status == 410 and "Liên kết đã được sử dụng" in await again.text()
    client.session.cookie_jar.update_cookies({LOGIN_COOKIE: "x"})
    resubmitted = await client.post(f"/dang-nhap/{token}", data={"csrf": "x"})
    assert resubmitted.status == 410 and "đã được dùng" in await resubmitted.text()
    unknown = await client.get("/dang-nhap/khong-co")
    assert unknown.status == 404 and "Liên kết không hợp lệ" in await unknown.text()


async def test_expired_link_gives_a_clear_page(
    client: Client, people: People, clock: Clock
) -> None:
    token = await get_link(people.admin)
    clock.advance(minutes=10, seconds=1)
    opened = await client.get(f"/dang-nhap/{token}")
    assert opened.status == 410
    assert "Liên kết đã hết hạn" in await opened.text()
    client.session.cookie_jar.update_cookies({LOGIN_COOKIE: "x"})
    submitted = await client.post(f"/dang-nhap/{token}", data={"csrf": "x"})
    assert submitted.status == 410
    assert (await client.get("/tien-do")).status == 401


async def test_officials_have_no_console(client: Client, people: People, tree: AsyncEngine) -> None:
    refused = await people.official.say("/dangnhap")
    assert "dành cho quản trị đơn vị và quản trị hệ thống" in refused
    assert "/dang-nhap/" not in refused
    # A link made while a unit admin, used after being made an official: 403.
    token = await get_link(people.hn_admin)
    await set_role(tree, "hn-admin", "official")
    denied = await sign_in(client, token)
    assert denied.status == 403
    assert "Không có quyền truy cập" in await denied.text()
    assert COOKIE not in denied.cookies


async def test_a_session_loses_the_console_with_the_role(
    client: Client, people: People, tree: AsyncEngine
) -> None:
    assert (await sign_in(client, await get_link(people.hn_admin))).status == 303
    assert (await client.get("/tien-do")).status == 200
    await set_role(tree, "hn-admin", "official")
    assert (await client.get("/tien-do")).status == 403


async def test_unit_admin_sees_only_the_subtree(
    client: Client, people: People, tree: AsyncEngine
) -> None:
    await sign_in(client, await get_link(people.hn_admin))
    inside = await client.get(f"/tien-do?unit={await unit_id(tree, 'HN.BD')}")
    html = await inside.text()
    assert inside.status == 200
    assert "Tổng quan tiến độ — Đảng ủy phường Ba Đình" in html
    assert "Chi bộ khu phố 1" in html  # its child, to drill further
    assert f'href="/tien-do?unit={await unit_id(tree, "HN")}"' in html  # the way back up
    assert f'href="/tien-do?unit={await unit_id(tree, "TW")}"' not in html  # above the scope
    for code in ("HP", "HP.CH", "TW"):
        outside = await client.get(f"/tien-do?unit={await unit_id(tree, code)}")
        assert outside.status == 403, code
        assert "phạm vi mình quản lý" in await outside.text()
    assert (await client.get(f"/tien-do.xlsx?unit={await unit_id(tree, 'HP')}")).status == 403
    assert (await client.get("/tien-do?unit=999999")).status == 404
    assert (await client.get("/tien-do?unit=abc")).status == 404


async def test_admin_sees_everything(client: Client, people: People, tree: AsyncEngine) -> None:
    await sign_in(client, await get_link(people.admin))
    root = await client.get("/tien-do")
    assert "Tổng quan tiến độ — Ban Chấp hành Trung ương" in await root.text()
    hp = await client.get(f"/tien-do?unit={await unit_id(tree, 'HP.CH')}")
    assert hp.status == 200


async def test_sign_out_needs_the_csrf_token(client: Client, people: People) -> None:
    await sign_in(client, await get_link(people.hn_admin))
    html = await (await client.get("/tien-do")).text()
    assert (await client.post("/dang-xuat")).status == 403
    assert (await client.post("/dang-xuat", data={"csrf": "sai"})).status == 403
    assert (await client.get("/tien-do")).status == 200  # still signed in
    out = await client.post("/dang-xuat", data={"csrf": csrf_of(html)})
    assert out.status == 200 and "Đã đăng xuất" in await out.text()
    assert (await client.get("/tien-do")).status == 401


async def test_sign_in_form_needs_its_csrf_token(client: Client, people: People) -> None:
    token = await get_link(people.admin)
    await client.get(f"/dang-nhap/{token}")
    refused = await client.post(f"/dang-nhap/{token}", data={"csrf": "khac"})
    assert refused.status == 403
    assert (await sign_in(client, token)).status == 303  # the link was not used up


async def test_session_ends_after_inactivity(client: Client, people: People, clock: Clock) -> None:
    await sign_in(client, await get_link(people.admin))
    clock.advance(minutes=25)
    assert (await client.get("/tien-do")).status == 200  # activity keeps it alive
    clock.advance(minutes=25)
    assert (await client.get("/tien-do")).status == 200
    clock.advance(minutes=30)
    expired = await client.get("/tien-do")
    assert expired.status == 401 and "Cần đăng nhập" in await expired.text()
    home = await client.get("/", allow_redirects=False)
    assert home.status == 200 and "/web" in await home.text()


async def test_unit_names_are_escaped(client: Client, people: People, tree: AsyncEngine) -> None:
    async with make_session_factory(tree)() as session:
        unit = await session.get(Unit, await unit_id(tree, "HN.BD"))
        assert unit is not None
        unit.name = "<script>alert(1)</script>"
        session.add(unit)
        await session.commit()
    await sign_in(client, await get_link(people.hn_admin))
    for url in ("/tien-do", f"/tien-do?unit={await unit_id(tree, 'HN.BD')}"):
        html = await (await client.get(url)).text()
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


async def test_excel_download_is_the_report_workbook(
    client: Client, people: People, tree: AsyncEngine
) -> None:
    await sign_in(client, await get_link(people.hn_admin))
    download = await client.get("/tien-do.xlsx")
    assert download.status == 200
    assert download.headers["Content-Disposition"].startswith('attachment; filename="tien-do-HN-')
    book = load_workbook(io.BytesIO(await download.read()))
    assert book.sheetnames[0] == "Tổng hợp"
    assert len(book.sheetnames) > 1  # one sheet per task
    assert book["Tổng hợp"]["A1"].value == "Tiến độ: Đảng bộ thành phố Hà Nội (HN)"
    task_sheet = book[book.sheetnames[1]]
    names = {row[1] for row in task_sheet.iter_rows(min_row=5, values_only=True)}
    assert "Đảng bộ thành phố Hải Phòng" not in names


async def test_cookies_are_secure_behind_https(
    knowledge: Knowledge, tree: AsyncEngine, console_app: App, people: People
) -> None:
    services = make_services(knowledge, tree, console_app, "https://console.example.org")
    async with TestClient(TestServer(create_web_app(services))) as client:
        token = await get_link(people.admin)
        form = await client.get(f"/dang-nhap/{token}")
        assert SimpleCookie(form.headers["Set-Cookie"])[LOGIN_COOKIE]["secure"]
        signed = await client.post(
            f"/dang-nhap/{token}",
            data={"csrf": form.cookies[LOGIN_COOKIE].value},
            cookies={LOGIN_COOKIE: form.cookies[LOGIN_COOKIE].value},
            allow_redirects=False,
        )
        assert signed.status == 303
        assert SimpleCookie(signed.headers.getall("Set-Cookie")[0])[COOKIE]["secure"]


async def test_static_style_sheet_is_served(client: Client) -> None:
    css = await client.get("/static/console.css")
    assert css.status == 200 and "text/css" in css.headers["Content-Type"]


async def test_late_units_are_named_once_the_deadline_has_passed(
    client: Client, people: People, clock: Clock
) -> None:
    clock.advance(days=400)  # every task's deadline has passed
    await sign_in(client, await get_link(people.hn_admin))
    html = await (await client.get("/tien-do")).text()
    assert "đã quá hạn" in html and "Đơn vị quá hạn:" in html
    assert "Đảng ủy xã Sóc Sơn (HN.SS)" in html
    assert "Cát Hải" not in html  # another city: outside the scope


async def test_dead_sessions_and_links_are_purged_when_a_session_opens(
    client: Client, people: People, tree: AsyncEngine, clock: Clock
) -> None:
    """A week after they can no longer be used, session and link rows are deleted; a link
    used yesterday still says «đã được sử dụng»."""
    old_link = await get_link(people.admin)
    await sign_in(client, old_link)
    clock.advance(days=1)
    recent_link = await get_link(people.admin)
    await sign_in(client, recent_link)
    clock.advance(days=6, hours=13)  # the first session and link: dead for more than 7 days
    await sign_in(client, await get_link(people.hn_admin))
    async with make_session_factory(tree)() as session:
        links = set((await session.exec(select(WebLogin.token_hash))).all())
        sessions = (await session.exec(select(WebSession))).all()
    assert hash_token(old_link) not in links
    assert hash_token(recent_link) in links
    assert len(sessions) == 2  # the second admin session and the new one
    again = await client.get(f"/dang-nhap/{recent_link}")
    assert again.status == 410 and "đã được sử dụng" in await again.text()
