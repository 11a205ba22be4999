"""«Cán bộ»'s actions: lock («Khóa»), reopen («Mở lại») and move («Chuyển») a person from the
console, each through a confirmation page; what the database holds afterwards (the account,
the queued messages, the audit log), the list's notice, the CSRF token, the scope, acting on
oneself, the system administrator's role, officials, escaping."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.storage.db import make_session_factory
from bot.storage.models import AuditEntry, OutboxMessage, Person
from handlers.accounts import ADMIN_ROLE_ONLY, OUTSIDE_SCOPE, SELF_DEACTIVATE, SELF_MOVE
from tests.progress.conftest import Enrol
from tests.web.conftest import People, person_id, set_role, unit_id
from tests.web.test_console import csrf_of, get_link, sign_in
from tests.web.test_people import names_in_table, rename

Client = TestClient[web.Request, web.Application]


async def stored(engine: AsyncEngine, pid: int) -> Person:
    async with make_session_factory(engine)() as session:
        person = await session.get(Person, pid)
        assert person is not None
        return person


async def queue(engine: AsyncEngine, pid: int, chat_id: str, key: str) -> None:
    """A reminder waiting in the outbox for the person."""
    async with make_session_factory(engine)() as session:
        session.add(
            OutboxMessage(
                kind="reminder",
                channel="console",
                chat_id=chat_id,
                person_id=pid,
                text="Nhắc việc",
                idempotency_key=key,
            )
        )
        await session.commit()


async def outbox(engine: AsyncEngine) -> dict[str, str]:
    async with make_session_factory(engine)() as session:
        rows = (await session.exec(select(OutboxMessage))).all()
        return {row.idempotency_key: row.status for row in rows}


async def audit(engine: AsyncEngine, action: str) -> list[AuditEntry]:
    async with make_session_factory(engine)() as session:
        found = await session.exec(
            select(AuditEntry).where(col(AuditEntry.action) == action).order_by(col(AuditEntry.id))
        )
        return list(found.all())


async def signed_in_csrf(client: Client, people: People, chat_name: str = "hn_admin") -> str:
    assert (await sign_in(client, await get_link(getattr(people, chat_name)))).status == 303
    return csrf_of(await (await client.get("/can-bo")).text())


async def test_lock_after_confirming_cancels_the_queue_and_is_logged(
    client: Client, people: People, tree: AsyncEngine
) -> None:
    await rename(tree, "official", "Nguyễn Văn Bình")
    official, hn_admin = await person_id(tree, "official"), await person_id(tree, "hn-admin")
    hn = await unit_id(tree, "HN")
    await queue(tree, official, "official", "theirs")
    await queue(tree, hn_admin, "hn-admin", "someone-else")
    csrf = await signed_in_csrf(client, people)

    # The list (Hà Nội with its children) offers «Khóa» for the official, nothing for oneself.
    listed = await (await client.get(f"/can-bo?unit={hn}&kem=1")).text()
    assert f'href="/can-bo/{official}/khoa?ve={hn}&amp;kem=1"' in listed
    assert f"/can-bo/{hn_admin}/khoa" not in listed
    assert f"/can-bo/{hn_admin}/chuyen" not in listed

    # The confirmation says what will happen and changes nothing.
    page = await client.get(f"/can-bo/{official}/khoa?ve={hn}&kem=1")
    html = await page.text()
    assert page.status == 200, html
    assert (
        "Khóa tài khoản của Nguyễn Văn Bình (cán bộ báo cáo, Đảng ủy phường Ba Đình)? Người "
        "này sẽ không báo cáo được và không nhận nhắc việc, thông báo nữa; các tin đang chờ "
        "gửi cho họ bị hủy."
    ) in html
    assert "Xác nhận khóa" in html
    assert f'href="/can-bo?unit={hn}&amp;kem=1">Quay lại</a>' in html
    assert (await stored(tree, official)).active

    done = await client.post(
        f"/can-bo/{official}/khoa",
        data={"csrf": csrf_of(html), "ve": str(hn), "kem": "1"},
        allow_redirects=False,
    )
    assert done.status == 303, await done.text()
    assert done.headers["Location"] == f"/can-bo?unit={hn}&kem=1&da=khoa&nguoi={official}&huy=1"
    assert not (await stored(tree, official)).active
    assert await outbox(tree) == {"theirs": "cancelled", "someone-else": "pending"}
    [entry] = await audit(tree, "person.deactivate")
    assert (entry.via, entry.person_id) == ("web", hn_admin)
    assert entry.summary == (
        f"Khóa tài khoản của Nguyễn Văn Bình (Đảng ủy phường Ba Đình, người dùng số {official}); "
        "hủy 1 tin đang chờ gửi."
    )

    back = await (await client.get(done.headers["Location"])).text()
    assert (
        "Đã khóa tài khoản của Nguyễn Văn Bình (Đảng ủy phường Ba Đình). 1 tin đang chờ gửi cho "
        "người này đã được hủy."
    ) in back
    row = back.split("Nguyễn Văn Bình <span", 1)[1].split("</tr>", 1)[0]
    assert "Đã khóa" in row
    assert f'href="/can-bo/{official}/mo-lai?ve={hn}&amp;kem=1"' in row

    # Locked already: the confirmation page says so and offers nothing; posting again
    # changes nothing and logs nothing.
    again = await (await client.get(f"/can-bo/{official}/khoa")).text()
    assert "Tài khoản của Nguyễn Văn Bình đã khóa từ trước." in again
    assert "Xác nhận khóa" not in again
    twice = await client.post(
        f"/can-bo/{official}/khoa", data={"csrf": csrf}, allow_redirects=False
    )
    assert twice.headers["Location"].endswith(f"&da=khoa&nguoi={official}&doi=0")
    assert len(await audit(tree, "person.deactivate")) == 1
    # The locked official is no longer recognised in the chat.
    assert "dành cho cán bộ đã được mời tham gia" in await people.official.say("/baocao")


async def test_reopen_after_confirming(client: Client, people: People, tree: AsyncEngine) -> None:
    official = await person_id(tree, "official")
    bd = await unit_id(tree, "HN.BD")
    csrf = await signed_in_csrf(client, people, "admin")
    await client.post(f"/can-bo/{official}/khoa", data={"csrf": csrf}, allow_redirects=False)
    assert not (await stored(tree, official)).active

    page = await (await client.get(f"/can-bo/{official}/mo-lai?ve={bd}")).text()
    assert "Mở lại tài khoản của" in page
    assert "Xác nhận mở lại" in page
    assert not (await stored(tree, official)).active  # the page alone changes nothing
    done = await client.post(
        f"/can-bo/{official}/mo-lai", data={"csrf": csrf, "ve": str(bd)}, allow_redirects=False
    )
    assert done.status == 303
    assert done.headers["Location"] == f"/can-bo?unit={bd}&da=mo-lai&nguoi={official}"
    assert (await stored(tree, official)).active
    [entry] = await audit(tree, "person.activate")
    assert (entry.via, entry.person_id) == ("web", await person_id(tree, "admin"))
    back = await (await client.get(done.headers["Location"])).text()
    assert "Đã mở lại tài khoản của" in back
    assert f"/can-bo/{official}/khoa?ve={bd}" in back  # «Khóa» again
    active = await (await client.get(f"/can-bo/{official}/mo-lai")).text()
    assert "đang hoạt động, không cần mở lại" in active
    assert "Xác nhận mở lại" not in active


async def test_move_to_another_unit_with_a_role(
    client: Client, people: People, tree: AsyncEngine
) -> None:
    await rename(tree, "official", "Nguyễn Văn Bình")
    official = await person_id(tree, "official")
    ss, bd = await unit_id(tree, "HN.SS"), await unit_id(tree, "HN.BD")
    csrf = await signed_in_csrf(client, people)  # the unit admin of Hà Nội

    form = await (await client.get(f"/can-bo/{official}/chuyen?ve={bd}")).text()
    assert "hiện là cán bộ báo cáo của Đảng ủy phường Ba Đình (HN.BD)" in form
    assert '<option value="official" selected>cán bộ báo cáo</option>' in form
    assert '<option value="unit_admin">quản trị đơn vị</option>' in form
    assert 'value="admin"' not in form  # a unit admin hands out no system administrator

    # An unknown code and a unit outside the scope are explained on the form.
    base = {"csrf": csrf, "ve": str(bd), "vai_tro": "unit_admin"}
    unknown = await client.post(f"/can-bo/{official}/chuyen", data={**base, "don_vi": "HN.XX"})
    assert unknown.status == 400
    assert "HN.XX" in await unknown.text()
    outside = await client.post(f"/can-bo/{official}/chuyen", data={**base, "don_vi": "HP"})
    assert outside.status == 400
    assert f"Đảng bộ thành phố Hải Phòng (HP) {OUTSIDE_SCOPE}." in await outside.text()

    # The confirmation, then the move.
    confirm = await client.post(f"/can-bo/{official}/chuyen", data={**base, "don_vi": "hn.ss"})
    html = await confirm.text()
    assert confirm.status == 200, html
    assert (
        "Chuyển Nguyễn Văn Bình từ cán bộ báo cáo của Đảng ủy phường Ba Đình thành quản trị "
        "đơn vị của Đảng ủy xã Sóc Sơn?"
    ) in html
    assert "Xác nhận chuyển" in html
    assert (await stored(tree, official)).unit_id == bd  # not yet
    done = await client.post(
        f"/can-bo/{official}/chuyen",
        data={**base, "don_vi": "HN.SS", "xac_nhan": "1"},
        allow_redirects=False,
    )
    assert done.status == 303, await done.text()
    assert done.headers["Location"] == f"/can-bo?unit={bd}&da=chuyen&nguoi={official}"
    moved = await stored(tree, official)
    assert (moved.unit_id, moved.role) == (ss, "unit_admin")
    [entry] = await audit(tree, "person.move")
    assert (entry.via, entry.unit_id) == ("web", ss)
    assert entry.details == {"person": official, "before": {"unit": bd, "role": "official"}}
    back = await (await client.get(done.headers["Location"])).text()
    assert "Đã chuyển Nguyễn Văn Bình: nay là quản trị đơn vị của Đảng ủy xã Sóc Sơn." in back
    assert "Chưa có cán bộ nào đăng ký ở Đảng ủy phường Ba Đình." in back
    assert names_in_table(await (await client.get(f"/can-bo?unit={ss}")).text()) == [
        "Nguyễn Văn Bình"
    ]


async def test_the_system_administrators_role_only_from_an_admin(
    client: Client, people: People, tree: AsyncEngine
) -> None:
    official = await person_id(tree, "official")
    csrf = await signed_in_csrf(client, people)
    refused = await client.post(
        f"/can-bo/{official}/chuyen",
        data={"csrf": csrf, "don_vi": "HN", "vai_tro": "admin", "xac_nhan": "1"},
    )
    assert refused.status == 403
    assert ADMIN_ROLE_ONLY in await refused.text()
    assert (await stored(tree, official)).role == "official"

    # The system administrator may.
    client.session.cookie_jar.clear()
    admin_csrf = await signed_in_csrf(client, people, "admin")
    form = await (await client.get(f"/can-bo/{official}/chuyen")).text()
    assert '<option value="admin">quản trị hệ thống</option>' in form
    done = await client.post(
        f"/can-bo/{official}/chuyen",
        data={"csrf": admin_csrf, "don_vi": "HN", "vai_tro": "admin", "xac_nhan": "1"},
        allow_redirects=False,
    )
    assert done.status == 303
    assert (await stored(tree, official)).role == "admin"


async def test_forms_need_the_csrf_token(client: Client, people: People, tree: AsyncEngine) -> None:
    official = await person_id(tree, "official")
    await signed_in_csrf(client, people)
    for action, extra in (
        ("khoa", {}),
        ("chuyen", {"don_vi": "HN.SS", "vai_tro": "official", "xac_nhan": "1"}),
    ):
        for token in ({}, {"csrf": "not-the-token"}):
            refused = await client.post(f"/can-bo/{official}/{action}", data={**token, **extra})
            assert refused.status == 403, action
            assert "thiếu mã bảo vệ" in await refused.text()
    person = await stored(tree, official)
    assert (person.active, person.unit_id) == (True, await unit_id(tree, "HN.BD"))
    await set_active(tree, official, active=False)
    assert (await client.post(f"/can-bo/{official}/mo-lai", data={})).status == 403
    assert not (await stored(tree, official)).active
    assert await audit(tree, "person.deactivate") == []


async def set_active(engine: AsyncEngine, pid: int, *, active: bool) -> None:
    async with make_session_factory(engine)() as session:
        person = await session.get(Person, pid)
        assert person is not None
        person.active = active
        session.add(person)
        await session.commit()


async def test_a_unit_admin_acts_only_within_the_subtree(
    client: Client, people: People, tree: AsyncEngine, enrol: Enrol
) -> None:
    await enrol("HP.CH", "official", user_id="hp-official")
    outsiders = [await person_id(tree, "admin"), await person_id(tree, "hp-official")]
    csrf = await signed_in_csrf(client, people)
    for pid in outsiders:
        for action in ("khoa", "mo-lai", "chuyen"):
            page = await client.get(f"/can-bo/{pid}/{action}")
            assert page.status == 403, (pid, action)
            assert "không thuộc phạm vi đồng chí quản lý" in await page.text()
        locked = await client.post(f"/can-bo/{pid}/khoa", data={"csrf": csrf})
        assert locked.status == 403
        moved = await client.post(
            f"/can-bo/{pid}/chuyen",
            data={"csrf": csrf, "don_vi": "HN.SS", "vai_tro": "official", "xac_nhan": "1"},
        )
        assert moved.status == 403
        assert (await stored(tree, pid)).active
    assert (await stored(tree, outsiders[1])).unit_id == await unit_id(tree, "HP.CH")
    assert (await client.get("/can-bo/999999/khoa")).status == 404
    assert (await client.get("/can-bo/abc/khoa")).status == 404
    # A return address outside the scope falls back to the person's own unit.
    official = await person_id(tree, "official")
    hp = await unit_id(tree, "HP")
    done = await client.post(
        f"/can-bo/{official}/khoa", data={"csrf": csrf, "ve": str(hp)}, allow_redirects=False
    )
    assert done.headers["Location"].startswith(f"/can-bo?unit={await unit_id(tree, 'HN.BD')}&")


async def test_a_unit_admin_cannot_lock_or_move_themselves(
    client: Client, people: People, tree: AsyncEngine
) -> None:
    me = await person_id(tree, "hn-admin")
    csrf = await signed_in_csrf(client, people)
    for page in (await client.get(f"/can-bo/{me}/khoa"), await client.get(f"/can-bo/{me}/chuyen")):
        assert page.status == 403
    assert SELF_DEACTIVATE in await (await client.get(f"/can-bo/{me}/khoa")).text()
    # Posting anyway: the account functions refuse (the same rule as the chat's /khoa).
    locked = await client.post(f"/can-bo/{me}/khoa", data={"csrf": csrf})
    assert locked.status == 403
    assert SELF_DEACTIVATE in await locked.text()
    moved = await client.post(
        f"/can-bo/{me}/chuyen",
        data={"csrf": csrf, "don_vi": "HN.SS", "vai_tro": "unit_admin", "xac_nhan": "1"},
    )
    assert moved.status == 403
    assert SELF_MOVE in await moved.text()
    person = await stored(tree, me)
    assert (person.active, person.unit_id) == (True, await unit_id(tree, "HN"))
    assert await audit(tree, "person.deactivate") == []


async def test_officials_are_refused(client: Client, people: People, tree: AsyncEngine) -> None:
    official = await person_id(tree, "official")
    csrf = await signed_in_csrf(client, people)
    await set_role(tree, "hn-admin", "official")  # the session loses the console with the role
    assert (await client.get(f"/can-bo/{official}/khoa")).status == 403
    refused = await client.post(f"/can-bo/{official}/khoa", data={"csrf": csrf})
    assert refused.status == 403
    assert (await stored(tree, official)).active


async def test_names_are_escaped_on_the_confirmation(
    client: Client, people: People, tree: AsyncEngine
) -> None:
    await rename(tree, "official", "<script>alert(1)</script>")
    official = await person_id(tree, "official")
    csrf = await signed_in_csrf(client, people)
    for page in (
        await client.get(f"/can-bo/{official}/khoa"),
        await client.get(f"/can-bo/{official}/chuyen"),
        await client.post(
            f"/can-bo/{official}/chuyen",
            data={"csrf": csrf, "don_vi": "HN.SS", "vai_tro": "official"},
        ),
    ):
        html = await page.text()
        assert page.status == 200, html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<script>" not in html
