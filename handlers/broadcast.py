"""Admin announcements: who receives them (audiences) and the /thongbao flow.

Audiences: everyone; a level; a unit's subtree; the units late on a task. A unit admin's
audience is always cut to their own subtree. Each person receives one copy, on their most
recently linked channel that has not blocked the bot. Delivery itself (rate limits,
retries, cancellation) is the outbox sender's.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import and_, distinct, func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core import Button, IncomingMessage, Reply
from bot.render import fit_label
from bot.storage.models import (
    Broadcast,
    OutboxMessage,
    Person,
    PersonChannel,
    ProgressStatus,
    Task,
    Unit,
)
from handlers.audit import Actor, record
from handlers.context import Context, UserError
from handlers.formatting import channel_name, vn_date, vn_datetime, vn_number
from handlers.people import Identity
from handlers.tasks import applicable_tasks
from handlers.units import LEVEL_NAMES, path_range, require_unit, unit_by_code, unit_code_argument
from knowledge import LEVELS
from scheduler.broadcasts import PROGRESS_MIN_TOTAL, final_report
from scheduler.outbox import (
    BroadcastStatus,
    Push,
    broadcast_status,
    cancel_broadcast,
    enqueue_many,
)

__all__ = [
    "DEFAULT_SENDER",
    "FLOW",
    "MAX_TEXT",
    "PREFIX",
    "STATUS_NAMES",
    "Audience",
    "AudienceError",
    "Preview",
    "channel_counts",
    "count_by_channel",
    "create_broadcast",
    "describe",
    "describe_spec",
    "expired_notice",
    "first_pending_at",
    "late_tasks",
    "level_counts",
    "list_broadcasts",
    "may_manage",
    "on_button",
    "on_text",
    "parse_audience",
    "preview_broadcast",
    "recipients",
    "send_once",
    "sender_of",
    "start",
    "status_counts",
    "stop_broadcast",
    "stop_command",
    "with_header",
]

FLOW = "thongbao"
PREFIX = "tb:"
# One Zalo message (2,000 characters) holds the header and the text: every recipient gets
# the announcement whole, in one message, on every channel.
MAX_TEXT = 1800
DEFAULT_SENDER = "Ban quản trị Trợ lý Kết luận"


class AudienceError(ValueError):
    """An audience that cannot be used; the message is Vietnamese, for the admin."""


@dataclass(frozen=True, slots=True)
class Audience:
    kind: str  # all, level, unit, late
    value: str = ""

    @property
    def spec(self) -> str:
        return self.kind if self.kind == "all" else f"{self.kind}:{self.value}"


@dataclass(frozen=True, slots=True)
class Target:
    person_id: int
    channel: str
    chat_id: str


def parse_audience(spec: str) -> Audience:
    """``all``, ``level:LEVEL``, ``unit:CODE`` or ``late:TASK``."""
    kind, _, value = spec.strip().partition(":")
    kind, value = kind.lower(), value.strip()
    if kind == "all" and not value:
        return Audience("all")
    if kind == "level" and value in LEVELS:
        return Audience("level", value)
    if kind in {"unit", "late"} and value:
        return Audience(kind, value)
    raise AudienceError(
        f"Đối tượng không hợp lệ: {spec!r}. Dùng all, level:<cấp> ({', '.join(LEVELS)}), "
        "unit:<mã đơn vị> hoặc late:<mã nhiệm vụ>."
    )


async def recipients(
    session: AsyncSession, audience: Audience, *, scope: Unit | None, today: datetime
) -> tuple[list[Target], int]:
    """The people the audience reaches within ``scope`` (None: everyone), one channel each;
    also how many of them are unreachable (they blocked the bot everywhere)."""
    statement = (
        select(PersonChannel)
        .join(Person, col(Person.id) == col(PersonChannel.person_id))
        .join(Unit, col(Unit.id) == col(Person.unit_id))
        .where(col(Person.active))
    )
    if scope is not None:
        low, high = path_range(scope)
        statement = statement.where(col(Unit.path) >= low, col(Unit.path) < high)
    if audience.kind == "level":
        statement = statement.where(col(Unit.level) == audience.value)
    elif audience.kind == "unit":
        unit = await unit_by_code(session, audience.value)
        if unit is None:
            raise AudienceError(f"Không tìm thấy đơn vị có mã {audience.value}.")
        if scope is not None and not unit.path.startswith(scope.path):
            raise AudienceError("Đơn vị này không thuộc phạm vi đồng chí quản lý.")
        low, high = path_range(unit)
        statement = statement.where(col(Unit.path) >= low, col(Unit.path) < high)
    elif audience.kind == "late":
        task = (await session.exec(select(Task).where(Task.code == audience.value))).first()
        if task is None:
            raise AudienceError(f"Không tìm thấy nhiệm vụ có mã {audience.value}.")
        if task.due >= today.date():
            raise AudienceError(
                f"Nhiệm vụ này chưa đến hạn ({vn_date(task.due)}): chưa có đơn vị quá hạn."
            )
        statement = statement.outerjoin(
            ProgressStatus,
            and_(
                col(ProgressStatus.unit_id) == col(Unit.id),
                col(ProgressStatus.task_id) == task.id,
            ),
        ).where(
            col(Unit.level).in_(task.levels),
            or_(col(ProgressStatus.status).is_(None), col(ProgressStatus.status) != "done"),
        )
    newest: dict[int, tuple[datetime, Target]] = {}
    everyone: set[int] = set()
    for link in (await session.exec(statement)).all():
        everyone.add(link.person_id)
        if link.blocked_at is not None:
            continue
        if link.person_id not in newest or link.linked_at > newest[link.person_id][0]:
            newest[link.person_id] = (
                link.linked_at,
                Target(link.person_id, link.channel, link.chat_id),
            )
    targets = [target for _, target in newest.values()]
    return targets, len(everyone) - len(targets)


def describe(audience: Audience, names: dict[str, str]) -> str:
    if audience.kind == "all":
        return "tất cả cán bộ trong phạm vi"
    if audience.kind == "level":
        return f"cán bộ các đơn vị {LEVEL_NAMES[audience.value].lower()}"
    if audience.kind == "unit":
        return f"cán bộ {names.get(audience.value, audience.value)} và các đơn vị trực thuộc"
    return f"cán bộ các đơn vị quá hạn nhiệm vụ «{names.get(audience.value, audience.value)}»"


def with_header(text: str, sender: str) -> str:
    """The text as recipients get it: who sends it first."""
    return f"THÔNG BÁO của {sender}:\n\n{text}"


async def create_broadcast(
    session: AsyncSession,
    *,
    text: str,
    audience: Audience,
    targets: list[Target],
    created_by: str,
    now: datetime,
    not_before: datetime | None = None,
    sender: str = DEFAULT_SENDER,
    actor: Actor | None = None,
) -> Broadcast:
    """The broadcast row and one outbox row per target (keyed: planning twice sends once).
    Recipients get the text under a header naming ``sender``. With ``actor``, written to the
    audit log (who, the audience and the count; not the text)."""
    broadcast = Broadcast(
        text=text, audience=audience.spec, created_by=created_by, created_at=now, total=0
    )
    session.add(broadcast)
    await session.flush()
    assert broadcast.id is not None
    delivered = with_header(text, sender)
    await enqueue_many(
        session,
        [
            Push(
                kind="broadcast",
                channel=t.channel,
                chat_id=t.chat_id,
                person_id=t.person_id,
                text=delivered,
                broadcast_id=broadcast.id,
                idempotency_key=f"broadcast:{broadcast.id}:{t.channel}:{t.chat_id}",
                not_before=not_before,
            )
            for t in targets
        ],
        now=now,
    )
    broadcast.total = len({(t.channel, t.chat_id) for t in targets})
    if broadcast.total == 0:
        broadcast.status, broadcast.finished_at = "done", now
    session.add(broadcast)
    await session.flush()
    if actor is not None:
        await _audit(session, broadcast, actor, "broadcast.send", now=now)
    return broadcast


async def _audit(
    session: AsyncSession,
    broadcast: Broadcast,
    actor: Actor,
    action: str,
    *,
    now: datetime,
    stopped: int = 0,
) -> None:
    """The entry's unit: the audience's unit, otherwise the sender's (none: the command line)."""
    audience = parse_audience(broadcast.audience)
    names = await _names(session, audience)
    unit_id = None
    if audience.kind == "unit":
        unit = await unit_by_code(session, audience.value)
        unit_id = unit.id if unit is not None else None
    elif broadcast.created_by.removeprefix("person:").isdigit():
        sender = await session.get(Person, int(broadcast.created_by.removeprefix("person:")))
        unit_id = sender.unit_id if sender is not None else None
    whom = describe(audience, names)
    summary = f"Gửi thông báo #{broadcast.id} cho {whom}: {vn_number(broadcast.total)} người nhận."
    if action == "broadcast.cancel":
        summary = (
            f"Dừng thông báo #{broadcast.id} (cho {whom}): hủy {vn_number(stopped)} tin chưa gửi."
        )
    details = {"broadcast": broadcast.id, "audience": broadcast.audience, "total": broadcast.total}
    record(session, actor, action, summary, now=now, unit_id=unit_id, details=details)


