"""Progress reports of a broadcast, driven with a fixed clock: the monitor tick
(:func:`report_progress`) and the sender's side of the outbox (:func:`claim_due`,
:func:`record_outcomes`, :func:`recover_claims`) take turns as a broadcast progresses.

The person who started a broadcast gets 25/50/75 % once each, in order, then the final
report; a progress report is never delivered once a newer report of the broadcast exists,
nor after it has waited longer than its validity (a restart), nor in quiet hours."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, text
from sqlmodel import col, select

from bot.storage.db import SessionFactory, create_engine, make_session_factory
from bot.storage.models import Broadcast, OutboxMessage, Person, PersonChannel, Unit
from scheduler.broadcasts import monitored_broadcasts, report_key, report_progress
from scheduler.jobs import MONITOR_EVERY_SECONDS
from scheduler.outbox import (
    Outcome,
    Recipient,
    cancel_broadcast,
    claim_due,
    enqueue_broadcast,
    record_outcomes,
    recover_claims,
)
from scheduler.policy import PushPolicy

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
POLICY = PushPolicy(zone=ZONE)
TICK = timedelta(seconds=MONITOR_EVERY_SECONDS)
MORNING = datetime(2025, 9, 5, 10, tzinfo=ZONE).astimezone(UTC)  # a Friday, 10:00 local
PER_TICK = 26 * MONITOR_EVERY_SECONDS  # about Telegram's 25 pushes/s between two ticks


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[SessionFactory]:
    engine = create_engine(db_url)
    yield make_session_factory(engine)
    await engine.dispose()


async def an_admin(sessions: SessionFactory, *, channel: str = "telegram") -> int:
    """An admin who starts broadcasts in a chat (their chat id is ``admin``)."""
    async with sessions() as session:
        unit = Unit(code="TW", name="Ban Chấp hành Trung ương", level="trung_uong")
        session.add(unit)
        await session.flush()
        assert unit.id is not None
        person = Person(name="Đồng chí Quản trị", unit_id=unit.id, role="admin")
        session.add(person)
        await session.flush()
        assert person.id is not None
        session.add(
            PersonChannel(person_id=person.id, channel=channel, user_id="admin", chat_id="admin")
        )
        await session.commit()
        return person.id


async def start_broadcast(
    sessions: SessionFactory, person_id: int, people: int, now: datetime, *, prefix: str = "c"
) -> int:
    """What /thongbao does once confirmed: one row per recipient, on Telegram."""
    async with sessions() as session:
        broadcast = Broadcast(
            text="Kính gửi các đồng chí: họp giao ban lúc 14:00 thứ Hai.",
            audience="all",
            created_by=f"person:{person_id}",
            created_at=now,
        )
        session.add(broadcast)
        await session.flush()
        recipients = [Recipient("telegram", f"{prefix}{i}") for i in range(people)]
        await enqueue_broadcast(session, broadcast, recipients, now=now)
        await session.commit()
        assert broadcast.id is not None
        return broadcast.id


@dataclass
class Phone:
    """What reached the admin's chat, in order."""

    received: list[str] = field(default_factory=list)


async def send(
    sessions: SessionFactory,
    now: datetime,
    *,
    channel: str = "telegram",
    limit: int = PER_TICK,
    phone: Phone | None = None,
) -> int:
    """The sender's work up to ``now``: claim due rows of ``channel``, deliver them all."""
    async with sessions() as session:
        claimed = await claim_due(session, channel=channel, limit=limit, now=now)
        await session.commit()
    async with sessions() as session:
        await record_outcomes(
            session,
            [Outcome(r.id, "sent", attempted=True, broadcast_id=r.broadcast_id) for r in claimed],
            now=now,
        )
        await session.commit()
    if phone is not None:
        phone.received += [r.text for r in claimed if r.chat_id == "admin"]
    return len(claimed)


async def tick(sessions: SessionFactory, now: datetime) -> int:
    """The ``broadcasts:monitor`` job at ``now``."""
    async with sessions() as session:
        added = await report_progress(session, now=now, policy=POLICY)
        await session.commit()
        return added


async def reports(sessions: SessionFactory) -> dict[str, tuple[str, str, str]]:
    """The report rows: key -> (kind, status, text)."""
    async with sessions() as session:
        found = await session.exec(
            select(OutboxMessage).where(col(OutboxMessage.broadcast_id).is_(None))
        )
        return {r.idempotency_key: (r.kind, r.status, r.text) for r in found.all()}


def progress(number: int, settled: int, sent: int | None = None) -> str:
    thousands = f"{settled // 1000}.{settled % 1000:03d}" if settled >= 1000 else str(settled)
    return (
        f"Thông báo #{number} đang gửi: đã xử lý {thousands}/1.000 người "
        f"({settled * 100 // 1000}%), trong đó {thousands if sent is None else sent} người "
        "đã nhận."
    )


def final(number: int, received: str = "1.000/1.000") -> str:
    return f"ĐÃ GỬI XONG thông báo #{number}:\n• Đã nhận: {received} người"


