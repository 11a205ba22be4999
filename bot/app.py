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
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import update
from sqlmodel import select

from bot.choices import bare_number, from_stored, pick, to_stored
from bot.core import Button, IncomingMessage, Menu, Reply, UserRef, utcnow
from bot.logs import log_context
from bot.message_tx import MessageTransactions
from bot.metrics import METRICS, answer_outcome
from bot.redaction import redact_codes, redact_user
from bot.render import numbered, numbered_buttons
from bot.storage.db import AsyncSession, SessionFactory
from bot.storage.models import Conversation, MessageLog
from handlers import PRIVATE_ONLY, ROUTES, Context, Route, UserError, expired_notice
from handlers.context import LogEntry
from handlers.menus import GROUP_MENU, GUEST_MENU, menu_for, menu_key
from handlers.qa import looks_like_question
from handlers.routing import HandlerResult
from knowledge import Knowledge
from scheduler.outbox import unblock

__all__ = ["App", "Outcome", "replies_from_json", "replies_to_json", "sanitize_text"]

log = logging.getLogger(__name__)

THROTTLE_NOTICE = (
    "Đồng chí đang gửi nhiều tin nhắn liên tiếp nên tin nhắn vừa rồi chưa được xử lý. Xin vui "
    "lòng chờ khoảng một phút rồi gửi lại. (Các lựa chọn và báo cáo đang làm dở vẫn được nhận "
    "bình thường.)"
)
ERROR_REPLY = "Xin lỗi, đã có lỗi khi xử lý yêu cầu của đồng chí. Xin vui lòng thử lại sau ít phút."
NO_LIST = (
    "Hiện không có danh sách lựa chọn nào đang chờ đồng chí trả lời. Đồng chí gõ câu hỏi, "
    "hoặc /help để xem các lệnh."
)
CONFIRM_BATCH_SECONDS = 0.05  # sent replies are recorded together, this often
FLOOD_WINDOW = timedelta(minutes=1)
AFTER_EXPIRY = "Nội dung vừa gửi chưa được ghi nhận. Nếu đồng chí muốn hỏi, xin gửi câu hỏi."

_ANSI_RE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[@-Z\\-_]")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufeff\u200b]")


