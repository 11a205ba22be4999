"""Progress and final reports of broadcasts, pushed to the person who started them in a chat.

:func:`report_progress` runs every few seconds (the ``broadcasts:monitor`` job, see
:data:`scheduler.jobs.MONITOR_EVERY_SECONDS`). A tick looks only at broadcasts still sending
and at finished ones whose final report is not planned yet: with none, it is one query.

Reports are outbox rows with a key per broadcast and quarter (``broadcast-report:<id>:q1`` to
``q3``, at 25, 50 and 75 %) or for the final report (``broadcast-report:<id>:final``), so each
is planned once however often the job runs. A progress report (kind ``broadcast_progress``)
holds the figure of the moment it was planned, and must never arrive stale:

* planning a newer one, or the final report (kind ``report``), cancels the broadcast's
  progress reports still pending; and no newer report is planned while an older one is being
  delivered (the next tick plans it), so an older one cannot be retried after it;
* none is planned while pushes are held (quiet hours, a day off): it would arrive at 07:00
  with an old figure. The final report is held until then, as every push;
* a sender starting up cancels progress reports pending for more than two minutes
  (:func:`scheduler.outbox.recover_claims`).

A broadcast to fewer than :data:`PROGRESS_MIN_TOTAL` people gets only the final report: at
Telegram's 25 pushes/s it is over within about two ticks, before a progress report would
tell anything.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import String, cast, func, literal, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage.models import Broadcast, PersonChannel
from handlers.formatting import vn_number
from scheduler.outbox import (
    BROADCAST,
    OUTBOX,
    PROGRESS_KIND,
    BroadcastStatus,
    Push,
    broadcast_status,
    drop_pending,
    enqueue_many,
)
from scheduler.policy import PushPolicy

__all__ = [
    "FINAL_KIND",
    "PROGRESS_MIN_TOTAL",
    "Monitored",
    "final_report",
    "monitored_broadcasts",
    "progress_report",
    "report_key",
    "report_progress",
]

LOOK_BACK = timedelta(days=7)
FINAL_KIND = "report"
# Two monitor ticks (5 s) at Telegram's 25 pushes/s: smaller broadcasts are over before a
# progress report would tell anything.
PROGRESS_MIN_TOTAL = 250
_SETTLED = ("sent", "failed", "blocked", "cancelled")
_QUARTERS = (1, 2, 3)


def report_key(broadcast_id: int, which: int | None = None) -> str:
    """The idempotency key of a progress report (quarter 1-3) or of the final report."""
    return f"broadcast-report:{broadcast_id}:" + (f"q{which}" if which else "final")


def final_report(broadcast: Broadcast, status: BroadcastStatus) -> str:
    """Delivered, failed (with reasons), blocked, cancelled."""
    head = "ĐÃ DỪNG" if broadcast.status == "cancelled" else "ĐÃ GỬI XONG"
    lines = [
        f"{head} thông báo #{broadcast.id}:",
        f"• Đã nhận: {vn_number(status.sent)}/{vn_number(status.total)} người",
    ]
    if status.failed:
        reasons = "; ".join(f"{reason} ({vn_number(n)})" for reason, n in status.failures[:5])
        lines.append(f"• Không gửi được: {vn_number(status.failed)} ({reasons})")
    if status.blocked:
        lines.append(f"• Đã chặn trợ lý: {vn_number(status.blocked)}")
    if status.cancelled:
        lines.append(f"• Đã hủy trước khi gửi: {vn_number(status.cancelled)}")
    return "\n".join(lines)


def progress_report(broadcast_id: int, *, settled: int, delivered: int, total: int) -> str:
    """What has been done so far: processed (delivered, failed, blocked) of the total."""
    share = 100 * settled // total if total else 0
    return (
        f"Thông báo #{broadcast_id} đang gửi: đã xử lý {vn_number(settled)}/"
        f"{vn_number(total)} người ({share}%), trong đó {vn_number(delivered)} người đã nhận."
    )


@dataclass(frozen=True, slots=True)
class Monitored:
    """A broadcast a monitor tick looks at."""

    id: int
    status: str
    total: int
    person_id: int


async def monitored_broadcasts(session: AsyncSession, now: datetime) -> list[Monitored]:
    """Broadcasts started in a chat that are still sending, or finished without their final
    report planned yet."""
    final_key = literal("broadcast-report:") + cast(BROADCAST.c.id, String) + literal(":final")
    final_planned = select(OUTBOX.c.id).where(OUTBOX.c.idempotency_key == final_key).exists()
    rows = await session.exec(
        select(BROADCAST.c.id, BROADCAST.c.status, BROADCAST.c.total, BROADCAST.c.created_by)
        .where(
            BROADCAST.c.created_by.startswith("person:"),
            BROADCAST.c.created_at >= now - LOOK_BACK,
            BROADCAST.c.total > 0,
            or_(BROADCAST.c.status == "sending", ~final_planned),
        )
        .order_by(BROADCAST.c.id)
    )
    found: list[Monitored] = []
    for id_, status, total, created_by in rows.all():
        person = created_by.removeprefix("person:")
        if person.isdigit():
            found.append(Monitored(id_, status, total, int(person)))
    return found


async def _row_counts(session: AsyncSession, ids: list[int]) -> dict[int, dict[str, int]]:
    """Per broadcast, its rows by status."""
    rows = await session.exec(
        select(OUTBOX.c.broadcast_id, OUTBOX.c.status, func.count())
        .where(OUTBOX.c.broadcast_id.in_(ids))
        .group_by(OUTBOX.c.broadcast_id, OUTBOX.c.status)
    )
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    for broadcast_id, status, n in rows.all():
        counts[broadcast_id][status] = int(n)
    return counts


async def _report_states(session: AsyncSession, ids: list[int]) -> dict[str, str]:
    """The progress reports already planned for these broadcasts: key -> status."""
    keys = [report_key(i, q) for i in ids for q in _QUARTERS]
    rows = await session.exec(
        select(OUTBOX.c.idempotency_key, OUTBOX.c.status).where(OUTBOX.c.idempotency_key.in_(keys))
    )
    return {key: status for key, status in rows.all()}


async def _contacts(session: AsyncSession, people: set[int]) -> dict[int, PersonChannel]:
    """Each person's most recently linked chat that has not blocked the bot."""
    links = await session.exec(
        select(PersonChannel)
        .where(col(PersonChannel.person_id).in_(sorted(people)))
        .where(col(PersonChannel.blocked_at).is_(None))
        .order_by(col(PersonChannel.linked_at).desc(), col(PersonChannel.id).desc())
    )
    chosen: dict[int, PersonChannel] = {}
    for link in links.all():
        chosen.setdefault(link.person_id, link)
    return chosen


