"""«Cán bộ và mã mời»: invitations for one unit or a subtree created from the console, the
sheet and the printable QR page, the scope, CSRF, escaping and revoking."""

from __future__ import annotations

import io
import random
import re

from aiohttp import web
from aiohttp.test_utils import TestClient
from openpyxl import load_workbook
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.app import App
from bot.redaction import ALPHABET
from bot.storage.db import make_session_factory
from bot.storage.models import Invite, Unit
from handlers.people import find_invites
from tests.conftest import Chat
from tests.web.conftest import People, unit_id
from tests.web.test_console import csrf_of, get_link, sign_in

Client = TestClient[web.Request, web.Application]
CODE_RE = re.compile(r'name="ma" value="(TL-[A-Z0-9]{5}-[A-Z0-9]{5})"')
HN_SUBTREE = ["HN", "HN.BD", "HN.BD.CB1", "HN.SS"]  # tree order


async def signed_in_form(client: Client, chat: Chat) -> str:
    assert (await sign_in(client, await get_link(chat))).status == 303
    page = await client.get("/moi")
    html = await page.text()
    assert page.status == 200, html
    return csrf_of(html)


async def create(client: Client, csrf: str, unit: str, **fields: str) -> web.StreamResponse:
    data = {"csrf": csrf, "unit": unit, "pham_vi": "cay", "role": "official", "uses": "1"}
    data |= {"days": "14"} | fields
    return await client.post("/moi", data=data)


async def stored_invites(engine: AsyncEngine) -> list[Invite]:
    async with make_session_factory(engine)() as session:
        return list((await session.exec(select(Invite).order_by(col(Invite.id)))).all())


async def test_subtree_batch_sheet_codes_enrol(
    client: Client, people: People, tree: AsyncEngine, console_app: App
) -> None:
    console_app.bot_username = "trolybot"  # Telegram configured: the sheet has t.me links
    csrf = await signed_in_form(client, people.hn_admin)
    before = len(await stored_invites(tree))
    made = await create(client, csrf, "hn", uses="2", days="30")
    html = await made.text()
    assert made.status == 200, html
    assert "Đã tạo 4 mã mời" in html and "Mã chỉ hiện lần này" in html
    codes = list(dict.fromkeys(CODE_RE.findall(html)))
    assert len(codes) == 4

    # Stored: four new invitations, hashes only, one per unit of the subtree.
    invites = (await stored_invites(tree))[before:]
    assert len(invites) == 4
    assert all(i.max_uses == 2 and i.role == "official" for i in invites)
    async with make_session_factory(tree)() as session:
        found = await find_invites(session, codes)
        units = {u.id: u.code for u in (await session.exec(select(Unit))).all()}
    assert [units[found[c].unit_id] for c in codes] == HN_SUBTREE
    for invite in invites:
        assert all(code.replace("-", "") not in invite.code_hash for code in codes)

    # The sheet, read back with openpyxl.
    sheet = await client.post("/moi/bang-ma.xlsx", data={"csrf": csrf, "ma": codes})
    assert sheet.status == 200
    assert sheet.headers["Content-Disposition"].startswith('attachment; filename="ma-moi-HN-')
    rows = list(load_workbook(io.BytesIO(await sheet.read())).active.iter_rows(values_only=True))
    assert rows[0] == (
        "Đơn vị",
        "Mã đơn vị",
        "Mã mời",
        "Vai trò",
        "Liên kết Telegram",
        "Hướng dẫn Zalo",
        "Hết hạn",
    )
    assert [row[1] for row in rows[1:]] == HN_SUBTREE
    assert rows[1][0] == "Đảng bộ thành phố Hà Nội"
    for row in rows[1:]:
        assert row[3] == "cán bộ báo cáo"
        assert row[4] == f"https://t.me/trolybot?start={row[2].replace('-', '')}"
        assert row[6] == "10:00 ngày 19/9/2025"  # 30 days from the clock, local time

    # Each code of the sheet enrols a person through the real chat path.
    for n, row in enumerate(rows[1:]):
        chat = Chat(console_app, user_id=f"new-{n}")
        reply = await chat.say(row[2])
        assert "đã được ghi nhận là" in reply, reply
        assert row[0] in reply