async def test_a_thousand_people_at_25_per_second_get_each_quarter_then_the_final_report(
    sessions: SessionFactory,
) -> None:
    admin = await an_admin(sessions)
    number = await start_broadcast(sessions, admin, 1000, MORNING)
    phone = Phone()
    now = MORNING
    for _ in range(20):
        now += TICK
        await send(sessions, now, phone=phone)
        await tick(sessions, now)
        if phone.received and phone.received[-1].startswith("ĐÃ GỬI XONG"):
            break
    # The reports go out first (before the broadcast's own rows), each in the next 5 s.
    assert phone.received == [
        progress(number, 260),  # at 10 s
        progress(number, 519),  # 129 more: the report took one push of the 130
        progress(number, 778),
        final(number),
    ]
    rows = await reports(sessions)
    assert {key: (kind, status) for key, (kind, status, _) in rows.items()} == {
        report_key(number, 1): ("broadcast_progress", "sent"),
        report_key(number, 2): ("broadcast_progress", "sent"),
        report_key(number, 3): ("broadcast_progress", "sent"),
        report_key(number): ("report", "sent"),
    }
    assert await tick(sessions, now + TICK) == 0  # each once, however often the monitor runs


async def test_a_progress_report_overtaken_by_a_newer_one_is_never_delivered(
    sessions: SessionFactory,
) -> None:
    """The admin is on Zalo, whose deliveries stall for a while (a long rate-limit pause)
    while Telegram carries the broadcast on."""
    admin = await an_admin(sessions, channel="zalo")
    number = await start_broadcast(sessions, admin, 1000, MORNING)
    phone = Phone()
    now = MORNING
    for step in range(1, 20):
        now += TICK
        await send(sessions, now)  # Telegram: the broadcast
        if step >= 7:  # Zalo delivers again (after 25 %, 50 % were planned)
            await send(sessions, now, channel="zalo", phone=phone)
        await tick(sessions, now)
        if phone.received and phone.received[-1].startswith("ĐÃ GỬI XONG"):
            break
    assert phone.received == [progress(number, 780), final(number)]  # 75 %, then the end
    rows = await reports(sessions)
    assert rows[report_key(number, 1)][1:] == ("cancelled", progress(number, 260))
    assert rows[report_key(number, 2)][1:] == ("cancelled", progress(number, 520))
    async with sessions() as session:
        errors = await session.exec(
            select(OutboxMessage.last_error).where(OutboxMessage.status == "cancelled")
        )
        assert set(errors.all()) == {"superseded by a newer report"}


async def test_the_final_report_cancels_a_pending_progress_report(
    sessions: SessionFactory,
) -> None:
    admin = await an_admin(sessions, channel="zalo")
    number = await start_broadcast(sessions, admin, 1000, MORNING)
    now = MORNING
    await send(sessions, now, limit=300)
    await tick(sessions, now)  # 30 %: the first quarter's report, pending on Zalo
    async with sessions() as session:
        await cancel_broadcast(session, number, now=now)  # the admin pressed «Dừng gửi»
        await session.commit()
    now += TICK
    await tick(sessions, now)
    phone = Phone()
    await send(sessions, now, channel="zalo", phone=phone)
    assert phone.received == [
        f"ĐÃ DỪNG thông báo #{number}:\n• Đã nhận: 300/1.000 người\n• Đã hủy trước khi gửi: 700"
    ]
    rows = await reports(sessions)
    assert rows[report_key(number, 1)][:2] == ("broadcast_progress", "cancelled")


async def test_no_newer_report_while_an_older_one_is_on_its_way(
    sessions: SessionFactory,
) -> None:
    """25 % is being delivered (claimed) when the broadcast passes 50 %: 50 % waits for its
    outcome; 25 % then fails for a while (put back for a retry) and is cancelled when 50 % is
    planned, so it can never arrive after it."""
    admin = await an_admin(sessions, channel="zalo")
    number = await start_broadcast(sessions, admin, 1000, MORNING)
    now = MORNING
    await send(sessions, now, limit=300)
    await tick(sessions, now)
    async with sessions() as session:
        (quarter,) = await claim_due(session, channel="zalo", limit=10, now=now)
        await session.commit()
    now += TICK
    await send(sessions, now, limit=300)  # 60 %
    assert await tick(sessions, now) == 0
    async with sessions() as session:
        await record_outcomes(
            session,
            [
                Outcome(
                    quarter.id,
                    "pending",
                    attempted=True,
                    error="HTTP 502",
                    next_attempt_at=now + timedelta(seconds=5),
                )
            ],
            now=now,
        )
        await session.commit()
    now += TICK
    assert await tick(sessions, now) == 1
    phone = Phone()
    await send(sessions, now + timedelta(seconds=6), channel="zalo", phone=phone)
    assert phone.received == [progress(number, 600)]
    assert (await reports(sessions))[report_key(number, 1)][1] == "cancelled"