def count_by_channel(targets: list[Target]) -> str:
    return ", ".join(
        f"{channel_name(channel)}: {vn_number(n)}" for channel, n in channel_counts(targets).items()
    )


def channel_counts(targets: list[Target]) -> dict[str, int]:
    """People per channel (each person counted once, on the channel they will get it on)."""
    return dict(sorted(Counter(t.channel for t in targets).items()))


# --------------------------------------------------------------------------- shared steps
# The chat flow below, `troly broadcast send` and the web console's «Thông báo» page all
# preview, send, follow and stop broadcasts through these functions.


@dataclass(frozen=True, slots=True)
class Preview:
    """What confirming would do: who (per channel), from when, and the text they will see."""

    audience: Audience
    who: str  # «cán bộ các đơn vị cấp xã», …
    targets: list[Target]
    unreachable: int  # blocked the assistant everywhere: counted, not sent to
    start_at: datetime  # UTC: now, or the end of quiet hours / a day off
    now: datetime
    message: str  # the text as recipients get it, header first

    @property
    def count(self) -> int:
        return len(self.targets)

    @property
    def channels(self) -> dict[str, int]:
        return channel_counts(self.targets)

    @property
    def held(self) -> bool:
        """Outside the hours pushes may go out: delivery starts at ``start_at``."""
        return self.start_at > self.now


