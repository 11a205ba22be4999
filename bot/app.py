"""dispatch(): the one path every message takes, whatever the channel.

One database session per message, committed once. Flood control, numbered choices for
channels without buttons, conversation expiry and error-to-reply mapping live here and
nowhere else.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import select

from bot.core import IncomingMessage, Reply, UserRef, utcnow
from bot.render import numbered
from bot.storage.db import AsyncSession, SessionFactory
from bot.storage.models import Conversation, MessageLog
from handlers import ROUTES, Context, Route, UserError
from handlers.people import identify
from handlers.routing import HandlerResult
from knowledge import Knowledge
from scheduler.outbox import unblock

__all__ = ["App", "FloodGuard", "sanitize_text"]

log = logging.getLogger(__name__)

THROTTLE_NOTICE = (
    "Đồng chí đang gửi nhiều tin nhắn liên tiếp. Xin vui lòng chờ khoảng một phút rồi gửi "
    "tiếp; các tin nhắn vừa rồi đã được ghi nhận."
)
ERROR_REPLY = "Xin lỗi, đã có lỗi khi xử lý yêu cầu của đồng chí. Xin vui lòng thử lại sau ít phút."
EXPIRED_NOTICE = (
    "Phiên thao tác trước đã hết hạn do lâu không có phản hồi, thông tin chưa hoàn tất "
    "không được ghi nhận."
)

_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_CHOICE_RE = re.compile(r"^\s*(\d{1,3})\s*[.)]?\s*$")


def sanitize_text(text: str | None) -> str | None:
    """Drop control characters (NUL breaks PostgreSQL text); keep newlines and tabs."""
    if text is None:
        return None
    return _CONTROL_RE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


class FloodGuard:
    """Sliding one-minute window per person: over the limit, one notice, then silence."""

    def __init__(
        self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._seen: dict[UserRef, deque[float]] = {}
        self._notified: set[UserRef] = set()

    def check(self, user: UserRef) -> Literal["ok", "notify", "drop"]:
        now = self.clock()
        times = self._seen.setdefault(user, deque())
        while times and now - times[0] >= self.window:
            times.popleft()
        times.append(now)
        if len(self._seen) > 10_000:
            self._sweep(now)
        if len(times) <= self.limit:
            self._notified.discard(user)
            return "ok"
        if user in self._notified:
            return "drop"
        self._notified.add(user)
        return "notify"

    def _sweep(self, now: float) -> None:
        for user in [u for u, t in self._seen.items() if not t or now - t[-1] >= self.window]:
            del self._seen[user]
            self._notified.discard(user)


class App:
    """The assistant's core. Adapters call :meth:`dispatch` and render what it returns."""

    def __init__(
        self,
        *,
        knowledge: Knowledge,
        sessions: SessionFactory,
        zone: ZoneInfo,
        flood_limit: int = 20,
        conversation_timeout_minutes: int = 30,
        bot_username: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        routes: Sequence[Route] = ROUTES,
        push_window: Callable[[datetime], datetime] | None = None,
    ) -> None:
        self.knowledge = knowledge
        self.sessions = sessions
        self.zone = zone
        self.flood = FloodGuard(flood_limit)
        self.conversation_timeout = timedelta(minutes=conversation_timeout_minutes)
        self.bot_username = bot_username
        self.clock = clock
        self.routes = tuple(routes)
        self.push_window = push_window
        self._locks: weakref.WeakValueDictionary[UserRef, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    async def dispatch(self, msg: IncomingMessage, *, buttons: bool) -> list[Reply]:
        """Handle one incoming message; return the replies to send, in order.

        ``buttons`` says whether the channel can show buttons; if not, choices are numbered
        and a reply of "1", "2", ... picks one.
        """
        msg = replace(msg, text=sanitize_text(msg.text))
        lock = self._locks.get(msg.user)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[msg.user] = lock
        async with lock:  # one person's messages are handled in order
            return await self._dispatch(msg, buttons=buttons)

    async def _dispatch(self, msg: IncomingMessage, *, buttons: bool) -> list[Reply]:
        now = self.clock()
        entry = MessageLog(
            channel=msg.channel,
            user_id=msg.user_id,
            chat_id=msg.chat_id,
            kind=msg.kind,
            text=msg.payload if msg.kind == "button" else msg.text,
            created_at=now,
        )
        verdict = self.flood.check(msg.user)
        if verdict != "ok":
            entry.route = "throttled"
            await self._record(entry)
            return [Reply(text=THROTTLE_NOTICE)] if verdict == "notify" else []

        try:
            async with self.sessions() as session:
                conversation = await _conversation(session, msg.user)
                identity = await identify(session, msg.user)
                if identity is not None:
                    await unblock(session, msg.channel, msg.user_id)  # they write: pushes resume
                notices: list[Reply] = []
                if conversation.flow and now - conversation.updated_at > self.conversation_timeout:
                    conversation.flow = conversation.step = None
                    conversation.data = {}
                    conversation.choices = []
                    notices.append(Reply(text=EXPIRED_NOTICE))
                msg, early = self._resolve_choice(msg, conversation, buttons)
                ctx = Context(
                    session=session,
                    knowledge=self.knowledge,
                    now=now,
                    zone=self.zone,
                    conversation=conversation,
                    log=entry,
                    buttons=buttons,
                    bot_username=self.bot_username,
                    conversation_timeout_minutes=int(
                        self.conversation_timeout.total_seconds() // 60
                    ),
                    identity=identity,
                    push_window=self.push_window,
                )
                if early is not None:
                    entry.route = "choice_out_of_range"
                    replies = [early]
                else:
                    route = self._route(msg, ctx)
                    replies = _as_list(await route.handler(msg, ctx))
                    entry.route = entry.route or route.name
                    replies = self._present(replies, conversation, buttons)
                conversation.updated_at = now
                session.add(conversation)
                session.add(entry)
                await session.commit()
                return notices + replies
        except UserError as exc:
            entry = _fresh(entry, route="user_error")
            await self._record(entry)
            return [Reply(text=exc.message)]
        except Exception:
            log.exception(
                "handling a %s message from %s failed", msg.channel, _redact_user(msg.user_id)
            )
            entry = _fresh(entry, route="error")
            try:
                await self._record(entry)
            except Exception:
                log.exception("could not record the failed message either")
            return [Reply(text=ERROR_REPLY)]

    def _route(self, msg: IncomingMessage, ctx: Context) -> Route:
        for route in self.routes:
            if route.matches(msg, ctx):
                return route
        raise LookupError("no route matched and there is no fallback")  # pragma: no cover

    def _resolve_choice(
        self, msg: IncomingMessage, conversation: Conversation, buttons: bool
    ) -> tuple[IncomingMessage, Reply | None]:
        """On channels without buttons, "2" picks the second of the choices last offered."""
        if buttons or msg.kind != "text" or not conversation.choices or msg.text is None:
            return msg, None
        match = _CHOICE_RE.match(msg.text)
        if match is None:
            return msg, None
        number = int(match.group(1))
        choices = conversation.choices
        if not 1 <= number <= len(choices):
            return msg, Reply(text=f"Đồng chí vui lòng chọn một số từ 1 đến {len(choices)}.")
        return replace(msg, kind="button", payload=choices[number - 1]), None

    @staticmethod
    def _present(replies: list[Reply], conversation: Conversation, buttons: bool) -> list[Reply]:
        """Remember the choices just offered; number them where there are no buttons."""
        if not replies:
            return replies
        offered = [b.payload for r in replies for b in r.flat_buttons]
        conversation.choices = [] if buttons else offered
        return replies if buttons else [numbered(r) for r in replies]

    async def _record(self, entry: MessageLog) -> None:
        async with self.sessions() as session:
            session.add(entry)
            await session.commit()


def _as_list(result: HandlerResult) -> list[Reply]:
    if result is None:
        return []
    if isinstance(result, Reply):
        return [result]
    return list(result)


def _fresh(entry: MessageLog, *, route: str) -> MessageLog:
    """A new, unattached copy of a log row (the original may belong to a failed session)."""
    return MessageLog(
        channel=entry.channel,
        user_id=entry.user_id,
        chat_id=entry.chat_id,
        kind=entry.kind,
        text=entry.text,
        route=route,
        created_at=entry.created_at,
    )


def _redact_user(user_id: str) -> str:
    return user_id if len(user_id) <= 4 else f"…{user_id[-4:]}"


async def _conversation(session: AsyncSession, user: UserRef) -> Conversation:
    """The person's conversation row, created on first contact (safe under concurrency)."""
    statement = select(Conversation).where(
        Conversation.channel == user.channel, Conversation.user_id == user.user_id
    )
    found = (await session.exec(statement)).first()
    if found is not None:
        return found
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    values = Conversation(channel=user.channel, user_id=user.user_id)
    await session.exec(
        insert(Conversation)
        .values(
            channel=values.channel,
            user_id=values.user_id,
            data={},
            choices=[],
            updated_at=values.updated_at,
        )
        .on_conflict_do_nothing()
    )
    return (await session.exec(statement)).one()
