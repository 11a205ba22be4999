"""«Thông báo» in the web console: compose, preview (people per channel, the start time,
the text as received), confirm once, follow, stop, and the final report — delivered by the
real outbox sender through the real aiogram client to the fake Bot API server."""

from __future__ import annotations

import asyncio
import html as htmllib
import re
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select, text
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage.db import create_engine, make_session_factory
from bot.storage.models import (
    AuditEntry,
    Broadcast,
    OutboxMessage,
    Person,
    PersonChannel,
    Unit,
)
from handlers.broadcast import Audience, send_once
from handlers.people import Identity
from scheduler.transports import TelegramTransport
from tests.conftest import Chat, Clock
from tests.fakes.botapi_server import FakeBotAPI
from tests.progress.conftest import Enrol
from tests.progress.test_rollup import report_for
from tests.scheduler.conftest import make_sender, run_until
from tests.web.conftest import People, set_role
from tests.web.test_console import csrf_of, get_link, sign_in

Client = TestClient[web.Request, web.Application]
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
HIDDEN = re.compile(r'<input type="hidden" name="(\w+)" value="([^"]*)">')
TEXT = "<script>alert(1)</script> Kính gửi các đồng chí: họp giao ban lúc 14:00 thứ Hai."


async def open_page(client: Client, chat: Chat) -> str:
    """Sign ``chat`` in and open «Thông báo»; returns the page's CSRF token."""
    assert (await sign_in(client, await get_link(chat))).status == 303
    page = await client.get("/thong-bao")
    html = await page.text()
    assert page.status == 200, html
    return csrf_of(html)


async def preview(client: Client, csrf: str, kind: str, **fields: str) -> web.StreamResponse:
    data = {"csrf": csrf, "noi_dung": TEXT, "doi_tuong": kind} | fields
    return await client.post("/thong-bao/xem-truoc", data=data)


def words(html: str) -> str:
    """What the page says, tags left out."""
    return " ".join(htmllib.unescape(re.sub(r"<[^>]+>", "", html)).split())


def confirm_form(html: str) -> dict[str, str]:
    """The hidden fields of the preview's confirmation form, as the browser would send them."""
    start = html.index('action="/thong-bao/gui"')
    form = html[start : html.index("</form>", start)]
    return {name: htmllib.unescape(value) for name, value in HIDDEN.findall(form)}


async def send(client: Client, form: dict[str, str], **extra: str) -> int:
    sent = await client.post("/thong-bao/gui", data=form | extra, allow_redirects=False)
    assert sent.status == 303, await sent.text()
    match = re.fullmatch(r"/thong-bao/(\d+)\?da-(xep|gui-truoc)=1", sent.headers["Location"])
    assert match is not None, sent.headers["Location"]
    return int(match.group(1))


async def broadcasts(engine: AsyncEngine) -> list[Broadcast]:
    async with make_session_factory(engine)() as session:
        return list((await session.exec(select(Broadcast).order_by(col(Broadcast.id)))).all())


async def rows_of(engine: AsyncEngine, broadcast_id: int) -> list[OutboxMessage]:
    async with make_session_factory(engine)() as session:
        found = await session.exec(
            select(OutboxMessage).where(OutboxMessage.broadcast_id == broadcast_id)
        )
        return list(found.all())


@pytest.fixture
async def api() -> AsyncIterator[FakeBotAPI]:
    async with FakeBotAPI(blocked={"tg-blocked"}, always={"tg-gone": "400"}) as server:
        yield server


@pytest.fixture
async def telegram(api: FakeBotAPI) -> AsyncIterator[TelegramTransport]:
    bot = Bot(api.token, session=AiohttpSession(api=TelegramAPIServer.from_base(api.url)))
    yield TelegramTransport(bot, request_timeout=5)
    await bot.session.close()