async def preview_broadcast(
    session: AsyncSession,
    audience: Audience,
    *,
    text: str,
    sender: str,
    scope: Unit | None,
    today: datetime,
    now: datetime,
    next_allowed: Callable[[datetime], datetime] | None,
) -> Preview:
    """The recipients of ``audience`` within ``scope`` and when delivery would start
    (``next_allowed``: the push policy's quiet hours; None: at once). Creates nothing;
    raises :class:`AudienceError` for an audience that cannot be used."""
    if audience.kind == "unit":  # unit codes are matched ignoring case
        found = await unit_by_code(session, audience.value)
        if found is not None:
            audience = Audience("unit", found.code)
    targets, unreachable = await recipients(session, audience, scope=scope, today=today)
    return Preview(
        audience=audience,
        who=describe(audience, await _names(session, audience)),
        targets=targets,
        unreachable=unreachable,
        start_at=next_allowed(now) if next_allowed is not None else now,
        now=now,
        message=with_header(text, sender),
    )


async def send_once(
    session: AsyncSession,
    *,
    identity: Identity,
    text: str,
    audience: Audience,
    previewed_at: datetime,
    today: datetime,
    now: datetime,
    next_allowed: Callable[[datetime], datetime] | None,
    urgent: bool = False,
    actor: Actor | None = None,
) -> tuple[Broadcast, bool]:
    """Create the broadcast confirmed after a preview made at ``previewed_at``, once: the
    same confirmation sent again (a double click, a reload of the form's answer) finds the
    broadcast it created — same author, text and audience, created since that preview — and
    returns it with ``False``. The author's row is locked meanwhile (PostgreSQL), so two
    submissions at the same moment are taken one after the other."""
    assert identity.person.id is not None
    await session.exec(select(Person.id).where(Person.id == identity.person.id).with_for_update())
    created_by = f"person:{identity.person.id}"
    earlier = (
        await session.exec(
            select(Broadcast)
            .where(
                Broadcast.created_by == created_by,
                Broadcast.audience == audience.spec,
                Broadcast.text == text,
                col(Broadcast.created_at) >= previewed_at,
            )
            .order_by(col(Broadcast.id))
        )
    ).first()
    if earlier is not None:
        return earlier, False
    targets, _ = await recipients(session, audience, scope=_scope(identity), today=today)
    if not targets:
        raise AudienceError("Không có ai để gửi. Đồng chí chọn đối tượng khác.")
    start_at = now if urgent or next_allowed is None else next_allowed(now)
    broadcast = await create_broadcast(
        session,
        text=text,
        audience=audience,
        targets=targets,
        created_by=created_by,
        now=now,
        not_before=start_at,
        sender=sender_of(identity),
        actor=actor,
    )
    return broadcast, True


