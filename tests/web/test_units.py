"""«Đơn vị»: the tree one level at a time within the scope, and the import of a CSV/XLSX list
of units — every row problem or a preview first, nothing written, then applied — with the
CLI's rules, the unit admin's subtree, CSRF and escaping."""

from __future__ import annotations

import base64
import html as htmllib
import io
import re

from aiohttp import FormData, web
from aiohttp.test_utils import TestClient
from openpyxl import Workbook
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.storage.db import make_session_factory
from bot.storage.models import AuditEntry, Unit
from tests.conftest import Chat
from tests.web.conftest import People, set_role, unit_id
from tests.web.test_console import csrf_of, get_link, sign_in
from web.units import MAX_FILE

Client = TestClient[web.Request, web.Application]
HEADER = "code,name,level,parent_code\n"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def signed_in(client: Client, chat: Chat) -> str:
    """Sign ``chat``'s person in; the CSRF token of the «Đơn vị» page."""
    assert (await sign_in(client, await get_link(chat))).status == 303
    page = await client.get("/don-vi")
    html = await page.text()
    assert page.status == 200, html
    return csrf_of(html)


async def upload(
    client: Client,
    csrf: str | None,
    content: bytes,
    filename: str = "don-vi.csv",
    content_type: str = "text/csv",
) -> web.StreamResponse:
    form = FormData()
    if csrf is not None:
        form.add_field("csrf", csrf)
    form.add_field("tep", io.BytesIO(content), filename=filename, content_type=content_type)
    return await client.post("/don-vi/xem-truoc", data=form)


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match is not None, f"no hidden field {name}"
    return htmllib.unescape(match.group(1))


async def stored(engine: AsyncEngine) -> dict[str, tuple[str, str, str | None, str]]:
    """code -> (name, level, parent code, path) of every unit."""
    async with make_session_factory(engine)() as session:
        units = list((await session.exec(select(Unit).order_by(col(Unit.id)))).all())
    codes = {u.id: u.code for u in units}
    return {
        u.code: (u.name, u.level, codes.get(u.parent_id) if u.parent_id else None, u.path)
        for u in units
    }