async def test_preview_counts_per_channel_and_confirming_twice_sends_once(
    client: Client, people: People, tree: AsyncEngine, enrol: Enrol, clock: Clock
) -> None:
    await enrol("HN.BD", "official", user_id="bd", channel="telegram")
    await enrol("HN.SS", "official", user_id="ss", channel="telegram")
    await enrol("HP.CH", "official", user_id="ch", channel="zalo")
    csrf = await open_page(client, people.admin)

    shown = await preview(client, csrf, "level", cap="xa")
    html = await shown.text()
    assert shown.status == 200, html
    # The text as it will appear, escaped: a <script> in it is shown, never run.
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Kính gửi" in html
    assert "THÔNG BÁO của Ban Chấp hành Trung ương" in html
    # Four people at commune level: the official of Ba Đình (terminal), two on Telegram,
    # one on Zalo; delivery starts at once (10:00 on a Wednesday).
    assert "Gửi cho cán bộ các đơn vị cấp xã: 4 người" in html
    assert "(Máy tính: 1, Telegram: 2, Zalo: 1)" in html
    assert "Bắt đầu gửi ngay khi đồng chí xác nhận (10:00 ngày 20/8/2025)" in html
    assert "Xác nhận gửi cho 4 người" in html
    assert await broadcasts(tree) == []  # a preview creates nothing

    form = confirm_form(html)
    assert form["doi_tuong"] == "level:xa" and form["noi_dung"] == TEXT
    first = await send(client, form)
    again = await send(client, form)  # a double click, or the form sent again
    assert again == first
    [broadcast] = await broadcasts(tree)
    assert (broadcast.id, broadcast.total, broadcast.text) == (first, 4, TEXT)
    rows = await rows_of(tree, first)
    assert Counter(r.channel for r in rows) == {"console": 1, "telegram": 2, "zalo": 1}
    assert {r.chat_id for r in rows} == {"official", "bd", "ss", "ch"}
    assert all(r.text.startswith("THÔNG BÁO của Ban Chấp hành Trung ương") for r in rows)

    detail = await client.get(f"/thong-bao/{first}?da-gui-truoc=1")
    page = await detail.text()
    assert "đã được tạo trước đó, không gửi lại" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    listing = await (await client.get("/thong-bao")).text()
    assert f'href="/thong-bao/{first}"' in listing
    assert "cán bộ các đơn vị cấp xã" in listing and "đang gửi" in listing

    # A new preview of the same text, later, is a new broadcast (meant to be sent again).
    clock.advance(minutes=5)
    again_html = await (await preview(client, csrf, "level", cap="xa")).text()
    assert await send(client, confirm_form(again_html)) != first
    assert len(await broadcasts(tree)) == 2


async def test_a_unit_admin_broadcasts_only_within_their_subtree(
    client: Client, people: People, tree: AsyncEngine, enrol: Enrol
) -> None:
    await enrol("HN.SS", "official", user_id="ss", channel="telegram")
    await enrol("HP.CH", "official", user_id="ch", channel="zalo")
    csrf = await open_page(client, people.hn_admin)
    page = await (await client.get("/thong-bao")).text()
    assert "Phạm vi: Đảng bộ thành phố Hà Nội (HN)" in page
    # Hà Nội's people: its admin, the Ba Đình official, the Sóc Sơn official.
    assert "tất cả cán bộ trong phạm vi (3 người)" in page
    assert 'value="trung_uong"' not in page  # no level outside the subtree is offered

    everyone = await (await preview(client, csrf, "all")).text()
    assert "Gửi cho tất cả cán bộ trong phạm vi: 3 người" in everyone
    assert "Zalo" not in everyone  # Cát Hải's official (Zalo) is outside

    outside = await preview(client, csrf, "unit", don_vi="HP")
    assert outside.status == 403
    assert "không thuộc phạm vi" in await outside.text()
    form = confirm_form(everyone) | {"doi_tuong": "unit:HP"}  # a form altered by hand
    assert (await client.post("/thong-bao/gui", data=form)).status == 403
    assert await broadcasts(tree) == []

    # The root admin's broadcast is not the unit admin's to follow or stop.
    ours = await send(client, confirm_form(everyone))
    other = Client(client.server)
    admin_csrf = await open_page(other, people.admin)
    theirs = await send(other, confirm_form(await (await preview(other, admin_csrf, "all")).text()))
    assert (await client.get(f"/thong-bao/{theirs}")).status == 403
    assert (await client.get(f"/thong-bao/{theirs}/tien-do")).status == 403
    stopped = await client.post(f"/thong-bao/{theirs}/huy", data={"csrf": csrf})
    assert stopped.status == 403
    listing = await (await client.get("/thong-bao")).text()
    assert f'href="/thong-bao/{ours}"' in listing and f'href="/thong-bao/{theirs}"' not in listing
    # The root admin follows both.
    assert (await other.get(f"/thong-bao/{ours}")).status == 200
    await other.close()


