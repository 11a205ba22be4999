"""What the reminders are doing: per task, the next rounds and the rounds already fired
(how many pushes, delivered or not), plus the outbox backlog. Read-only; shared by the web
console («Nhắc việc») and ``troly reminders status``.

The next rounds are computed the way :func:`scheduler.jobs.plan_jobs` plans them (the
policy's fire times, minus the rounds recorded in ``ReminderRun``), not read from the job
store, so the answer is the same with the scheduler stopped.

Scope: every reminder and escalation row carries the recipient's ``person_id``, so a unit
admin's figures count the pushes to people of their subtree (the unit a person belongs to
*now*). ``ReminderRun``'s own totals and outbox rows without a person (a chat not linked to
anyone) are global: they are shown only without a scope.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage.models import OutboxMessage, Person, ReminderRun, Task, Unit
from handlers.formatting import WEEKDAY_NAMES, vn_date
from handlers.units import path_range
from scheduler.jobs import REMINDER_PREFIX, reminder_key
from scheduler.policy import FireTime, PushPolicy

__all__ = [
    "KIND_NAMES",
    "MISSED_ROUNDS",
    "Backlog",
    "Delivery",
    "FiredRound",
    "KindBacklog",
    "NextRound",
    "ReminderOverview",
    "TaskReminders",
    "age_text",
    "reminder_overview",
    "round_label",
    "vn_moment",
]

NEXT_SHOWN = 3  # upcoming rounds listed per task
FIRED_SHOWN = 5  # fired rounds listed per task (the most recent)
# after "<n>": rounds the plan skipped (PushPolicy.worth_planning)
MISSED_ROUNDS = (
    "đợt đã qua khi trợ lý chưa chạy hoặc trước khi lịch nhắc được đổi nên được bỏ qua "
    "(không gửi dồn tin cũ)"
)
FAILURES_SHOWN = 10
KIND_NAMES = {
    "reminder": "Nhắc việc",
    "escalation": "Báo cáo đơn vị quá hạn",
    "digest": "Tổng hợp tuần",
    "broadcast": "Thông báo",
    "broadcast_progress": "Tiến độ gửi thông báo",
}
FAILED = ("failed", "blocked")
WAITING = ("pending", "sending")
# Every status but "sent": the rows still to deliver or that will never be. Read through the
# index on (status, next_attempt_at), so the unscoped figures cost what is unsent, not the
# whole outbox's history.
NOT_SENT = (*WAITING, *FAILED, "cancelled")


def vn_moment(value: datetime) -> str:
    """``08:00 Thứ Năm, 28/8/2025`` (``value`` already in local time)."""
    return f"{value:%H:%M} {WEEKDAY_NAMES[value.weekday()]}, {vn_date(value)}"


def round_label(kind: str, number: int) -> str:
    if kind == "before":
        return "Nhắc vào ngày hết hạn" if number == 0 else f"Nhắc trước hạn {number} ngày"
    return f"Nhắc quá hạn lần {number}"


@dataclass
class Delivery:
    """What became of a set of pushes."""

    sent: int = 0
    failed: int = 0  # failed or the recipient blocked the bot
    waiting: int = 0  # pending or being sent
    cancelled: int = 0

    @property
    def total(self) -> int:
        return self.sent + self.failed + self.waiting + self.cancelled

    def add(self, status: str, count: int) -> None:
        if status == "sent":
            self.sent += count
        elif status in FAILED:
            self.failed += count
        elif status in WAITING:
            self.waiting += count
        else:
            self.cancelled += count


@dataclass(frozen=True, slots=True)
class NextRound:
    label: str
    at: datetime  # local time
    deferred_to: datetime | None  # local time, when quiet hours or a day off hold it back
    late: bool  # its time has passed (within the grace window) and it has not fired yet


@dataclass
class FiredRound:
    label: str
    key: str
    fired_at: datetime  # local time
    planned: int  # reminders planned when it fired (ReminderRun: global)
    planned_escalations: int  # likewise
    reminders: Delivery = field(default_factory=Delivery)  # in scope
    escalations: Delivery = field(default_factory=Delivery)  # in scope


@dataclass
class TaskReminders:
    task: Task
    next_rounds: list[NextRound]
    fired: list[FiredRound]
    fired_total: int  # rounds fired, also those not listed
    missed: int  # rounds whose time passed beyond the grace window without firing


@dataclass
class KindBacklog:
    kind: str
    name: str
    counts: Delivery  # without "sent" (not counted: see NOT_SENT)
    oldest_waiting: datetime | None  # local time of the oldest row still to send
    held: int  # waiting rows whose next attempt is later (quiet hours, retry back-off)


@dataclass
class Failure:
    at: datetime  # local time
    kind: str
    channel: str
    error: str


@dataclass
class Backlog:
    kinds: list[KindBacklog]
    waiting: int
    held: int
    oldest_waiting: datetime | None
    failed: int
    recent_failures: list[Failure]


@dataclass
class ReminderOverview:
    now: datetime  # local time
    scope: Unit | None
    tasks: list[TaskReminders]
    backlog: Backlog
    policy: PushPolicy


def _scoped(statement: Any, scope: Unit | None) -> Any:
    """Only rows pushed to people of ``scope``'s subtree (all rows without a scope)."""
    if scope is None:
        return statement
    low, high = path_range(scope)
    return (
        statement.join(Person, col(Person.id) == col(OutboxMessage.person_id))
        .join(Unit, col(Unit.id) == col(Person.unit_id))
        .where(col(Unit.path) >= low, col(Unit.path) < high)
    )


