"""Progress and final reports of broadcasts, pushed to the person who started them in a chat.

Runs every 30 s (a scheduler job). Reports are outbox rows with keys per broadcast and
quarter, so each is sent once however often the job runs.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage.models import Broadcast, PersonChannel
from handlers.formatting import vn_number
from scheduler.outbox import BroadcastStatus, Push, broadcast_status, enqueue_many
from scheduler.policy import PushPolicy

__all__ = ["final_report", "report_progress"]

LOOK_BACK = timedelta(days=7)


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


async def report_progress(session: AsyncSession, *, now: datetime, policy: PushPolicy) -> int:
    """Plan due progress reports; returns how many were added."""
    broadcasts = (
        await session.exec(
            select(Broadcast).where(
                col(Broadcast.created_by).startswith("person:"),
                col(Broadcast.created_at) >= now - LOOK_BACK,
                col(Broadcast.total) > 0,
            )
        )
    ).all()
    pushes: list[Push] = []
    for broadcast in broadcasts:
        assert broadcast.id is not None
        person_id = int(broadcast.created_by.removeprefix("person:"))
        links = (
            await session.exec(
                select(PersonChannel)
                .where(
                    PersonChannel.person_id == person_id, col(PersonChannel.blocked_at).is_(None)
                )
                .order_by(col(PersonChannel.linked_at).desc())
            )
        ).all()
        if not links:
            continue
        status = await broadcast_status(session, broadcast.id)
        if status is None:
            continue
        if broadcast.status == "sending":
            settled = status.sent + status.failed + status.blocked + status.cancelled
            quarter = 4 * settled // status.total if status.total else 0
            if not 1 <= quarter <= 3:
                continue
            key = f"broadcast-report:{broadcast.id}:q{quarter}"
            share = round(100 * settled / status.total)
            text = (
                f"Thông báo #{broadcast.id}: đã xử lý {vn_number(settled)}/"
                f"{vn_number(status.total)} ({share}%), trong đó {vn_number(status.sent)} "
                "người đã nhận."
            )
        else:
            key = f"broadcast-report:{broadcast.id}:final"
            text = final_report(broadcast, status)
        link = links[0]
        pushes.append(
            Push(
                kind="report",
                channel=link.channel,
                chat_id=link.chat_id,
                person_id=person_id,
                text=text,
                idempotency_key=key,
                not_before=policy.next_allowed(now),
            )
        )
    return await enqueue_many(session, pushes, now=now)
