"""Deadline reminders, escalations and the weekly digest, planned into the outbox.

Each function takes a session, plain arguments and ``now`` (tests call them with a fixed
clock). Recipients are computed when the reminder fires: the officials of units the task
applies to that have not reported "Đã hoàn thành". Every push carries an idempotency key, so
a reminder that fires twice (a restart inside the grace window, two processes) sends once.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import ColumnElement, and_, or_
from sqlalchemy import select as select_columns
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core import Button
from bot.metrics import METRICS
from bot.storage.models import Person, PersonChannel, ProgressStatus, Task, Unit
from handlers.formatting import vn_date, vn_number
from handlers.progress import STATUS_LABELS
from handlers.rollup import compute
from scheduler.outbox import Push, enqueue_many
from scheduler.policy import PushPolicy

__all__ = ["Contact", "fire_reminder", "reminder_text", "weekly_digest"]

log = logging.getLogger(__name__)

LATE_NAMES_SHOWN = 30
MANAGER_ROLES = ("unit_admin", "admin")


@dataclass(frozen=True, slots=True)
class Contact:
    """A person reachable on one channel (their most recently linked, unblocked one)."""

    person_id: int
    channel: str
    chat_id: str


class _Link(Protocol):
    """A person's channel: a ``PersonChannel`` or a row of its columns."""

    @property
    def person_id(self) -> int: ...
    @property
    def channel(self) -> str: ...
    @property
    def chat_id(self) -> str: ...
    @property
    def linked_at(self) -> datetime: ...


def _pick_contacts(links: Sequence[_Link]) -> dict[int, Contact]:
    """One contact per person: their most recently linked channel."""
    newest: dict[int, _Link] = {}
    for link in links:
        if link.person_id not in newest or link.linked_at > newest[link.person_id].linked_at:
            newest[link.person_id] = link
    return {
        person_id: Contact(person_id, link.channel, link.chat_id)
        for person_id, link in newest.items()
    }


def _reachable() -> ColumnElement[bool]:
    """A person's channel that has not blocked the bot."""
    return and_(
        col(PersonChannel.person_id) == col(Person.id), col(PersonChannel.blocked_at).is_(None)
    )


def _not_done() -> ColumnElement[bool]:
    return or_(col(ProgressStatus.status).is_(None), col(ProgressStatus.status) != "done")


def reminder_text(
    task: Task, unit_name: str, status: str | None, days_left: int, buttons: bool
) -> tuple[str, tuple[tuple[Button, ...], ...]]:
    """The reminder an official of the unit named ``unit_name`` receives."""
    if days_left > 0:
        when = f"còn {days_left} ngày"
    elif days_left == 0:
        when = "hôm nay là hạn cuối"
    else:
        when = f"đã quá hạn {-days_left} ngày"
    state = STATUS_LABELS.get(status or "", "Chưa báo cáo").lower()
    head = "NHẮC VIỆC QUÁ HẠN" if days_left < 0 else "NHẮC VIỆC"
    lines = [
        f"{head}: {task.title}",
        f"Đơn vị: {unit_name}",
        f"Hạn: {vn_date(task.due)} ({when}).",
        f"Tình trạng đã báo cáo: {state}.",
        f"Căn cứ: {task.citation}.",
    ]
    if buttons:
        lines.append("Bấm «Báo cáo ngay» để cập nhật tiến độ.")
        keyboard: tuple[tuple[Button, ...], ...] = ((Button("Báo cáo ngay", f"bc:go:{task.id}"),),)
    else:
        lines.append("Gõ /baocao để cập nhật tiến độ.")
        keyboard = ()
    return "\n".join(lines), keyboard


