"""Transports for the sender. Telegram: an aiogram ``Bot``; its failures become the core's
delivery errors, and no message ever carries the bot token."""

from __future__ import annotations

from collections.abc import Sequence

import aiohttp
from aiogram import Bot
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import SendMessage
from aiogram.methods.base import Response
from aiogram.types import Message

from bot.channels.telegram import CHANNEL, _markup, render
from bot.core import (
    Button,
    PermanentFailure,
    RecipientBlocked,
    Reply,
    RetryLater,
    TemporaryFailure,
)
from scheduler.sender import redact

__all__ = ["TelegramTransport"]

# aiogram validates every answer with ``Response[method.__returning__]``; pydantic caches that
# parametrised model only weakly, so without a reference it is rebuilt (~10 ms of CPU) every
# time the garbage collector has dropped it. Keeping one makes the cache hit.
_RESPONSE_MESSAGE = Response[Message]


class TelegramTransport:
    """Deliver pushes with an aiogram ``Bot``: HTML rendering as for replies (a text longer
    than 4096 characters goes as several messages, the keyboard on the last), inline keyboard
    from the buttons."""

    channel = CHANNEL
    buttons = True

    def __init__(self, bot: Bot, *, request_timeout: int = 30) -> None:
        self.bot = bot
        self.request_timeout = request_timeout

    def _clean(self, text: str) -> str:
        return redact(text.replace(self.bot.token, "<token>"))

    async def deliver(self, chat_id: str, text: str, buttons: Sequence[Sequence[Button]]) -> None:
        reply = Reply(text=text, buttons=tuple(tuple(row) for row in buttons if row))
        parts = render(reply)
        markup = _markup(reply)
        target: int | str = int(chat_id) if chat_id.lstrip("-").isdigit() else chat_id
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            try:
                # The session directly rather than ``bot.send_message``: the same request
                # and answer checks, a third less CPU per push (no session middlewares are
                # installed, and the answer's models need no bot context).
                await self.bot.session.make_request(
                    self.bot,
                    SendMessage(
                        chat_id=target,
                        text=part,
                        parse_mode="HTML",
                        reply_markup=markup if last else None,
                    ),
                    timeout=self.request_timeout,
                )
            except TelegramRetryAfter as exc:
                raise RetryLater(exc.retry_after, "Telegram 429: too many requests") from None
            except TelegramForbiddenError as exc:
                raise RecipientBlocked(f"Telegram 403: {self._clean(exc.message)}") from None
            except TelegramEntityTooLarge as exc:  # a TelegramNetworkError, but permanent
                raise PermanentFailure(f"Telegram 413: {self._clean(exc.message)}") from None
            except TelegramServerError as exc:
                raise TemporaryFailure(f"Telegram 5xx: {self._clean(exc.message)}") from None
            except TelegramNetworkError as exc:
                raise TemporaryFailure(f"network: {self._clean(exc.message)}") from None
            except TelegramAPIError as exc:
                raise PermanentFailure(f"Telegram: {self._clean(exc.message)}") from None
            except ClientDecodeError:  # not a Bot API answer (a proxy's error page, say)
                raise TemporaryFailure("Telegram: unreadable answer") from None
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                raise TemporaryFailure(
                    f"network: {type(exc).__name__}: {self._clean(str(exc))}"
                ) from None