async def test_sign_in_csrf_and_officials(
    client: Client, people: People, tree: AsyncEngine
) -> None:
    assert (await client.get("/thong-bao")).status == 401
    csrf = await open_page(client, people.hn_admin)
    html = await (await preview(client, csrf, "all")).text()
    form = confirm_form(html)
    for path, data in (
        ("/thong-bao/xem-truoc", {"noi_dung": TEXT, "doi_tuong": "all"}),
        ("/thong-bao/gui", {k: v for k, v in form.items() if k != "csrf"}),
        ("/thong-bao/gui", form | {"csrf": "x" * 64}),
    ):
        refused = await client.post(path, data=data)
        assert refused.status == 403, path
        assert "thiếu mã bảo vệ" in await refused.text()
    assert await broadcasts(tree) == []
    broadcast_id = await send(client, form)
    assert (await client.post(f"/thong-bao/{broadcast_id}/huy", data={})).status == 403
    assert [b.status for b in await broadcasts(tree)] == ["sending"]
    # Made an official: no broadcasts page any more.
    await set_role(tree, "hn-admin", "official")
    assert (await client.get("/thong-bao")).status == 403
    assert (await client.get(f"/thong-bao/{broadcast_id}/tien-do")).status == 403
    assert (await preview(client, csrf, "all")).status == 403


async def test_problems_are_shown_with_the_draft_kept(client: Client, people: People) -> None:
    csrf = await open_page(client, people.admin)
    empty = await client.post(
        "/thong-bao/xem-truoc", data={"csrf": csrf, "noi_dung": "  ", "doi_tuong": "all"}
    )
    assert empty.status == 400 and "Nội dung thông báo đang trống" in await empty.text()
    long = await preview(client, csrf, "all", noi_dung="a" * 1801)
    assert long.status == 400 and "tối đa 1.800 ký tự" in await long.text()
    unknown = await preview(client, csrf, "unit", don_vi="XX.YY")
    page = await unknown.text()
    assert unknown.status == 400 and "Không tìm thấy đơn vị có mã XX.YY" in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Kính gửi" in page  # the draft is kept


async def test_quiet_hours_hold_the_start_unless_urgent(
    client: Client, people: People, tree: AsyncEngine, clock: Clock
) -> None:
    clock.now = datetime(2025, 8, 20, 22, 30, tzinfo=ZONE).astimezone(UTC)
    csrf = await open_page(client, people.admin)
    html = await (await preview(client, csrf, "unit", don_vi="hn.bd")).text()
    assert "Gửi cho cán bộ Đảng ủy phường Ba Đình và các đơn vị trực thuộc: 1 người" in html
    assert "bắt đầu gửi lúc 07:00 ngày 21/8/2025" in html
    assert "Gửi ngay cho 1 người (khẩn)" in html
    held = await send(client, confirm_form(html))
    [row] = await rows_of(tree, held)
    morning = datetime(2025, 8, 21, 7, tzinfo=ZONE)
    assert row.next_attempt_at == morning.astimezone(UTC)
    detail = await (await client.get(f"/thong-bao/{held}")).text()
    assert "sẽ bắt đầu gửi lúc 07:00 ngày 21/8/2025" in detail

    clock.advance(minutes=1)
    html = await (await preview(client, csrf, "unit", don_vi="HN.BD")).text()
    urgent = await send(client, confirm_form(html), khan="1")
    [row] = await rows_of(tree, urgent)
    assert row.next_attempt_at == clock.now