async def report_progress(session: AsyncSession, *, now: datetime, policy: PushPolicy) -> int:
    """Plan the due progress and final reports of broadcasts; returns how many were added."""
    candidates = await monitored_broadcasts(session, now)
    if not candidates:
        return 0
    ids = [c.id for c in candidates]
    counts = await _row_counts(session, ids)
    states = await _report_states(session, ids)
    contacts = await _contacts(session, {c.person_id for c in candidates})
    held = policy.next_allowed(now) > now  # quiet hours, a day off
    added = 0
    for broadcast in candidates:
        link = contacts.get(broadcast.person_id)
        if link is None:
            continue
        rows = counts.get(broadcast.id, {})
        progress = {q: states.get(report_key(broadcast.id, q)) for q in _QUARTERS}
        if "sending" in progress.values():
            continue  # an older report is being delivered: plan after its outcome
        planned = [q for q, state in progress.items() if state is not None]
        overtaken = [
            report_key(broadcast.id, q)
            for q in planned
            if q < max(planned) and progress[q] == "pending"  # e.g. put back for a retry
        ]
        if overtaken:
            await drop_pending(session, overtaken, reason="superseded by a newer report")
        if broadcast.status == "sending":
            settled = sum(rows.get(s, 0) for s in _SETTLED)
            quarter = 4 * settled // broadcast.total
            if held or broadcast.total < PROGRESS_MIN_TOTAL or not 1 <= quarter <= 3:
                continue
            if planned and max(planned) >= quarter:
                continue
            key = report_key(broadcast.id, quarter)
            kind = PROGRESS_KIND
            text = progress_report(
                broadcast.id,
                settled=settled,
                delivered=rows.get("sent", 0),
                total=broadcast.total,
            )
        else:
            if rows.get("sending", 0):
                continue  # cancelled while some were on their way: report them all next tick
            record = await session.get(Broadcast, broadcast.id)
            status = await broadcast_status(session, broadcast.id)
            if record is None or status is None:
                continue
            key = report_key(broadcast.id)
            kind = FINAL_KIND
            text = final_report(record, status)
        push = Push(
            kind=kind,
            channel=link.channel,
            chat_id=link.chat_id,
            person_id=broadcast.person_id,
            text=text,
            idempotency_key=key,
            not_before=policy.next_allowed(now),
        )
        if await enqueue_many(session, [push], now=now):
            added += 1
            older = [report_key(broadcast.id, q) for q in planned]
            await drop_pending(session, older, reason="superseded by a newer report")
    return added