STATUS_NAMES = {"sending": "đang gửi", "done": "đã gửi xong", "cancelled": "đã dừng"}


async def describe_spec(session: AsyncSession, spec: str) -> str:
    """A stored audience (``unit:HN``) as the admin chose it, in words."""
    try:
        audience = parse_audience(spec)
    except AudienceError:
        return spec
    return describe(audience, await _names(session, audience))


def may_manage(identity: Identity, broadcast: Broadcast) -> bool:
    """A system admin follows and stops every broadcast; a unit admin those they sent."""
    return identity.role == "admin" or broadcast.created_by == f"person:{identity.person.id}"


async def list_broadcasts(
    session: AsyncSession, identity: Identity, *, limit: int = 30
) -> list[Broadcast]:
    """The latest broadcasts the person may follow, newest first."""
    statement = select(Broadcast).order_by(col(Broadcast.id).desc()).limit(limit)
    if identity.role != "admin":
        statement = statement.where(Broadcast.created_by == f"person:{identity.person.id}")
    return list((await session.exec(statement)).all())


async def status_counts(session: AsyncSession, ids: list[int]) -> dict[int, dict[str, int]]:
    """Per broadcast, its outbox rows by status (pending, sending, sent, failed, …)."""
    found: dict[int, dict[str, int]] = {i: {} for i in ids}
    if not ids:
        return found
    rows = await session.exec(
        select(col(OutboxMessage.broadcast_id), col(OutboxMessage.status), func.count())
        .where(col(OutboxMessage.broadcast_id).in_(ids))
        .group_by(col(OutboxMessage.broadcast_id), col(OutboxMessage.status))
    )
    for broadcast_id, status, n in rows.all():
        if broadcast_id is not None:
            found[broadcast_id][status] = int(n)
    return found


async def first_pending_at(session: AsyncSession, broadcast_id: int) -> datetime | None:
    """When the earliest push of the broadcast still waiting may go out (quiet hours)."""
    found = (
        await session.exec(
            select(func.min(col(OutboxMessage.next_attempt_at))).where(
                OutboxMessage.broadcast_id == broadcast_id, OutboxMessage.status == "pending"
            )
        )
    ).first()
    if found is None:
        return None
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


async def stop_broadcast(
    session: AsyncSession, broadcast: Broadcast, *, now: datetime, actor: Actor | None = None
) -> tuple[int, BroadcastStatus]:
    """Cancel what is not sent yet; returns how many pushes were cancelled, and the status.
    With ``actor``, a stop is written to the audit log (a finished broadcast's is not)."""
    assert broadcast.id is not None
    sending = broadcast.status == "sending"
    stopped = await cancel_broadcast(session, broadcast.id, now=now)
    if actor is not None and sending:
        await _audit(session, broadcast, actor, "broadcast.cancel", now=now, stopped=stopped)
    status = await broadcast_status(session, broadcast.id)
    assert status is not None
    return stopped, status


# --------------------------------------------------------------------------- the chat flow


def _manager(ctx: Context) -> Identity:
    identity = ctx.identity
    if identity is None or identity.role not in {"unit_admin", "admin"}:
        raise UserError("Chức năng gửi thông báo dành cho quản trị đơn vị và quản trị hệ thống.")
    return identity


def _scope(identity: Identity) -> Unit | None:
    return None if identity.role == "admin" else identity.unit


def sender_of(identity: Identity) -> str:
    """«Đảng bộ tỉnh X (đồng chí Nguyễn Văn A gửi)»; the unit alone when the person's name
    is not known (enrolled without a display name)."""
    name = identity.person.name.strip()
    if not name or name.lower() == "đồng chí":
        return identity.unit.name
    return f"{identity.unit.name} (đồng chí {name} gửi)"


