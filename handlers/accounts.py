"""Managing accounts: units found by code, invitations (the text to pass on, listing,
revoking) and people (listing, deactivating, reactivating, moving).

Shared by the admin command line and the chat. Every function takes the session and keyword
arguments and never commits: the caller owns the transaction. ``scope`` limits a function to
one unit's subtree (``None``: everything, as for a system administrator); refusals raise
:class:`UserError` with a Vietnamese message for the person asking.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, and_, func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage.models import Invite, MessageLog, OutboxMessage, Person, PersonChannel, Unit
from handlers.audit import Actor, record
from handlers.context import UserError
from handlers.formatting import channel_name, vn_datetime, vn_number
from handlers.people import ROLE_NAMES, ROLES, create_invite
from handlers.units import PATH_DIGITS, path_range, require_unit
from scheduler.outbox import finish_broadcasts

__all__ = [
    "ADMIN_ROLE_ONLY",
    "INVITE_STATES",
    "SELF_DEACTIVATE",
    "SELF_MOVE",
    "USABLE",
    "ChannelInfo",
    "InviteInfo",
    "PersonChange",
    "PersonInfo",
    "activate_person",
    "create_invites",
    "creator_names",
    "deactivate_person",
    "deactivate_question",
    "get_unit",
    "invitation_text",
    "invite_state",
    "list_invites",
    "list_people",
    "move_person",
    "move_question",
    "people_counts",
    "revoke_invite",
    "telegram_link",
    "zalo_instruction",
]

USABLE, EXPIRED, USED_UP, REVOKED = "còn hiệu lực", "hết hạn", "đã dùng hết", "đã thu hồi"
INVITE_STATES = (USABLE, EXPIRED, USED_UP, REVOKED)
COMMAND_LINE = "dòng lệnh"
OUTSIDE_SCOPE = "không thuộc phạm vi đồng chí quản lý"
# Refusals shared by the chat (/khoa, /chuyen) and the console («Cán bộ»).
SELF_DEACTIVATE = "Đồng chí không thể tự khóa tài khoản của mình."
SELF_MOVE = "Đồng chí không thể tự chuyển đơn vị hoặc vai trò của mình."
ADMIN_ROLE_ONLY = "Chỉ quản trị hệ thống mới giao được vai trò quản trị hệ thống."

S = TypeVar("S", bound=Select[*tuple[Any, ...]])  # a statement narrowed by .where()


# --------------------------------------------------------------------------- units


async def get_unit(session: AsyncSession, code: str, *, scope: Unit | None = None) -> Unit:
    """The unit with ``code`` (any case); an unknown code (with the closest codes as
    suggestions) or a unit outside ``scope`` is refused."""
    unit = await require_unit(session, code, scope)
    if not _within(unit, scope):
        raise UserError(f"Đơn vị {unit.name} ({unit.code}) {OUTSIDE_SCOPE}.")
    return unit


def _within(unit: Unit, scope: Unit | None) -> bool:
    return scope is None or unit.path.startswith(scope.path)


def _subtree(statement: S, unit: Unit) -> S:
    low, high = path_range(unit)
    return statement.where(col(Unit.path) >= low, col(Unit.path) < high)


# --------------------------------------------------------------------------- invitations


def invitation_text(
    code: str,
    unit_name: str,
    role: str,
    *,
    telegram_username: str | None,
    telegram: bool,
    zalo: bool,
    uses: int,
    days: int,
    expires_at: datetime | None = None,
) -> str:
    """How to use an invitation, for the person who passes it on.

    ``telegram``/``zalo``: whether the assistant serves that channel. The Telegram link is
    given when the bot's username is known; with neither channel configured both ways are
    described. ``expires_at``: the code's expiry in local time (default: ``days`` from now,
    in the machine's time zone).
    """
    if expires_at is None:
        expires_at = datetime.now().astimezone() + timedelta(days=days)
    lines = [
        f"Mã mời: {code}",
        f"Đơn vị: {unit_name} — vai trò: {ROLE_NAMES.get(role, role)}",
        f"Dùng được cho {vn_number(uses)} người. "
        f"Hiệu lực {vn_number(days)} ngày, đến {vn_datetime(expires_at)}.",
        "",
    ]
    generic = not telegram and not zalo  # nothing configured here: describe both ways
    link = telegram_link(code, telegram_username)
    if telegram and link:
        lines.append(f"• Telegram: mở liên kết {link}")
    elif telegram:
        lines.append(
            f"• Telegram: nhắn mã {code} cho trợ lý trên Telegram (chưa tạo được liên kết "
            "mở nhanh vì chưa biết tên bot Telegram)."
        )
    elif generic:
        lines.append(f"• Telegram: nhắn mã {code} cho trợ lý trên Telegram.")
    if zalo or generic:
        lines.append(f"• Zalo: {zalo_instruction(code)}")
    return "\n".join(lines)


def telegram_link(code: str, telegram_username: str | None) -> str | None:
    """The t.me deep link that enrols with ``code`` in one tap (``None``: the bot's username
    is not known)."""
    username = (telegram_username or "").strip().lstrip("@")
    return f"https://t.me/{username}?start={code.replace('-', '')}" if username else None


def zalo_instruction(code: str) -> str:
    """How to use ``code`` on Zalo (no deep links there)."""
    return f"nhắn mã {code} cho trợ lý trên Zalo."


async def create_invites(
    session: AsyncSession,
    *,
    root: Unit,
    subtree: bool,
    role: str,
    uses: int,
    days: int,
    created_by: str,
    now: datetime,
    limit: int,
    actor: Actor | None = None,
) -> list[tuple[Unit, str]]:
    """One invitation for ``root``, or one per unit of its subtree (``root`` included, in
    tree order), each made by :func:`handlers.people.create_invite` (same rules). Flushed, not
    committed: the caller commits once, so the batch is all or nothing. More than ``limit``
    units are refused. The codes are returned once; only their hashes are stored. With
    ``actor``, one audit entry for the whole batch."""
    units = [root]
    if subtree:
        statement = _subtree(select(Unit), root).order_by(col(Unit.path))
        units = list((await session.exec(statement.limit(limit + 1))).all())
        if len(units) > limit:
            total = (
                await session.exec(_subtree(select(func.count()).select_from(Unit), root))
            ).one()
            raise UserError(
                f"{root.name} có {vn_number(total)} đơn vị (kể cả đơn vị này), quá "
                f"{vn_number(limit)} đơn vị cho một lần tạo. Đồng chí chọn một đơn vị thấp hơn "
                "trong cây rồi tạo từng phần."
            )
    made = [
        (
            unit,
            await create_invite(
                session,
                unit=unit,
                role=role,
                uses=uses,
                days=days,
                created_by=created_by,
                now=now,
                actor=actor if not subtree else None,
            ),
        )
        for unit in units
    ]
    if actor is not None and subtree:
        record(
            session,
            actor,
            "invite.create",
            f"Tạo {vn_number(len(made))} mã mời vai trò {ROLE_NAMES.get(role, role)} cho "
            f"{root.name} ({root.code}) và các đơn vị trực thuộc; {vn_number(uses)} người dùng "
            f"mỗi mã, hiệu lực {vn_number(days)} ngày.",
            now=now,
            unit_id=root.id,
            details={"count": len(made), "role": role, "uses": uses, "days": days},
        )
    return made


@dataclass(frozen=True, slots=True)
class InviteInfo:
    id: int
    unit_code: str
    unit_name: str
    role: str
    person_name: str | None  # a code that links one more channel to this person
    uses: int
    max_uses: int
    created_at: datetime
    expires_at: datetime
    created_by: str  # as shown: a person's name and unit, or "dòng lệnh"
    state: str  # one of INVITE_STATES

    @property
    def role_name(self) -> str:
        name = ROLE_NAMES.get(self.role, self.role)
        if self.person_name is not None:
            return f"{name} (thêm kênh cho {self.person_name})"
        return name


def invite_state(invite: Invite, now: datetime) -> str:
    """``còn hiệu lực``, ``hết hạn``, ``đã dùng hết`` or ``đã thu hồi``."""
    if invite.revoked:
        return REVOKED
    if invite.uses >= invite.max_uses:
        return USED_UP
    if invite.expires_at <= now:
        return EXPIRED
    return USABLE


async def list_invites(
    session: AsyncSession,
    *,
    scope: Unit | None,
    now: datetime,
    unit: Unit | None = None,
    everything: bool = False,
) -> list[InviteInfo]:
    """Invitations for units of ``unit``'s subtree (default: the whole scope), newest first;
    only the usable ones unless ``everything``. Codes are not stored, so none is shown."""
    if unit is not None and not _within(unit, scope):
        raise UserError(f"Đơn vị {unit.name} ({unit.code}) {OUTSIDE_SCOPE}.")
    statement = (
        select(Invite, Unit)
        .join(Unit, col(Unit.id) == col(Invite.unit_id))
        .order_by(col(Invite.created_at).desc(), col(Invite.id).desc())
    )
    for limit in (scope, unit):
        if limit is not None:
            statement = _subtree(statement, limit)
    if not everything:
        statement = statement.where(
            col(Invite.revoked).is_(False),
            col(Invite.uses) < col(Invite.max_uses),
            col(Invite.expires_at) > now,
        )
    rows = list((await session.exec(statement)).all())
    return await _invite_infos(session, rows, now)


async def _invite_infos(
    session: AsyncSession, rows: list[tuple[Invite, Unit]], now: datetime
) -> list[InviteInfo]:
    creators = await creator_names(session, (invite.created_by for invite, _ in rows))
    person_ids = {invite.person_id for invite, _ in rows if invite.person_id is not None}
    names: dict[int, str] = {}
    if person_ids:
        found = await session.exec(
            select(Person.id, Person.name).where(col(Person.id).in_(sorted(person_ids)))
        )
        names = {pid: name for pid, name in found.all() if pid is not None}
    return [
        InviteInfo(
            id=invite.id or 0,
            unit_code=unit.code,
            unit_name=unit.name,
            role=invite.role,
            person_name=(
                names.get(invite.person_id, f"người số {invite.person_id}")
                if invite.person_id is not None
                else None
            ),
            uses=invite.uses,
            max_uses=invite.max_uses,
            created_at=invite.created_at,
            expires_at=invite.expires_at,
            created_by=creators.get(invite.created_by, invite.created_by),
            state=invite_state(invite, now),
        )
        for invite, unit in rows
    ]


async def revoke_invite(
    session: AsyncSession,
    *,
    invite_id: int,
    scope: Unit | None,
    now: datetime,
    actor: Actor | None = None,
) -> tuple[InviteInfo, bool]:
    """Revoke an invitation: its code is then refused like a wrong one. Returns the
    invitation and whether it was usable until now (False: already revoked, expired or used
    up; revoking is harmless then). With ``actor``, a revocation is written to the audit
    log (revoking an invitation already revoked changes nothing and is not)."""
    found = (
        await session.exec(
            select(Invite, Unit)
            .join(Unit, col(Unit.id) == col(Invite.unit_id))
            .where(Invite.id == invite_id)
        )
    ).first()
    if found is None:
        raise UserError(f"Không có mã mời số {invite_id}.")
    invite, unit = found
    if not _within(unit, scope):
        raise UserError(f"Mã mời số {invite_id} {OUTSIDE_SCOPE}.")
    was_usable = invite_state(invite, now) == USABLE
    if not invite.revoked:
        invite.revoked = True
        session.add(invite)
        await session.flush()
        if actor is not None:
            record(
                session,
                actor,
                "invite.revoke",
                f"Thu hồi mã mời số {invite_id} của {unit.name} ({unit.code}), vai trò "
                f"{ROLE_NAMES.get(invite.role, invite.role)}"
                + ("" if was_usable else " (mã đã không còn dùng được)")
                + ".",
                now=now,
                unit_id=unit.id,
                details={"invite": invite_id},
            )
    [info] = await _invite_infos(session, [(invite, unit)], now)
    return info, was_usable


async def creator_names(session: AsyncSession, created_by: Iterable[str]) -> dict[str, str]:
    """How to show ``created_by`` values (of invitations, broadcasts): ``person:3`` becomes
    ``Nguyễn Văn A (Đảng ủy xã Phú Lương)``, ``cli`` the command line. One query."""
    values = set(created_by)
    shown = {value: value for value in values}
    if "cli" in shown:
        shown["cli"] = COMMAND_LINE
    ids = {
        int(value.removeprefix("person:")): value
        for value in values
        if value.startswith("person:") and value.removeprefix("person:").isdigit()
    }
    for value in ids.values():
        shown[value] = f"người số {value.removeprefix('person:')}"
    if ids:
        rows = await session.exec(
            select(Person.id, Person.name, Unit.name)
            .join(Unit, col(Unit.id) == col(Person.unit_id))
            .where(col(Person.id).in_(sorted(ids)))
        )
        for person_id, name, unit_name in rows.all():
            if person_id is not None:
                shown[ids[person_id]] = f"{name} ({unit_name})"
    return shown


# --------------------------------------------------------------------------- people


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    channel: str
    blocked: bool  # the person blocked the bot there

    @property
    def label(self) -> str:
        name = channel_name(self.channel, capitalised=True)
        return f"{name} (đã chặn trợ lý)" if self.blocked else name


@dataclass(frozen=True, slots=True)
class PersonInfo:
    id: int
    name: str
    unit_code: str
    unit_name: str
    role: str
    active: bool
    channels: tuple[ChannelInfo, ...]
    last_message_at: datetime | None  # their latest message on any of their channels
    unit_id: int = 0

    @property
    def role_name(self) -> str:
        return ROLE_NAMES.get(self.role, self.role)

    @property
    def blocked(self) -> bool:
        """Unreachable: every channel they have blocked the bot."""
        return bool(self.channels) and all(c.blocked for c in self.channels)


async def list_people(
    session: AsyncSession,
    *,
    scope: Unit | None,
    unit: Unit | None = None,
    inactive: bool = False,
    levels: int | None = None,
    limit: int | None = None,
) -> list[PersonInfo]:
    """People of ``unit``'s subtree (default: the whole scope), in tree order, with their
    channels and when they last wrote; deactivated people too when ``inactive``.
    ``levels``: only the units down to that many levels below ``unit`` (0: ``unit`` itself,
    1: with its direct children). ``limit``: at most that many people.
    Two queries whatever the number of people."""
    if unit is not None and not _within(unit, scope):
        raise UserError(f"Đơn vị {unit.name} ({unit.code}) {OUTSIDE_SCOPE}.")

    def narrow(statement: S) -> S:
        for within in (scope, unit):
            if within is not None:
                statement = _subtree(statement, within)
        if unit is not None and levels is not None:
            statement = statement.where(col(Unit.depth) <= unit.depth + levels)
        if not inactive:
            statement = statement.where(col(Person.active))
        return statement

    people = (
        select(Person, Unit)
        .join(Unit, col(Unit.id) == col(Person.unit_id))
        .order_by(col(Unit.path), col(Person.name), col(Person.id))
    )
    if limit is not None:
        people = people.limit(limit)
    rows = list((await session.exec(narrow(people))).all())
    # Each channel of those people, with the time of its latest message.
    links = (
        select(
            col(PersonChannel.person_id),
            col(PersonChannel.channel),
            col(PersonChannel.blocked_at),
            func.max(MessageLog.created_at),
        )
        .select_from(PersonChannel)
        .join(Person, col(Person.id) == col(PersonChannel.person_id))
        .join(Unit, col(Unit.id) == col(Person.unit_id))
        .outerjoin(
            MessageLog,
            and_(
                col(MessageLog.channel) == col(PersonChannel.channel),
                col(MessageLog.user_id) == col(PersonChannel.user_id),
            ),
        )
        .group_by(
            col(PersonChannel.id),
            col(PersonChannel.person_id),
            col(PersonChannel.channel),
            col(PersonChannel.blocked_at),
        )
        .order_by(col(PersonChannel.person_id), col(PersonChannel.channel))
    )
    if limit is not None:
        links = links.where(col(PersonChannel.person_id).in_([p.id for p, _ in rows]))
    channels: dict[int, list[ChannelInfo]] = {}
    last: dict[int, datetime] = {}
    for person_id, channel, blocked_at, newest in (await session.exec(narrow(links))).all():
        channels.setdefault(person_id, []).append(ChannelInfo(channel, blocked_at is not None))
        latest = _aware(newest)
        if latest is not None and (person_id not in last or latest > last[person_id]):
            last[person_id] = latest
    return [
        PersonInfo(
            id=person.id or 0,
            name=person.name,
            unit_code=u.code,
            unit_name=u.name,
            role=person.role,
            active=person.active,
            channels=tuple(channels.get(person.id or 0, ())),
            last_message_at=last.get(person.id or 0),
            unit_id=u.id or 0,
        )
        for person, u in rows
    ]


async def people_counts(session: AsyncSession, *, unit: Unit) -> dict[int, int]:
    """Active people in the subtree of each direct child of ``unit``, by child id (a child
    without anyone is left out). One grouped query."""
    child_key = func.substr(col(Unit.path), 1, len(unit.path) + PATH_DIGITS)
    statement = (
        select(child_key, func.count())
        .select_from(Person)
        .join(Unit, col(Unit.id) == col(Person.unit_id))
        .where(col(Person.active), col(Unit.depth) > unit.depth)
        .group_by(child_key)
    )
    found = (await session.exec(_subtree(statement, unit))).all()
    return {int(key[-PATH_DIGITS:]): count for key, count in found}


def _aware(value: object) -> datetime | None:
    """An aggregate bypasses the column type: SQLite gives back text or a naive datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class PersonChange:
    person: Person
    unit: Unit  # the person's unit (after a move: the new one)
    changed: bool  # False: it was already so
    cancelled_pushes: int = 0  # queued messages to them that will not be sent