async def test_units_late_on_a_task(
    client: Client, people: People, tree: AsyncEngine, enrol: Enrol, clock: Clock
) -> None:
    await enrol("HN.SS", "official", user_id="ss", channel="telegram")
    await enrol("HP.CH", "official", user_id="ch", channel="zalo")
    await report_for(tree, "HN.BD", "done")
    clock.now = datetime(2025, 9, 2, 2, tzinfo=UTC)  # the August congress is two days late
    csrf = await open_page(client, people.admin)
    page = await (await client.get("/thong-bao")).text()
    assert 'value="dai-hoi-thang-8"' in page
    html = await (await preview(client, csrf, "late", nhiem_vu="dai-hoi-thang-8")).text()
    assert "Gửi cho cán bộ các đơn vị quá hạn nhiệm vụ «" in html
    assert ": 2 người (Telegram: 1, Zalo: 1)" in words(html)  # Ba Đình reported done
    sent = await send(client, confirm_form(html))
    assert {r.chat_id for r in await rows_of(tree, sent)} == {"ss", "ch"}


async def test_stopping_cancels_what_is_not_sent(
    client: Client,
    people: People,
    tree: AsyncEngine,
    enrol: Enrol,
    api: FakeBotAPI,
    telegram: TelegramTransport,
) -> None:
    for n in range(3):
        await enrol("HN.SS", "official", user_id=f"ss{n}", channel="telegram")
    csrf = await open_page(client, people.admin)
    html = await (await preview(client, csrf, "unit", don_vi="HN.SS")).text()
    broadcast_id = await send(client, confirm_form(html))
    page = await (await client.get(f"/thong-bao/{broadcast_id}")).text()
    assert f'action="/thong-bao/{broadcast_id}/huy"' in page

    stopped = await client.post(
        f"/thong-bao/{broadcast_id}/huy", data={"csrf": csrf}, allow_redirects=False
    )
    assert stopped.status == 303
    assert stopped.headers["Location"] == f"/thong-bao/{broadcast_id}?da-dung=1"
    sender = make_sender(make_session_factory(tree), telegram)
    await sender.run(until_idle=True)  # starts, finds nothing left to send
    assert api.delivered() == []
    assert {r.status for r in await rows_of(tree, broadcast_id)} == {"cancelled"}
    page = await (await client.get(f"/thong-bao/{broadcast_id}?da-dung=1")).text()
    assert f"Đã dừng thông báo #{broadcast_id}" in page
    assert "Đã dừng lúc" in page and "Đã nhận: <strong>0/3</strong>" in page
    assert "Đã hủy trước khi gửi: 3" in page
    assert "data-progress-url" not in page and "Dừng gửi" not in page
    async with make_session_factory(tree)() as session:
        logged = (await session.exec(select(AuditEntry).order_by(col(AuditEntry.id)))).all()
    assert [(e.via, e.action) for e in logged if e.action.startswith("broadcast.")] == [
        ("web", "broadcast.send"),
        ("web", "broadcast.cancel"),
    ]