def _set(ctx: Context, step: str, **data: object) -> None:
    ctx.conversation.flow = FLOW
    ctx.conversation.step = step
    ctx.conversation.data = {**(ctx.conversation.data or {}), **data}


def _reset(ctx: Context) -> None:
    ctx.conversation.flow = ctx.conversation.step = None
    ctx.conversation.data = {}


CANCEL = (Button("Hủy", f"{PREFIX}x", command="/huy"),)


async def start(msg: IncomingMessage, ctx: Context) -> Reply:
    """``/thongbao``: write the text, choose the audience, preview, confirm."""
    identity = _manager(ctx)
    _reset(ctx)
    _set(ctx, "text", nonce=secrets.token_hex(6))
    where = "toàn hệ thống" if identity.role == "admin" else identity.unit.name
    return Reply(
        text=(
            f"Gửi thông báo ({where}). Đồng chí gõ nội dung thông báo "
            f"(tối đa {vn_number(MAX_TEXT)} ký tự):"
        ),
        buttons=(CANCEL,),
    )


async def on_text(msg: IncomingMessage, ctx: Context) -> Reply:
    identity = _manager(ctx)
    step = ctx.conversation.step
    text = (msg.text or "").strip()
    if step == "text":
        if not text:
            return Reply(text="Nội dung thông báo đang trống. Đồng chí gõ lại nội dung:")
        if len(text) > MAX_TEXT:
            return Reply(
                text=f"Nội dung dài {vn_number(len(text))} ký tự, tối đa {vn_number(MAX_TEXT)} "
                "(để mỗi người nhận trọn thông báo trong một tin). Đồng chí rút gọn rồi gửi lại:",
                buttons=(CANCEL,),
            )
        _set(ctx, "audience", text=text)
        return await _audience_menu(ctx, identity)
    if step == "unit":
        code = unit_code_argument(text, "gõ một mã đơn vị, ví dụ HN.BD")
        return await _preview(ctx, identity, Audience("unit", code))
    if step == "audience":
        menu = await _audience_menu(ctx, identity)
        return Reply(
            text=f"Đồng chí vui lòng chọn đối tượng nhận (nội dung vẫn được giữ).\n\n{menu.text}",
            buttons=menu.buttons,
        )
    return Reply(text="Đồng chí vui lòng chọn ở trên (hoặc gõ /huy để hủy).")


async def _audience_menu(ctx: Context, identity: Identity) -> Reply:
    """Only choices that reach somebody within the admin's scope, with how many."""
    scope = _scope(identity)
    levels = await level_counts(ctx.session, scope)
    total = sum(levels.values())
    rows = [(Button(f"Tất cả cán bộ ({vn_number(total)} người)", f"{PREFIX}a:all"),)]
    if len(levels) > 1:
        rows.append((Button("Theo cấp", f"{PREFIX}a:level"),))
    rows.append((Button("Một đơn vị và cấp dưới (gõ mã)", f"{PREFIX}a:unit"),))
    if await _late_tasks(ctx, scope):
        rows.append((Button("Đơn vị quá hạn một nhiệm vụ", f"{PREFIX}a:late"),))
    return Reply(text="Gửi cho ai?", buttons=(*rows, CANCEL))


def _reachable(scope: Unit | None) -> Any:
    """Active people with a channel that has not blocked the assistant, within ``scope``."""
    statement = (
        select(col(Unit.level), func.count(distinct(col(Person.id))))
        .select_from(PersonChannel)
        .join(Person, col(Person.id) == col(PersonChannel.person_id))
        .join(Unit, col(Unit.id) == col(Person.unit_id))
        .where(col(Person.active), col(PersonChannel.blocked_at).is_(None))
    )
    if scope is not None:
        low, high = path_range(scope)
        statement = statement.where(col(Unit.path) >= low, col(Unit.path) < high)
    return statement


async def level_counts(session: AsyncSession, scope: Unit | None) -> dict[str, int]:
    """People reachable per level within ``scope`` (levels with nobody left out), in the
    order of the hierarchy."""
    rows = await session.exec(_reachable(scope).group_by(col(Unit.level)))
    found = {level: int(n) for level, n in rows.all() if n}
    return {level: found[level] for level in LEVELS if level in found}