async def _person(session: AsyncSession, person_id: int, scope: Unit | None) -> tuple[Person, Unit]:
    found = (
        await session.exec(
            select(Person, Unit)
            .join(Unit, col(Unit.id) == col(Person.unit_id))
            .where(Person.id == person_id)
        )
    ).first()
    if found is None:
        raise UserError(f"Không có người dùng số {person_id}.")
    person, unit = found
    if not _within(unit, scope):
        raise UserError(f"Người dùng số {person_id} {OUTSIDE_SCOPE}.")
    return person, unit


def deactivate_question(person: Person, unit: Unit) -> str:
    """What is asked before :func:`deactivate_person` (the chat's and the console's)."""
    return (
        f"Khóa tài khoản của {person.name} ({ROLE_NAMES.get(person.role, person.role)}, "
        f"{unit.name})? Người này sẽ không báo cáo được và không nhận nhắc việc, thông báo "
        "nữa; các tin đang chờ gửi cho họ bị hủy."
    )


def move_question(person: Person, unit: Unit, target: Unit, role: str) -> str:
    """What is asked before :func:`move_person` (the chat's and the console's)."""
    return (
        f"Chuyển {person.name} từ {ROLE_NAMES.get(person.role, person.role)} của {unit.name} "
        f"thành {ROLE_NAMES.get(role, role)} của {target.name}?"
    )