def row_of(html: str, name: str) -> list[str]:
    """The cells of the tree table's row for ``name`` (tags stripped)."""
    for row in re.findall(r"<tr>(.*?)</tr>", html, re.S):
        cells = [
            re.sub(r"<[^>]+>", "", c).strip()
            for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        if cells and cells[0] == name:
            return cells
    raise AssertionError(f"no row for {name}")


# --------------------------------------------------------------------------- the tree


async def test_unit_admin_sees_their_subtree_one_level_with_counts(
    client: Client, people: People, tree: AsyncEngine
) -> None:
    assert (await client.get("/don-vi")).status == 401  # no session
    await signed_in(client, people.hn_admin)
    page = await client.get("/don-vi")
    html = await page.text()
    assert "Đơn vị — Đảng bộ thành phố Hà Nội" in html
    # 3 units below Hà Nội; its unit admin and the official of Ba Đình are enrolled.
    assert "3 đơn vị cấp dưới (mọi cấp) · 2 cán bộ đã đăng ký" in html
    assert row_of(html, "Đảng ủy phường Ba Đình") == [
        "Đảng ủy phường Ba Đình",
        "HN.BD",
        "Cấp xã",
        "1",
        "1",
        "1",
    ]
    assert row_of(html, "Đảng ủy xã Sóc Sơn") == [
        "Đảng ủy xã Sóc Sơn",
        "HN.SS",
        "Cấp xã",
        "0",
        "0",
        "0",
    ]
    assert "Chi bộ khu phố 1" not in html  # one level only: the grandchild is one click away
    assert "Hải Phòng" not in html and "Ban Chấp hành Trung ương" not in html  # scope
    bd = await unit_id(tree, "HN.BD")
    assert f'href="/don-vi?unit={bd}"' in html
    # Drill down: the trail goes back to Hà Nội, not above the person's scope.
    down = await (await client.get(f"/don-vi?unit={bd}")).text()
    assert "Đơn vị — Đảng ủy phường Ba Đình" in down and "Chi bộ khu phố 1" in down
    hn = await unit_id(tree, "HN")
    assert f'<a href="/don-vi?unit={hn}">Đảng bộ thành phố Hà Nội</a>' in down
    assert "Ban Chấp hành Trung ương" not in down
    # Outside the subtree: refused, by id and by code.
    assert (await client.get(f"/don-vi?unit={await unit_id(tree, 'HP')}")).status == 403
    assert (await client.get("/don-vi?ma=hp.ch")).status == 403
    found = await client.get("/don-vi?ma=hn.bd.cb1", allow_redirects=False)
    assert found.status == 303
    assert found.headers["Location"] == f"/don-vi?unit={await unit_id(tree, 'HN.BD.CB1')}"
    missing = await client.get("/don-vi?ma=HN.XX")
    assert missing.status == 404 and "Không tìm thấy đơn vị có mã «HN.XX»" in await missing.text()
    assert (await client.get("/don-vi?unit=tat-ca")).status == 404  # a root admin's view only
    # Made an official: the console is closed.
    await set_role(tree, "hn-admin", "official")
    assert (await client.get("/don-vi")).status == 403


async def test_root_admin_sees_the_whole_tree(
    client: Client, people: People, tree: AsyncEngine
) -> None:
    await signed_in(client, people.admin)
    html = await (await client.get("/don-vi")).text()
    assert "Đơn vị — Ban Chấp hành Trung ương" in html
    assert "6 đơn vị cấp dưới (mọi cấp) · 3 cán bộ đã đăng ký" in html
    assert row_of(html, "Đảng bộ thành phố Hà Nội")[3:] == ["2", "3", "2"]
    assert row_of(html, "Đảng bộ thành phố Hải Phòng")[3:] == ["1", "1", "0"]
    hp_ch = await unit_id(tree, "HP.CH")
    assert (await client.get(f"/don-vi?unit={hp_ch}")).status == 200
    assert "Toàn hệ thống" not in html  # one root: nothing above it to show

    # A second root: «Toàn hệ thống» lists both, with their counts.
    csrf = csrf_of(html)
    preview = await (
        await upload(client, csrf, (HEADER + "KHAC,Đơn vị khác,trung_uong,\n").encode())
    ).text()
    done = await client.post(
        "/don-vi/ap-dung",
        data={"csrf": csrf, "ten": hidden(preview, "ten"), "tep": hidden(preview, "tep")},
    )
    assert done.status == 200
    html = await (await client.get("/don-vi")).text()
    assert '<a href="/don-vi?unit=tat-ca">Toàn hệ thống</a>' in html
    everything = await (await client.get("/don-vi?unit=tat-ca")).text()
    assert "Đơn vị — toàn hệ thống" in everything and "Đơn vị gốc (2)" in everything
    assert "8 đơn vị · 3 cán bộ đã đăng ký" in everything
    assert row_of(everything, "Ban Chấp hành Trung ương")[3:] == ["2", "6", "3"]
    assert row_of(everything, "Đơn vị khác")[3:] == ["0", "0", "0"]


async def test_officials_have_no_units_page(client: Client, people: People) -> None:
    refused = await people.official.say("/web")
    assert "/dang-nhap/" not in refused  # no link for an official
    assert (await client.get("/don-vi")).status == 401
    assert (await client.post("/don-vi/xem-truoc", data={"csrf": "x"})).status == 403


# --------------------------------------------------------------------------- import


async def test_csrf_is_required(client: Client, people: People, tree: AsyncEngine) -> None:
    csrf = await signed_in(client, people.admin)
    before = await stored(tree)
    good = (HEADER + "HN.NEW,Chi bộ mới,co_so,HN\n").encode()
    assert (await upload(client, None, good)).status == 403
    assert (await upload(client, "sai", good)).status == 403
    encoded = base64.b64encode(good).decode()
    forged = await client.post("/don-vi/ap-dung", data={"ten": "a.csv", "tep": encoded})
    assert forged.status == 403 and "thiếu mã bảo vệ" in await forged.text()
    assert await stored(tree) == before
    assert (await upload(client, csrf, good)).status == 200  # the real token works


async def test_bad_rows_are_all_shown_and_nothing_is_written(
    client: Client, people: People, tree: AsyncEngine
) -> None:
    csrf = await signed_in(client, people.admin)
    before = await stored(tree)
    text = (
        HEADER
        + "HN.NEW,Chi bộ mới,co_so,HN\n"
        + "HN.X,Tên,tinh,HN\n"  # row 3
        + "HN.Y,,xa,KHONG\n"  # row 4: two problems
    )
    page = await upload(client, csrf, text.encode())
    html = await page.text()
    assert page.status == 400
    assert "Tệp chưa nhập được (3 lỗi)" in html
    assert "dòng 3: cấp «tinh» không đúng" in html
    assert "dòng 4: thiếu tên đơn vị (cột name)" in html
    assert "dòng 4: không có đơn vị cấp trên mã «KHONG»" in html
    assert "/don-vi/ap-dung" not in html  # nothing to apply
    assert await stored(tree) == before
    # A file of another kind, and no file.
    other = await upload(client, csrf, b"x", filename="don-vi.pdf", content_type="application/pdf")
    assert "tệp don-vi.pdf: chỉ nhận tệp .csv (UTF-8) hoặc .xlsx" in await other.text()
    empty = await client.post("/don-vi/xem-truoc", data={"csrf": csrf})
    assert empty.status == 400 and "chưa chọn tệp" in await empty.text()


async def test_preview_then_apply(client: Client, people: People, tree: AsyncEngine) -> None:
    csrf = await signed_in(client, people.admin)
    before = await stored(tree)
    text = (
        HEADER
        + "HN.SS,Đảng ủy xã Sóc Sơn (mới),xa,HN\n"
        + "HN.NEW,Chi bộ mới,co_so,HN.SS\n"
        + "HN.BD,Đảng ủy phường Ba Đình,xa,HN\n"
    )
    page = await upload(client, csrf, text.encode())
    html = await page.text()
    assert page.status == 200, html
    assert "Tệp có 3 dòng: sẽ thêm mới 1 đơn vị, cập nhật 1, giữ nguyên 1." in html
    assert '<s class="muted">Đảng ủy xã Sóc Sơn</s> → Đảng ủy xã Sóc Sơn (mới)' in html
    assert "Chi bộ mới" in html
    assert await stored(tree) == before  # a preview writes nothing

    done = await client.post(
        "/don-vi/ap-dung",
        data={"csrf": hidden(html, "csrf"), "ten": hidden(html, "ten"), "tep": hidden(html, "tep")},
    )
    result = await done.text()
    assert done.status == 200, result
    assert "Tệp don-vi.csv — Đã đọc 3 dòng: thêm mới 1 đơn vị, cập nhật 1, giữ nguyên 1." in result
    after = await stored(tree)
    assert after["HN.SS"][:3] == ("Đảng ủy xã Sóc Sơn (mới)", "xa", "HN")
    assert after["HN.NEW"][:3] == ("Chi bộ mới", "co_so", "HN.SS")
    assert after["HN.NEW"][3].startswith(after["HN.SS"][3])  # the path: below Sóc Sơn
    assert len(after) == len(before) + 1
    async with make_session_factory(tree)() as session:
        logged = (await session.exec(select(AuditEntry))).all()
    imports = [entry for entry in logged if entry.action == "units.import"]
    assert [(entry.via, entry.summary) for entry in imports] == [
        ("web", "Nhập danh sách 3 đơn vị: thêm mới 1, cập nhật 1, giữ nguyên 1.")
    ]
    # The same file again: nothing left to change, no button.
    again = await (await upload(client, csrf, text.encode())).text()
    assert "giữ nguyên 3." in again and "không có gì cần thay đổi" in again
    assert "/don-vi/ap-dung" not in again


async def test_xlsx_upload(client: Client, people: People, tree: AsyncEngine) -> None:
    csrf = await signed_in(client, people.hn_admin)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["code", "name", "level", "parent_code"])
    sheet.append([2024, "Chi bộ số 2024", "co_so", "HN.SS"])  # a code typed as a number
    body = io.BytesIO()
    book.save(body)
    page = await upload(client, csrf, body.getvalue(), "don-vi.xlsx", XLSX)
    html = await page.text()
    assert page.status == 200, html
    assert "sẽ thêm mới 1 đơn vị" in html and "Chi bộ số 2024" in html
    done = await client.post(
        "/don-vi/ap-dung",
        data={"csrf": csrf, "ten": hidden(html, "ten"), "tep": hidden(html, "tep")},
    )
    assert done.status == 200, await done.text()
    assert (await stored(tree))["2024"][:3] == ("Chi bộ số 2024", "co_so", "HN.SS")


