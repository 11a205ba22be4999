"""Several processes on one PostgreSQL database: webhook workers that all serve (each update
handled once, one person's messages one at a time, the flood limit counted across them),
polling by one process per bot token with a standby taking over, and webhook requests
without the secret refused before anything is stored."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.app import THROTTLE_NOTICE
from bot.core import IncomingMessage
from bot.storage.db import create_engine, make_session_factory
from bot.storage.models import Conversation, MessageLog
from knowledge import Knowledge
from tests.conftest import _truncate_all, make_app
from tests.fakes.botapi_server import FakeBotAPI
from tests.load import ROOT, SECRET, Worker, run_load

pytestmark = pytest.mark.postgres


@pytest.fixture
async def pg(postgres_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(postgres_database)
    await _truncate_all(engine)
    yield engine
    await _truncate_all(engine)
    await engine.dispose()


def text_from(user: str, text: str, key: str | None = None) -> IncomingMessage:
    return IncomingMessage(
        channel="telegram", user_id=user, chat_id=user, text=text, kind="text", update_key=key
    )


async def log_rows(engine: AsyncEngine) -> list[MessageLog]:
    async with make_session_factory(engine)() as session:
        return list((await session.exec(select(MessageLog).order_by(col(MessageLog.id)))).all())


# --------------------------------------------------------------------------- in one test process


async def test_the_flood_limit_counts_every_worker_s_messages(
    pg: AsyncEngine, knowledge: Knowledge
) -> None:
    """Two workers (two Apps, their own engines) share one limit per person."""
    first = make_app(knowledge, pg, flood_limit=6)
    other_engine = create_engine(str(pg.url.render_as_string(hide_password=False)))
    second = make_app(knowledge, other_engine, flood_limit=6)
    try:
        answers = []
        for number in range(8):
            worker = first if number % 2 == 0 else second
            outcome = await worker.handle(text_from("77", "Ai ký Kết luận 185?"), buttons=True)
            answers.append([reply.text for reply in outcome.replies])
        assert all(THROTTLE_NOTICE not in texts for texts in answers[:6])
        assert answers[6] == [THROTTLE_NOTICE]  # the 7th message, whichever worker took it
        assert answers[7] == []  # then silence
        async with make_session_factory(pg)() as session:
            conversation = (await session.exec(select(Conversation))).one()
            assert conversation.flood_count == 8
    finally:
        await other_engine.dispose()


async def test_one_person_s_flow_steps_on_two_workers_at_once_are_serialised(
    pg: AsyncEngine, knowledge: Knowledge
) -> None:
    """Both workers take a message of the same person at the same moment: the conversation
    row is locked, so each sees the other's write (none is lost)."""
    first = make_app(knowledge, pg, flood_limit=100)
    other_engine = create_engine(str(pg.url.render_as_string(hide_password=False)))
    second = make_app(knowledge, other_engine, flood_limit=100)
    try:
        for round_ in range(5):
            one, two = f"u{2 * round_}", f"u{2 * round_ + 1}"
            await asyncio.gather(
                first.handle(text_from("88", "Ai ký Kết luận 185?", one), buttons=True),
                second.handle(text_from("88", "Hạn đại hội cấp xã?", two), buttons=True),
            )
        async with make_session_factory(pg)() as session:
            conversation = (await session.exec(select(Conversation))).one()
            assert conversation.flood_count == 10  # no increment lost to a race
        assert len(await log_rows(pg)) == 10
    finally:
        await other_engine.dispose()


async def test_an_update_seen_before_is_not_handled_again_and_unsent_replies_are_resent(
    pg: AsyncEngine, knowledge: Knowledge
) -> None:
    app = make_app(knowledge, pg)
    first = await app.handle(text_from("99", "Ai ký Kết luận 185?", "u500"), buttons=True)
    assert first.replies and "Kết luận" in first.replies[0].text
    # The worker died after handling, before its replies were confirmed sent: another one
    # gets the update again and sends the same replies, without handling it twice.
    other = make_app(knowledge, pg)
    again = await other.handle(text_from("99", "Ai ký Kết luận 185?", "u500"), buttons=True)
    assert [r.text for r in again.replies] == [r.text for r in first.replies]
    await other.confirm(again)
    await other.flush_confirmations()
    # Confirmed: a third delivery is acknowledged and nothing is sent.
    third = await app.handle(text_from("99", "Ai ký Kết luận 185?", "u500"), buttons=True)
    assert third.replies == []
    [row] = await log_rows(pg)
    assert row.update_key == "u500" and row.replied_at is not None


# --------------------------------------------------------------------------- real processes


async def _count(engine: AsyncEngine, model: type) -> int:
    async with make_session_factory(engine)() as session:
        return int((await session.exec(select(func.count()).select_from(model))).one())