async def _late_tasks(ctx: Context, scope: Unit | None) -> list[tuple[Task, int]]:
    return await late_tasks(ctx.session, scope, ctx.local_now.date())


async def late_tasks(
    session: AsyncSession, scope: Unit | None, today: date
) -> list[tuple[Task, int]]:
    """Overdue tasks with somebody to reach in a late unit within ``scope``, with how many
    people (the «units late on a task» audiences worth offering)."""
    found: list[tuple[Task, int]] = []
    for task in await applicable_tasks(session):
        if task.due >= today or not task.levels:
            continue
        statement = (
            _reachable(scope)
            .outerjoin(
                ProgressStatus,
                and_(
                    col(ProgressStatus.unit_id) == col(Unit.id),
                    col(ProgressStatus.task_id) == task.id,
                ),
            )
            .where(
                col(Unit.level).in_(task.levels),
                or_(col(ProgressStatus.status).is_(None), col(ProgressStatus.status) != "done"),
            )
            .group_by(col(Unit.level))
        )
        count = sum(int(n) for _, n in (await session.exec(statement)).all())
        if count:
            found.append((task, count))
    return found


async def on_button(msg: IncomingMessage, ctx: Context) -> Reply:
    identity = _manager(ctx)
    action, _, value = (msg.payload or "").removeprefix(PREFIX).partition(":")
    if action == "x":
        _reset(ctx)
        return Reply(text="Đã hủy, không gửi thông báo nào.")
    if action == "stop":
        if not ctx.buttons:  # typed, on a channel without buttons: confirm first
            return await _confirm_stop(ctx, identity, value)
        return await _stop(ctx, identity, value)
    if action == "stopok":
        return await _stop(ctx, identity, value)
    if action == "st":
        return await _progress(ctx, identity, value)
    if action in {"ok", "now"}:
        return await _send(ctx, identity, value, urgent=action == "now")
    if ctx.conversation.flow != FLOW:
        raise UserError("Phiên soạn thông báo đã kết thúc. Đồng chí gõ /thongbao để bắt đầu lại.")
    scope = _scope(identity)
    if action == "a" and value == "back":
        _set(ctx, "audience")
        return await _audience_menu(ctx, identity)
    if action == "a" and value == "all":
        return await _preview(ctx, identity, Audience("all"))
    if action == "a" and value == "level":
        levels = await level_counts(ctx.session, scope)
        return Reply(
            text="Chọn cấp:",
            buttons=(
                *(
                    (Button(f"{LEVEL_NAMES[key]} ({vn_number(n)} người)", f"{PREFIX}l:{key}"),)
                    for key, n in levels.items()
                ),
                CANCEL,
            ),
        )
    if action == "a" and value == "unit":
        _set(ctx, "unit")
        example = identity.unit.code
        return Reply(text=f"Đồng chí gõ mã đơn vị (ví dụ: {example}):", buttons=(CANCEL,))
    if action == "a" and value == "late":
        late = await _late_tasks(ctx, scope)
        if not late:
            return Reply(text="Không có đơn vị nào quá hạn trong phạm vi.", buttons=(CANCEL,))
        return Reply(
            text="Chọn nhiệm vụ:",
            buttons=(
                *(
                    (
                        Button(
                            f"{fit_label(t.title, 48)} ({vn_number(n)} người)",
                            f"{PREFIX}k:{t.code}",
                        ),
                    )
                    for t, n in late
                ),
                CANCEL,
            ),
        )
    if action == "l" and value in LEVELS:
        return await _preview(ctx, identity, Audience("level", value))
    if action == "k" and value:
        return await _preview(ctx, identity, Audience("late", value))
    raise UserError("Lựa chọn này không còn hiệu lực. Đồng chí gõ /thongbao để bắt đầu lại.")


async def _names(session: AsyncSession, audience: Audience) -> dict[str, str]:
    if audience.kind == "unit":
        unit = await unit_by_code(session, audience.value)
        return {audience.value: unit.name} if unit else {}
    if audience.kind == "late":
        task = (await session.exec(select(Task).where(Task.code == audience.value))).first()
        return {audience.value: task.title} if task else {}
    return {}


