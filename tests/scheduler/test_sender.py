"""The sender against the fake Bot API server through the real aiogram client: what the
server received (and when), and what the database holds afterwards."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Sequence

import pytest
from sqlmodel import select

from bot.core import Button, RetryLater, wait_event
from bot.storage.db import SessionFactory
from bot.storage.models import PersonChannel
from scheduler.limits import RetryPolicy
from scheduler.outbox import broadcast_status, cancel_broadcast, enqueue, unblock
from scheduler.transports import TelegramTransport
from tests.fakes.botapi_server import TOKEN, FakeBotAPI
from tests.scheduler.conftest import (
    add_people,
    count_status,
    make_broadcast,
    make_sender,
    rows,
    run_until,
)


async def remind(
    sessions: SessionFactory,
    chat: str,
    key: str,
    *,
    person_id: int | None = None,
    buttons: list[list[Button]] | None = None,
) -> None:
    async with sessions() as session:
        await enqueue(
            session,
            kind="reminder",
            channel="telegram",
            chat_id=chat,
            person_id=person_id,
            text=f"Nhắc việc {key}",
            idempotency_key=key,
            buttons=buttons or [],
        )
        await session.commit()


async def test_delivers_a_broadcast_once_each_and_marks_it_done(
    sessions: SessionFactory, api: FakeBotAPI, telegram: TelegramTransport
) -> None:
    chats = [str(1000 + i) for i in range(40)]
    broadcast_id = await make_broadcast(sessions, chats, text="Họp chi bộ <8 giờ>")
    await remind(sessions, "77", "r1", buttons=[[Button("Đã xong", "done:1")]])
    sender = make_sender(sessions, telegram)
    await asyncio.wait_for(sender.run(until_idle=True), 20)

    assert api.delivery_counts() == {chat: 1 for chat in [*chats, "77"]}
    assert {r.text for r in api.delivered() if r.chat_id != "77"} == {"Họp chi bộ &lt;8 giờ&gt;"}
    [reminder] = api.delivered_to("77")
    assert reminder.reply_markup == {
        "inline_keyboard": [[{"text": "Đã xong", "callback_data": "done:1"}]]
    }
    assert await count_status(sessions) == {"sent": 41}
    async with sessions() as session:
        status = await broadcast_status(session, broadcast_id)
    assert status is not None
    assert (status.status, status.delivered, status.remaining) == ("done", 40, 0)
    assert status.finished_at is not None


async def test_overall_rate_limit(
    sqlite_sessions: SessionFactory, api: FakeBotAPI, telegram: TelegramTransport
) -> None:
    rate, count = 40.0, 50
    await make_broadcast(sqlite_sessions, [str(2000 + i) for i in range(count)])
    sender = make_sender(sqlite_sessions, telegram, rate=rate, burst=1.0, max_in_flight=8)
    await asyncio.wait_for(sender.run(until_idle=True), 20)

    times = sorted(r.t for r in api.delivered())
    assert len(times) == count
    span = times[-1] - times[0]
    assert span >= (count - 1) / rate * 0.95  # never faster than the limit...
    assert span <= (count - 1) / rate * 1.5  # ...and not much slower
    for start in times:  # any half second: at most burst + rate/2 (+1 for timing jitter)
        assert sum(start <= t < start + 0.5 for t in times) <= 1 + rate / 2 + 1


async def test_per_chat_interval_without_holding_up_other_chats(
    sqlite_sessions: SessionFactory, api: FakeBotAPI, telegram: TelegramTransport
) -> None:
    for i in range(5):
        await remind(sqlite_sessions, "busy", f"busy-{i}")
    for i in range(5):
        await remind(sqlite_sessions, str(3000 + i), f"other-{i}")
    sender = make_sender(sqlite_sessions, telegram, per_chat_interval=0.2, max_in_flight=4)
    started = time.monotonic()
    await asyncio.wait_for(sender.run(until_idle=True), 20)

    busy = api.delivered_to("busy")
    assert [r.text for r in busy] == [f"Nhắc việc busy-{i}" for i in range(5)]  # in order
    gaps = [b.t - a.t for a, b in itertools.pairwise(busy)]
    assert min(gaps) >= 0.2 - 0.01
    others = [r for r in api.delivered() if r.chat_id != "busy"]
    assert len(others) == 5
    assert max(r.t for r in others) - started < 0.5  # not queued behind the busy chat


async def test_429_pauses_the_whole_channel_then_retries(
    sqlite_sessions: SessionFactory, api: FakeBotAPI, telegram: TelegramTransport
) -> None:
    api.retry_after = 1
    chats = [str(4000 + i) for i in range(6)]
    api.script[chats[1]] = ["429"]
    await make_broadcast(sqlite_sessions, chats)
    sender = make_sender(sqlite_sessions, telegram, rate=100.0, max_in_flight=1)
    await asyncio.wait_for(sender.run(until_idle=True), 20)

    [limited] = [r for r in api.messages() if r.status == 429]
    after = [r for r in api.messages() if r.t > limited.t]
    assert after and min(r.t for r in after) >= limited.t + 1.0  # nothing during the pause
    assert api.delivery_counts() == {chat: 1 for chat in chats}  # the limited one retried
    [row] = await rows(sqlite_sessions, chat_id=chats[1])
    assert (row.status, row.attempts) == ("sent", 1)  # a 429 is not a failed attempt
    assert row.last_error is not None and row.last_error.startswith("rate limited (1 s)")
    assert (sender.stats.pauses, sender.stats.rate_limited) == (1, 1)


async def test_403_blocks_the_person_until_they_write_again(
    sessions: SessionFactory, api: FakeBotAPI, telegram: TelegramTransport
) -> None:
    people = await add_people(sessions, ["500", "501"])
    api.blocked.add("500")
    api.blocked.add("600")  # a chat without a person record
    for i in range(3):
        await remind(sessions, "500", f"p-{i}", person_id=people["500"])
        await remind(sessions, "600", f"anon-{i}")
    await remind(sessions, "501", "ok-1", person_id=people["501"])
    sender = make_sender(sessions, telegram, max_in_flight=1)
    await asyncio.wait_for(sender.run(until_idle=True), 20)

    assert [r.status for r in api.messages() if r.chat_id == "500"] == [403]
    assert [r.status for r in api.messages() if r.chat_id == "600"] == [403]
    assert api.delivery_counts() == {"501": 1}
    stored = {r.idempotency_key: r for r in await rows(sessions)}
    assert [(stored[f"p-{i}"].status, stored[f"p-{i}"].attempts) for i in range(3)] == [
        ("blocked", 1),
        ("blocked", 0),
        ("blocked", 0),
    ]
    assert (
        stored["p-0"].last_error == "blocked: Telegram 403: Forbidden: bot was blocked by the user"
    )
    assert [stored[f"anon-{i}"].status for i in range(3)] == ["blocked"] * 3
    async with sessions() as session:
        link = (
            await session.exec(select(PersonChannel).where(PersonChannel.user_id == "500"))
        ).one()
    assert link.blocked_at is not None

    # Later pushes are not attempted either...
    await remind(sessions, "500", "p-later", person_id=people["500"])
    await asyncio.wait_for(make_sender(sessions, telegram).run(until_idle=True), 20)
    assert [r.status for r in api.messages() if r.chat_id == "500"] == [403]
    assert (await rows(sessions, idempotency_key="p-later"))[0].status == "blocked"

    # ...until the person writes again (the dispatch path calls unblock).
    api.blocked.discard("500")
    async with sessions() as session:
        assert await unblock(session, "telegram", "500")
        await session.commit()
    await remind(sessions, "500", "p-after", person_id=people["500"])
    await asyncio.wait_for(make_sender(sessions, telegram).run(until_idle=True), 20)
    assert [r.text for r in api.delivered_to("500")] == ["Nhắc việc p-after"]


async def test_5xx_and_dropped_connections_are_retried_then_given_up(
    sqlite_sessions: SessionFactory, api: FakeBotAPI, telegram: TelegramTransport
) -> None:
    api.always["down"] = "500"
    api.always["gone"] = "drop"
    api.script["flaky"] = ["drop", "500"]
    api.script["bad"] = ["400"]
    for chat in ("down", "gone", "flaky", "bad"):
        await remind(sqlite_sessions, chat, chat)
    retry = RetryPolicy(max_attempts=3, base_delay=0.1, max_delay=1.0, jitter=0.5)
    sender = make_sender(sqlite_sessions, telegram, retry=retry)
    await asyncio.wait_for(sender.run(until_idle=True), 20)

    assert [r.status for r in api.messages() if r.chat_id == "down"] == [500, 500, 500]
    assert [r.status for r in api.messages() if r.chat_id == "gone"] == [0, 0, 0]
    assert [r.status for r in api.messages() if r.chat_id == "flaky"] == [0, 500, 200]
    assert [r.status for r in api.messages() if r.chat_id == "bad"] == [400]
    down = [r.t for r in api.messages() if r.chat_id == "down"]
    assert down[1] - down[0] >= 0.05 and down[2] - down[1] >= 0.1  # back-off: 0.1 s, 0.2 s
    stored = {r.idempotency_key: r for r in await rows(sqlite_sessions)}
    assert (stored["down"].status, stored["down"].attempts) == ("failed", 3)
    assert stored["down"].last_error == (
        "gave up after 3 attempts: temporary: Telegram 5xx: Internal Server Error"
    )
    assert stored["gone"].status == "failed"
    assert "network: ServerDisconnectedError" in (stored["gone"].last_error or "")
    assert (stored["flaky"].status, stored["flaky"].attempts) == ("sent", 3)
    assert (stored["bad"].status, stored["bad"].attempts) == ("failed", 1)
    assert stored["bad"].last_error == "refused: Telegram: Bad Request: chat not found"


async def test_cancelling_a_running_broadcast_stops_it_within_a_second(
    sessions: SessionFactory, api: FakeBotAPI, telegram: TelegramTransport
) -> None:
    chats = [str(5000 + i) for i in range(200)]
    broadcast_id = await make_broadcast(sessions, chats)
    # slow enough to cancel midway; big batches: many rows are claimed when it is cancelled
    sender = make_sender(sessions, telegram, rate=50.0, batch_size=60)
    cancelled_at = 0.0

    async def cancel_after_twenty() -> bool:
        nonlocal cancelled_at
        if len(api.delivered()) < 20:
            return False
        async with sessions() as session:
            await cancel_broadcast(session, broadcast_id)
            await session.commit()
        cancelled_at = time.monotonic()
        await asyncio.sleep(1.5)
        return True

    await run_until(sender, cancel_after_twenty, timeout=20)
    assert max(r.t for r in api.messages()) <= cancelled_at + 1.0
    assert sender.stats.cancelled > 0  # claimed rows were dropped, not sent
    async with sessions() as session:
        status = await broadcast_status(session, broadcast_id)
    assert status is not None
    assert status.status == "cancelled"
    assert status.sent == len(api.delivered()) < 60
    assert (status.sent + status.cancelled, status.remaining) == (200, 0)


async def test_a_restart_resumes_where_it_stopped(
    sqlite_sessions: SessionFactory, api: FakeBotAPI, telegram: TelegramTransport
) -> None:
    chats = [str(6000 + i) for i in range(150)]
    await make_broadcast(sqlite_sessions, chats)

    # A graceful stop: requests on the wire finish, claimed rows go back to pending.
    first = make_sender(sqlite_sessions, telegram, rate=100.0)
    await run_until(first, lambda: len(api.delivered()) >= 30)
    statuses = await count_status(sqlite_sessions)
    assert "sending" not in statuses and statuses["pending"] > 0

    # An abrupt stop (the task is cancelled): claimed rows stay "sending" for the next run.
    second = make_sender(sqlite_sessions, telegram, rate=100.0, max_in_flight=4)
    task = asyncio.create_task(second.run())
    while len(api.delivered()) < 80:
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await count_status(sqlite_sessions)).get("sending", 0) > 0

    third = make_sender(sqlite_sessions, telegram, rate=500.0)
    await asyncio.wait_for(third.run(until_idle=True), 20)
    counts = api.delivery_counts()
    assert set(counts) == set(chats)
    assert sum(n - 1 for n in counts.values()) <= 4  # only what was on the wire at the stop
    assert await count_status(sqlite_sessions) == {"sent": 150}


async def test_tokens_stay_out_of_the_database_and_the_logs(
    sqlite_sessions: SessionFactory, caplog: pytest.LogCaptureFixture
) -> None:
    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer

    async with FakeBotAPI() as api:
        url = api.url  # nothing listens here any more
    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(url)))
    await remind(sqlite_sessions, "1", "k")
    caplog.set_level(logging.DEBUG)
    try:
        sender = make_sender(sqlite_sessions, TelegramTransport(bot))
        await asyncio.wait_for(sender.run(until_idle=True), 20)
    finally:
        await bot.session.close()
    [row] = await rows(sqlite_sessions)
    assert row.status == "failed" and row.last_error is not None
    assert "network" in row.last_error
    secret = TOKEN.split(":")[1]
    assert secret not in row.last_error
    assert all(secret not in record.getMessage() for record in caplog.records)


class InstantPlatform:
    """A platform double that answers inside ``deliver`` without awaiting: one chat's first
    request gets a 429, every other request succeeds. Over a socket the order of events
    within one event-loop turn cannot be forced; here it can: the worker starts several
    deliveries in one turn, and the first one's 429 is handled before the others begin."""

    channel = "telegram"
    buttons = False

    def __init__(self, limited: str, retry_after: float) -> None:
        self.limited, self.retry_after = limited, retry_after
        self.calls: list[tuple[float, str]] = []

    async def deliver(self, chat_id: str, text: str, buttons: Sequence[Sequence[Button]]) -> None:
        self.calls.append((time.monotonic(), chat_id))
        if chat_id == self.limited and len(self.calls) == 1:
            raise RetryLater(self.retry_after, "429")


