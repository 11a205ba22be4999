"""«Nhật ký»: who imported units, invited, broadcast, corrected a report or signed in to the
console — when, and from which channel.

:func:`record` adds one entry to the session of the action itself (never committed here), so
an action and its entry are stored together or not at all. Entries are append-only: this
module has no update or delete, and the database refuses both (migration 0009).

The action functions in ``handlers`` take an :class:`Actor` (who, and from which channel) and
record themselves; an action run without one (fixtures, benchmarks, seeding) is not logged.
A summary is short Vietnamese for the console and never holds an invitation code, a sign-in
token or any other secret: callers pass names, numbers and unit codes only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage.models import AuditEntry, Person, Unit
from handlers.context import Context
from handlers.formatting import CHANNEL_NAMES

__all__ = [
    "ACTION_NAMES",
    "CLI",
    "VIA_NAMES",
    "Actor",
    "EntryView",
    "list_entries",
    "record",
]

ACTION_NAMES = {
    "units.import": "Nhập đơn vị",
    "tasks.import": "Nhập nhiệm vụ",
    "invite.create": "Tạo mã mời",
    "invite.revoke": "Thu hồi mã mời",
    "broadcast.send": "Gửi thông báo",
    "broadcast.cancel": "Dừng thông báo",
    "report.correct": "Sửa báo cáo",
    "person.deactivate": "Khóa tài khoản",
    "person.activate": "Mở lại tài khoản",
    "person.move": "Chuyển đơn vị, vai trò",
    "web.link": "Tạo liên kết đăng nhập",
    "web.sign_in": "Đăng nhập trang quản trị",
    "schedule.update": "Đổi lịch nhắc",
    "schedule.reset": "Trả lịch nhắc về cấu hình máy chủ",
}
VIA_NAMES = {**CHANNEL_NAMES, "web": "trang quản trị", "cli": "dòng lệnh"}
SUMMARY_MAX = 500


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts (``person_id``; None: the command line's operator) and from where (``via``:
    telegram, zalo, console — the chat channels —, web or cli)."""

    via: str
    person_id: int | None = None

    @classmethod
    def of(cls, ctx: Context) -> Actor:
        """The person writing in a chat, on that chat's channel."""
        person = ctx.identity.person.id if ctx.identity is not None else None
        return cls(ctx.log.channel, person)


CLI = Actor("cli")


def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    summary: str,
    *,
    now: datetime,
    unit_id: int | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add one entry to the caller's transaction (stored when the caller commits)."""
    if action not in ACTION_NAMES:
        raise ValueError(f"unknown audit action {action!r}")
    entry = AuditEntry(
        at=now,
        person_id=actor.person_id,
        via=actor.via[:16],
        action=action,
        unit_id=unit_id,
        summary=" ".join(summary.split())[:SUMMARY_MAX],
        details=details,
    )
    session.add(entry)
    return entry


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True)
class EntryView:
    """An entry as the console and the command line show it."""

    id: int
    at: datetime
    action: str
    via: str
    person_name: str | None  # None: the command line
    person_unit: str | None
    unit_code: str | None
    unit_name: str | None
    summary: str

    @property
    def action_name(self) -> str:
        return ACTION_NAMES.get(self.action, self.action)

    @property
    def via_name(self) -> str:
        name = VIA_NAMES.get(self.via, self.via)
        return name[:1].upper() + name[1:]

    @property
    def who(self) -> str:
        if self.person_name is None:
            return "Người vận hành (dòng lệnh)"
        return f"{self.person_name} ({self.person_unit})" if self.person_unit else self.person_name


async def list_entries(
    session: AsyncSession,
    *,
    scope: Unit | None,
    unit: Unit | None = None,
    action: str | None = None,
    before: int | None = None,
    limit: int = 50,
) -> list[EntryView]:
    """Entries newest first, at most ``limit``, older than entry ``before`` if given.
    ``scope`` (None: everything) and ``unit`` keep entries whose unit is in that subtree
    (an entry without a unit concerns the whole system: only an unscoped reader sees it)."""
    from handlers.units import path_range  # imported here: handlers.units imports this module

    statement = (
        select(AuditEntry, Unit)
        .outerjoin(Unit, col(Unit.id) == col(AuditEntry.unit_id))
        .order_by(col(AuditEntry.id).desc())
        .limit(limit)
    )
    for limit_unit in (scope, unit):
        if limit_unit is not None:
            low, high = path_range(limit_unit)
            statement = statement.where(col(Unit.path) >= low, col(Unit.path) < high)
    if action is not None:
        statement = statement.where(col(AuditEntry.action) == action)
    if before is not None:
        statement = statement.where(col(AuditEntry.id) < before)
    rows: Sequence[tuple[AuditEntry, Unit | None]] = (await session.exec(statement)).all()
    people = {e.person_id for e, _ in rows if e.person_id is not None}
    names: dict[int, tuple[str, str]] = {}
    if people:
        found = await session.exec(
            select(Person.id, Person.name, Unit.name)
            .join(Unit, col(Unit.id) == col(Person.unit_id))
            .where(col(Person.id).in_(sorted(people)))
        )
        names = {pid: (name, unit_name) for pid, name, unit_name in found.all() if pid is not None}
    views = []
    for entry, entry_unit in rows:
        person = None
        if entry.person_id is not None:
            person = names.get(entry.person_id, (f"người số {entry.person_id}", ""))
        views.append(
            EntryView(
                id=entry.id or 0,
                at=entry.at,
                action=entry.action,
                via=entry.via,
                person_name=person[0] if person else None,
                person_unit=(person[1] or None) if person else None,
                unit_code=entry_unit.code if entry_unit else None,
                unit_name=entry_unit.name if entry_unit else None,
                summary=entry.summary,
            )
        )
    return views
