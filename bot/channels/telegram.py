"""Telegram adapter (aiogram 3): native updates -> IncomingMessage -> dispatch -> Replies.

It only translates. Long polling by default; webhook mode registers a handler on the shared
aiohttp application. The Bot API base URL is configurable (self-hosted servers, emulators).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
from collections.abc import Sequence
from typing import Any, cast

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.base import BaseSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramAPIError, TelegramNetworkError, TelegramRetryAfter
from aiogram.methods.base import TelegramMethod, TelegramType
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllGroupChats,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
    BotCommandScopeDefault,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    Message,
    Update,
)
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import ClientError, ClientTimeout, web

from bot.app import App
from bot.core import IncomingMessage, Menu, Reply
from bot.render import PART_MARK_ROOM, mark_parts, split_text

__all__ = [
    "CHANNEL",
    "TEXT_LIMIT",
    "JsonSession",
    "TelegramChannel",
    "to_incoming",
]

log = logging.getLogger(__name__)

CHANNEL = "telegram"
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
WEBHOOK_PATH = "/webhook/telegram"
MAX_SEND_ATTEMPTS = 3

GROUP_TYPES = frozenset({"group", "supergroup"})


def to_incoming(
    message: Message,
    *,
    bot_username: str | None = None,
    bot_id: int | None = None,
    update_id: int | None = None,
) -> IncomingMessage:
    """A Telegram message as the core sees it. In a group, the message is addressed to the
    assistant when it is a command (for this bot), mentions the bot, or replies to one of its
    messages; the mention is removed from the text."""
    user = message.from_user
    user_id = str(user.id) if user is not None else str(message.chat.id)
    name = user.full_name if user is not None else None
    in_group = message.chat.type in GROUP_TYPES
    text = message.text
    addressed = True
    if in_group:
        text, addressed = _addressing(message, bot_username, bot_id)
    common = {
        "channel": CHANNEL,
        "user_id": user_id,
        "chat_id": str(message.chat.id),
        "user_name": name,
        "message_id": str(message.message_id),
        "chat_type": "group" if in_group else "private",
        "addressed": addressed,
        "update_key": f"u{update_id}" if update_id is not None else None,
    }
    if message.text is not None:
        return IncomingMessage(text=text, kind="text", **common)  # type: ignore[arg-type]
    media = (
        message.photo,
        message.sticker,
        message.voice,
        message.audio,
        message.video,
        message.video_note,
        message.document,
        message.animation,
        message.location,
        message.contact,
    )
    kind = "media" if any(item is not None for item in media) else "unsupported"
    return IncomingMessage(text=message.caption, kind=kind, **common)  # type: ignore[arg-type]


def _addressing(
    message: Message, bot_username: str | None, bot_id: int | None
) -> tuple[str | None, bool]:
    """(the text without the bot's mention, whether the bot is addressed) in a group."""
    text = message.text or ""
    me = f"@{bot_username}".lower() if bot_username else None
    stripped = text
    addressed = False
    for entity in message.entities or ():
        piece = entity.extract_from(text)
        if entity.type == "bot_command" and entity.offset == 0:
            target = piece.partition("@")[2].lower()
            addressed = not target or (me is not None and f"@{target}" == me)
        elif entity.type == "mention" and me is not None and piece.lower() == me:
            addressed = True
            stripped = stripped.replace(piece, " ", 1)
        elif entity.type == "text_mention" and entity.user is not None and entity.user.id == bot_id:
            addressed = True
    replied = message.reply_to_message
    if replied is not None and replied.from_user is not None and replied.from_user.id == bot_id:
        addressed = True
    return " ".join(stripped.split()) if stripped != text else text, addressed


def _html(text: str) -> str:
    return html.escape(text, quote=False)


def _markup(reply: Reply) -> InlineKeyboardMarkup | None:
    if not reply.buttons:
        return None
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [InlineKeyboardButton(text=b.label, callback_data=b.payload) for b in row]
            for row in reply.buttons
        ]
    )


def render(reply: Reply) -> list[str]:
    """HTML chunks for one reply, each below Telegram's 4096-character limit; several parts
    are numbered (1/2), (2/2)."""
    parts = _render(reply, TEXT_LIMIT)
    if len(parts) > 1:
        parts = mark_parts(_render(reply, TEXT_LIMIT - PART_MARK_ROOM))
    return parts


def _render(reply: Reply, limit: int) -> list[str]:
    chunks = split_text(reply.text, limit, measure=lambda s: len(_html(s)))
    parts = [_html(chunk) for chunk in chunks]
    if reply.footer:
        footer = f"<i>{_html(reply.footer)}</i>"
        if parts and len(parts[-1]) + 2 + len(footer) <= limit:
            parts[-1] = f"{parts[-1]}\n\n{footer}"
        else:
            parts.extend(
                f"<i>{_html(c)}</i>"
                for c in split_text(reply.footer, limit - 7, measure=lambda s: len(_html(s)))
            )
    return parts or ["…"]


