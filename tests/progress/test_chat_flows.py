"""The chat flows as officials really use them: nothing confirmed is dropped, no secret is
stored, nothing private is shown in a group, one update is handled once, numbers and words
pick choices sensibly, keyboards close, menus follow the role."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.app import NO_LIST, THROTTLE_NOTICE, App
from bot.redaction import REDACTED, find_code, redact_codes
from bot.render import plain_text
from bot.storage.db import make_session_factory
from bot.storage.models import MessageLog, ProgressEvent
from knowledge import Knowledge
from tests.conftest import Chat, Clock, make_app
from tests.fakes.telegram import FakeTelegram, plain
from tests.fakes.zalo_server import FakeZalo, text_update
from tests.helpers import numbered_choice
from tests.progress.conftest import Enrol, invite_code


async def logged(engine: AsyncEngine) -> list[MessageLog]:
    async with make_session_factory(engine)() as session:
        rows = await session.exec(select(MessageLog).order_by(col(MessageLog.id)))
        return list(rows.all())


async def events(engine: AsyncEngine) -> list[ProgressEvent]:
    async with make_session_factory(engine)() as session:
        return list((await session.exec(select(ProgressEvent))).all())


# --------------------------------------------------------------------------- flood limit


async def test_a_report_at_a_normal_pace_is_never_throttled(
    tree: AsyncEngine, app: App, enrol: Enrol
) -> None:
    """Questions up to the limit, then a report by buttons: every press and the note are
    handled and the report is saved; only further questions get the notice, which says
    plainly that they were not read."""
    code = await invite_code(tree, "HN.BD", "official")
    telegram = FakeTelegram(app)
    await telegram.send_text(code, user_id=5)
    for index in range(17):
        await telegram.send_text(f"câu hỏi số {index}", user_id=5)
    [menu] = await telegram.send_text("/baocao", user_id=5)  # the 19th message this minute
    keyboard = menu.params["reply_markup"]["inline_keyboard"]
    [status] = await telegram.press(keyboard[0][0]["callback_data"], user_id=5, on=menu)
    done = status.params["reply_markup"]["inline_keyboard"][0][0]
    [prompt] = await telegram.press(done["callback_data"], user_id=5, on=status)
    [review] = await telegram.send_text("18/8 Xong", user_id=5)  # a flow answer: not counted
    save = review.params["reply_markup"]["inline_keyboard"][0][0]
    [saved] = await telegram.press(save["callback_data"], user_id=5, on=review)
    assert "Đã lưu báo cáo" in plain(saved.params["text"])
    assert len(await events(tree)) == 1
    assert len(await telegram.send_text("câu hỏi thứ 20", user_id=5)) == 1
    [notice] = await telegram.send_text("câu hỏi thứ 21", user_id=5)
    assert plain(notice.params["text"]) == THROTTLE_NOTICE
    assert "chưa được xử lý" in THROTTLE_NOTICE and "đã được ghi nhận" not in THROTTLE_NOTICE
    assert await telegram.send_text("câu nữa", user_id=5) == []  # then silence
    assert prompt


async def test_five_reports_in_a_row_by_buttons_are_all_saved(tree: AsyncEngine, app: App) -> None:
    code = await invite_code(tree, "HN.BD", "official")
    telegram = FakeTelegram(app)
    await telegram.send_text(code, user_id=6)
    for task, state in ((0, 1), (1, 2), (2, 0), (3, 1), (0, 2), (1, 0)):
        [menu] = await telegram.send_text("/baocao", user_id=6)
        row = menu.params["reply_markup"]["inline_keyboard"][task][0]
        [status] = await telegram.press(row["callback_data"], user_id=6, on=menu)
        key = status.params["reply_markup"]["inline_keyboard"][state][0]
        [prompt] = await telegram.press(key["callback_data"], user_id=6, on=status)
        none = prompt.params["reply_markup"]["inline_keyboard"][0][0]
        [review] = await telegram.press(none["callback_data"], user_id=6, on=prompt)
        save = review.params["reply_markup"]["inline_keyboard"][0][0]
        [saved] = await telegram.press(save["callback_data"], user_id=6, on=review)
        assert "Đã lưu báo cáo" in plain(saved.params["text"]), plain(saved.params["text"])
    assert len(await events(tree)) == 6


# --------------------------------------------------------------------------- secrets


def test_codes_are_found_and_redacted() -> None:
    code = "TL-ABCDE-FGHJK"
    assert find_code(code) == "TLABCDEFGHJK"
    assert find_code("Mã mời của tôi: tl-abcde-fghjk, cảm ơn") == "TLABCDEFGHJK"
    assert find_code("tl nhanh giup em") is None
    for text in (
        "/start TLABCDEFGHJK",
        "tl abcde fghjk",
        "Mã mời của tôi: TL-ABCDE-FGHJK nhé",
        "TL-AAAA-BBBB",  # a wrong guess of another length
        "TL-0O0O0-1I1I1",  # letters that are never in a code
    ):
        redacted = redact_codes(text) or ""
        assert "ABCDE" not in redacted.upper() and "AAAA" not in redacted
        assert "0O0O0" not in redacted and REDACTED in redacted
    assert redact_codes("tl nhanh giup em voi") == "tl nhanh giup em voi"  # chat, not a code
    assert redact_codes("/start baocao") == "/start baocao"  # a deep link, not a secret


async def test_no_invitation_code_is_stored(
    tree: AsyncEngine, app: App, engine: AsyncEngine
) -> None:
    good = await invite_code(tree, "HN.BD", "official", uses=5)
    compact = good.replace("-", "")
    await Chat(app, channel="telegram", user_id="1", buttons=True).say(f"/start {compact}")
    await Chat(app, user_id="2").say(good.lower())
    await Chat(app, user_id="3").say(f"Mã mời của tôi: {good}")
    await Chat(app, user_id="4").say("TL-AAAAA-BBBBB")  # a wrong guess
    rows = await logged(engine)
    assert len(rows) == 4
    for row in rows:
        text = (row.text or "").upper()
        assert compact[2:7] not in text.replace("-", "") and "AAAAA" not in text
        assert REDACTED in (row.text or "")


# --------------------------------------------------------------------------- groups


async def test_group_chats_get_public_answers_only(
    tree: AsyncEngine, app: App, engine: AsyncEngine
) -> None:
    group = -1001234567
    code = await invite_code(tree, "HN", "unit_admin")
    telegram = FakeTelegram(app)
    await telegram.send_text(code, user_id=9)  # an admin, enrolled in private
    # Chatter not addressed to the bot: no answer, its text not kept.
    assert await telegram.send_text("Chiều nay họp nhé mọi người", user_id=9, chat_id=group) == []
    assert await telegram.send_text("Ai ký Kết luận 185?", user_id=77, chat_id=group) == []
    # Addressed questions are answered, for anyone.
    [answer] = await telegram.send_text(
        "@troly_test_bot Ai ký Kết luận 185?", user_id=77, chat_id=group
    )
    assert "Nguồn:" in plain(answer.params["text"])
    [hoi] = await telegram.send_text("/hoi@troly_test_bot Ai ký Kết luận 185?", 77, chat_id=group)
    assert "Nguồn:" in plain(hoi.params["text"])
    [reply] = await telegram.send_text("Ai ký Kết luận 185?", 78, chat_id=group, reply_to_bot=True)
    assert "Nguồn:" in plain(reply.params["text"])
    # Nothing personal or administrative runs there.
    for command in ("/tiendo", "/baocao", "/thongbao", "/moi HN.SS", "/toi"):
        [pointer] = await telegram.send_text(command, user_id=9, chat_id=group)
        text = plain(pointer.params["text"])
        assert "tin nhắn riêng" in text, (command, text)
        assert "TIẾN ĐỘ" not in text and "Mã mời:" not in text
    [pointer] = await telegram.send_text("/tiendo", user_id=9, chat_id=group)
    assert "https://t.me/troly_test_bot?start=tiendo" in plain(pointer.params["text"])
    assert not telegram.calls_of("sendPhoto")  # no chart in the group
    [secret] = await telegram.send_text(
        f"@troly_test_bot {await invite_code(tree, 'HN.SS', 'official')}", 77, chat_id=group
    )
    assert "xin đừng gửi trong nhóm" in plain(secret.params["text"])
    rows = [r for r in await logged(engine) if r.chat_id == str(group)]
    ignored = [r for r in rows if r.route == "group_ignored"]
    assert len(ignored) == 2 and all(r.text is None for r in ignored)


async def test_a_deep_link_continues_in_private(tree: AsyncEngine, app: App) -> None:
    code = await invite_code(tree, "HN", "unit_admin")
    admin = Chat(app, channel="telegram", user_id="9", buttons=True)
    await admin.say(code)
    assert "TIẾN ĐỘ: Đảng bộ thành phố Hà Nội" in await admin.say("/start tiendo")


# --------------------------------------------------------------------------- one update once


async def test_a_zalo_update_delivered_twice_is_handled_once(
    tree: AsyncEngine, app: App, engine: AsyncEngine
) -> None:
    code = await invite_code(tree, "HN.BD", "official")
    async with FakeZalo.start(app) as zalo:
        await zalo.send_text(code, user_id="z1")
        menu = await zalo.send_text("/baocao", user_id="z1")
        status = await zalo.send_text("1", user_id="z1")
        choice = numbered_choice(status[0], "Đã hoàn thành")
        update = text_update(choice, user_id="z1", message_id="dup-1")
        first = await zalo.send_update(update)
        assert "Đã chọn «Đã hoàn thành»" in first[0]
        assert await zalo.send_update(update) == []  # the same message id again
        # Delivered twice at the same moment (webhook and polling both), still once.
        again = text_update("Ai ký Kết luận 185?", user_id="z1", message_id="dup-2")
        before = len(zalo.server.texts("z1"))
        await asyncio.gather(zalo.send_update(again), zalo.send_update(again))
        assert len(zalo.server.texts("z1")) - before == 2  # one answer + the flow's reminder
    assert menu
    rows = [r for r in await logged(engine) if r.update_key in {"mdup-1", "mdup-2"}]
    assert len(rows) == 2


async def test_a_redelivered_telegram_update_is_handled_once(tree: AsyncEngine, app: App) -> None:
    telegram = FakeTelegram(app)
    first = await telegram.send_text("Ai ký Kết luận 185?", user_id=3, update_id=900)
    assert len(first) == 1
    assert await telegram.send_text("Ai ký Kết luận 185?", user_id=3, update_id=900) == []


# --------------------------------------------------------------------------- numbers


async def test_numbers_with_and_without_a_list(chat: Chat) -> None:
    assert await chat.say("1") == NO_LIST
    suggestions = await chat.say("kết luận 185")
    assert "1. " in suggestions
    # Three digits are a question, not a choice out of range.
    text = await chat.say("185")
    assert "chọn một số từ 1 đến" not in text


# --------------------------------------------------------------------------- accounts


async def test_me_for_a_stranger_and_for_an_official(
    tree: AsyncEngine, chat: Chat, enrol: Enrol
) -> None:
    stranger = await chat.say("/toi")
    assert "chưa có tài khoản" in stranger and "/baocao" not in stranger
    official = await enrol("HN.BD", "official", user_id="u9")
    text = await official.say("/toi")
    assert "Đơn vị: Đảng ủy phường Ba Đình (mã HN.BD, Cấp xã)" in text
    assert "Kênh đã liên kết: máy tính" in text


async def test_invitation_texts_follow_the_configured_messengers(
    tree: AsyncEngine, knowledge: Knowledge, clock: Clock, enrol: Enrol
) -> None:
    await enrol("TW", "admin", user_id="boss")
    zalo_only = Chat(make_app(knowledge, tree, clock=clock, channels=["zalo"]), user_id="boss")
    text = await zalo_only.say("/moi hn.bd canbo 5 30")  # any case
    assert "Dùng được cho 5 người. Hiệu lực 30 ngày, đến 10:00 ngày 19/9/2025." in text
    assert "• Zalo: nhắn mã" in text and "Telegram" not in text
    both = Chat(
        make_app(
            knowledge, tree, clock=clock, channels=["zalo", "telegram"], bot_username="TL_bot"
        ),
        user_id="boss",
    )
    text = await both.say("/moi HN.BD")
    assert "https://t.me/TL_bot?start=TL" in text and "• Zalo: nhắn mã" in text
    assert "phần thừa «thêm»" in await both.say("/moi HN.BD canbo 1 14 thêm")


# --------------------------------------------------------------------------- /tiendo


async def test_tiendo_says_late_is_part_of_not_done_and_on_zalo_lists_children(
    tree: AsyncEngine, knowledge: Knowledge, clock: Clock, enrol: Enrol
) -> None:
    from tests.progress.test_rollup import report_for

    await report_for(tree, "HN.BD", "done")
    await report_for(tree, "HP.CH", "doing", "Đang chuẩn bị")
    clock.now = datetime(2025, 9, 4, 3, tzinfo=UTC)
    admin = await enrol("TW", "admin", user_id="boss", channel="zalo")
    admin.app.clock = clock
    texts = await admin.send("/tiendo")
    text = plain_text(texts[0])
    assert (
        "Cấp xã: 1/3 hoàn thành (33%); 2 chưa hoàn thành, đã quá hạn (1 đang thực hiện, "
        "1 chưa báo cáo)." in text
    )
    async with FakeZalo.start(admin.app) as zalo:
        await zalo.send_text(await invite_code(tree, "TW", "admin"), user_id="z-admin")
        sent = await zalo.send_text("/tiendo tw", user_id="z-admin")
    chart = next(t for t in sent if "thấp nhất trước" in t)
    lines = chart.splitlines()
    assert lines[1].startswith("1. Đảng bộ thành phố Hải Phòng: 0%")  # lowest first
    assert lines[2].startswith("2. Đảng bộ thành phố Hà Nội:")
    wrong = await admin.say("/tiendo TW thêm chữ")
    assert "viết liền" in wrong
    unknown = await admin.say("/tiendo HN.B")
    assert "Không tìm thấy đơn vị có mã «HN.B»" in unknown and "HN.BD" in unknown


# --------------------------------------------------------------------------- Telegram UI


async def test_a_pressed_keyboard_is_closed_with_the_choice_shown(
    tree: AsyncEngine, app: App
) -> None:
    code = await invite_code(tree, "HN.BD", "official")
    telegram = FakeTelegram(app)
    await telegram.send_text(code, user_id=8)
    [menu] = await telegram.send_text("/baocao", user_id=8)
    first = menu.params["reply_markup"]["inline_keyboard"][0][0]
    await telegram.press(first["callback_data"], user_id=8, on=menu)
    [edit] = telegram.calls_of("editMessageText")
    assert edit.params["message_id"] == menu.result_id
    assert "reply_markup" not in edit.params  # the buttons are gone
    assert edit.params["text"].endswith(f"→ <b>{first['text']}</b>")


async def test_the_command_menu_follows_the_role(tree: AsyncEngine, app: App) -> None:
    telegram = FakeTelegram(app)
    await telegram.send_text("Ai ký Kết luận 185?", user_id=21)
    assert telegram.calls_of("setMyCommands") == []  # a stranger keeps the default menu
    await telegram.send_text(await invite_code(tree, "HN", "unit_admin"), user_id=21)
    [menu] = telegram.calls_of("setMyCommands")
    assert menu.params["scope"] == {"type": "chat", "chat_id": 21}
    commands = [c["command"] for c in menu.params["commands"]]
    assert {"baocao", "tiendo", "thongbao", "moi", "toi", "huy"} <= set(commands)
    await telegram.send_text("Ai ký Kết luận 185?", user_id=21)
    assert len(telegram.calls_of("setMyCommands")) == 1  # set once, not on every message
    await telegram.send_text(await invite_code(tree, "HN.BD.CB1", "official"), user_id=22)
    chi_bo = telegram.calls_of("setMyCommands")[-1]
    assert "baocao" not in [c["command"] for c in chi_bo.params["commands"]]


# --------------------------------------------------------------------------- managing accounts


async def test_a_unit_admin_manages_people_and_invitations_in_chat(
    tree: AsyncEngine, app: App, enrol: Enrol
) -> None:
    admin = await enrol("HN", "unit_admin", user_id="boss", channel="zalo")
    official = await enrol("HN.BD", "official", user_id="u1")
    await enrol("HP.CH", "official", user_id="far")  # outside the subtree
    listing = await admin.say("/canbo")
    assert "Cán bộ ở Đảng bộ thành phố Hà Nội: 2 đang hoạt động" in listing
    assert "Cát Hải" not in listing
    number = listing.split("cán bộ báo cáo, Đảng ủy phường Ba Đình")[0].rsplit("#", 1)[1].split()[0]
    far = await admin.say("/khoa 3")
    assert "Không tìm thấy cán bộ số 3 trong phạm vi" in far
    confirm = await admin.say(f"/khoa {number}")
    assert "Khóa tài khoản của Đồng chí" in confirm
    assert numbered_choice(confirm, "Không, giữ nguyên") == "1"  # the safe answer first
    assert "Đã giữ nguyên" in await admin.say("1")
    assert "Nhiệm vụ của" in await official.say("/baocao")
    confirm = await admin.say(f"/khoa {number}")
    assert "Đã khóa tài khoản" in await admin.say(numbered_choice(confirm, "Đồng ý"))
    assert "chưa có tài khoản" in await official.say("/toi")
    assert "Đã mở lại" in await admin.say(f"/molai {number}")
    confirm = await admin.say(f"/chuyen {number} hn.ss")
    assert "thành cán bộ báo cáo của Đảng ủy xã Sóc Sơn?" in confirm
    await admin.say(numbered_choice(confirm, "Đồng ý"))
    assert "Đảng ủy xã Sóc Sơn" in await official.say("/toi")
    assert "tự khóa" in await admin.say("/khoa 1")
    assert "quản trị hệ thống" in await admin.say(f"/chuyen {number} HN.SS admin")
    # Invitations: listed without their codes, revoked by number.
    made = await admin.say("/moi HN.SS canbo 3")
    code = made.split("Mã mời: ")[1].split()[0]
    invites = await admin.say("/mamoi")
    assert "Đảng ủy xã Sóc Sơn (HN.SS) — cán bộ báo cáo; đã dùng 0/3" in invites
    assert code not in invites
    invite_id = invites.split("(HN.SS) — cán bộ báo cáo; đã dùng 0/3")[0].rsplit("#", 1)[1].strip()
    assert "Đã thu hồi mã mời" in await admin.say(f"/thuhoi {invite_id}")
    assert "không hợp lệ" in await Chat(app, user_id="late").say(code)