def _parse_key(key: str) -> tuple[str, str, int] | None:
    """``reminder:<task>:<kind>:<number>`` -> (task, kind, number)."""
    if not key.startswith(REMINDER_PREFIX):
        return None
    head, _, number = key.removeprefix(REMINDER_PREFIX).rpartition(":")
    code, _, kind = head.rpartition(":")
    if not number.isdigit() or kind not in ("before", "overdue"):
        return None
    return code, kind, int(number)


RoundKey = tuple[str, str, int]  # (task code, "before" | "overdue", number)


async def _deliveries(
    session: AsyncSession, scope: Unit | None, statuses: tuple[str, ...] | None = None
) -> tuple[dict[RoundKey, Delivery], dict[RoundKey, Delivery]]:
    """(reminders, escalations) of every fired round, by status, in scope: one scan.

    A round's rows share their idempotency key up to the recipient, which ends every key
    (``…:<channel>:<chat_id>``, both columns of the row): cutting them off leaves
    ``reminder:<task>:<kind>:<number>`` or ``escalation:<task>:<number>:<managing unit>``,
    grouped by the database, so the page reads a few rows per round, not one per push.
    ``statuses``: only rows of those."""
    key = col(OutboxMessage.idempotency_key)
    cut = func.length(key) - func.length(col(OutboxMessage.channel))
    prefix = func.substr(key, 1, cut - func.length(col(OutboxMessage.chat_id)) - 2)
    statement: Any = (
        select(col(OutboxMessage.kind), col(OutboxMessage.status), prefix, func.count())
        .select_from(OutboxMessage)
        .where(col(OutboxMessage.kind).in_(("reminder", "escalation")))
        .group_by(col(OutboxMessage.kind), col(OutboxMessage.status), prefix)
    )
    if statuses is not None:
        statement = statement.where(col(OutboxMessage.status).in_(statuses))
    reminders: dict[RoundKey, Delivery] = defaultdict(Delivery)
    escalations: dict[RoundKey, Delivery] = defaultdict(Delivery)
    for kind, status, round_, count in (await session.exec(_scoped(statement, scope))).all():
        if kind == "reminder":
            parsed = _parse_key(round_)
            if parsed is not None:
                reminders[parsed].add(status, int(count))
            continue
        head, _, _unit = round_.rpartition(":")  # escalation:<task>:<number>
        code, _, number = head.removeprefix("escalation:").rpartition(":")
        if head.startswith("escalation:") and number.isdigit():
            escalations[(code, "overdue", int(number))].add(status, int(count))
    return reminders, escalations


def _next_rounds(
    task: Task, policy: PushPolicy, now: datetime, fired: set[str]
) -> tuple[list[NextRound], int]:
    upcoming: list[NextRound] = []
    missed = 0
    for fire in policy.fire_times(task.due):
        if reminder_key(task.code, fire.kind, fire.number) in fired:
            continue
        if not policy.worth_planning(fire, now):
            missed += 1
            continue
        upcoming.append(_next_round(fire, policy, now))
    return upcoming, missed


def _next_round(fire: FireTime, policy: PushPolicy, now: datetime) -> NextRound:
    allowed = policy.next_allowed(fire.at)
    return NextRound(
        label=round_label(fire.kind, fire.number),
        at=fire.at.astimezone(policy.zone),
        deferred_to=allowed.astimezone(policy.zone) if allowed != fire.at else None,
        late=fire.at < now,
    )