async def test_a_unit_admin_imports_only_below_their_unit(
    client: Client, people: People, tree: AsyncEngine
) -> None:
    csrf = await signed_in(client, people.hn_admin)
    before = await stored(tree)
    text = (
        HEADER
        + "HN.NEW,Chi bộ mới,co_so,HN.BD\n"
        + "HP.X,Chi bộ Hải Phòng,co_so,HP\n"
        + "HP.CH,Đảng ủy phường Cát Hải,xa,HN\n"
        + "HN,Hà Nội đổi tên,truc_thuoc_tw,TW\n"
    )
    page = await upload(client, csrf, text.encode())
    html = await page.text()
    assert page.status == 400
    assert "dòng 3: đơn vị cấp trên «HP» không thuộc phạm vi đồng chí quản lý" in html
    assert "dòng 4: đơn vị «HP.CH» đã có và không thuộc phạm vi đồng chí quản lý" in html
    assert "dòng 5: «HN» là đơn vị gốc trong phạm vi của đồng chí" in html
    assert "Đồng chí chỉ nhập được các đơn vị thuộc Đảng bộ thành phố Hà Nội (HN)." in html
    # The apply form forged with the same file: checked again on the server, refused.
    forged = await client.post(
        "/don-vi/ap-dung",
        data={"csrf": csrf, "ten": "don-vi.csv", "tep": base64.b64encode(text.encode()).decode()},
    )
    assert forged.status == 400
    assert "dòng 3: đơn vị cấp trên «HP» không thuộc phạm vi" in await forged.text()
    assert await stored(tree) == before
    # What the root admin may do, the unit admin may not, even one row at a time.
    one = (HEADER + "HP.X,Chi bộ Hải Phòng,co_so,HP\n").encode()
    refused = await client.post(
        "/don-vi/ap-dung",
        data={"csrf": csrf, "ten": "a.csv", "tep": base64.b64encode(one).decode()},
    )
    assert refused.status == 400 and "HP.X" not in await stored(tree)