async def _preview(ctx: Context, identity: Identity, audience: Audience) -> Reply:
    if audience.kind == "unit":
        unit = await require_unit(ctx.session, audience.value, _scope(identity))
        audience = Audience("unit", unit.code)
    text = str((ctx.conversation.data or {}).get("text", ""))
    try:
        preview = await preview_broadcast(
            ctx.session,
            audience,
            text=text,
            sender=sender_of(identity),
            scope=_scope(identity),
            today=ctx.local_now,
            now=ctx.now,
            next_allowed=ctx.push_window,
        )
    except AudienceError as exc:
        return Reply(text=str(exc), buttons=((Button("Chọn lại", f"{PREFIX}a:back"),), CANCEL))
    targets, unreachable, start_at = preview.targets, preview.unreachable, preview.start_at
    _set(ctx, "confirm", audience=preview.audience.spec)
    lines = [
        "Xem trước thông báo (người nhận sẽ thấy đúng như sau):",
        "———",
        preview.message,
        "———",
        f"Gửi cho {preview.who}: {vn_number(len(targets))} người"
        + (f" ({count_by_channel(targets)})." if targets else "."),
    ]
    if unreachable:
        lines.append(f"{vn_number(unreachable)} người đã chặn trợ lý nên sẽ không nhận được.")
    if not targets:
        lines.append("Không có ai để gửi. Đồng chí chọn đối tượng khác.")
        return Reply(
            text="\n".join(lines), buttons=((Button("Chọn lại", f"{PREFIX}a:back"),), CANCEL)
        )
    nonce = str((ctx.conversation.data or {}).get("nonce", ""))
    count = vn_number(len(targets))
    # "Chọn lại" comes first: a "1" typed twice on Zalo must not send to everyone.
    rows: list[tuple[Button, ...]] = [(Button("Chọn lại đối tượng", f"{PREFIX}a:back"),)]
    if start_at > ctx.now:
        local = vn_datetime(start_at.astimezone(ctx.zone))
        lines.append(
            f"Đang ngoài giờ gửi tin: thông báo sẽ được giữ và bắt đầu gửi lúc {local}. "
            "Nếu việc khẩn, đồng chí chọn «Gửi ngay»."
        )
        rows.append((Button(f"Gửi cho {count} người lúc {local}", f"{PREFIX}ok:{nonce}"),))
        rows.append((Button(f"Gửi ngay cho {count} người (khẩn)", f"{PREFIX}now:{nonce}"),))
    else:
        rows.append((Button(f"Gửi cho {count} người", f"{PREFIX}ok:{nonce}"),))
    return Reply(text="\n".join(lines), buttons=(*rows, CANCEL))


async def _send(ctx: Context, identity: Identity, nonce: str, *, urgent: bool) -> Reply:
    data = ctx.conversation.data or {}
    if ctx.conversation.step != "confirm" or data.get("nonce") != nonce:
        if data.get("sent_nonce") == nonce:  # "Gửi" pressed twice
            return Reply(
                text=f"Thông báo #{data.get('broadcast_id')} đã được gửi trước đó, không gửi lại."
            )
        raise UserError("Phiên soạn thông báo đã kết thúc. Đồng chí gõ /thongbao để bắt đầu lại.")
    audience = parse_audience(str(data["audience"]))
    targets, _ = await recipients(
        ctx.session, audience, scope=_scope(identity), today=ctx.local_now
    )
    start_at = ctx.now if urgent or ctx.push_window is None else ctx.push_window(ctx.now)
    broadcast = await create_broadcast(
        ctx.session,
        text=str(data["text"]),
        audience=audience,
        targets=targets,
        created_by=f"person:{identity.person.id}",
        now=ctx.now,
        not_before=start_at,
        sender=sender_of(identity),
        actor=Actor.of(ctx),
    )
    _reset(ctx)
    ctx.conversation.data = {"sent_nonce": nonce, "broadcast_id": broadcast.id}
    ctx.log.route = "broadcast_urgent" if urgent else "broadcast_created"
    follow = (
        "Tôi sẽ báo tiến độ trong khi gửi và kết quả khi gửi xong."
        if broadcast.total >= PROGRESS_MIN_TOTAL
        else "Tôi sẽ báo kết quả khi gửi xong."
    )
    when = " Gửi ngay (khẩn)." if urgent else ""
    if start_at > ctx.now:
        local = vn_datetime(start_at.astimezone(ctx.zone))
        when = f" Đang ngoài giờ gửi tin: sẽ bắt đầu gửi lúc {local}."
    return Reply(
        text=(
            f"Đã xếp lịch gửi thông báo #{broadcast.id} cho {vn_number(broadcast.total)} người."
            f"{when} {follow}"
        ),
        buttons=_after_send(broadcast.id or 0),
    )