def sanitize_text(text: str | None) -> str | None:
    """Drop terminal escape sequences, control characters (NUL breaks PostgreSQL text),
    byte-order marks and zero-width spaces; keep newlines and tabs."""
    if text is None:
        return None
    text = _ANSI_RE.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return _CONTROL_RE.sub("", text)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What dispatch decided: the replies, and (on channels with command menus) the menu to
    show this person when it changed."""

    replies: list[Reply]
    menu: Menu | None = None
    log_id: int | None = None  # the update's log row: App.confirm() once the replies are sent
    route: str | None = None  # the route the log row got (metrics)
    answer: str | None = None  # for a question: answered, suggestions or out_of_scope


class App:
    """The assistant's core. Adapters call :meth:`dispatch` (or :meth:`handle`) and render
    what it returns."""

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
        channels: Collection[str] = (),
    ) -> None:
        self.knowledge = knowledge
        self.transactions = MessageTransactions(sessions.kw["bind"])
        self.zone = zone
        self.flood_limit = flood_limit
        self.conversation_timeout = timedelta(minutes=conversation_timeout_minutes)
        self.bot_username = bot_username
        self.clock = clock
        self.routes = tuple(routes)
        self.push_window = push_window
        self.channels = frozenset(channels)  # the messengers configured (invitation texts)
        self.guest_menu: Menu = GUEST_MENU  # the menus of people not enrolled, and of groups
        self.group_menu: Menu = GROUP_MENU
        self._locks: weakref.WeakValueDictionary[UserRef, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._sent: list[int] = []  # log rows whose replies were sent, not yet recorded
        self._sent_ids: set[int] = set()  # the same, until their record is committed
        self._confirming: asyncio.Task[None] | None = None

    async def dispatch(self, msg: IncomingMessage, *, buttons: bool) -> list[Reply]:
        """Handle one incoming message; return the replies to send, in order.

        ``buttons`` says whether the channel can show buttons; if not, choices are numbered
        and a reply of "1", "2", ... (or the words of a choice) picks one.
        """
        return (await self.handle(msg, buttons=buttons)).replies

    async def handle(self, msg: IncomingMessage, *, buttons: bool, menus: bool = False) -> Outcome:
        """:meth:`dispatch`, and with ``menus`` the command menu this person should now see
        when it is not the one last set."""
        started = time.perf_counter()
        route, answer = "error", None
        with log_context(channel=msg.channel, user=msg.user_id) as context:
            try:
                msg = replace(msg, text=sanitize_text(msg.text))
                lock = self._locks.get(msg.user)
                if lock is None:
                    lock = asyncio.Lock()
                    self._locks[msg.user] = lock
                async with lock:  # one person's messages are handled in order
                    outcome = await self._dispatch(msg, buttons=buttons, menus=menus)
                route, answer = outcome.route or "none", outcome.answer
                return outcome
            except asyncio.CancelledError:
                route = "cancelled"
                raise
            finally:
                seconds = time.perf_counter() - started
                METRICS.observe_message(msg.channel, route, seconds, answer)
                context["route"] = route
                log.debug("message handled in %.1f ms", seconds * 1000)

    async def _dispatch(self, msg: IncomingMessage, *, buttons: bool, menus: bool) -> Outcome:
        now = self.clock()
        entry = LogEntry(
            channel=msg.channel,
            user_id=msg.user_id,
            chat_id=msg.chat_id,
            kind=msg.kind,
            text=redact_codes(msg.payload if msg.kind == "button" else msg.text),
            update_key=msg.update_key,
            created_at=now,
        )
        notices: list[Reply] = []
        if msg.in_group and not msg.addressed:
            # Group chatter not meant for the assistant: not answered, its text not kept.
            entry.route, entry.text = "group_ignored", None
            await self._record(entry)
            return Outcome([], route=entry.route)
        try:
            async with self.transactions() as tx:
                # Few statements per message: claim the update (a redelivery stops here)
                # and the conversation with the person's identity (locked against other
                # processes until this transaction ends), then one write back.
                opened = await tx.open(msg.user, entry)
                if opened is None:
                    return replace(await self._redelivered(tx.session, entry), route="redelivered")
                entry.id = tx.claimed
                conversation, identity, blocked = opened
                if not _continues(msg, conversation, buttons):
                    verdict = self.flood_verdict(conversation, now)
                    if verdict != "ok":
                        entry.route = "throttled"
                        throttled = [Reply(text=THROTTLE_NOTICE)] if verdict == "notify" else []
                        await tx.save(conversation, entry, _stored(entry, throttled))
                        await tx.commit()
                        return Outcome(throttled, log_id=entry.id, route=entry.route)
                if blocked:
                    await unblock(tx.session, msg.channel, msg.user_id)  # they write: pushes resume
                expired = False
                idle = now - conversation.updated_at > self.conversation_timeout
                if idle and conversation.qa_turn is not None:
                    conversation.qa_turn = None  # a follow-up needs a recent question
                if conversation.flow and idle:
                    notices.append(Reply(text=expired_notice(conversation)))
                    conversation.flow = conversation.step = None
                    conversation.data = {}
                    conversation.choices = []
                    expired = True
                ctx = Context(
                    transaction=tx,
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
                    in_group=msg.in_group,
                    channels=self.channels,
                )
                before = (conversation.flow, conversation.step)
                msg, early = self._resolve_choice(msg, conversation, buttons, expired)
                if early is None and expired and _answers_the_expired_flow(msg):
                    # A note or a choice meant for the flow that just expired: it must not
                    # start anything else (a note can read like a new report).
                    early = Reply(text=AFTER_EXPIRY)
                if early is not None:
                    entry.route = "expired" if expired else "choice_invalid"
                    replies = [early]
                else:
                    route = self._route(msg, ctx)
                    replies = _as_list(await route.handler(msg, ctx))
                    entry.route = entry.route or route.name
                offered = any(reply.buttons for reply in replies)
                answer = answer_outcome(entry.route, entry.matched, offered)
                replies = self._present(replies, conversation, buttons, msg.in_group, before)
                menu = None
                if menus and not msg.in_group:
                    key = menu_key(ctx.identity)
                    if key != (conversation.menu or GUEST_MENU.key):
                        menu = await menu_for(tx.session, ctx.identity)
                        conversation.menu = menu.key
                conversation.updated_at = now
                await tx.save(conversation, entry, _stored(entry, notices + replies))
                await tx.commit()
                return Outcome(
                    notices + replies, menu, log_id=entry.id, route=entry.route, answer=answer
                )
        except UserError as exc:
            entry = _fresh(entry, route="user_error")
            await self._record(entry)
            return Outcome([*notices, Reply(text=exc.message)], route=entry.route)
        except Exception:
            log.exception(
                "handling a %s message from %s failed", msg.channel, redact_user(msg.user_id)
            )
            entry = _fresh(entry, route="error")
            try:
                await self._record(entry)
            except Exception:
                log.exception("could not record the failed message either")
            return Outcome([Reply(text=ERROR_REPLY)], route=entry.route)

    def flood_verdict(
        self, conversation: Conversation, now: datetime
    ) -> Literal["ok", "notify", "drop"]:
        """The flood limit, counted in the conversation row (so every process counts the
        same messages): at most ``flood_limit`` messages in a minute from its first one;
        over it, one notice, then silence until the minute is over."""
        start = conversation.flood_at
        if start is None or now - start >= FLOOD_WINDOW or now < start:
            conversation.flood_at, conversation.flood_count = now, 0
            conversation.flood_notified = False
        conversation.flood_count += 1
        if conversation.flood_count <= self.flood_limit:
            return "ok"
        if conversation.flood_notified:
            return "drop"
        conversation.flood_notified = True
        return "notify"

    async def _redelivered(self, session: AsyncSession, entry: LogEntry) -> Outcome:
        """An update seen before. Handled and its replies confirmed sent: nothing to do.
        Handled, replies never confirmed (the process that sent them died first): send
        them again."""
        row = (
            await session.exec(
                select(MESSAGE_LOG.c.id, MESSAGE_LOG.c.replies, MESSAGE_LOG.c.replied_at).where(
                    MESSAGE_LOG.c.channel == entry.channel,
                    MESSAGE_LOG.c.update_key == entry.update_key,
                )
            )
        ).first()
        log.info("a %s update was delivered again: not handled twice", entry.channel)
        if row is None:
            return Outcome([])
        log_id, replies, replied_at = row
        if replied_at is not None or not replies or log_id in self._sent_ids:
            return Outcome([])  # sent (this process's record of it may still be on its way)
        return Outcome(replies_from_json(replies), log_id=log_id)

    async def confirm(self, outcome: Outcome) -> None:
        """The adapter sent ``outcome``'s replies: a redelivery of its update will not send
        them again. Recorded in the background, many in one statement, so the adapter
        acknowledges the update at once: the time in which a worker's death makes a
        redelivered update's replies go out twice is only that of the acknowledgement."""
        if outcome.log_id is None or not outcome.replies:
            return
        self._sent.append(outcome.log_id)
        self._sent_ids.add(outcome.log_id)
        if self._confirming is None or self._confirming.done():
            self._confirming = asyncio.create_task(self._record_sent())

    async def flush_confirmations(self) -> None:
        """Wait until every confirmation so far is recorded (at shutdown; in tests)."""
        while self._confirming is not None and not self._confirming.done():
            await asyncio.shield(self._confirming)
        if self._sent:
            await self._record_sent(wait=False)

    async def _record_sent(self, *, wait: bool = True) -> None:
        """Record the confirmations gathered so far, one statement a batch; each batch
        waits ``CONFIRM_BATCH_SECONDS`` for more (under load, one write per batch window
        rather than one per message)."""
        while self._sent:
            if wait:
                await asyncio.sleep(CONFIRM_BATCH_SECONDS)
            ids, self._sent = self._sent, []
            try:
                async with self.transactions.engine.begin() as connection:
                    await connection.execute(
                        update(MESSAGE_LOG)
                        .where(MESSAGE_LOG.c.id.in_(ids))
                        .values(replied_at=self.clock())
                    )
            except Exception as exc:  # only a redelivery would send those replies again
                log.warning("could not record %d sent replies (%s)", len(ids), type(exc).__name__)
            finally:
                self._sent_ids.difference_update(ids)

    def _route(self, msg: IncomingMessage, ctx: Context) -> Route:
        for route in self.routes:
            if route.private and msg.in_group:
                if route.explicitly_matches(msg, ctx):
                    return PRIVATE_ONLY  # a personal or admin command: not in a group
                continue
            if route.matches(msg, ctx):
                return route
        raise LookupError("no route matched and there is no fallback")  # pragma: no cover

    def _resolve_choice(
        self, msg: IncomingMessage, conversation: Conversation, buttons: bool, expired: bool
    ) -> tuple[IncomingMessage, Reply | None]:
        """On channels without buttons, "2", "số 2", "hai" or the words of a choice pick
        one of the choices last offered. A number with nothing to choose from is said so."""
        if msg.kind != "text" or msg.text is None or msg.in_group or msg.command is not None:
            return msg, None
        choices = [] if buttons else from_stored(conversation.choices)
        if choices:
            picked = pick(msg.text, choices)
            if picked.kind == "choice" and picked.choice is not None:
                return replace(msg, kind="button", payload=picked.choice.payload), None
            if picked.kind == "out_of_range":
                listing = Reply(
                    text=f"Đồng chí vui lòng chọn một số từ 1 đến {len(choices)}:",
                    buttons=tuple((Button(c.label, c.payload),) for c in choices),
                )
                return msg, listing
            return msg, None
        if bare_number(msg.text) is not None and (conversation.flow is None or expired):
            return msg, Reply(text=NO_LIST)
        return msg, None

    @staticmethod
    def _present(
        replies: list[Reply],
        conversation: Conversation,
        buttons: bool,
        in_group: bool,
        before: tuple[str | None, str | None],
    ) -> list[Reply]:
        """Remember the choices just offered; number them where there are no buttons. A
        reply that offers nothing while a flow still waits at the same step keeps the
        choices on offer (a mistyped answer must not empty the list)."""
        if in_group:
            return replies if buttons else [numbered(r) for r in replies]
        offered = [b for r in replies for b in numbered_buttons(r)]
        waiting = conversation.flow is not None and (conversation.flow, conversation.step) == before
        if buttons:
            conversation.choices = []
        elif offered or not waiting:
            conversation.choices = to_stored(offered)
        return replies if buttons else [numbered(r) for r in replies]

    async def _record(self, entry: LogEntry) -> None:
        """A log row in a transaction of its own (an update logged before is left alone)."""
        async with self.transactions() as tx:
            await tx.log(entry)
            await tx.commit()