async def test_single_unit_and_the_sheet_without_telegram(
    client: Client, people: People, tree: AsyncEngine, console_app: App
) -> None:
    csrf = await signed_in_form(client, people.admin)
    made = await create(client, csrf, "HP.CH", pham_vi="mot", role="unit_admin")
    html = await made.text()
    assert made.status == 200 and "Đã tạo 1 mã mời" in html
    [code] = set(CODE_RE.findall(html))
    sheet = await client.post("/moi/bang-ma.xlsx", data={"csrf": csrf, "ma": code})
    rows = list(load_workbook(io.BytesIO(await sheet.read())).active.iter_rows(values_only=True))
    assert len(rows) == 2
    unit_name, unit_code, shown, role, telegram, zalo, _ = rows[1]
    assert (unit_name, unit_code, shown, role) == (
        "Đảng ủy phường Cát Hải",
        "HP.CH",
        code,
        "quản trị đơn vị",
    )
    assert telegram is None  # no Telegram configured in the test app: no link
    assert zalo == f"Nhắn mã {code} cho trợ lý trên Zalo."
    reply = await Chat(console_app, user_id="hp-admin").say(code)
    assert "quản trị đơn vị" in reply


async def test_outside_the_scope_is_refused(
    client: Client, people: People, tree: AsyncEngine
) -> None:
    csrf = await signed_in_form(client, people.hn_admin)
    before = len(await stored_invites(tree))
    for code in ("HP", "HP.CH", "TW"):
        refused = await create(client, csrf, code)
        assert refused.status == 403, code
        assert "không thuộc phạm vi" in await refused.text()
    # A unit admin may not hand out system administrator codes.
    assert (await create(client, csrf, "HN", role="admin")).status == 403
    assert len(await stored_invites(tree)) == before
    # The unit admin's form offers only the roles they may hand out.
    html = await (await client.get("/moi")).text()
    assert 'value="unit_admin"' in html and 'value="admin"' not in html
    assert (await client.get(f"/moi?unit={await unit_id(tree, 'HP')}")).status == 403

    # Codes of another scope sent back to the downloads: 403, like unknown codes.
    admin_client = client  # the same browser, now signed in as the admin
    admin_csrf = await signed_in_form(admin_client, people.admin)
    made = await create(admin_client, admin_csrf, "HP", pham_vi="mot")
    [hp_code] = set(CODE_RE.findall(await made.text()))
    csrf = await signed_in_form(client, people.hn_admin)
    for url in ("/moi/bang-ma.xlsx", "/moi/in"):
        for codes in ([hp_code], ["TL-AAAAA-BBBBB"], ["khong-phai-ma"], []):
            answer = await client.post(url, data={"csrf": csrf, "ma": codes})
            assert answer.status == 403, (url, codes)


async def test_bad_input_is_explained_on_the_page(
    client: Client, people: People, tree: AsyncEngine
) -> None:
    csrf = await signed_in_form(client, people.hn_admin)
    before = len(await stored_invites(tree))
    cases = {
        ("HN.XYZ", "1", "14"): "Không tìm thấy đơn vị có mã «HN.XYZ»",
        ("HN", "mot", "14"): "phải là số nguyên dương",
        ("HN", "0", "14"): "Số lượt dùng phải từ 1 đến 10000",
        ("HN", "1", "999"): "Thời hạn phải từ 1 đến 365 ngày",
    }
    for (unit, uses, days), message in cases.items():
        answer = await create(client, csrf, unit, uses=uses, days=days)
        html = await answer.text()
        assert answer.status == 400, html
        assert message in html
        assert f'value="{unit}"' in html  # the form keeps what was typed
    assert len(await stored_invites(tree)) == before  # nothing half-made


async def test_forms_need_the_csrf_token(client: Client, people: People, tree: AsyncEngine) -> None:
    csrf = await signed_in_form(client, people.hn_admin)
    before = len(await stored_invites(tree))
    for data in ({}, {"csrf": "sai"}):
        fields = {"unit": "HN", "pham_vi": "cay", "role": "official", "uses": "1", "days": "3"}
        assert (await client.post("/moi", data=data | fields)).status == 403
    assert len(await stored_invites(tree)) == before
    made = await create(client, csrf, "HN.SS", pham_vi="mot")
    codes = CODE_RE.findall(await made.text())
    for url in ("/moi/bang-ma.xlsx", "/moi/in"):
        assert (await client.post(url, data={"ma": codes})).status == 403
    [invite] = (await stored_invites(tree))[before:]
    assert (await client.post("/moi/thu-hoi", data={"id": str(invite.id)})).status == 403
    assert not (await stored_invites(tree))[-1].revoked


