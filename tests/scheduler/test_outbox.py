"""The outbox in the database (SQLite and PostgreSQL), with a fixed clock: idempotent
planning, claiming, outcomes, broadcasts' bookkeeping, blocking and recovery."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlmodel import select

from bot.core import Button
from bot.storage.db import SessionFactory
from bot.storage.models import Broadcast, PersonChannel
from scheduler.outbox import (
    Outcome,
    Push,
    Recipient,
    broadcast_status,
    buttons_from_json,
    cancel_broadcast,
    claim_due,
    enqueue,
    enqueue_broadcast,
    enqueue_many,
    finish_broadcasts,
    has_pending,
    next_due,
    record_outcomes,
    recover_claims,
    unblock,
)
from tests.scheduler.conftest import add_people, count_status, make_broadcast, rows

NOW = datetime(2025, 8, 20, 3, 0, tzinfo=UTC)


def push(key: str, chat: str = "1", **kwargs: object) -> Push:
    return Push(
        kind=str(kwargs.pop("kind", "reminder")),
        channel="telegram",
        chat_id=chat,
        text=f"Nhắc việc {key}",
        idempotency_key=key,
        **kwargs,  # type: ignore[arg-type]
    )


async def test_enqueue_is_insert_if_absent(sessions: SessionFactory) -> None:
    async with sessions() as session:
        assert await enqueue(
            session,
            kind="reminder",
            channel="telegram",
            chat_id="42",
            text="Hạn nộp báo cáo: 31/8",
            idempotency_key="reminder:task-1:unit-7:2025-08-29",
            buttons=[[Button("Đã xong", "done:1"), Button("Chưa", "todo:1")]],
            now=NOW,
        )
        assert not await enqueue(
            session,
            kind="reminder",
            channel="telegram",
            chat_id="42",
            text="a second planning of the same reminder",
            idempotency_key="reminder:task-1:unit-7:2025-08-29",
            now=NOW,
        )
        await session.commit()
    async with sessions() as session:  # planned again later, after it was sent
        added = await enqueue_many(
            session,
            [push("reminder:task-1:unit-7:2025-08-29"), push("k2"), push("k2"), push("k3")],
            now=NOW,
        )
        await session.commit()
    assert added == 2
    stored = await rows(sessions)
    assert [r.idempotency_key for r in stored] == ["reminder:task-1:unit-7:2025-08-29", "k2", "k3"]
    assert stored[0].text == "Hạn nộp báo cáo: 31/8"
    assert stored[0].next_attempt_at == NOW and stored[0].status == "pending"
    assert buttons_from_json(stored[0].buttons) == (
        (Button("Đã xong", "done:1"), Button("Chưa", "todo:1")),
    )


async def test_concurrent_double_planning_inserts_once(sessions: SessionFactory) -> None:
    """Two transactions plan the same push at once: one row, no error."""
    first, second = sessions(), sessions()
    try:
        assert await enqueue_many(first, [push("same")], now=NOW) == 1
        late = asyncio.create_task(enqueue_many(second, [push("same")], now=NOW))
        await asyncio.sleep(0.1)  # the second insert waits for the first transaction
        await first.commit()
        assert await late == 0
        await second.commit()
    finally:
        await first.close()
        await second.close()
    assert len(await rows(sessions)) == 1


async def test_claim_takes_due_rows_singles_before_broadcasts(sessions: SessionFactory) -> None:
    broadcast_id = await make_broadcast(sessions, [str(c) for c in range(100, 110)], now=NOW)
    async with sessions() as session:
        await enqueue_many(
            session,
            [
                push("later", not_before=NOW + timedelta(hours=1)),
                push("reminder", chat="7"),  # planned after the broadcast
                Push("digest", "zalo", "z1", "Zalo", "zalo-1"),  # another channel
            ],
            now=NOW,
        )
        await session.commit()
    async with sessions() as session:
        claimed = await claim_due(session, channel="telegram", limit=4, now=NOW)
        await session.commit()
    assert [r.kind for r in claimed] == ["reminder", "broadcast", "broadcast", "broadcast"]
    assert [r.chat_id for r in claimed[1:]] == ["100", "101", "102"]
    assert all(r.broadcast_id == broadcast_id for r in claimed[1:])
    assert (await count_status(sessions)) == {"sending": 4, "pending": 9}
    async with sessions() as session:
        assert await next_due(session, channel="telegram") == NOW
        assert await next_due(session, channel="zalo") == NOW
        assert await next_due(session, channel="other") is None
        rest = await claim_due(session, channel="telegram", limit=100, now=NOW)
        assert len(rest) == 7  # the row planned for later is not due
        assert await next_due(session, channel="telegram") == NOW + timedelta(hours=1)
        assert await has_pending(session, channels=["telegram"])
        await session.commit()


async def test_outcomes_and_broadcast_report(sessions: SessionFactory) -> None:
    chats = [str(c) for c in range(200, 206)]
    broadcast_id = await make_broadcast(sessions, chats, now=NOW)
    async with sessions() as session:
        claimed = await claim_due(session, channel="telegram", limit=10, now=NOW)
        finished = await record_outcomes(
            session,
            [
                Outcome(claimed[0].id, "sent", attempted=True, broadcast_id=broadcast_id),
                Outcome(claimed[1].id, "sent", attempted=True, broadcast_id=broadcast_id),
                Outcome(
                    claimed[2].id,
                    "failed",
                    attempted=True,
                    error="refused: Telegram: Bad Request: chat not found",
                    broadcast_id=broadcast_id,
                ),
                Outcome(
                    claimed[3].id,
                    "blocked",
                    attempted=True,
                    error="blocked: Telegram 403",
                    broadcast_id=broadcast_id,
                ),
                Outcome(
                    claimed[4].id,
                    "pending",
                    attempted=True,
                    error="temporary: Telegram 5xx",
                    next_attempt_at=NOW + timedelta(seconds=5),
                    broadcast_id=broadcast_id,
                ),
            ],
            now=NOW,
        )
        await session.commit()
    assert finished == []  # one row is still claimed, one pending
    async with sessions() as session:
        status = await broadcast_status(session, broadcast_id)
    assert status is not None
    assert (status.status, status.total, status.sent, status.failed, status.blocked) == (
        "sending",
        6,
        2,
        1,
        1,
    )
    assert (status.pending, status.sending, status.remaining) == (1, 1, 2)
    assert status.failures == (("refused: Telegram: Bad Request: chat not found", 1),)
    retried = (await rows(sessions, chat_id="204"))[0]
    assert (retried.status, retried.attempts, retried.next_attempt_at) == (
        "pending",
        1,
        NOW + timedelta(seconds=5),
    )
    assert retried.last_error == "temporary: Telegram 5xx"
    sent = (await rows(sessions, chat_id="200"))[0]
    assert (sent.sent_at, sent.attempts) == (NOW, 1)

    later = NOW + timedelta(seconds=10)
    async with sessions() as session:
        again = await claim_due(session, channel="telegram", limit=10, now=later)
        assert [r.chat_id for r in again] == ["204"]
        finished = await record_outcomes(
            session,
            [
                Outcome(claimed[5].id, "sent", attempted=True, broadcast_id=broadcast_id),
                Outcome(again[0].id, "sent", attempted=True, broadcast_id=broadcast_id),
            ],
            now=later,
        )
        await session.commit()
    assert finished == [broadcast_id]
    async with sessions() as session:
        final = await broadcast_status(session, broadcast_id)
        assert await broadcast_status(session, 999) is None
    assert final is not None
    assert (final.status, final.delivered, final.failed, final.blocked, final.finished_at) == (
        "done",
        4,
        1,
        1,
        later,
    )
    assert final.finished


async def test_cancel_broadcast(sessions: SessionFactory) -> None:
    broadcast_id = await make_broadcast(sessions, [str(c) for c in range(300, 310)], now=NOW)
    async with sessions() as session:
        claimed = await claim_due(session, channel="telegram", limit=3, now=NOW)
        await session.commit()
    async with sessions() as session:
        assert await cancel_broadcast(session, broadcast_id, now=NOW) == 7
        assert await cancel_broadcast(session, broadcast_id, now=NOW) == 0
        await session.commit()
    assert (await count_status(sessions)) == {"sending": 3, "cancelled": 7}
    async with sessions() as session:
        # rows claimed before the cancellation: the sender drops them (claimed rows of a
        # cancelled broadcast are never handed out again either)
        await record_outcomes(
            session,
            [Outcome(r.id, "cancelled", broadcast_id=broadcast_id) for r in claimed],
            now=NOW,
        )
        status = await broadcast_status(session, broadcast_id)
        await session.commit()
    assert status is not None
    assert (status.status, status.cancelled, status.finished_at) == ("cancelled", 10, NOW)


async def test_enqueue_broadcast_counts_each_chat_once(sessions: SessionFactory) -> None:
    async with sessions() as session:
        broadcast = Broadcast(text="Họp", audience="all", created_by="admin")
        session.add(broadcast)
        await session.flush()
        recipients = [Recipient("telegram", "1", None), Recipient("telegram", "1", None)]
        recipients.append(Recipient("zalo", "1", None))
        assert await enqueue_broadcast(session, broadcast, recipients, now=NOW) == 2
        assert await enqueue_broadcast(session, broadcast, recipients, now=NOW) == 0
        assert broadcast.total == 2 and broadcast.status == "sending"
        empty = Broadcast(text="Không ai", audience="none", created_by="admin")
        session.add(empty)
        await session.flush()
        assert await enqueue_broadcast(session, empty, [], now=NOW) == 0
        assert (empty.status, empty.finished_at) == ("done", NOW)
        await session.commit()


async def test_blocked_person_rows_are_not_attempted_until_unblocked(
    sessions: SessionFactory,
) -> None:
    people = await add_people(sessions, ["501", "502"])
    async with sessions() as session:
        channel = (
            await session.exec(select(PersonChannel).where(PersonChannel.user_id == "501"))
        ).one()
        channel.blocked_at = NOW
        session.add(channel)
        await enqueue_many(
            session,
            [
                push("a", chat="501", person_id=people["501"]),
                push("b", chat="502", person_id=people["502"]),
                push("c", chat="501"),  # no person given: matched by chat
            ],
            now=NOW,
        )
        await session.commit()
    async with sessions() as session:
        claimed = await claim_due(session, channel="telegram", limit=10, now=NOW)
        await session.commit()
    assert [r.chat_id for r in claimed] == ["502"]
    blocked = await rows(sessions, status="blocked")
    assert [(r.idempotency_key, r.attempts) for r in blocked] == [("a", 0), ("c", 0)]
    async with sessions() as session:
        assert await unblock(session, "telegram", "501")
        assert not await unblock(session, "telegram", "501")
        assert not await unblock(session, "telegram", "nobody")
        await enqueue_many(session, [push("d", chat="501", person_id=people["501"])], now=NOW)
        await session.commit()
    async with sessions() as session:
        claimed = await claim_due(session, channel="telegram", limit=10, now=NOW)
        await session.commit()
    assert [r.text for r in claimed] == ["Nhắc việc d"]


async def test_recover_and_finish(sessions: SessionFactory) -> None:
    kept = await make_broadcast(sessions, ["1", "2"], now=NOW)
    dropped = await make_broadcast(sessions, ["3", "4"], now=NOW)
    async with sessions() as session:
        claimed = await claim_due(session, channel="telegram", limit=10, now=NOW)
        assert len(claimed) == 4
        await session.commit()
    async with sessions() as session:
        await cancel_broadcast(session, dropped, now=NOW)
        await session.commit()
    async with sessions() as session:  # the sender died; a new one starts
        assert await recover_claims(session, now=NOW) == 2
        await session.commit()
    assert (await count_status(sessions)) == {"pending": 2, "cancelled": 2}
    async with sessions() as session:
        assert await finish_broadcasts(session, now=NOW) == []
        again = await claim_due(session, channel="telegram", limit=10, now=NOW)
        await record_outcomes(
            session, [Outcome(r.id, "sent", attempted=True) for r in again], now=NOW
        )
        assert await finish_broadcasts(session, now=NOW) == [kept]
        await session.commit()