def _answers_the_expired_flow(msg: IncomingMessage) -> bool:
    return (
        msg.kind == "text"
        and msg.command is None
        and bool((msg.text or "").strip())
        and not looks_like_question(msg.text)
    )


def _continues(msg: IncomingMessage, conversation: Conversation, buttons: bool) -> bool:
    """A button press, or a message that answers a flow in progress or picks a numbered
    choice: never throttled (nothing an official confirmed may be dropped)."""
    if msg.kind == "button":
        return True
    if msg.kind != "text" or msg.in_group:
        return False
    if conversation.flow is not None:
        return True
    return not buttons and bool(conversation.choices) and bare_number(msg.text) is not None


def _as_list(result: HandlerResult) -> list[Reply]:
    if result is None:
        return []
    if isinstance(result, Reply):
        return [result]
    return list(result)


def _fresh(entry: LogEntry, *, route: str) -> LogEntry:
    """The log row again, for a new transaction (the one that claimed it was rolled
    back)."""
    return LogEntry(
        channel=entry.channel,
        user_id=entry.user_id,
        chat_id=entry.chat_id,
        kind=entry.kind,
        text=entry.text,
        route=route,
        update_key=entry.update_key,
        created_at=entry.created_at,
    )


MESSAGE_LOG = MessageLog.__table__  # type: ignore[attr-defined]


def _stored(entry: LogEntry, replies: list[Reply]) -> list[dict[str, object]] | None:
    """The replies as the log keeps them, for an update a platform may deliver again."""
    return replies_to_json(replies) if entry.update_key is not None else None


def replies_to_json(replies: Sequence[Reply]) -> list[dict[str, object]]:
    """Replies as kept in the log (pictures are not kept: a re-sent reply has its text)."""
    return [
        {
            "text": reply.text or (reply.image.alt_text or reply.image.caption or "")
            if reply.image is not None
            else reply.text,
            "footer": reply.footer,
            "buttons": [[[b.label, b.payload, b.command] for b in row] for row in reply.buttons],
        }
        for reply in replies
    ]


def replies_from_json(stored: Sequence[dict[str, Any]]) -> list[Reply]:
    replies = []
    for item in stored:
        footer = item.get("footer")
        rows: list[list[list[Any]]] = item.get("buttons") or []
        replies.append(
            Reply(
                text=str(item.get("text") or ""),
                footer=footer if isinstance(footer, str) else None,
                buttons=tuple(
                    tuple(Button(str(b[0]), str(b[1]), b[2] if len(b) > 2 else None) for b in row)
                    for row in rows
                ),
            )
        )
    return replies