async def test_deliveries_started_just_before_a_429_wait_for_the_pause(
    sqlite_sessions: SessionFactory,
) -> None:
    chats = [str(5000 + i) for i in range(10)]
    platform = InstantPlatform(limited=chats[0], retry_after=0.5)
    await make_broadcast(sqlite_sessions, chats)
    # A burst of 10: the worker starts all ten deliveries before the first one answers.
    sender = make_sender(sqlite_sessions, platform, rate=500.0, burst=10, max_in_flight=10)
    await asyncio.wait_for(sender.run(until_idle=True), 20)

    (first, limited), *rest = platform.calls
    assert limited == chats[0]
    assert all(t >= first + 0.5 for t, _ in rest)  # nothing went out during the pause
    assert sorted(chat for _, chat in rest) == sorted(chats)  # each once more, or once
    assert await count_status(sqlite_sessions) == {"sent": 10}
    assert {row.attempts for row in await rows(sqlite_sessions)} == {1}


async def test_a_cancel_arriving_with_the_awaited_event_is_not_swallowed() -> None:
    """Why the sender waits with :func:`bot.core.wait_event`: with ``wait_for(event.wait())``
    a cancel landing in the loop turn that sets the event was swallowed on Python 3.11 (the
    wait returned normally), so the sender's writer, cancelled at shutdown just as an outcome
    arrived, waited for the next one forever and the sender never stopped."""
    event = asyncio.Event()
    went_on: list[bool] = []

    async def writer() -> None:
        await wait_event(event, 10)
        went_on.append(True)  # only if the cancel was lost
        await asyncio.sleep(10)

    task = asyncio.create_task(writer())
    for _ in range(3):
        await asyncio.sleep(0)  # waiting on the event now
    event.set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1)
    assert went_on == []
    # and the plain uses: a timeout, an event already set
    assert await wait_event(asyncio.Event(), 0.01) is False
    done = asyncio.Event()
    done.set()
    assert await wait_event(done, 10) is True
