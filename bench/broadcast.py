"""Broadcast delivery: a 20,000-recipient broadcast through the real sender, TelegramTransport
and aiogram client against the local fake Bot API server (run in another process), with the
rate limit raised to 1,000/s (distinct chats: the 1/s per-chat limit does not bind), on
SQLite in a temporary file. Two runs:

1. as specified: 2 % of requests answered 429 (retry_after 1) and 2 % answered 500. Every
   429 pauses the whole channel for its retry_after, as it must, so about 400 pauses of 1 s
   make up most of the wall-clock time (~6 minutes); the rate is measured while the
   broadcast had a backlog (first request to the last recipient's first attempt) minus the
   sender's pauses (its own log, same monotonic clock as the server's timestamps);
2. sustained sending, 2 % of requests answered 500 only: the limiter's achieved rate
   against the limit (target >= 95 %) and the sender's overhead per request.

Like ``troly run``, the sender runs on uvloop (:func:`bot.runner.run_event_loop`).

Lost (recipients never answered 200) and duplicated (extra 200s to one recipient) come from
the server's log. Overhead: CPU time of this process during the run (the sender, the
aiogram/aiohttp client, SQLAlchemy, aiosqlite's thread; the fake server is another process
and not counted) divided by the requests made; the Telegram client's share is measured alone
(same transport, same server, same concurrency, no sender and no database).

``BENCH_BROADCAST_RECIPIENTS`` overrides the size for a quick run.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.runner import freeze_startup_heap, run_event_loop
from bot.storage.db import create_engine, make_session_factory, upgrade_database
from bot.storage.models import Broadcast
from scheduler.limits import ChannelLimits, RetryPolicy
from scheduler.outbox import Recipient, broadcast_status, enqueue_broadcast
from scheduler.sender import Sender
from scheduler.transports import TelegramTransport

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "123456789:AAFakeTokenForTheFakeBotApiServer_x"  # the fake server's default
RECIPIENTS = int(os.environ.get("BENCH_BROADCAST_RECIPIENTS", "20000"))
RATE = 1000.0
P429 = 0.02
P500 = 0.02
RETRY_AFTER = 1
MAX_IN_FLIGHT = 64  # at 1,000/s: 64 ms of sending (the kill -9 duplicate bound scales with it)
RETRY = RetryPolicy(max_attempts=8, base_delay=1.0, max_delay=30.0)
CLIENT_SAMPLE = 3000


def _start_server(p429: float) -> tuple[subprocess.Popen[str], str]:
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.botapi_server",
            "--p429",
            str(p429),
            "--p500",
            str(P500),
            "--retry-after",
            str(RETRY_AFTER),
            "--seed",
            "1",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    line = server.stdout.readline().split()
    if len(line) != 2 or line[0] != "READY":
        server.kill()
        raise RuntimeError("the fake Bot API server did not start")
    return server, line[1]


def _server_log(url: str) -> list[tuple[float, str, int]]:
    with urllib.request.urlopen(f"{url}/_log", timeout=30) as response:
        return [(t, chat, status) for t, chat, status in json.load(response)]


def _union_within(intervals: list[tuple[float, float]], start: float, end: float) -> float:
    total, cursor = 0.0, start
    for low, high in sorted(intervals):
        low, high = max(low, cursor), min(high, end)
        if high > low:
            total += high - low
            cursor = high
    return total


async def _client_cost(url: str) -> float:
    """CPU seconds per request of TelegramTransport alone (same concurrency as the sender)."""
    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(url)))
    transport = TelegramTransport(bot)
    gate = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def one(i: int) -> None:
        async with gate:
            try:
                await transport.deliver(str(900_000_000 + i), "Thông báo", [])
            except Exception:  # the injected 429/500 answers cost the same
                return

    try:
        await asyncio.gather(*(one(i) for i in range(200)))  # warm-up
        start = time.process_time()
        await asyncio.gather(*(one(i) for i in range(200, 200 + CLIENT_SAMPLE)))
        return (time.process_time() - start) / CLIENT_SAMPLE
    finally:
        await bot.session.close()


async def _broadcast(url: str, db: str) -> dict[str, float]:
    """One broadcast to RECIPIENTS chats through the sender; the figures of the run."""
    engine = create_engine(db)
    await upgrade_database(engine)
    sessions = make_session_factory(engine)
    chats = [str(1_000_000 + i) for i in range(RECIPIENTS)]
    start = time.perf_counter()
    async with sessions() as session:
        broadcast = Broadcast(text="Thông báo: hội nghị lúc 8 giờ", audience="all", created_by="b")
        session.add(broadcast)
        await session.flush()
        await enqueue_broadcast(session, broadcast, [Recipient("telegram", c) for c in chats])
        await session.commit()
        broadcast_id = broadcast.id
    assert broadcast_id is not None
    enqueue_s = time.perf_counter() - start

    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(url)))
    limits = ChannelLimits(rate=RATE, per_chat_interval=1.0, max_in_flight=MAX_IN_FLIGHT)
    sender = Sender(sessions, [TelegramTransport(bot)], limits={"telegram": limits}, retry=RETRY)
    freeze_startup_heap()  # as `troly run` does once started
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        await sender.run(until_idle=True)
    finally:
        await bot.session.close()
        gc.unfreeze()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    async with sessions() as session:
        status = await broadcast_status(session, broadcast_id)
    await engine.dispose()
    assert status is not None

    log = _server_log(url)
    times = sorted(t for t, _, _ in log)
    first_attempt: dict[str, float] = {}
    for t, chat, _ in sorted(log):
        first_attempt.setdefault(chat, t)
    backlog_end = max(first_attempt.values())
    pauses = [(low, high) for _, low, high in sender.stats.pause_log]
    paused = _union_within(pauses, times[0], backlog_end)
    in_backlog = sum(times[0] <= t <= backlog_end for t in times)
    delivered = Counter(chat for _, chat, code in log if code == 200)
    codes = Counter(code for _, _, code in log)
    return {
        "enqueue_s": enqueue_s,
        "requests": len(log),
        "ok": codes[200],
        "429": codes[429],
        "500": codes[500],
        "pauses": sender.stats.pauses,
        "paused_s": sender.stats.paused_seconds,
        "wall_s": wall,
        "rate": in_backlog / (backlog_end - times[0] - paused),
        "lost": sum(1 for chat in chats if delivered[chat] == 0),
        "duplicated": sum(n - 1 for n in delivered.values() if n > 1),
        "cpu_per_request": cpu / max(1, sender.stats.requests),
        "sent": status.sent,
        "failed": status.failed,
        "remaining": status.remaining,
        "done": float(status.status == "done"),
    }


def _run(p429: float, *, client: bool) -> tuple[dict[str, float], float]:
    server, url = _start_server(p429)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            figures = run_event_loop(_broadcast(url, f"sqlite+aiosqlite:///{Path(tmp) / 'b.db'}"))
        client_cost = run_event_loop(_client_cost(url)) if client else 0.0
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    return figures, client_cost


def _outcome(f: dict[str, float]) -> str:
    return (
        f"requests {f['requests']:.0f} (200: {f['ok']:.0f}, 429: {f['429']:.0f}, 500: "
        f"{f['500']:.0f}); lost {f['lost']:.0f}, duplicated {f['duplicated']:.0f}; database: "
        f"{'done' if f['done'] else 'NOT done'}, sent {f['sent']:.0f}, failed {f['failed']:.0f}, "
        f"pending {f['remaining']:.0f}"
    )


def main() -> None:
    # Hundreds of "rate limited: pausing" warnings are the point of the exercise: not printed.
    logging.getLogger("scheduler").setLevel(logging.ERROR)
    print(
        f"{RECIPIENTS} recipients, limit {RATE:.0f}/s (1/s per chat), {MAX_IN_FLIGHT} in "
        f"flight, SQLite (temporary file)"
    )
    faults, _ = _run(P429, client=False)
    print(
        f"  {P429:.0%} 429 (retry_after {RETRY_AFTER} s) and {P500:.0%} 500 injected: "
        f"enqueued in {faults['enqueue_s']:.2f} s"
    )
    print(f"    {_outcome(faults)}")
    print(
        f"    channel paused {faults['pauses']:.0f} times, {faults['paused_s']:.0f} s in all; "
        f"wall clock {faults['wall_s']:.0f} s"
    )
    print(
        f"    rate with a backlog, pauses excluded: {faults['rate']:.0f}/s = "
        f"{faults['rate'] / RATE:.1%} of the limit"
    )
    steady, client = _run(0.0, client=True)
    print(f"  {P500:.0%} 500 injected, sustained sending:")
    print(f"    {_outcome(steady)}")
    print(
        f"    achieved rate: {steady['rate']:.0f}/s = {steady['rate'] / RATE:.1%} of the limit "
        f"(target >= 95%); wall clock {steady['wall_s']:.1f} s"
    )
    cost, rest = steady["cpu_per_request"] * 1e6, (steady["cpu_per_request"] - client) * 1e6
    print(
        f"    sender overhead: {cost:.0f} us CPU per request (this process; the fake server "
        f"runs in another), of which the Telegram client (aiogram + aiohttp, measured alone) "
        f"{client * 1e6:.0f} us, the sender, SQLAlchemy and SQLite {rest:.0f} us"
    )