async def fire_reminder(
    session: AsyncSession,
    *,
    task_code: str,
    kind: str,
    number: int,
    now: datetime,
    policy: PushPolicy,
    button_channels: frozenset[str] = frozenset({"telegram"}),
) -> tuple[int, int]:
    """Plan one reminder round for a task; returns (reminders, escalations) added."""
    task = (await session.exec(select(Task).where(Task.code == task_code))).first()
    if task is None or not task.active or task.id is None:
        return 0, 0
    today = now.astimezone(policy.zone).date()
    days_left = (task.due - today).days
    if kind == "before" and days_left < 0:
        return 0, 0  # a "before" reminder caught up after the deadline: the overdue ones follow
    # Columns, not ORM objects: a round can reach tens of thousands of officials.
    statement: Any = (  # sqlmodel's select() and exec() are typed for up to four columns
        select_columns(
            col(PersonChannel.person_id),
            col(PersonChannel.channel),
            col(PersonChannel.chat_id),
            col(PersonChannel.linked_at),
            col(Unit.id).label("unit_id"),
            col(Unit.name).label("unit_name"),
            col(ProgressStatus.status),
        )
        .select_from(Person)
        .join(Unit, col(Unit.id) == col(Person.unit_id))
        .join(PersonChannel, _reachable())
        .outerjoin(
            ProgressStatus,
            and_(
                col(ProgressStatus.unit_id) == col(Unit.id),
                col(ProgressStatus.task_id) == task.id,
            ),
        )
        .where(col(Person.active), col(Unit.level).in_(task.levels), _not_done())
    )
    rows = (await session.exec(statement)).all()
    units: dict[int, tuple[str, str | None]] = {}
    unit_of: dict[int, int] = {}
    for row in rows:
        units[row.unit_id] = (row.unit_name, row.status)
        unit_of[row.person_id] = row.unit_id
    not_before = policy.next_allowed(now)
    pushes = []
    for person_id, contact in _pick_contacts(rows).items():
        unit_name, reported = units[unit_of[person_id]]
        text, keyboard = reminder_text(
            task, unit_name, reported, days_left, contact.channel in button_channels
        )
        pushes.append(
            Push(
                kind="reminder",
                channel=contact.channel,
                chat_id=contact.chat_id,
                person_id=person_id,
                text=text,
                buttons=keyboard,
                idempotency_key=f"reminder:{task.code}:{kind}:{number}:{contact.channel}:"
                f"{contact.chat_id}",
                not_before=not_before,
            )
        )
    reminders = await enqueue_many(session, pushes, now=now)
    escalations = 0
    if kind == "overdue":
        escalations = await _escalate(session, task, number, now, policy, days_left)
    METRICS.reminder_rounds.labels(kind).inc()
    log.info(
        "reminder %s/%s/%s: %d reminders, %d escalations planned",
        task.code,
        kind,
        number,
        reminders,
        escalations,
    )
    return reminders, escalations


