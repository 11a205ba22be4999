"""TelegramTransport through the real aiogram client against the fake Bot API server: what
the server receives, and how Telegram's answers become the core's delivery errors."""

from __future__ import annotations

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.core import (
    Button,
    DeliveryError,
    PermanentFailure,
    RecipientBlocked,
    RetryLater,
    TemporaryFailure,
)
from scheduler.transports import TelegramTransport
from tests.fakes.botapi_server import TOKEN, FakeBotAPI


async def test_delivers_html_with_an_inline_keyboard(
    api: FakeBotAPI, telegram: TelegramTransport
) -> None:
    await telegram.deliver("42", "Hạn <b>31/8</b> & báo cáo", [[Button("Đã xong", "done:7")]])
    [request] = api.delivered()
    assert request.chat_id == "42"
    assert request.text == "Hạn &lt;b&gt;31/8&lt;/b&gt; &amp; báo cáo"
    assert request.reply_markup == {
        "inline_keyboard": [[{"text": "Đã xong", "callback_data": "done:7"}]]
    }


async def test_a_long_text_goes_in_parts_with_the_keyboard_last(
    api: FakeBotAPI, telegram: TelegramTransport
) -> None:
    text = "\n\n".join(f"Đoạn {i}: " + "nội dung " * 60 for i in range(20))
    await telegram.deliver("42", text, [[Button("OK", "ok")]])
    parts = api.delivered()
    assert len(parts) == 3
    assert all(len(p.text) <= 4096 for p in parts)
    assert [p.reply_markup is not None for p in parts] == [False, False, True]


@pytest.mark.parametrize(
    ("answer", "error", "words"),
    [
        ("429", RetryLater, "429"),
        ("403", RecipientBlocked, "blocked by the user"),
        ("500", TemporaryFailure, "Internal Server Error"),
        ("drop", TemporaryFailure, "disconnected"),
        ("400", PermanentFailure, "chat not found"),
    ],
)
async def test_answers_become_delivery_errors(
    api: FakeBotAPI,
    telegram: TelegramTransport,
    answer: str,
    error: type[DeliveryError],
    words: str,
) -> None:
    api.retry_after = 3
    api.script["42"] = [answer]
    with pytest.raises(error) as caught:
        await telegram.deliver("42", "Nhắc việc", [])
    assert words in str(caught.value)
    assert TOKEN not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    if isinstance(caught.value, RetryLater):
        assert caught.value.retry_after == 3
    assert api.delivered() == []


async def test_unreachable_server_is_temporary_and_hides_the_token() -> None:
    async with FakeBotAPI() as api:
        url = api.url  # closed again: nothing listens there any more
    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(url)))
    try:
        with pytest.raises(TemporaryFailure) as caught:
            await TelegramTransport(bot).deliver("42", "Nhắc việc", [])
    finally:
        await bot.session.close()
    assert "network" in str(caught.value)
    assert TOKEN not in str(caught.value) and TOKEN.split(":")[1] not in str(caught.value)