async def test_print_page_has_one_qr_per_unit_and_escapes_names(
    client: Client, people: People, tree: AsyncEngine
) -> None:
    async with make_session_factory(tree)() as session:
        unit = await session.get(Unit, await unit_id(tree, "HN.SS"))
        assert unit is not None
        unit.name = "<b>x</b>"
        session.add(unit)
        await session.commit()
    csrf = await signed_in_form(client, people.hn_admin)
    made = await create(client, csrf, "HN")
    created = await made.text()
    assert "<b>x</b>" not in created and "&lt;b&gt;x&lt;/b&gt;" in created
    codes = list(dict.fromkeys(CODE_RE.findall(created)))
    page = await client.post("/moi/in", data={"csrf": csrf, "ma": codes})
    html = await page.text()
    assert page.status == 200
    assert html.count("<svg") == 4 == len(codes)
    assert "<b>x</b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
    for code in codes:
        assert code in html
    assert "Zalo: Nhắn mã" in html
    assert "cdn" not in html.lower() and 'src="http' not in html


async def test_revoke_from_the_list(
    client: Client, people: People, tree: AsyncEngine, console_app: App
) -> None:
    csrf = await signed_in_form(client, people.hn_admin)
    made = await create(client, csrf, "HN.BD", pham_vi="mot", uses="5")
    [code] = set(CODE_RE.findall(await made.text()))
    invite = (await stored_invites(tree))[-1]
    listing = await (await client.get("/moi")).text()
    assert "Đảng ủy phường Ba Đình (HN.BD)" in listing and "0/5" in listing
    assert f'name="id" value="{invite.id}"' in listing

    revoked = await client.post(
        "/moi/thu-hoi", data={"csrf": csrf, "id": str(invite.id)}, allow_redirects=False
    )
    assert revoked.status == 303 and revoked.headers["Location"] == f"/moi?thu_hoi={invite.id}"
    page = await (await client.get(revoked.headers["Location"])).text()
    assert f"Đã thu hồi mã mời số {invite.id}" in page
    assert f'name="id" value="{invite.id}"' not in page  # no longer listed as usable
    assert (await stored_invites(tree))[-1].revoked
    reply = await Chat(console_app, user_id="late-comer").say(code)
    assert "Mã mời không hợp lệ" in reply

    # Another scope's invitation: 403; an unknown one: 404.
    admin_chat_csrf = await signed_in_form(client, people.admin)
    await create(client, admin_chat_csrf, "HP", pham_vi="mot")
    hp_invite = (await stored_invites(tree))[-1]
    csrf = await signed_in_form(client, people.hn_admin)
    outside = await client.post("/moi/thu-hoi", data={"csrf": csrf, "id": str(hp_invite.id)})
    assert outside.status == 403
    assert not (await stored_invites(tree))[-1].revoked
    unknown = await client.post("/moi/thu-hoi", data={"csrf": csrf, "id": "99999"})
    assert unknown.status == 404


async def test_navigation_links_the_page(client: Client, people: People, tree: AsyncEngine) -> None:
    await sign_in(client, await get_link(people.hn_admin))
    html = await (await client.get("/tien-do")).text()
    assert '<a href="/moi">Cán bộ và mã mời</a>' in html
    assert '<a class="button secondary" href="/moi?unit=' in html
    bd = await unit_id(tree, "HN.BD")
    preselected = await (await client.get(f"/moi?unit={bd}")).text()
    assert 'name="unit" value="HN.BD"' in preselected
    page = await (await client.get("/moi")).text()
    assert "Phạm vi: Đảng bộ thành phố Hà Nội (HN) và các đơn vị trực thuộc" in page
    assert 'name="viewport"' in page


async def test_a_batch_of_more_than_a_thousand_codes_is_read(
    client: Client, people: People
) -> None:
    """A batch posted back is one form field per code: above aiohttp's default limit of 1,000
    fields (413) up to MAX_BATCH the form is read and checked (here: unknown codes, 403)."""
    csrf = await signed_in_form(client, people.admin)
    rng = random.Random(13)
    codes = [
        "TL-" + "".join(rng.choices(ALPHABET, k=5)) + "-" + "".join(rng.choices(ALPHABET, k=5))
        for _ in range(1_500)
    ]
    for url in ("/moi/bang-ma.xlsx", "/moi/in"):
        answer = await client.post(url, data={"csrf": csrf, "ma": codes})
        assert answer.status == 403, (url, answer.status)
        assert "không tồn tại hoặc không thuộc phạm vi" in await answer.text()