async def test_bad_apply_forms_and_large_files(
    client: Client, people: People, tree: AsyncEngine
) -> None:
    csrf = await signed_in(client, people.admin)
    garbled = await client.post("/don-vi/ap-dung", data={"csrf": csrf, "ten": "a.csv", "tep": "%%"})
    assert garbled.status == 400 and "tải tệp lên lại" in await garbled.text()
    large = (HEADER + "X" * MAX_FILE).encode()
    too_large = await upload(client, csrf, large)
    assert too_large.status == 413 and "Tệp quá lớn" in await too_large.text()


async def test_names_are_escaped(client: Client, people: People, tree: AsyncEngine) -> None:
    csrf = await signed_in(client, people.admin)
    name = '<script>alert("x")</script>'
    text = HEADER + f'HN.XSS,"{name.replace(chr(34), chr(34) * 2)}",co_so,HN\n'
    page = await upload(client, csrf, text.encode())
    html = await page.text()
    assert page.status == 200, html
    assert "<script>" not in html and "&lt;script&gt;alert(" in html
    done = await client.post(
        "/don-vi/ap-dung",
        data={"csrf": csrf, "ten": hidden(html, "ten"), "tep": hidden(html, "tep")},
    )
    assert done.status == 200
    assert (await stored(tree))["HN.XSS"][0] == name
    listing = await (await client.get(f"/don-vi?unit={await unit_id(tree, 'HN')}")).text()
    assert (
        "<script>" not in listing and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in listing
    )
