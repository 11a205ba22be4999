"""A fake aiogram session that records every Bot API call (aiogram's own tests/mocked_bot.py
pattern): no network, successful answers by default, errors injectable per method."""

from __future__ import annotations

import html
import itertools
import re
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import (
    CallbackQuery,
    Chat,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    PhotoSize,
    Update,
    User,
)

from bot.app import App
from bot.channels.telegram import TelegramChannel

BOT_TOKEN = "123456:TEST-token-for-the-fake-session"
_TAG_RE = re.compile(r"<[^>]+>")


@dataclass
class Call:
    name: str
    params: dict[str, Any]
    result_id: int = 0  # the message_id the fake answered with


def _entities(text: str) -> list[MessageEntity]:
    found = []
    if text.startswith("/"):
        found.append(MessageEntity(type="bot_command", offset=0, length=len(text.split()[0])))
    mention = "@troly_test_bot"
    if mention in text:
        offset = len(text[: text.index(mention)].encode("utf-16-le")) // 2
        found.append(MessageEntity(type="mention", offset=offset, length=len(mention)))
    return found


class RecordingSession(BaseSession):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Call] = []
        self.failures: dict[str, list[tuple[int, str, dict[str, Any]]]] = {}
        self._ids = itertools.count(1000)

    def fail_next(self, method: str, status: int, description: str, **parameters: Any) -> None:
        """The next call of ``method`` answers with a Bot API error."""
        self.failures.setdefault(method, []).append((status, description, parameters))

    async def close(self) -> None:
        pass

    async def stream_content(  # pragma: no cover - not used
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        yield b""

    async def make_request(
        self, bot: Bot, method: TelegramMethod[TelegramType], timeout: int | None = None
    ) -> TelegramType:
        name = method.__api_method__
        params = method.model_dump(exclude_none=True)
        call = Call(name, params)
        self.calls.append(call)
        queued = self.failures.get(name)
        if queued:
            status, description, parameters = queued.pop(0)
            content = {
                "ok": False,
                "error_code": status,
                "description": description,
                "parameters": parameters,
            }
            self.check_response(bot=bot, method=method, status_code=status, content=_json(content))
        return self._result(name, params, call)  # type: ignore[return-value]

    def _result(self, name: str, params: dict[str, Any], call: Call) -> Any:
        chat = Chat(id=int(params.get("chat_id", 0) or 0), type="private")
        now = datetime.now(UTC)
        if name == "sendMessage":
            call.result_id = next(self._ids)
            return Message(message_id=call.result_id, date=now, chat=chat, text=params["text"])
        if name in {"editMessageText", "editMessageReplyMarkup"}:
            return Message(
                message_id=int(params["message_id"]), date=now, chat=chat, text=params.get("text")
            )
        if name == "sendPhoto":
            photo = [PhotoSize(file_id="f", file_unique_id="u", width=1, height=1)]
            return Message(message_id=next(self._ids), date=now, chat=chat, photo=photo)
        if name == "getMe":
            return User(id=123456, is_bot=True, first_name="Trợ lý", username="troly_test_bot")
        return True

    # ---------------------------------------------------------------- reading what was sent

    def sent(self, chat_id: int | None = None) -> list[Call]:
        return [
            c
            for c in self.calls
            if c.name in {"sendMessage", "sendPhoto"}
            and (chat_id is None or int(c.params["chat_id"]) == chat_id)
        ]


def _json(content: dict[str, Any]) -> str:
    import json

    return json.dumps(content)


def plain(html_text: str) -> str:
    """What a person reads from an HTML message."""
    return html.unescape(_TAG_RE.sub("", html_text))


class FakeTelegram:
    """A TelegramChannel on a recording session, fed updates directly."""

    def __init__(self, app: App) -> None:
        self.session = RecordingSession()
        self.channel = TelegramChannel(
            app, token=BOT_TOKEN, api_base_url="http://fake", session=self.session
        )
        self.channel.username = "troly_test_bot"  # what prepare() learns from getMe
        app.bot_username = app.bot_username or self.channel.username  # as troly run does
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)

    def user(self, user_id: int = 111, name: str = "Nguyễn Văn A") -> User:
        return User(id=user_id, is_bot=False, first_name=name)

    async def send_text(
        self,
        text: str,
        user_id: int = 111,
        *,
        chat_id: int | None = None,
        update_id: int | None = None,
        reply_to_bot: bool = False,
    ) -> list[Call]:
        """A text from ``user_id``, in their private chat or in the group ``chat_id`` (a
        negative id). A mention of ``@troly_test_bot`` gets its entity, as Telegram sends."""
        before = len(self.session.calls)
        in_group = chat_id is not None and chat_id < 0
        chat = (
            Chat(id=chat_id, type="supergroup", title="Nhóm cán bộ")
            if in_group and chat_id is not None
            else Chat(id=user_id, type="private")
        )
        entities = _entities(text)
        replied = None
        if reply_to_bot:
            bot = User(id=123456, is_bot=True, first_name="Trợ lý", username="troly_test_bot")
            replied = Message(message_id=1, date=datetime.now(UTC), chat=chat, from_user=bot)
        message = Message(
            message_id=next(self._message_ids),
            date=datetime.now(UTC),
            chat=chat,
            from_user=self.user(user_id),
            text=text,
            entities=entities or None,
            reply_to_message=replied,
        )
        await self._feed(Update(update_id=update_id or next(self._update_ids), message=message))
        return [c for c in self.session.calls[before:] if c.name in {"sendMessage", "sendPhoto"}]

    async def send_update(self, update: Update) -> list[Call]:
        before = len(self.session.calls)
        await self._feed(update)
        return [c for c in self.session.calls[before:] if c.name in {"sendMessage", "sendPhoto"}]

    async def press(
        self, data: str, user_id: int = 111, *, on: Call | None = None, chat_id: int | None = None
    ) -> list[Call]:
        """Press a button; ``on``: the bot message (a recorded sendMessage) it sits on."""
        before = len(self.session.calls)
        in_group = chat_id is not None and chat_id < 0
        chat = (
            Chat(id=chat_id, type="supergroup", title="Nhóm cán bộ")
            if in_group and chat_id is not None
            else Chat(id=user_id, type="private")
        )
        markup = None
        if on is not None and on.params.get("reply_markup"):
            markup = InlineKeyboardMarkup.model_validate(on.params["reply_markup"])
        message = Message(
            message_id=on.result_id if on is not None else next(self._message_ids),
            date=datetime.now(UTC),
            chat=chat,
            text=plain(on.params["text"]) if on is not None else "…",
            reply_markup=markup,
        )
        query = CallbackQuery(
            id=str(next(self._update_ids)),
            from_user=self.user(user_id),
            chat_instance="ci",
            message=message,
            data=data,
        )
        await self._feed(Update(update_id=next(self._update_ids), callback_query=query))
        return [c for c in self.session.calls[before:] if c.name in {"sendMessage", "sendPhoto"}]

    def calls_of(self, name: str) -> list[Call]:
        return [c for c in self.session.calls if c.name == name]

    async def _feed(self, update: Update) -> None:
        await self.channel.dispatcher.feed_update(self.channel.bot, update)