async def deactivate_person(
    session: AsyncSession,
    *,
    person_id: int,
    scope: Unit | None,
    now: datetime,
    actor: Actor | None = None,
) -> PersonChange:
    """The person is no longer recognised on any channel (they are treated as someone not
    enrolled) and receives no reminders or announcements; messages already queued for them
    are cancelled. History (reports, messages) stays. With ``actor``, a change is written to
    the audit log; an actor cannot lock themselves out."""
    if actor is not None and actor.person_id == person_id:
        raise UserError(SELF_DEACTIVATE)
    person, unit = await _person(session, person_id, scope)
    changed = person.active
    person.active = False
    session.add(person)
    cancelled = await session.exec(
        update(OutboxMessage)
        .where(col(OutboxMessage.person_id) == person_id, col(OutboxMessage.status) == "pending")
        .values(status="cancelled", last_error="person deactivated")
        .returning(col(OutboxMessage.broadcast_id))
    )
    broadcasts = [b for (b,) in cancelled.all()]
    finished = {b for b in broadcasts if b is not None}
    if finished:  # a broadcast whose last queued message was theirs is now complete
        await finish_broadcasts(session, now=now, ids=finished)
    await session.flush()
    if actor is not None and changed:
        record(
            session,
            actor,
            "person.deactivate",
            f"Khóa tài khoản của {person.name} ({unit.name}, người dùng số {person_id})"
            + (f"; hủy {vn_number(len(broadcasts))} tin đang chờ gửi." if broadcasts else "."),
            now=now,
            unit_id=unit.id,
            details={"person": person_id},
        )
    return PersonChange(person, unit, changed, len(broadcasts))


