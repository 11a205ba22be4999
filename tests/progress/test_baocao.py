"""/baocao: confirm progress in a few taps; an auditable, append-only history."""

from __future__ import annotations

import logging
from datetime import date

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.app import EXPIRED_NOTICE, App
from bot.render import plain_text
from bot.storage.db import make_session_factory
from bot.storage.models import ProgressEvent, ProgressStatus, Task, Unit
from handlers.progress import NOT_ENROLLED, is_progress_statement
from tests.conftest import Chat, Clock, make_app
from tests.fakes.telegram import FakeTelegram, plain
from tests.helpers import numbered_choice
from tests.progress.conftest import Enrol, invite_code


async def events(engine: AsyncEngine) -> list[ProgressEvent]:
    async with make_session_factory(engine)() as session:
        rows = await session.exec(select(ProgressEvent).order_by(col(ProgressEvent.id)))
        return list(rows.all())


async def status_of(engine: AsyncEngine, unit_code: str, task_code: str) -> ProgressStatus | None:
    async with make_session_factory(engine)() as session:
        unit = (await session.exec(select(Unit).where(Unit.code == unit_code))).one()
        task = (await session.exec(select(Task).where(Task.code == task_code))).one()
        return await session.get(ProgressStatus, (unit.id, task.id))


async def test_numbered_flow_records_one_event(tree: AsyncEngine, enrol: Enrol) -> None:
    official = await enrol("HN.BD", "official", user_id="u1", channel="zalo")
    menu = await official.say("/baocao")
    assert "Các nhiệm vụ chưa hoàn thành của Đảng ủy phường Ba Đình" in menu
    assert "Hoàn thành đại hội các đảng bộ trực thuộc" not in menu  # not this unit's level
    status_menu = await official.say(numbered_choice(menu, "Hoàn thành đại hội đảng bộ cấp"))
    assert "Tình trạng hiện nay?" in status_menu
    prompt = await official.say(numbered_choice(status_menu, "Đã hoàn thành"))
    assert "ngày hoàn thành hôm nay (20/8/2025)" in prompt
    done = await official.say("18/8 Đã tổ chức xong đại hội, 120 đại biểu")
    assert "Đã ghi nhận báo cáo:" in done
    assert "• Tình trạng: Đã hoàn thành, ngày 18/8/2025" in done
    assert "• Ghi chú: Đã tổ chức xong đại hội, 120 đại biểu" in done
    assert "qua Zalo" in done
    assert done.rstrip().endswith("đoạn 3 (tiến độ đại hội)")  # the clause it answers to
    [event] = await events(tree)
    assert (event.status, event.done_on, event.channel) == ("done", date(2025, 8, 18), "zalo")
    current = await status_of(tree, "HN.BD", "dai-hoi-thang-8")
    assert current is not None and current.event_id == event.id
    # That task is no longer offered as open.
    assert (
        "Hoàn thành đại hội đảng bộ cấp"
        not in (await official.say("/baocao")).split("Chọn nhiệm vụ")[0]
    )


async def test_telegram_buttons_and_a_double_press(tree: AsyncEngine, app: App) -> None:
    code = await invite_code(tree, "HN.SS", "official")
    telegram = FakeTelegram(app)
    await telegram.send_text(code, user_id=55)
    [menu] = await telegram.send_text("/baocao", user_id=55)
    keyboard = [b for row in menu.params["reply_markup"]["inline_keyboard"] for b in row]
    assert all(len(b["callback_data"].encode()) <= 64 for b in keyboard)
    task_button = next(b for b in keyboard if b["text"].startswith("Kiện toàn"))
    [status_menu] = await telegram.press(task_button["callback_data"], user_id=55)
    buttons = [b for row in status_menu.params["reply_markup"]["inline_keyboard"] for b in row]
    stuck = next(b for b in buttons if b["text"] == "Gặp vướng mắc")
    [prompt] = await telegram.press(stuck["callback_data"], user_id=55)
    record = prompt.params["reply_markup"]["inline_keyboard"][0][0]
    assert record["text"] == "Ghi nhận"
    [confirmed] = await telegram.press(record["callback_data"], user_id=55)
    assert "Tình trạng: Gặp vướng mắc" in plain(confirmed.params["text"])
    [again] = await telegram.press(record["callback_data"], user_id=55)  # pressed twice
    assert "đã được ghi nhận trước đó" in plain(again.params["text"])
    assert len(await events(tree)) == 1


async def test_same_status_again_creates_no_event_but_a_correction_does(
    tree: AsyncEngine, enrol: Enrol
) -> None:
    official = await enrol("HN.BD", "official", user_id="u1")

    async def report(status: str, note: str | None) -> str:
        menu = await official.say("/baocao")
        step = await official.say(numbered_choice(menu, "Xây dựng kế hoạch"))
        prompt = await official.say(numbered_choice(step, status))
        if note is None:
            return await official.say(numbered_choice(prompt, "Ghi nhận"))
        return await official.say(note)

    assert "Đã ghi nhận" in await report("Đang thực hiện", None)
    assert "không có gì thay đổi" in await report("Đang thực hiện", None)
    assert "Đã ghi nhận" in await report("Đang thực hiện", "Đã lên kế hoạch")
    assert "Đã ghi nhận" in await report("Đã hoàn thành", None)
    history = await events(tree)
    assert [e.status for e in history] == ["doing", "doing", "done"]  # append-only
    current = await status_of(tree, "HN.BD", "tap-huan-boi-duong-thang-9")
    assert current is not None and current.status == "done" and current.event_id == history[-1].id


