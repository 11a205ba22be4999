"""The Telegram adapter with a recording session (no network): rendering, buttons,
callback data size, escaping, splitting, media and Bot API errors."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest
from aiogram.types import Chat as TgChat
from aiogram.types import Message, PhotoSize, Sticker, Update, User

from bot.app import App
from bot.channels.telegram import TEXT_LIMIT, render
from bot.core import Reply
from tests.fakes.telegram import FakeTelegram, plain


@pytest.fixture
def telegram(app: App) -> FakeTelegram:
    return FakeTelegram(app)


async def test_question_is_answered_in_html_with_citation(telegram: FakeTelegram) -> None:
    [sent] = await telegram.send_text("dai hoi dang bo xa xong khi nao")
    assert sent.params["parse_mode"] == "HTML"
    assert "tháng 8/2025" in sent.params["text"]
    assert "<i>Nguồn: bản tin VTC News ngày 22/8/2025 về Kết luận số 185" in sent.params["text"]


async def test_suggestions_are_inline_buttons_with_short_callback_data(
    telegram: FakeTelegram,
) -> None:
    [sent] = await telegram.send_text("kết luận 185")
    keyboard = sent.params["reply_markup"]["inline_keyboard"]
    buttons = [button for row in keyboard for button in row]
    assert len(buttons) == 3
    for button in buttons:
        assert len(button["callback_data"].encode("utf-8")) <= 64
        assert button["text"]
    [answer] = await telegram.press(buttons[1]["callback_data"])
    assert "Nguồn:" in plain(answer.params["text"])
    assert "reply_markup" not in answer.params
    answered = [c for c in telegram.session.calls if c.name == "answerCallbackQuery"]
    assert len(answered) == 1


async def test_every_entry_id_fits_in_callback_data(app: App) -> None:
    for entry_id in app.knowledge.base.entries:
        assert len(f"qa:{entry_id}".encode()) <= 64


async def test_user_html_is_escaped(telegram: FakeTelegram) -> None:
    [sent] = await telegram.send_text("<b>xin chào</b> & <script>")
    assert "<b>" not in sent.params["text"]
    assert "<script>" not in sent.params["text"]


def test_long_reply_is_split_below_the_limit() -> None:
    paragraph = "Đại hội <đảng bộ> & các cấp. " * 60
    reply = Reply(text="\n\n".join([paragraph] * 8), footer="Nguồn: thử & kiểm tra")
    parts = render(reply)
    assert len(parts) > 1
    assert all(len(part) <= TEXT_LIMIT for part in parts)
    assert parts[-1].endswith("<i>Nguồn: thử &amp; kiểm tra</i>")
    assert all("&lt;đảng bộ&gt;" in part for part in parts)


async def test_photo_and_sticker_get_a_polite_text_reply(telegram: FakeTelegram) -> None:
    user = User(id=5, is_bot=False, first_name="B")
    chat = TgChat(id=5, type="private")
    now = datetime.now(UTC)
    photo = Message(
        message_id=1,
        date=now,
        chat=chat,
        from_user=user,
        photo=[PhotoSize(file_id="a", file_unique_id="b", width=1, height=1)],
    )
    sticker = Message(
        message_id=2,
        date=now,
        chat=chat,
        from_user=user,
        sticker=Sticker(
            file_id="s",
            file_unique_id="t",
            type="regular",
            width=1,
            height=1,
            is_animated=False,
            is_video=False,
        ),
    )
    for number, message in enumerate((photo, sticker), start=1):
        [sent] = await telegram.send_update(Update(update_id=number, message=message))
        assert "chỉ đọc được tin nhắn chữ" in sent.params["text"]


async def test_rate_limited_reply_is_retried(telegram: FakeTelegram) -> None:
    telegram.session.fail_next(
        "sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1
    )
    sent = await telegram.send_text("Ai ký Kết luận 185?")
    assert len(sent) == 2  # the refused attempt and the successful retry
    assert "Trần Cẩm Tú" in sent[-1].params["text"]


async def test_blocked_user_does_not_break_the_bot(
    telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    telegram.session.fail_next("sendMessage", 403, "Forbidden: bot was blocked by the user")
    with caplog.at_level(logging.WARNING):
        await telegram.send_text("Ai ký Kết luận 185?")
    assert "blocked" in caplog.text
    [after] = await telegram.send_text("Ai ký Kết luận 185?", user_id=222)
    assert "Trần Cẩm Tú" in after.params["text"]


async def test_unsupported_set_my_commands_is_logged_not_fatal(
    telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    telegram.session.fail_next("setMyCommands", 404, "Not Found")
    with caplog.at_level(logging.WARNING):
        await telegram.channel.prepare()
    assert telegram.channel.username == "troly_test_bot"
    assert "setMyCommands is not available" in caplog.text


async def test_requests_go_as_json_and_files_as_a_form(unused_tcp_port: int) -> None:
    """JsonSession: a reply is a JSON body, its Vietnamese text as UTF-8 (no percent
    escapes) and its keyboard an object; a picture still goes as a multipart form. Errors
    come back as aiogram's exceptions."""
    from aiogram import Bot
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.exceptions import TelegramRetryAfter
    from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup
    from aiohttp import web

    from bot.channels.telegram import JsonSession

    seen: list[tuple[str, str, bytes]] = []

    async def method(request: web.Request) -> web.Response:
        seen.append((request.match_info["method"], request.content_type, await request.read()))
        if len(seen) == 3:
            error = {"ok": False, "error_code": 429, "description": "Too Many Requests"}
            return web.json_response({**error, "parameters": {"retry_after": 3}}, status=429)
        chat = {"id": 7, "type": "private"}
        return web.json_response(
            {"ok": True, "result": {"message_id": 1, "date": 0, "chat": chat, "text": "ok"}}
        )

    server = web.Application()
    server.router.add_post("/bot{token}/{method}", method)
    runner = web.AppRunner(server, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    base = f"http://127.0.0.1:{unused_tcp_port}"
    bot = Bot("123:ABC", session=JsonSession(api=TelegramAPIServer.from_base(base)))
    try:
        markup = InlineKeyboardMarkup(
            inline_keyboard=[[InlineKeyboardButton(text="Có", callback_data="y")]]
        )
        await bot.send_message(chat_id=7, text="Đại hội cấp xã", reply_markup=markup)
        photo = BufferedInputFile(b"\x89PNG...", filename="a.png")
        await bot.send_photo(chat_id=7, photo=photo, caption="Biểu đồ")
        with pytest.raises(TelegramRetryAfter) as raised:
            await bot.send_message(chat_id=7, text="lại")
        assert raised.value.retry_after == 3
    finally:
        await bot.session.close()
        await runner.cleanup()
    (name, kind, body), (photo_name, photo_kind, _), _ = seen
    assert (name, kind) == ("sendMessage", "application/json")
    assert "Đại hội cấp xã".encode() in body
    sent = json.loads(body)
    assert sent["chat_id"] == 7 and sent["text"] == "Đại hội cấp xã"
    assert sent["reply_markup"] == {"inline_keyboard": [[{"text": "Có", "callback_data": "y"}]]}
    assert (photo_name, photo_kind) == ("sendPhoto", "multipart/form-data")