async def test_a_webhook_request_without_the_right_secret_is_refused_and_not_stored(
    pg: AsyncEngine, postgres_database: str, tmp_path: Path
) -> None:
    async with FakeBotAPI(other_methods_ok=True) as api:
        env = {
            **os.environ,
            "DATABASE_URL": postgres_database,
            "TELEGRAM_BOT_TOKEN": api.token,
            "TELEGRAM_API_BASE_URL": api.url,
            "WEBHOOK_BASE_URL": "https://troly.example.org",
            "WEBHOOK_SECRET": SECRET,
            "KNOWLEDGE_CACHE_DIR": str(ROOT / "var" / "cache"),
        }
        env.pop("ZALO_BOT_TOKEN", None)
        worker = Worker("w", env, tmp_path)
        await worker.start()
        try:
            async with aiohttp.ClientSession() as http:
                await worker.ready(http)
                update = (
                    '{"update_id": 1, "message": {"message_id": 1, "date": 0, '
                    '"chat": {"id": 5, "type": "private"}, "from": {"id": 5, "is_bot": false, '
                    '"first_name": "A"}, "text": "Ai ký Kết luận 185?"}}'
                )
                statuses = []
                for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": "wrong-secret-123"}):
                    async with http.post(
                        f"{worker.url}/webhook/telegram",
                        data=update,
                        headers={"Content-Type": "application/json", **headers},
                    ) as response:
                        statuses.append(response.status)
                assert all(status in (401, 403) for status in statuses), statuses
                assert await _count(pg, MessageLog) == 0
                assert api.messages() == []
                # The right secret: handled (and answered) before the acknowledgement.
                async with http.post(
                    f"{worker.url}/webhook/telegram",
                    data=update,
                    headers={
                        "Content-Type": "application/json",
                        "X-Telegram-Bot-Api-Secret-Token": SECRET,
                    },
                ) as response:
                    assert response.status == 200
                assert len(api.delivered_to("5")) == 1
                assert await _count(pg, MessageLog) == 1
        finally:
            await worker.stop()
        assert api.token not in worker.log()


async def test_three_webhook_workers_under_load_with_the_leader_killed(
    pg: AsyncEngine, postgres_database: str, knowledge: Knowledge, tmp_path: Path
) -> None:
    """The small version of ``make bench``'s load: every update answered once, in order,
    every progress report recorded once, the broadcast delivered through the failover."""
    result = await run_load(
        postgres_database,
        knowledge,
        workers=3,
        people=120,
        updates=420,
        reporters=30,
        recipients=120,
        kill_at=0.3,
        concurrency=32,
        log_dir=tmp_path,
    )
    assert result.updates == 420 and result.killed_at is not None, result.summary()
    assert result.unanswered == [], result.summary()
    assert set(result.doubled) <= result.in_flight_at_kill, result.summary()
    assert result.out_of_order == [], result.summary()
    assert result.failures == [], result.summary()
    assert result.log_rows == result.updates  # each update handled once
    assert result.reports_recorded == result.reports_expected == 30, result.summary()
    assert result.reports_doubled == 0, result.summary()
    assert result.broadcast_delivered == result.broadcast_total, result.summary()
    assert result.failover_s is None or result.failover_s <= 10, result.summary()


async def test_one_process_polls_a_token_and_a_standby_takes_over(
    pg: AsyncEngine, postgres_database: str, tmp_path: Path
) -> None:
    async with FakeBotAPI(other_methods_ok=True) as api:
        env = {
            **os.environ,
            "DATABASE_URL": postgres_database,
            "TELEGRAM_BOT_TOKEN": api.token,
            "TELEGRAM_API_BASE_URL": api.url,
            "KNOWLEDGE_CACHE_DIR": str(ROOT / "var" / "cache"),
            "LOG_LEVEL": "INFO",
        }
        for name in ("ZALO_BOT_TOKEN", "WEBHOOK_BASE_URL"):
            env.pop(name, None)
        processes = [Worker(f"p{i}", env, tmp_path) for i in range(2)]
        for process in processes:
            await process.start()
        try:
            deadline = time.monotonic() + 120
            while not api.polls:
                assert time.monotonic() < deadline, "nobody polled"
                await asyncio.sleep(0.1)
            await asyncio.sleep(6)  # both up: the standby has tried the election by now
            assert all(status == 200 for _, status in api.polls), "two processes polled"
            api.add_update(_text_update(1, 41, "Ai ký Kết luận 185?"))
            await _until(lambda: api.delivered_to("41"), 60, "the answer")
            logs = [process.log() for process in processes]
            active = [i for i, text in enumerate(logs) if "troly:poll:telegram:" in text]
            assert len(active) == 1, "exactly one process won the polling election"
            assert api.token not in "".join(logs)
            await processes[active[0]].kill()
            killed = time.monotonic()
            standby = processes[1 - active[0]]
            await _until(
                lambda: any(t > killed and status == 200 for t, status in api.polls),
                60,  # a liveness bound, not the target: make bench measures the takeover
                "the standby's first poll",
                detail=lambda: f"polls {api.polls[-5:]}; standby:\n{standby.log()[-4000:]}",
            )
            first = min(t for t, status in api.polls if t > killed and status == 200)
            assert first - killed <= 10
            api.add_update(_text_update(2, 42, "Hạn đại hội đảng bộ cấp xã?"))
            await _until(lambda: api.delivered_to("42"), 60, "the standby's answer")
            # No 409 storm: at most the dead process's last poll was ended by the new one.
            assert sum(1 for _, status in api.polls if status == 409) <= 1
        finally:
            for process in processes:
                await process.stop()


def _text_update(update_id: int, chat: int, text: str) -> dict[str, object]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": int(time.time()),
            "chat": {"id": chat, "type": "private"},
            "from": {"id": chat, "is_bot": False, "first_name": "Cán bộ"},
            "text": text,
        },
    }


async def _until(
    condition: object, seconds: float, what: str, detail: Callable[[], str] = lambda: ""
) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}. {detail()}"
        await asyncio.sleep(0.05)