async def _backlog(session: AsyncSession, scope: Unit | None, now: datetime, zone: Any) -> Backlog:
    statement: Any = (
        select(
            col(OutboxMessage.kind),
            col(OutboxMessage.status),
            func.count(),
            func.min(col(OutboxMessage.created_at)),
        )
        .select_from(OutboxMessage)
        .where(col(OutboxMessage.status).in_(NOT_SENT))
        .group_by(col(OutboxMessage.kind), col(OutboxMessage.status))
    )
    by_kind: dict[str, KindBacklog] = {}
    for kind, status, count, oldest in (await session.exec(_scoped(statement, scope))).all():
        item = by_kind.setdefault(
            kind, KindBacklog(kind, KIND_NAMES.get(kind, kind), Delivery(), None, 0)
        )
        item.counts.add(status, int(count))
        if status in WAITING and oldest is not None:
            local = _aware(oldest).astimezone(zone)
            if item.oldest_waiting is None or local < item.oldest_waiting:
                item.oldest_waiting = local
    held_statement: Any = (
        select(col(OutboxMessage.kind), func.count())
        .select_from(OutboxMessage)
        .where(col(OutboxMessage.status) == "pending", col(OutboxMessage.next_attempt_at) > now)
        .group_by(col(OutboxMessage.kind))
    )
    for kind, count in (await session.exec(_scoped(held_statement, scope))).all():
        if kind in by_kind:
            by_kind[kind].held = int(count)
    failures_statement: Any = (
        select(
            col(OutboxMessage.created_at),
            col(OutboxMessage.kind),
            col(OutboxMessage.channel),
            col(OutboxMessage.last_error),
        )
        .select_from(OutboxMessage)
        .where(col(OutboxMessage.status).in_(FAILED))
        .order_by(col(OutboxMessage.id).desc())
        .limit(FAILURES_SHOWN)
    )
    failures = [
        Failure(
            _aware(at).astimezone(zone),
            KIND_NAMES.get(kind, kind),
            channel,
            error or "",
        )
        for at, kind, channel, error in (
            await session.exec(_scoped(failures_statement, scope))
        ).all()
    ]
    order = list(KIND_NAMES)
    kinds = sorted(
        by_kind.values(),
        key=lambda k: (order.index(k.kind) if k.kind in order else len(order), k.kind),
    )
    oldest = [k.oldest_waiting for k in kinds if k.oldest_waiting is not None]
    return Backlog(
        kinds=kinds,
        waiting=sum(k.counts.waiting for k in kinds),
        held=sum(k.held for k in kinds),
        oldest_waiting=min(oldest) if oldest else None,
        failed=sum(k.counts.failed for k in kinds),
        recent_failures=failures,
    )


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def reminder_overview(
    session: AsyncSession, *, policy: PushPolicy, now: datetime, scope: Unit | None = None
) -> ReminderOverview:
    """Per active task: the next rounds and the most recent fired ones; the outbox backlog.
    ``scope``: count only pushes to people of that unit's subtree (None: everything)."""
    tasks = list(
        (await session.exec(select(Task).where(col(Task.active)).order_by(col(Task.due)))).all()
    )
    runs: dict[str, list[tuple[ReminderRun, str, int]]] = defaultdict(list)
    for run in (
        await session.exec(
            select(ReminderRun)
            .where(col(ReminderRun.key).startswith(REMINDER_PREFIX))
            .order_by(col(ReminderRun.fired_at).desc())
        )
    ).all():
        parsed = _parse_key(run.key)
        if parsed is not None:
            code, kind, number = parsed
            runs[code].append((run, kind, number))
    zone = policy.zone
    # Without a scope, only the unsent rows are counted (an index range); a round's sent
    # pushes are then what it planned (``ReminderRun``, written in the transaction that
    # queued them; outbox rows are never deleted) less those. A subtree's are counted.
    statuses = NOT_SENT if scope is None else None
    reminders, escalations = await _deliveries(session, scope, statuses)
    items = []
    for task in tasks:
        fired_runs = runs.get(task.code, [])
        upcoming, missed = _next_rounds(task, policy, now, {run.key for run, _, _ in fired_runs})
        fired = []
        for run, kind, number in fired_runs[:FIRED_SHOWN]:
            round_ = (task.code, kind, number)
            pushed = reminders.get(round_, Delivery())
            escalated = escalations.get(round_, Delivery())
            if scope is None:
                pushed.sent = max(0, run.reminders - pushed.total)
                escalated.sent = max(0, run.escalations - escalated.total)
            fired.append(
                FiredRound(
                    label=round_label(kind, number),
                    key=run.key,
                    fired_at=_aware(run.fired_at).astimezone(zone),
                    planned=run.reminders,
                    planned_escalations=run.escalations,
                    reminders=pushed,
                    escalations=escalated,
                )
            )
        items.append(
            TaskReminders(
                task=task,
                next_rounds=upcoming[:NEXT_SHOWN],
                fired=fired,
                fired_total=len(fired_runs),
                missed=missed,
            )
        )
    return ReminderOverview(
        now=now.astimezone(zone),
        scope=scope,
        tasks=items,
        backlog=await _backlog(session, scope, now, zone),
        policy=policy,
    )


def age_text(since: datetime, now: datetime) -> str:
    """``3 ngày 2 giờ``, ``45 phút``, ``dưới 1 phút``: how long ago ``since`` was."""
    seconds = max(0, int((now - since) / timedelta(seconds=1)))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes = rest // 60
    if days:
        return f"{days} ngày {hours} giờ" if hours else f"{days} ngày"
    if hours:
        return f"{hours} giờ {minutes} phút" if minutes else f"{hours} giờ"
    return f"{minutes} phút" if minutes else "dưới 1 phút"