async def _escalate(
    session: AsyncSession,
    task: Task,
    number: int,
    now: datetime,
    policy: PushPolicy,
    days_left: int,
) -> int:
    """One digest per managing unit listing its late child units, to its managers (the
    parent unit's unit admins; if it has none, the nearest ancestor that has)."""
    late = (
        await session.exec(
            select(Unit)
            .outerjoin(
                ProgressStatus,
                and_(
                    col(ProgressStatus.unit_id) == col(Unit.id),
                    col(ProgressStatus.task_id) == task.id,
                ),
            )
            .where(col(Unit.level).in_(task.levels), _not_done())
            .order_by(col(Unit.path))
        )
    ).all()
    if not late:
        return 0
    parents = {
        u.id: u.parent_id for u in (await session.exec(select(Unit))).all() if u.id is not None
    }
    manager_rows = (
        await session.exec(
            select(PersonChannel, col(Person.unit_id))
            .select_from(Person)
            .join(PersonChannel, _reachable())
            .where(col(Person.active), col(Person.role) == "unit_admin")
        )
    ).all()
    managers: dict[int, list[PersonChannel]] = defaultdict(list)
    for link, unit_id in manager_rows:
        managers[unit_id].append(link)
    by_manager_unit: dict[int, list[Unit]] = defaultdict(list)
    for unit in late:
        ancestor = parents.get(unit.id or 0)
        while ancestor is not None and ancestor not in managers:
            ancestor = parents.get(ancestor)
        if ancestor is not None:
            by_manager_unit[ancestor].append(unit)
    not_before = policy.next_allowed(now)
    names = {u.id: u.name for u in (await session.exec(select(Unit))).all()}
    pushes = []
    for manager_unit, units in by_manager_unit.items():
        shown = ", ".join(u.name for u in units[:LATE_NAMES_SHOWN])
        more = len(units) - LATE_NAMES_SHOWN
        text = (
            f"BÁO CÁO ĐƠN VỊ QUÁ HẠN: {task.title}\n"
            f"Hạn: {vn_date(task.due)} (đã quá {-days_left} ngày).\n"
            f"{vn_number(len(units))} đơn vị thuộc {names.get(manager_unit, '')} chưa báo cáo "
            f"hoàn thành: {shown}"
            + (f" và {vn_number(more)} đơn vị khác." if more > 0 else ".")
            + f"\nCăn cứ: {task.citation}.\nXem chi tiết: /tiendo"
        )
        for contact in _pick_contacts(managers[manager_unit]).values():
            pushes.append(
                Push(
                    kind="escalation",
                    channel=contact.channel,
                    chat_id=contact.chat_id,
                    person_id=contact.person_id,
                    text=text,
                    idempotency_key=f"escalation:{task.code}:{number}:{manager_unit}:"
                    f"{contact.channel}:{contact.chat_id}",
                    not_before=not_before,
                )
            )
    return await enqueue_many(session, pushes, now=now)


async def weekly_digest(session: AsyncSession, *, now: datetime, policy: PushPolicy) -> int:
    """Monday's summary for every admin and unit admin: their subtree, per task."""
    rows = (
        await session.exec(
            select(PersonChannel, Unit)
            .select_from(Person)
            .join(Unit, col(Unit.id) == col(Person.unit_id))
            .join(PersonChannel, _reachable())
            .where(col(Person.active), col(Person.role).in_(MANAGER_ROLES))
        )
    ).all()
    units: dict[int, Unit] = {}
    links: list[PersonChannel] = []
    for link, unit in rows:
        units[link.person_id] = unit
        links.append(link)
    local = now.astimezone(policy.zone)
    year, week, _ = local.isocalendar()
    not_before = policy.next_allowed(now)
    summaries: dict[int, str] = {}
    pushes = []
    for person_id, contact in _pick_contacts(links).items():
        unit = units[person_id]
        assert unit.id is not None
        if unit.id not in summaries:
            summaries[unit.id] = await _summary(session, unit, local)
        pushes.append(
            Push(
                kind="digest",
                channel=contact.channel,
                chat_id=contact.chat_id,
                person_id=person_id,
                text=summaries[unit.id],
                idempotency_key=f"digest:{year}-W{week:02d}:{person_id}",
                not_before=not_before,
            )
        )
    return await enqueue_many(session, pushes, now=now)


async def _summary(session: AsyncSession, unit: Unit, local: datetime) -> str:
    rollup = await compute(session, unit, local.date())
    lines = [f"TỔNG HỢP TIẾN ĐỘ TUẦN — {unit.name}", f"Tính đến ngày {vn_date(local.date())}:"]
    for item in rollup.tasks:
        total = item.total
        if not total.applicable:
            continue
        share = round(100 * total.done / total.applicable)
        late = f", {vn_number(total.late)} đơn vị quá hạn" if item.overdue else ""
        lines.append(
            f"• {item.task.title} (hạn {vn_date(item.task.due)}): "
            f"{vn_number(total.done)}/{vn_number(total.applicable)} hoàn thành ({share}%)"
            f", {vn_number(total.stuck)} vướng mắc{late}."
        )
    if len(lines) == 2:
        lines.append("Chưa có nhiệm vụ nào áp dụng cho các đơn vị trong phạm vi.")
    lines.append("Xem chi tiết và biểu đồ: /tiendo")
    return "\n".join(lines)