class JsonSession(AiohttpSession):
    """Bot API requests with a JSON body (which Telegram accepts) instead of aiogram's
    url-encoded form. Url-encoding escapes byte by byte in Python, and nearly every byte of
    Vietnamese text is escaped: for a reply of a few hundred words that was a good part of
    its cost (``make bench``). A request with a file still goes as a multipart form."""

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 - aiogram's signature
    ) -> TelegramType:
        files: dict[str, InputFile] = {}
        payload: dict[str, Any] = {}
        for key, value in method.model_dump(warnings=False).items():
            prepared = self.prepare_value(value, bot=bot, files=files, _dumps_json=False)
            if prepared is not None:
                payload[key] = prepared
        if files:
            return await super().make_request(bot, method, timeout)
        session = await self.create_session()
        url = self.api.api_url(token=bot.token, method=method.__api_method__)
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        try:
            async with session.post(
                url,
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=ClientTimeout(total=self.timeout if timeout is None else timeout),
            ) as response:
                raw_result = await response.text()
        except TimeoutError as exc:
            raise TelegramNetworkError(method=method, message="Request timeout error") from exc
        except ClientError as exc:
            message = f"{type(exc).__name__}: {exc}"
            raise TelegramNetworkError(method=method, message=message) from exc
        checked = self.check_response(
            bot=bot, method=method, status_code=response.status, content=raw_result
        )
        return cast(TelegramType, checked.result)


class _Dispatcher(Dispatcher):
    """aiogram's dispatcher for what it does for this channel (long polling with its
    back-off, webhook requests, a graceful stop), with messages and button presses handed
    straight to the channel: it uses no filters, routers, middlewares or FSM (conversation
    state lives in the database), and walking them was a tenth of a message's cost."""

    def __init__(self, channel: TelegramChannel) -> None:
        super().__init__(disable_fsm=True)
        self._channel = channel

    async def feed_update(self, bot: Bot, update: Update, **kwargs: Any) -> Any:
        if update.message is None and update.callback_query is None:
            return await super().feed_update(bot, update, **kwargs)
        if update.bot != bot:  # not bound to this bot yet (as aiogram does)
            update = Update.model_validate(update.model_dump(), context={"bot": bot})
        if update.message is not None:
            await self._channel._on_message(update.message, update)
        elif update.callback_query is not None:
            await self._channel._on_callback(update.callback_query)
        return None


def bot_commands(menu: Menu) -> list[BotCommand]:
    return [BotCommand(command=c, description=d) for c, d in menu.commands]


