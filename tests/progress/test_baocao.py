"""/baocao: confirm progress in a few taps, see the report once more before it is saved,
correct it later; an auditable, append-only history; nothing confirmed is ever lost."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.app import App
from bot.storage.db import make_session_factory
from bot.storage.models import ProgressEvent, ProgressStatus, Task, Unit
from handlers.progress import NOT_ENROLLED, is_progress_statement
from tests.conftest import Chat, Clock, make_app
from tests.fakes.telegram import FakeTelegram, plain
from tests.helpers import numbered_choice
from tests.progress.conftest import Enrol, invite_code

FIRST = "Hoàn thành đại hội đảng bộ cấp"  # dai-hoi-thang-8, the first task of a commune
PLAN = "Xây dựng kế hoạch"  # tap-huan-boi-duong-thang-9


async def events(engine: AsyncEngine) -> list[ProgressEvent]:
    async with make_session_factory(engine)() as session:
        rows = await session.exec(select(ProgressEvent).order_by(col(ProgressEvent.id)))
        return list(rows.all())


async def status_of(engine: AsyncEngine, unit_code: str, task_code: str) -> ProgressStatus | None:
    async with make_session_factory(engine)() as session:
        unit = (await session.exec(select(Unit).where(Unit.code == unit_code))).one()
        task = (await session.exec(select(Task).where(Task.code == task_code))).one()
        return await session.get(ProgressStatus, (unit.id, task.id))


async def report(official: Chat, task: str, status: str, note: str | None = None) -> str:
    """The whole flow as an official does it on a numbered channel; the last reply."""
    menu = await official.say("/baocao")
    step = await official.say(numbered_choice(menu, task))
    prompt = await official.say(numbered_choice(step, status))
    review = await official.say(
        numbered_choice(prompt, "Không có ghi chú") if note is None else note
    )
    assert "Xem lại báo cáo (chưa lưu)" in review, review
    return await official.say(numbered_choice(review, "Lưu báo cáo"))


async def test_numbered_flow_shows_the_report_then_records_one_event(
    tree: AsyncEngine, enrol: Enrol
) -> None:
    official = await enrol("HN.BD", "official", user_id="u1", channel="zalo")
    menu = await official.say("/baocao")
    assert "Nhiệm vụ của Đảng ủy phường Ba Đình: đã hoàn thành 0/4." in menu
    assert "Hoàn thành đại hội các đảng bộ trực thuộc" not in menu  # not this unit's level
    assert "1. Hoàn thành đại hội đảng bộ cấp trên trực tiếp" in menu
    assert "(hạn 31/8/2025) — chưa báo cáo" in menu
    assert "Gõ /huy để hủy." in menu  # cancel is typed, never a number
    status_menu = await official.say(numbered_choice(menu, FIRST))
    assert "Tình trạng hiện nay?" in status_menu
    prompt = await official.say(numbered_choice(status_menu, "Đã hoàn thành"))
    assert "Đã chọn «Đã hoàn thành» (chưa lưu)." in prompt
    assert "tính là hôm nay (20/8/2025)" in prompt
    review = await official.say("18/8 Đã tổ chức xong đại hội, 120 đại biểu")
    assert "• Tình trạng: Đã hoàn thành, ngày 18/8/2025" in review
    assert "• Ghi chú: Đã tổ chức xong đại hội, 120 đại biểu" in review
    assert await events(tree) == []  # shown, not saved yet
    done = await official.say(numbered_choice(review, "Lưu báo cáo"))
    assert "Đã lưu báo cáo:" in done
    assert "• Tình trạng: Đã hoàn thành, ngày 18/8/2025" in done
    assert "qua Zalo" in done
    assert done.rstrip().endswith("Kết luận số 185, đoạn 3")  # the clause it answers to
    [event] = await events(tree)
    assert (event.status, event.done_on, event.channel) == ("done", date(2025, 8, 18), "zalo")
    current = await status_of(tree, "HN.BD", "dai-hoi-thang-8")
    assert current is not None and current.event_id == event.id


async def test_a_done_report_can_be_corrected_and_numbers_stay_put(
    tree: AsyncEngine, enrol: Enrol
) -> None:
    """Finished tasks stay on the list (marked), so "1" always means the same task and a
    «Đã hoàn thành» report can be corrected as every confirmation says."""
    official = await enrol("HN.BD", "official", user_id="u1")
    before = await official.say("/baocao")
    await official.say("/huy")
    for _ in range(4):  # /baocao, 1, 1, 1 sent four times
        await official.say("/baocao")
        await official.say("1")
        await official.say("1")
        text = await official.say("1")  # «Không có ghi chú» -> the review
        await official.say(numbered_choice(text, "Lưu báo cáo"))
    after = await official.say("/baocao")
    assert "đã hoàn thành 1/4" in after
    number = numbered_choice(before, FIRST)
    assert numbered_choice(after, FIRST) == number == "1"
    assert "(hạn 31/8/2025) — đã hoàn thành" in after
    history = await events(tree)
    assert [e.status for e in history] == ["done"]  # the same task, recorded once
    # Correcting it: choose it again; what was reported is shown first.
    step = await official.say(number)
    assert "Đã báo cáo: Đã hoàn thành ngày 20/8/2025" in step
    prompt = await official.say(numbered_choice(step, "Đang thực hiện"))
    review = await official.say("Phải tổ chức lại phiên bầu cử")
    saved = await official.say(numbered_choice(review, "Lưu báo cáo"))
    assert "• Tình trạng: Đang thực hiện" in saved and "Phải tổ chức lại" in saved
    assert [e.status for e in await events(tree)] == ["done", "doing"]
    assert "đã hoàn thành 0/4" in await official.say("/baocao")
    assert prompt


async def test_telegram_buttons_show_the_deadline_and_a_double_press(
    tree: AsyncEngine, app: App
) -> None:
    code = await invite_code(tree, "HN.SS", "official")
    telegram = FakeTelegram(app)
    await telegram.send_text(code, user_id=55)
    [menu] = await telegram.send_text("/baocao", user_id=55)
    keyboard = [b for row in menu.params["reply_markup"]["inline_keyboard"] for b in row]
    assert all(len(b["callback_data"].encode()) <= 64 for b in keyboard)
    tasks = [b for b in keyboard if b["text"] != "Hủy"]
    assert len(tasks) == 4
    for button in tasks:  # the deadline is never cut off
        assert button["text"].endswith(("(hạn 31/8)", "(hạn 30/9)")), button["text"]
        assert len(button["text"]) <= 64
    task_button = next(b for b in keyboard if b["text"].startswith("Kiện toàn"))
    [status_menu] = await telegram.press(task_button["callback_data"], user_id=55)
    buttons = [b for row in status_menu.params["reply_markup"]["inline_keyboard"] for b in row]
    stuck = next(b for b in buttons if b["text"] == "Gặp vướng mắc")
    [prompt] = await telegram.press(stuck["callback_data"], user_id=55)
    assert "Đã chọn «Gặp vướng mắc» (chưa lưu)" in plain(prompt.params["text"])
    [review] = await telegram.send_text("Thiếu nhân sự", user_id=55)
    save = review.params["reply_markup"]["inline_keyboard"][0][0]
    assert save["text"] == "Lưu báo cáo"
    [confirmed] = await telegram.press(save["callback_data"], user_id=55)
    assert "Tình trạng: Gặp vướng mắc" in plain(confirmed.params["text"])
    [again] = await telegram.press(save["callback_data"], user_id=55)  # pressed twice
    assert "đã được lưu trước đó" in plain(again.params["text"])
    assert len(await events(tree)) == 1


async def test_same_status_again_creates_no_event_but_a_correction_does(
    tree: AsyncEngine, enrol: Enrol
) -> None:
    official = await enrol("HN.BD", "official", user_id="u1")
    assert "Đã lưu báo cáo" in await report(official, PLAN, "Đang thực hiện")
    assert "không có gì thay đổi" in await report(official, PLAN, "Đang thực hiện")
    assert "Đã lưu báo cáo" in await report(official, PLAN, "Đang thực hiện", "Đã lên kế hoạch")
    assert "Đã lưu báo cáo" in await report(official, PLAN, "Đã hoàn thành")
    history = await events(tree)
    assert [e.status for e in history] == ["doing", "doing", "done"]  # append-only
    current = await status_of(tree, "HN.BD", "tap-huan-boi-duong-thang-9")
    assert current is not None and current.status == "done" and current.event_id == history[-1].id


async def test_the_flow_survives_a_restart(
    tree: AsyncEngine, knowledge: object, clock: Clock, enrol: Enrol
) -> None:
    official = await enrol("HN.BD", "official", user_id="u1")
    menu = await official.say("/baocao")
    await official.say(numbered_choice(menu, FIRST))
    restarted = Chat(make_app(knowledge, tree, clock=clock), user_id="u1")  # a new process
    prompt = await restarted.say("2")  # "Đang thực hiện"
    assert "Đã chọn «Đang thực hiện» (chưa lưu)" in prompt
    review = await restarted.say("Đang chuẩn bị nhân sự")
    assert "Đã lưu báo cáo" in await restarted.say(numbered_choice(review, "Lưu báo cáo"))


async def test_an_idle_flow_says_which_report_was_not_saved(
    tree: AsyncEngine, clock: Clock, enrol: Enrol
) -> None:
    official = await enrol("HN.BD", "official", user_id="u1")
    menu = await official.say("/baocao")
    step = await official.say(numbered_choice(menu, FIRST))
    await official.say(numbered_choice(step, "Đang thực hiện"))
    clock.advance(minutes=31)
    # The note that arrives too late reads like a report sentence: it must not open a new
    # report for another task.
    text = await official.say("Đã tổ chức xong tập huấn cho cấp ủy viên")
    assert "Báo cáo nhiệm vụ «Hoàn thành đại hội đảng bộ cấp trên" in text
    assert "(«Đang thực hiện») chưa được lưu" in text
    assert "Tình trạng hiện nay?" not in text  # no new flow
    assert "chưa được ghi nhận" in text
    assert await events(tree) == []
    # After the expiry, a number picks nothing and says so.
    await official.say("/baocao")
    clock.advance(minutes=31)
    text = await official.say("1")
    assert "Phiên báo cáo đã hết hạn" in text or "chưa được lưu" in text
    assert "Hiện không có danh sách lựa chọn nào" in text
    assert "Tình trạng hiện nay?" not in text


async def test_a_question_at_the_note_step_is_answered_not_saved(
    tree: AsyncEngine, enrol: Enrol
) -> None:
    official = await enrol("HN.BD", "official", user_id="u1")
    menu = await official.say("/baocao")
    step = await official.say(numbered_choice(menu, FIRST))
    await official.say(numbered_choice(step, "Đang thực hiện"))
    text = await official.say("Ai ký Kết luận 185?")
    assert "Nguồn:" in text  # answered
    assert "chưa được ghi làm ghi chú" in text
    review = await official.say(numbered_choice(text, "Không có ghi chú"))
    assert "• Ghi chú: (không có)" in review
    await official.say(numbered_choice(review, "Lưu báo cáo"))
    [event] = await events(tree)
    assert event.note is None


@pytest.mark.parametrize(
    ("typed", "done_on", "note"),
    [
        ("hôm qua", date(2025, 8, 19), None),
        ("ngày 15 tháng 8", date(2025, 8, 15), None),
        ("2025-08-12 xong", date(2025, 8, 12), "xong"),
        ("20-8-2025", date(2025, 8, 20), None),
        ("5/5 chi bộ đã kiện toàn xong", date(2025, 8, 20), "5/5 chi bộ đã kiện toàn xong"),
    ],
)
async def test_completion_dates_in_common_forms(
    tree: AsyncEngine, enrol: Enrol, typed: str, done_on: date, note: str | None
) -> None:
    official = await enrol("HN.BD", "official", user_id="u1")
    await report(official, FIRST, "Đã hoàn thành", typed)
    [event] = await events(tree)
    assert (event.done_on, event.note) == (done_on, note)


async def test_a_date_without_its_year_long_after_the_deadline_is_asked(
    tree: AsyncEngine, enrol: Enrol, clock: Clock
) -> None:
    clock.now = datetime(2026, 12, 2, 3, tzinfo=UTC)
    official = await enrol("HN.BD", "official", user_id="u1")
    menu = await official.say("/baocao")
    step = await official.say(numbered_choice(menu, FIRST))
    await official.say(numbered_choice(step, "Đã hoàn thành"))
    question = await official.say("20/8")
    assert "chọn đúng năm" in question
    review = await official.say(numbered_choice(question, "20/8/2025"))
    assert "ngày 20/8/2025" in review
    await official.say(numbered_choice(review, "Lưu báo cáo"))
    [event] = await events(tree)
    assert event.done_on == date(2025, 8, 20)


async def test_a_natural_sentence_preselects_the_task(tree: AsyncEngine, enrol: Enrol) -> None:
    official = await enrol("HN.SS", "official", user_id="u1")
    text = await official.say("Đã tổ chức xong đại hội")
    assert "Đồng chí muốn báo cáo tiến độ?" in text
    assert "Nhiệm vụ: Hoàn thành đại hội đảng bộ cấp trên trực tiếp" in text
    prompt = await official.say(numbered_choice(text, "Đã hoàn thành"))
    review = await official.say(numbered_choice(prompt, "Không có ghi chú"))
    assert "Đã lưu" in await official.say(numbered_choice(review, "Lưu báo cáo"))
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


async def test_a_chi_bo_official_is_told_what_they_can_do(tree: AsyncEngine, enrol: Enrol) -> None:
    official = await enrol("HN.BD.CB1", "official", user_id="cb")
    welcome = official.history[-1].text
    assert "/baocao" not in welcome  # not offered
    text = await official.say("/baocao")
    assert "Hiện chưa có nhiệm vụ nào cần báo cáo qua trợ lý cho cơ sở (Chi bộ khu phố 1)" in text
    assert "/toi" in text


async def test_reporting_for_another_unit_is_refused_and_logged(
    tree: AsyncEngine, enrol: Enrol, caplog: pytest.LogCaptureFixture
) -> None:
    official = await enrol("HN.BD", "official", user_id="u1")
    with caplog.at_level(logging.WARNING):
        text = await official.say("/baocao HN.SS")
    assert "chỉ được báo cáo cho đơn vị mình phụ trách" in text
    assert "tried to report for unit HN.SS" in caplog.text
    manager = await enrol("HN", "unit_admin", user_id="m1")
    assert "Đảng ủy xã Sóc Sơn" in await manager.say("/baocao hn.ss")  # any case
    assert "chỉ được báo cáo" in await manager.say("/baocao HP.CH")  # not in the subtree
    assert "viết liền" in await manager.say("/baocao HN.SS thêm chữ")
    admin = await enrol("TW", "admin", user_id="a1")
    assert "Đảng ủy phường Cát Hải" in await admin.say("/baocao HP.CH")


async def test_bad_notes_and_dates_keep_the_flow(tree: AsyncEngine, enrol: Enrol) -> None:
    official = await enrol("HN.BD", "official", user_id="u1")
    menu = await official.say("/baocao")
    step = await official.say(numbered_choice(menu, FIRST))
    await official.say(numbered_choice(step, "Đã hoàn thành"))
    assert "tối đa 500" in await official.say("x" * 501)
    assert "tương lai" in await official.say("25/8/2025 xong")
    assert "không có thật" in await official.say("31/2/2025 xong")
    review = await official.say("<b>Xong</b> & =cmd")
    assert "• Ghi chú: <b>Xong</b> & =cmd" in review  # stored as typed; escaped on display
    await official.say(numbered_choice(review, "Lưu báo cáo"))
    [event] = await events(tree)
    assert event.note == "<b>Xong</b> & =cmd" and event.done_on == date(2025, 8, 20)


async def test_typed_words_pick_choices_and_a_mistake_keeps_the_list(
    tree: AsyncEngine, enrol: Enrol
) -> None:
    official = await enrol("HN.BD", "official", user_id="u1", channel="zalo")
    menu = await official.say("/baocao")
    wrong = await official.say("hai")  # a number word
    assert "Tình trạng hiện nay?" in wrong and "Kiện toàn" in wrong
    again = await official.say("không biết chọn gì")  # keeps the list, repeats it
    assert "Đồng chí vui lòng chọn tình trạng" in again
    prompt = await official.say("đã hoàn thành")  # the words of a choice
    assert "Đã chọn «Đã hoàn thành»" in prompt
    assert menu


async def test_cancel(tree: AsyncEngine, enrol: Enrol) -> None:
    official = await enrol("HN.BD", "official", user_id="u1")
    await official.say("/baocao")
    assert await official.say("/huy") == "Đã hủy thao tác đang làm."
    assert "Nguồn:" in await official.say("Ai ký Kết luận 185?")  # back to questions
    await official.say("/baocao")
    assert await official.say("hủy") == "Đã hủy thao tác đang làm."  # without the slash