async def test_progress_then_the_final_report(
    client: Client,
    people: People,
    tree: AsyncEngine,
    enrol: Enrol,
    api: FakeBotAPI,
    telegram: TelegramTransport,
) -> None:
    for user in ("tg-ok", "tg-blocked", "tg-gone"):
        await enrol("HN.SS", "official", user_id=user, channel="telegram")
    csrf = await open_page(client, people.admin)
    html = await (await preview(client, csrf, "unit", don_vi="HN.SS")).text()
    assert "3 người (Telegram: 3)" in words(html)
    broadcast_id = await send(client, confirm_form(html))

    # Before the sender runs: the page follows the progress (script, or a refresh without it).
    page = await (await client.get(f"/thong-bao/{broadcast_id}")).text()
    assert f'data-progress-url="/thong-bao/{broadcast_id}/tien-do"' in page
    assert '<noscript><meta http-equiv="refresh" content="5"></noscript>' in page
    assert '<script src="/static/broadcasts.js"></script>' in page
    figures = await (await client.get(f"/thong-bao/{broadcast_id}/tien-do")).json()
    assert figures["finished"] is False and figures["state"] == "đang gửi"
    assert (figures["total"], figures["waiting"], figures["sent"]) == (3, 3, 0)

    sender = make_sender(make_session_factory(tree), telegram)

    async def done() -> bool:
        state = await client.get(f"/thong-bao/{broadcast_id}/tien-do")
        return bool((await state.json())["finished"])

    await run_until(sender, done)
    [delivered] = api.delivered()
    assert delivered.chat_id == "tg-ok"
    assert delivered.text.startswith("THÔNG BÁO của Ban Chấp hành Trung ương")
    assert "&lt;script&gt;" in delivered.text  # Telegram's HTML mode shows it as text

    figures = await (await client.get(f"/thong-bao/{broadcast_id}/tien-do")).json()
    assert (figures["sent"], figures["blocked"], figures["failed"]) == (1, 1, 1)
    assert figures["state"] == "đã gửi xong" and figures["waiting"] == 0
    page = await (await client.get(f"/thong-bao/{broadcast_id}")).text()
    assert "Đã gửi xong lúc" in page
    assert "Đã nhận: <strong>1/3</strong> người" in page
    assert "Không gửi được: 1" in page and "chat not found (1)" in page
    assert "Đã chặn trợ lý: 1" in page
    assert "data-progress-url" not in page and "http-equiv" not in page
    listing = await (await client.get("/thong-bao")).text()
    assert "đã gửi xong" in listing


async def test_static_script_is_served(client: Client) -> None:
    script = await client.get("/static/broadcasts.js")
    assert script.status == 200
    body = await script.text()
    assert "data-progress-url" in body and "location.replace" in body


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_two_confirmations_at_the_same_moment_make_one_broadcast(db_url: str) -> None:
    """The second submission waits on the author's row until the first commits, then finds
    the broadcast it made (PostgreSQL, where the console runs on several workers)."""
    engine = create_engine(db_url)
    sessions = make_session_factory(engine)
    now = datetime(2025, 8, 20, 3, tzinfo=UTC)
    async with sessions() as session:
        unit = Unit(code="TW", name="Ban Chấp hành Trung ương", level="trung_uong")
        session.add(unit)
        await session.flush()
        assert unit.id is not None
        admin = Person(name="Nguyễn Văn An", unit_id=unit.id, role="admin")
        reader = Person(name="Trần Thị Bình", unit_id=unit.id, role="official")
        session.add_all([admin, reader])
        await session.flush()
        assert reader.id is not None
        session.add(
            PersonChannel(person_id=reader.id, channel="telegram", user_id="b", chat_id="b")
        )
        await session.commit()
        identity = Identity(admin, unit)

    async def confirm(session: AsyncSession) -> tuple[Broadcast, bool]:
        return await send_once(
            session,
            identity=identity,
            text="Họp giao ban lúc 14:00.",
            audience=Audience("all"),
            previewed_at=now,
            today=now,
            now=now,
            next_allowed=None,
        )

    async def waiting_on_a_lock(session: AsyncSession) -> bool:
        found = await session.exec(
            text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
        )
        return bool(found.one()[0])

    try:
        async with sessions() as first, sessions() as second, sessions() as watcher:
            made, created = await confirm(first)  # not committed yet
            assert created
            racing = asyncio.create_task(confirm(second))
            for _ in range(500):  # until the second is blocked on the lock (or has finished)
                if racing.done() or await waiting_on_a_lock(watcher):
                    break
                await asyncio.sleep(0.01)
            assert not racing.done()
            await first.commit()
            found, created_again = await racing
            await second.commit()
        assert (found.id, created_again) == (made.id, False)
        assert [b.id for b in await broadcasts(engine)] == [made.id]
    finally:
        await engine.dispose()