async def test_a_restart_cancels_old_pending_progress_but_keeps_the_final_report(
    sessions: SessionFactory,
) -> None:
    admin = await an_admin(sessions, channel="zalo")
    t = MORNING
    # (Each broadcast's rows are due from its start: the sender takes the oldest first.)
    first = await start_broadcast(sessions, admin, 1000, t - timedelta(minutes=1), prefix="a")
    await send(sessions, t, limit=300)
    await tick(sessions, t)  # first: 30 %
    async with sessions() as session:  # the sender claims that report... and is killed
        claimed = await claim_due(session, channel="zalo", limit=1, now=t)
        await session.commit()
    assert [c.text for c in claimed] == [progress(first, 300)]
    small = await start_broadcast(sessions, admin, 5, t - timedelta(minutes=3), prefix="b")
    await send(sessions, t, limit=5)
    await tick(sessions, t + timedelta(seconds=1))  # small: done, its final report
    later = t + timedelta(minutes=2, seconds=30)
    third = await start_broadcast(sessions, admin, 1000, t - timedelta(minutes=2), prefix="c")
    await send(sessions, later, limit=400)
    await tick(sessions, later)  # third: 40 %, fresh

    restart = t + timedelta(minutes=3)
    async with sessions() as session:
        await recover_claims(session, now=restart)
        await session.commit()
    phone = Phone()
    await send(sessions, restart, channel="zalo", phone=phone)
    assert phone.received == [final(small, "5/5"), progress(third, 400)]
    rows = await reports(sessions)
    assert rows[report_key(first, 1)][:2] == ("broadcast_progress", "cancelled")
    assert rows[report_key(small)][:2] == ("report", "sent")
    async with sessions() as session:
        error = await session.exec(
            select(OutboxMessage.last_error).where(
                OutboxMessage.idempotency_key == report_key(first, 1)
            )
        )
        assert error.one() == "progress report out of date"


async def test_no_progress_in_quiet_hours_the_final_report_waits_for_the_morning(
    sessions: SessionFactory,
) -> None:
    """A broadcast started at 20:58 is still sending after 21:00: a progress report held
    until 07:00 would be out of date; only the final report is sent, at 07:00."""
    admin = await an_admin(sessions)
    evening = datetime(2025, 9, 5, 20, 58, tzinfo=ZONE).astimezone(UTC)
    number = await start_broadcast(sessions, admin, 1000, evening)
    phone = Phone()
    await send(sessions, evening + timedelta(minutes=1), limit=300)
    await tick(sessions, evening + timedelta(minutes=1))  # 20:59: 30 %, sent at once
    await send(sessions, evening + timedelta(minutes=1, seconds=5), phone=phone, limit=1)
    night = datetime(2025, 9, 5, 21, 0, 5, tzinfo=ZONE).astimezone(UTC)
    await send(sessions, night, limit=300)
    assert await tick(sessions, night) == 0  # 60 %, but quiet hours
    await send(sessions, night + TICK, limit=400)
    assert await tick(sessions, night + TICK) == 1  # done: the final report
    await send(sessions, night + 2 * TICK, phone=phone)
    assert phone.received == [progress(number, 300)]  # nothing more before the morning
    rows = await reports(sessions)
    assert set(rows) == {report_key(number, 1), report_key(number)}
    morning = datetime(2025, 9, 6, 7, tzinfo=ZONE).astimezone(UTC)
    await send(sessions, morning, phone=phone)
    assert phone.received == [progress(number, 300), final(number)]


async def test_a_small_broadcast_gets_only_the_final_report(sessions: SessionFactory) -> None:
    admin = await an_admin(sessions)
    number = await start_broadcast(sessions, admin, 200, MORNING)
    phone = Phone()
    now = MORNING
    for _ in range(3):
        now += TICK
        await send(sessions, now, phone=phone, limit=80)  # 40 %, 80 %, done
        await tick(sessions, now)
    await send(sessions, now + TICK, phone=phone)
    assert phone.received == [final(number, "200/200")]


async def test_a_tick_looks_only_at_broadcasts_sending_or_awaiting_their_final_report(
    sessions: SessionFactory, db_url: str
) -> None:
    admin = await an_admin(sessions)
    reported = await start_broadcast(sessions, admin, 5, MORNING, prefix="r")
    await send(sessions, MORNING)
    await tick(sessions, MORNING)  # done, final report planned
    finished = await start_broadcast(sessions, admin, 5, MORNING, prefix="f")
    await send(sessions, MORNING)  # done, no report planned yet
    sending = await start_broadcast(sessions, admin, 5, MORNING, prefix="s")
    async with sessions() as session:
        seen = {m.id for m in await monitored_broadcasts(session, MORNING)}
    assert seen == {finished, sending}
    assert reported not in seen

    await tick(sessions, MORNING)
    await send(sessions, MORNING)
    await tick(sessions, MORNING)  # every broadcast finished and reported
    engine = create_engine(db_url)
    async with engine.connect() as connection:  # connected and initialised before counting
        await connection.execute(text("SELECT 1"))
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        async with make_session_factory(engine)() as session:
            assert await report_progress(session, now=MORNING + TICK, policy=POLICY) == 0
    finally:
        await engine.dispose()
    assert len(statements) == 1  # an idle tick: one query, whatever the history