async def activate_person(
    session: AsyncSession,
    *,
    person_id: int,
    scope: Unit | None,
    actor: Actor | None = None,
    now: datetime | None = None,
) -> PersonChange:
    """Undo :func:`deactivate_person`: the person is recognised again on their channels.
    With ``actor`` (and ``now``), a change is written to the audit log."""
    person, unit = await _person(session, person_id, scope)
    changed = not person.active
    person.active = True
    session.add(person)
    await session.flush()
    if actor is not None and changed:
        record(
            session,
            actor,
            "person.activate",
            f"Mở lại tài khoản của {person.name} ({unit.name}, người dùng số {person_id}).",
            now=now or datetime.now(UTC),
            unit_id=unit.id,
            details={"person": person_id},
        )
    return PersonChange(person, unit, changed)


async def move_person(
    session: AsyncSession,
    *,
    person_id: int,
    unit: Unit,
    role: str | None = None,
    scope: Unit | None,
    actor: Actor | None = None,
    now: datetime | None = None,
) -> PersonChange:
    """Move a person to another unit, optionally with another role (default: the same).
    With ``actor`` (and ``now``), a change is written to the audit log (under the new unit,
    the old one in the details); an actor cannot move themselves."""
    if actor is not None and actor.person_id == person_id:
        raise UserError(SELF_MOVE)
    if role is not None and role not in ROLES:
        names = ", ".join(f"{r} ({ROLE_NAMES[r]})" for r in ROLES)
        raise UserError(f"Vai trò không hợp lệ: {role}. Chọn một trong: {names}.")
    if role == "admin" and scope is not None:
        raise UserError(ADMIN_ROLE_ONLY)
    person, _ = await _person(session, person_id, scope)
    if not _within(unit, scope):
        raise UserError(f"Đơn vị {unit.name} ({unit.code}) {OUTSIDE_SCOPE}.")
    assert unit.id is not None
    new_role = role or person.role
    changed = (person.unit_id, person.role) != (unit.id, new_role)
    before = {"unit": person.unit_id, "role": person.role}
    person.unit_id, person.role = unit.id, new_role
    session.add(person)
    await session.flush()
    if actor is not None and changed:
        record(
            session,
            actor,
            "person.move",
            f"Chuyển {person.name} (người dùng số {person_id}): nay là "
            f"{ROLE_NAMES.get(new_role, new_role)} của {unit.name} ({unit.code}).",
            now=now or datetime.now(UTC),
            unit_id=unit.id,
            details={"person": person_id, "before": before},
        )
    return PersonChange(person, unit, changed)