async def test_the_flow_survives_a_restart(
    tree: AsyncEngine,
    knowledge,
    clock: Clock,
    enrol: Enrol,  # type: ignore[no-untyped-def]
) -> None:
    official = await enrol("HN.BD", "official", user_id="u1")
    menu = await official.say("/baocao")
    await official.say(numbered_choice(menu, "Hoàn thành đại hội đảng bộ cấp"))
    restarted = Chat(make_app(knowledge, tree, clock=clock), user_id="u1")  # a new process
    prompt = await restarted.say("2")  # "Đang thực hiện"
    assert "Ghi nhận «Đang thực hiện»" in prompt
    assert "Đã ghi nhận báo cáo" in await restarted.say("Đang chuẩn bị nhân sự")


async def test_an_idle_flow_expires_politely(tree: AsyncEngine, clock: Clock, enrol: Enrol) -> None:
    official = await enrol("HN.BD", "official", user_id="u1")
    menu = await official.say("/baocao")
    await official.say(numbered_choice(menu, "Hoàn thành đại hội đảng bộ cấp"))
    clock.advance(minutes=31)
    replies = await official.send("1")
    assert plain_text(replies[0]) == EXPIRED_NOTICE
    assert await events(tree) == []


async def test_a_natural_sentence_preselects_the_task(tree: AsyncEngine, enrol: Enrol) -> None:
    official = await enrol("HN.SS", "official", user_id="u1")
    text = await official.say("Đã tổ chức xong đại hội")
    assert "Đồng chí muốn báo cáo tiến độ?" in text
    assert "Nhiệm vụ: Hoàn thành đại hội đảng bộ cấp trên trực tiếp" in text
    prompt = await official.say(numbered_choice(text, "Đã hoàn thành"))
    assert "Đã ghi nhận" in await official.say(numbered_choice(prompt, "Ghi nhận"))
    other = await official.say("chúng tôi đã tập huấn cho cấp ủy viên xong")
    assert "Nhiệm vụ: Xây dựng kế hoạch, tổ chức tập huấn" in other


def test_statements_and_questions() -> None:
    assert is_progress_statement("đã tổ chức xong đại hội")
    assert is_progress_statement("Da ban hanh quy che lam viec")
    assert not is_progress_statement("đã tổ chức xong đại hội chưa?")
    assert not is_progress_statement("dai hoi dang bo xa xong khi nao")
    assert not is_progress_statement("Ai ký Kết luận 185?")


async def test_an_anonymous_sentence_is_just_a_question(chat: Chat) -> None:
    text = await chat.say("đã tổ chức xong đại hội")
    assert "Đồng chí muốn báo cáo" not in text
    assert NOT_ENROLLED in await chat.say("/baocao")


async def test_reporting_for_another_unit_is_refused_and_logged(
    tree: AsyncEngine, enrol: Enrol, caplog: pytest.LogCaptureFixture
) -> None:
    official = await enrol("HN.BD", "official", user_id="u1")
    with caplog.at_level(logging.WARNING):
        text = await official.say("/baocao HN.SS")
    assert "chỉ được báo cáo cho đơn vị mình phụ trách" in text
    assert "tried to report for unit HN.SS" in caplog.text
    manager = await enrol("HN", "unit_admin", user_id="m1")
    assert "Đảng ủy xã Sóc Sơn" in await manager.say("/baocao HN.SS")  # in the subtree
    assert "chỉ được báo cáo" in await manager.say("/baocao HP.CH")  # not in it
    admin = await enrol("TW", "admin", user_id="a1")
    assert "Đảng ủy phường Cát Hải" in await admin.say("/baocao HP.CH")


async def test_bad_notes_and_dates_keep_the_flow(tree: AsyncEngine, enrol: Enrol) -> None:
    official = await enrol("HN.BD", "official", user_id="u1")
    menu = await official.say("/baocao")
    step = await official.say(numbered_choice(menu, "Hoàn thành đại hội đảng bộ cấp"))
    await official.say(numbered_choice(step, "Đã hoàn thành"))
    assert "tối đa 500" in await official.say("x" * 501)
    assert "không thể sau hôm nay" in await official.say("25/8/2025 xong")
    assert "không hợp lệ" in await official.say("31/2/2025 xong")
    recorded = await official.say("<b>Xong</b> & =cmd")
    assert "• Ghi chú: <b>Xong</b> & =cmd" in recorded  # stored as typed; escaped on display
    [event] = await events(tree)
    assert event.note == "<b>Xong</b> & =cmd" and event.done_on == date(2025, 8, 20)


async def test_cancel(tree: AsyncEngine, enrol: Enrol) -> None:
    official = await enrol("HN.BD", "official", user_id="u1")
    await official.say("/baocao")
    assert await official.say("/huy") == "Đã hủy thao tác đang làm."
    assert "Nguồn:" in await official.say("Ai ký Kết luận 185?")  # back to questions