class TelegramChannel:
    def __init__(
        self,
        app: App,
        *,
        token: str,
        api_base_url: str,
        session: BaseSession | None = None,
    ) -> None:
        self.app = app
        self.bot = Bot(
            token=token,
            session=session or JsonSession(api=TelegramAPIServer.from_base(api_base_url)),
        )
        self.dispatcher = _Dispatcher(self)
        self.username: str | None = None

    # ------------------------------------------------------------------ inbound

    async def _on_message(self, message: Message, event_update: Update | None = None) -> None:
        incoming = to_incoming(
            message,
            bot_username=self.username,
            bot_id=self.bot.id,
            update_id=event_update.update_id if event_update is not None else None,
        )
        outcome = await self.app.handle(incoming, buttons=True, menus=True)
        await self.send_replies(message.chat.id, outcome.replies)
        await self.app.confirm(outcome)
        if outcome.menu is not None:
            await self._set_menu(message.chat.id, outcome.menu)

    async def _on_callback(self, query: CallbackQuery) -> None:
        try:
            await query.answer()
        except Exception as exc:  # the spinner stops by itself eventually
            log.info("answerCallbackQuery failed: %s", exc)
        message = query.message
        chat_id = message.chat.id if message is not None else query.from_user.id
        in_group = message is not None and message.chat.type in GROUP_TYPES
        incoming = IncomingMessage(
            channel=CHANNEL,
            user_id=str(query.from_user.id),
            chat_id=str(chat_id),
            kind="button",
            payload=query.data or "",
            user_name=query.from_user.full_name,
            chat_type="group" if in_group else "private",
            update_key=f"q{query.id}",
        )
        outcome = await self.app.handle(incoming, buttons=True, menus=not in_group)
        if isinstance(message, Message) and outcome.replies:
            await self._close_keyboard(message, query.data or "")
        await self.send_replies(chat_id, outcome.replies)
        await self.app.confirm(outcome)
        if outcome.menu is not None:
            await self._set_menu(chat_id, outcome.menu)

    async def _close_keyboard(self, message: Message, pressed: str) -> None:
        """A step is done: the message that offered it keeps the choice made, not live
        buttons (an old keyboard pressed later would act on a flow that moved on)."""
        label = next(
            (
                button.text
                for row in (message.reply_markup.inline_keyboard if message.reply_markup else [])
                for button in row
                if button.callback_data == pressed
            ),
            None,
        )
        try:
            if label is not None and message.text is not None:
                text = f"{message.html_text}\n\n→ <b>{_html(label)}</b>"
                if len(text) <= TEXT_LIMIT:
                    await self.bot.edit_message_text(
                        chat_id=message.chat.id,
                        message_id=message.message_id,
                        text=text,
                        parse_mode="HTML",
                        reply_markup=None,
                    )
                    return
            await self.bot.edit_message_reply_markup(
                chat_id=message.chat.id, message_id=message.message_id, reply_markup=None
            )
        except TelegramAPIError as exc:  # too old, already edited, deleted: nothing to do
            log.info("could not close a keyboard: %s", exc)

    async def _set_menu(self, chat_id: int | str, menu: Menu) -> None:
        """This person's command menu in their private chat (best effort)."""
        scope = BotCommandScopeChat(chat_id=chat_id)
        try:
            if menu.key == self.app.guest_menu.key:
                await self.bot.delete_my_commands(scope=scope)
            else:
                await self.bot.set_my_commands(bot_commands(menu), scope=scope)
        except TelegramAPIError as exc:
            log.info("could not set a command menu: %s", exc)

    # ------------------------------------------------------------------ outbound

    async def send_replies(self, chat_id: int | str, replies: Sequence[Reply]) -> None:
        for reply in replies:
            if reply.image is not None:
                caption = reply.image.caption
                await self._call(
                    self.bot.send_photo,
                    chat_id=chat_id,
                    photo=BufferedInputFile(reply.image.data, filename=reply.image.filename),
                    caption=_html(caption[:CAPTION_LIMIT]) if caption else None,
                    parse_mode="HTML",
                )
            if reply.image is not None and not reply.text and not reply.buttons:
                continue
            parts = render(reply)
            for index, part in enumerate(parts):
                last = index == len(parts) - 1
                await self._call(
                    self.bot.send_message,
                    chat_id=chat_id,
                    text=part,
                    parse_mode="HTML",
                    reply_markup=_markup(reply) if last else None,
                )

    async def _call(self, method, /, **kwargs) -> None:  # type: ignore[no-untyped-def]
        """A reply to a person who just wrote: retry a 429 a few times, log other errors."""
        for attempt in range(1, MAX_SEND_ATTEMPTS + 1):
            try:
                await method(**kwargs)
                return
            except TelegramRetryAfter as exc:
                if attempt == MAX_SEND_ATTEMPTS:
                    log.warning("Telegram rate limit persists; a reply was dropped")
                    return
                await asyncio.sleep(min(exc.retry_after, 30))
            except TelegramAPIError as exc:
                log.warning("Telegram refused a reply: %s", exc)
                return

    # ------------------------------------------------------------------ lifecycle

    async def prepare(self) -> None:
        """Learn the bot's username and publish the command menu (best effort)."""
        try:
            me = await self.bot.get_me()
            self.username = me.username
            log.info("Telegram bot @%s connected", me.username)
        except TelegramAPIError as exc:
            raise RuntimeError(
                f"Telegram không chấp nhận token bot (TELEGRAM_BOT_TOKEN): {exc}"
            ) from None
        try:
            await self.bot.set_my_commands(
                bot_commands(self.app.guest_menu), scope=BotCommandScopeDefault()
            )
            await self.bot.set_my_commands(
                bot_commands(self.app.guest_menu), scope=BotCommandScopeAllPrivateChats()
            )
            await self.bot.set_my_commands(
                bot_commands(self.app.group_menu), scope=BotCommandScopeAllGroupChats()
            )
        except Exception as exc:  # e.g. an emulator without setMyCommands
            log.warning("setMyCommands is not available (%s); continuing without a menu", exc)

    async def run_polling(self) -> None:
        try:
            await self.bot.delete_webhook(drop_pending_updates=False)
        except Exception as exc:
            log.warning("deleteWebhook failed (%s); polling anyway", exc)
        await self.dispatcher.start_polling(
            self.bot,
            handle_signals=False,
            close_bot_session=False,
            allowed_updates=["message", "callback_query"],
        )

    async def stop_polling(self) -> None:
        with contextlib.suppress(RuntimeError):  # polling had not started
            await self.dispatcher.stop_polling()

    def register_webhook(self, web_app: web.Application, secret: str) -> None:
        # The update is handled (and its replies sent) before Telegram is answered: an update
        # whose worker died is delivered again, and the message log tells it was seen.
        SimpleRequestHandler(
            dispatcher=self.dispatcher,
            bot=self.bot,
            secret_token=secret,
            handle_in_background=False,
        ).register(web_app, path=WEBHOOK_PATH)

    async def set_webhook(self, base_url: str, secret: str) -> None:
        await self.bot.set_webhook(
            url=f"{base_url}{WEBHOOK_PATH}",
            secret_token=secret,
            allowed_updates=["message", "callback_query"],
        )

    async def close(self) -> None:
        await self.bot.session.close()