def _after_send(broadcast_id: int) -> tuple[tuple[Button, ...], ...]:
    return (
        (Button("Xem tiến độ", f"{PREFIX}st:{broadcast_id}"),),
        (Button("Dừng gửi", f"{PREFIX}stop:{broadcast_id}", command=f"/dung {broadcast_id}"),),
    )


async def _mine(ctx: Context, identity: Identity, value: str) -> Broadcast:
    broadcast = await ctx.session.get(Broadcast, int(value)) if value.isdigit() else None
    if broadcast is None:
        raise UserError(f"Không tìm thấy thông báo #{value}.")
    if not may_manage(identity, broadcast):
        raise UserError("Đồng chí chỉ xem và dừng được thông báo do mình gửi.")
    return broadcast


async def _progress(ctx: Context, identity: Identity, value: str) -> Reply:
    broadcast = await _mine(ctx, identity, value)
    status = await broadcast_status(ctx.session, broadcast.id or 0)
    assert status is not None
    if broadcast.status != "sending":
        return Reply(text=final_report(broadcast, status))
    settled = status.sent + status.failed + status.blocked + status.cancelled
    return Reply(
        text=(
            f"Thông báo #{broadcast.id}: đã xử lý {vn_number(settled)}/"
            f"{vn_number(status.total)}, trong đó {vn_number(status.sent)} người đã nhận; "
            f"còn {vn_number(status.remaining)} tin đang chờ gửi."
        ),
        buttons=_after_send(broadcast.id or 0),
    )


async def _confirm_stop(ctx: Context, identity: Identity, value: str) -> Reply:
    broadcast = await _mine(ctx, identity, value)
    if broadcast.status != "sending":
        return await _stop(ctx, identity, value)
    return Reply(
        text=(f"Dừng gửi thông báo #{broadcast.id}? Những người chưa nhận sẽ không nhận được nữa."),
        buttons=(
            (Button("Không dừng, tiếp tục gửi", f"{PREFIX}st:{broadcast.id}"),),
            (Button("Dừng hẳn", f"{PREFIX}stopok:{broadcast.id}"),),
        ),
    )


async def stop_command(msg: IncomingMessage, ctx: Context) -> Reply:
    """``/dung <số thông báo>`` (the typed "Dừng gửi" where there are no buttons)."""
    identity = _manager(ctx)
    value = (msg.command[1] if msg.command else "").strip().lstrip("#")
    if not value.isdigit():
        raise UserError("Cách dùng: /dung <số thông báo>, ví dụ /dung 3.")
    if not ctx.buttons:
        return await _confirm_stop(ctx, identity, value)
    return await _stop(ctx, identity, value)


async def _stop(ctx: Context, identity: Identity, value: str) -> Reply:
    broadcast = await _mine(ctx, identity, value)
    stopped, status = await stop_broadcast(ctx.session, broadcast, now=ctx.now, actor=Actor.of(ctx))
    sent = status.sent
    if not stopped and broadcast.status != "cancelled":
        return Reply(text=f"Thông báo #{broadcast.id} đã gửi xong ({vn_number(sent)} người nhận).")
    return Reply(
        text=f"Đã dừng thông báo #{broadcast.id}: {vn_number(sent)}/{vn_number(broadcast.total)} "
        f"người đã nhận; {vn_number(stopped)} tin chưa gửi đã được hủy."
    )


def expired_notice(data: dict[str, object]) -> str:
    if data.get("text"):
        return (
            "Thông báo đang soạn chưa được gửi vì lâu không có phản hồi. Đồng chí gõ "
            "/thongbao để soạn lại."
        )
    return "Phiên soạn thông báo đã hết hạn; chưa có thông báo nào được gửi."
