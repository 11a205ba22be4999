"""The reminder schedule in force: the one of ``.env``, or the one a root admin saved on the
web console («Nhắc việc» → «Đổi lịch nhắc»), which replaces it until it is reset.

The saved schedule is one row of ``push_schedule``, checked by the model that checks
``.env`` (:class:`bot.settings.PushSchedule`). Every process keeps a :class:`LiveSchedule`
(its :class:`PushPolicy` and the schedule it was built from) and reloads it from the
database: at start-up, every :data:`REFRESH_SECONDS` (:func:`watch`) and at once in the
process that saved it. When the schedule changes in the process that runs the scheduler (the
leader), its jobs use the new policy and the reminder plan is redone at once
(:func:`scheduler.jobs.apply_policy`): the rounds not yet sent move to their new times,
rounds the new schedule no longer has are removed, and rounds the new schedule puts before
the moment of the change are not sent (``PushPolicy.since``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import date, datetime

from pydantic import ValidationError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core import wait_event
from bot.settings import WEEKDAYS, PushSchedule, Settings
from bot.storage.db import SessionFactory
from bot.storage.models import Person, PushScheduleRow
from handlers.audit import Actor, record
from handlers.formatting import WEEKDAY_NAMES, vn_datetime
from scheduler.policy import PushPolicy

__all__ = [
    "REFRESH_SECONDS",
    "LiveSchedule",
    "ScheduleLine",
    "describe",
    "reset_schedule",
    "save_schedule",
    "schedule_source",
    "summary",
    "watch",
]

log = logging.getLogger(__name__)

REFRESH_SECONDS = 30.0
ROW_ID = 1


@dataclass(frozen=True, slots=True)
class ScheduleLine:
    label: str
    value: str


def _days(numbers: list[int]) -> str:
    return ", ".join(str(n) for n in numbers)


def describe(schedule: PushSchedule) -> list[ScheduleLine]:
    """The schedule in Vietnamese, one line per setting (the console and the CLI)."""
    offsets = [int(p) for p in schedule.reminder_offsets_days.split(",") if p]
    before = [n for n in offsets if n > 0]
    parts = []
    if before:
        parts.append(f"{_days(before)} ngày trước hạn")
    if 0 in offsets:
        parts.append("sáng ngày hết hạn")
    ahead = " và ".join(parts) if parts else "không nhắc trước hạn"
    overdue = (
        f"nhắc lại mỗi {schedule.overdue_every_days} ngày, tối đa "
        f"{schedule.overdue_max_reminders} lần"
        if schedule.overdue_max_reminders
        else "không nhắc"
    )
    if schedule.quiet_hours:
        start, _, end = schedule.quiet_hours.partition("-")
        quiet = f"từ {start} đến {end} (tin đến giờ trong khoảng này được hoãn đến {end})"
    else:
        quiet = "không có"
    days_off = []
    for part in (p for p in schedule.non_working_days.split(",") if p):
        if part in WEEKDAYS:
            days_off.append(WEEKDAY_NAMES[WEEKDAYS.index(part)])
        else:
            days_off.append(f"{date.fromisoformat(part):%d/%m/%Y}")
    if schedule.weekly_digest:
        day, _, at = schedule.weekly_digest.partition(" ")
        digest = f"{WEEKDAY_NAMES[WEEKDAYS.index(day)]}, lúc {at}"
    else:
        digest = "không gửi"
    return [
        ScheduleLine("Nhắc trước hạn", ahead),
        ScheduleLine("Giờ gửi tin nhắc", schedule.reminder_time),
        ScheduleLine("Quá hạn", overdue),
        ScheduleLine("Giờ yên lặng", quiet),
        ScheduleLine(
            "Ngày không gửi tin", ", ".join(days_off) if days_off else "không có (gửi cả tuần)"
        ),
        ScheduleLine("Tổng hợp tiến độ tuần cho quản trị", digest),
    ]


def summary(schedule: PushSchedule) -> str:
    """The schedule on one line (the audit log)."""
    return "; ".join(f"{line.label.lower()}: {line.value}" for line in describe(schedule))


def _stored(row: PushScheduleRow) -> PushSchedule:
    """The schedule a row holds (ValidationError: a row spoiled by hand)."""
    return PushSchedule.model_validate(row.model_dump(include=set(PushSchedule.model_fields)))


class LiveSchedule:
    """The schedule and policy in force in this process (see the module's notes)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.schedule = settings.push_schedule
        self.policy = PushPolicy.from_settings(settings)
        self.saved_at: datetime | None = None  # None: the schedule of .env
        self.saved_by: str | None = None

    @property
    def from_console(self) -> bool:
        return self.saved_at is not None

    def next_allowed(self, moment: datetime) -> datetime:
        """The current policy's (quiet hours may change while the process runs)."""
        return self.policy.next_allowed(moment)

    async def refresh(self, session: AsyncSession) -> bool:
        """Read the stored schedule; True when the one in force changed. On a change, the
        leader's jobs (when this process is the leader) use the new policy and re-plan at
        once, whoever called (a page, the watcher, the save itself)."""
        row = (
            await session.exec(
                select(PushScheduleRow)
                .where(PushScheduleRow.id == ROW_ID)
                .execution_options(populate_existing=True)
            )
        ).first()
        schedule, saved_at, saved_by = self.settings.push_schedule, None, None
        if row is not None:
            try:
                schedule = _stored(row)
            except ValidationError:
                log.error("the stored reminder schedule is invalid: the one of .env is used")
            else:
                saved_at = row.updated_at
                if row.updated_by is not None:
                    person = await session.get(Person, row.updated_by)
                    saved_by = person.name if person is not None else None
        self.saved_at, self.saved_by = saved_at, saved_by
        since = saved_at
        if schedule == self.schedule and since == self.policy.since:
            return False
        self.schedule = schedule
        self.policy = PushPolicy.from_settings(self.settings, schedule, since=since)
        from scheduler.jobs import apply_policy

        leader = await apply_policy(self.policy)
        log.info(
            "reminder schedule in force: %s%s",
            "the console's" if self.from_console else ".env's",
            " (reminders re-planned)" if leader else "",
        )
        return True

    async def reload(self, sessions: SessionFactory) -> bool:
        """:meth:`refresh` in a session of its own."""
        async with sessions() as session:
            return await self.refresh(session)


def schedule_source(live: LiveSchedule) -> str:
    """Where the schedule in force comes from, after «Lịch nhắc …»."""
    if live.saved_at is None:
        return "theo cấu hình máy chủ (tệp .env)"
    by = f" (đồng chí {live.saved_by})" if live.saved_by else ""
    when = vn_datetime(live.saved_at.astimezone(live.settings.zone))
    return f"đặt trên trang quản trị lúc {when}{by}"


async def save_schedule(
    session: AsyncSession, schedule: PushSchedule, *, actor: Actor, now: datetime
) -> bool:
    """Store ``schedule`` as the one in force (in the caller's transaction, with its audit
    entry). False when it is the one already stored (nothing written)."""
    row = await session.get(PushScheduleRow, ROW_ID)
    before = _stored(row) if row is not None else None
    if before == schedule:
        return False
    values = schedule.model_dump()
    if row is None:
        row = PushScheduleRow(id=ROW_ID, **values)
    else:
        for name, value in values.items():
            setattr(row, name, value)
    row.updated_at = now
    row.updated_by = actor.person_id
    session.add(row)
    record(
        session,
        actor,
        "schedule.update",
        f"Lịch nhắc mới — {summary(schedule)}",
        now=now,
        details={"before": before.model_dump() if before else None, "after": values},
    )
    return True


async def reset_schedule(
    session: AsyncSession, settings: Settings, *, actor: Actor, now: datetime
) -> bool:
    """Go back to the schedule of ``.env`` (in the caller's transaction, with its audit
    entry). False when no schedule was stored."""
    row = await session.get(PushScheduleRow, ROW_ID)
    if row is None:
        return False
    await session.delete(row)
    record(
        session,
        actor,
        "schedule.reset",
        f"Lịch nhắc theo cấu hình máy chủ (.env) — {summary(settings.push_schedule)}",
        now=now,
        details={"before": row.model_dump(include=set(PushSchedule.model_fields)), "after": None},
    )
    return True


async def watch(
    schedule: LiveSchedule,
    sessions: SessionFactory,
    stop: asyncio.Event,
    *,
    every: float = REFRESH_SECONDS,
) -> None:
    """Reload ``schedule`` every ``every`` seconds until ``stop`` is set (a schedule saved
    by another process takes effect here within that time)."""
    while not stop.is_set():
        if await wait_event(stop, every):
            return
        try:
            await schedule.reload(sessions)
        except Exception:  # the database is away for a moment: keep the policy in force
            log.warning("cannot reload the reminder schedule", exc_info=True)
