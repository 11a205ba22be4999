"""Reminders, escalations and the weekly digest, fired with a fixed clock (no sleeping)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.app import App
from bot.storage.db import make_session_factory
from bot.storage.models import OutboxMessage, PersonChannel
from scheduler.policy import PushPolicy
from scheduler.reminders import fire_reminder, weekly_digest
from tests.fakes.telegram import FakeTelegram, plain
from tests.progress.conftest import Enrol, invite_code
from tests.progress.test_rollup import report_for

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
POLICY = PushPolicy(zone=ZONE)
TASK = "dai-hoi-thang-8"


def at(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=ZONE).astimezone(UTC)


async def fire(engine: AsyncEngine, kind: str, number: int, now: datetime) -> tuple[int, int]:
    async with make_session_factory(engine)() as session:
        result = await fire_reminder(
            session, task_code=TASK, kind=kind, number=number, now=now, policy=POLICY
        )
        await session.commit()
        return result


async def outbox(engine: AsyncEngine, kind: str | None = None) -> list[OutboxMessage]:
    async with make_session_factory(engine)() as session:
        statement = select(OutboxMessage).order_by(col(OutboxMessage.id))
        if kind is not None:
            statement = statement.where(OutboxMessage.kind == kind)
        return list((await session.exec(statement)).all())


async def people(enrol: Enrol) -> None:
    await enrol("HN.BD", "official", user_id="bd", channel="console")
    await enrol("HN.SS", "official", user_id="ss", channel="telegram", buttons=True)
    await enrol("HN", "unit_admin", user_id="hn-admin", channel="zalo")
    await enrol("TW", "admin", user_id="boss", channel="telegram", buttons=True)


async def test_recipients_are_computed_when_the_reminder_fires(
    tree: AsyncEngine, enrol: Enrol
) -> None:
    await people(enrol)
    await report_for(tree, "HN.BD", "done")  # Ba Đình is done before the reminder fires
    assert await fire(tree, "before", 3, at(2025, 8, 28, 8)) == (1, 0)
    [row] = await outbox(tree)
    assert (row.channel, row.chat_id, row.kind) == ("telegram", "ss", "reminder")
    assert row.text.startswith("NHẮC VIỆC: Hoàn thành đại hội đảng bộ cấp trên trực tiếp")
    assert "Đơn vị: Đảng ủy xã Sóc Sơn" in row.text
    assert "Hạn: 31/8/2025 (còn 3 ngày)." in row.text
    assert "Tình trạng đã báo cáo: chưa báo cáo." in row.text
    assert "Căn cứ: bản tin VTC News ngày 22/8/2025 về Kết luận số 185" in row.text
    assert row.buttons[0][0]["label"] == "Báo cáo ngay"
    assert row.buttons[0][0]["payload"].startswith("bc:go:")
    assert row.next_attempt_at == at(2025, 8, 28, 8)  # daytime: at once
    # The same reminder firing again (a restart inside the grace window) plans nothing.
    assert await fire(tree, "before", 3, at(2025, 8, 28, 9)) == (0, 0)


async def test_console_and_zalo_get_a_typed_path_instead_of_a_button(
    tree: AsyncEngine, enrol: Enrol
) -> None:
    await enrol("HN.BD", "official", user_id="bd", channel="zalo")
    await fire(tree, "before", 0, at(2025, 8, 31, 8))
    [row] = await outbox(tree)
    assert "hôm nay là hạn cuối" in row.text
    assert row.buttons == [] and row.text.endswith("Gõ /baocao để cập nhật tiến độ.")


async def test_quiet_hours_defer_the_push(tree: AsyncEngine, enrol: Enrol) -> None:
    await enrol("HN.SS", "official", user_id="ss", channel="telegram", buttons=True)
    await fire(tree, "before", 1, at(2025, 8, 30, 22, 30))  # caught up late in the evening
    [row] = await outbox(tree)
    assert row.next_attempt_at == at(2025, 8, 31, 7)
    assert row.status == "pending"


async def test_blocked_people_and_people_on_two_channels(
    tree: AsyncEngine, enrol: Enrol, app: App
) -> None:
    await enrol("HN.SS", "official", user_id="ss", channel="telegram", buttons=True)
    await enrol("HN.BD", "official", user_id="bd", channel="zalo")
    async with make_session_factory(tree)() as session:
        await session.exec(
            update(PersonChannel)
            .where(col(PersonChannel.user_id) == "ss")
            .values(blocked_at=at(2025, 8, 25, 9))
        )
        await session.commit()
    await fire(tree, "before", 3, at(2025, 8, 28, 8))
    assert [r.chat_id for r in await outbox(tree)] == ["bd"]  # the blocked one gets nothing


async def test_overdue_reminders_escalate_to_the_parents_unit_admins(
    tree: AsyncEngine, enrol: Enrol
) -> None:
    await people(enrol)
    await report_for(tree, "HN.BD", "done")
    assert await fire(tree, "overdue", 1, at(2025, 9, 3, 8)) == (1, 1)
    [reminder] = await outbox(tree, "reminder")
    assert reminder.text.startswith("NHẮC VIỆC QUÁ HẠN") and "đã quá hạn 3 ngày" in reminder.text
    [escalation] = await outbox(tree, "escalation")
    assert escalation.chat_id == "hn-admin" and escalation.channel == "zalo"
    assert (
        "1 đơn vị thuộc Đảng bộ thành phố Hà Nội chưa báo cáo hoàn thành: Đảng ủy xã Sóc Sơn"
        in (escalation.text)
    )
    assert "Cát Hải" not in escalation.text  # Hải Phòng's units go to Hải Phòng's admins
    assert await fire(tree, "overdue", 1, at(2025, 9, 3, 9)) == (0, 0)
    assert await fire(tree, "overdue", 2, at(2025, 9, 6, 8)) == (1, 1)  # the next round


async def test_a_before_reminder_caught_up_after_the_deadline_is_dropped(
    tree: AsyncEngine, enrol: Enrol
) -> None:
    await enrol("HN.SS", "official", user_id="ss", channel="telegram", buttons=True)
    assert await fire(tree, "before", 0, at(2025, 9, 1, 8)) == (0, 0)


async def test_the_reminder_button_opens_the_report(tree: AsyncEngine, app: App) -> None:
    code = await invite_code(tree, "HN.SS", "official")
    telegram = FakeTelegram(app)
    await telegram.send_text(code, user_id=77)
    await fire(tree, "before", 3, at(2025, 8, 28, 8))
    [row] = await outbox(tree)
    [menu] = await telegram.press(row.buttons[0][0]["payload"], user_id=77)
    text = plain(menu.params["text"])
    assert "Nhiệm vụ: Hoàn thành đại hội đảng bộ cấp trên trực tiếp" in text
    assert "Tình trạng hiện nay?" in text


async def test_weekly_digest_once_a_week(tree: AsyncEngine, enrol: Enrol) -> None:
    await people(enrol)
    await report_for(tree, "HN.BD", "done")
    monday = at(2025, 9, 8, 8)
    async with make_session_factory(tree)() as session:
        assert await weekly_digest(session, now=monday, policy=POLICY) == 2
        assert await weekly_digest(session, now=monday, policy=POLICY) == 0
        await session.commit()
    digests = {r.chat_id: r.text for r in await outbox(tree, "digest")}
    assert set(digests) == {"hn-admin", "boss"}
    assert digests["hn-admin"].startswith("TỔNG HỢP TIẾN ĐỘ TUẦN — Đảng bộ thành phố Hà Nội")
    assert "1/2 hoàn thành (50%)" in digests["hn-admin"]
    assert "1 đơn vị quá hạn" in digests["hn-admin"]
    assert "1/3 hoàn thành (33%)" in digests["boss"]  # the whole country
    async with make_session_factory(tree)() as session:
        next_week = await weekly_digest(session, now=at(2025, 9, 15, 8), policy=POLICY)
        assert next_week == 2
