"""kill -9 in the middle of a broadcast: a sender process is killed with SIGKILL after a few
hundred of 2,000 messages, a new one is started on the same database, and the fake server's
log shows every recipient, with duplicates only within the documented in-flight bound
(``max_in_flight``: requests started whose outcome was not committed)."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

from bot.storage.db import create_engine, make_session_factory
from scheduler.outbox import broadcast_status
from tests.fakes.botapi_server import FakeBotAPI
from tests.scheduler.conftest import count_status, make_broadcast

ROOT = Path(__file__).resolve().parents[2]
RECIPIENTS = 2000
MAX_IN_FLIGHT = 8


async def spawn_sender(db_url: str, api_url: str, *extra: str) -> asyncio.subprocess.Process:
    """A sender process, imported and waiting for :func:`go`."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.scheduler.sender_child",
        db_url,
        api_url,
        "--rate",
        "1000",
        "--max-in-flight",
        str(MAX_IN_FLIGHT),
        *extra,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )


async def ready(process: asyncio.subprocess.Process) -> None:
    assert process.stdout is not None
    assert (await asyncio.wait_for(process.stdout.readline(), 60)).strip() == b"READY"


def go(process: asyncio.subprocess.Process) -> None:
    assert process.stdin is not None
    process.stdin.write(b"go\n")


async def test_kill_9_mid_broadcast_loses_nothing(db_url: str) -> None:
    engine = create_engine(db_url)
    sessions = make_session_factory(engine)
    chats = [str(100_000 + i) for i in range(RECIPIENTS)]
    try:
        broadcast_id = await make_broadcast(sessions, chats)
        # a little latency keeps requests on the wire when the kill comes
        async with FakeBotAPI(latency=0.002, record_text=False) as api:
            # Both processes are started now (importing aiogram takes seconds); the second
            # one only begins sending after the first was killed.
            first = await spawn_sender(db_url, api.url)
            second = await spawn_sender(db_url, api.url, "--until-idle")
            await asyncio.gather(ready(first), ready(second))
            go(first)
            deadline = time.monotonic() + 30
            while len(api.delivered()) < 300:
                assert time.monotonic() < deadline, "the first sender made no progress"
                assert first.returncode is None
                await asyncio.sleep(0.002)
            first.send_signal(signal.SIGKILL)
            assert await first.wait() == -signal.SIGKILL
            at_kill = len(api.delivered())
            assert at_kill < RECIPIENTS // 2  # killed mid-broadcast
            left = await count_status(sessions)
            # Claimed rows: under 1.5 batches (a batch is half a second of sending, 500 rows
            # at 1,000/s) plus those in flight. The next sender sends them all again, but of
            # these only the in-flight ones had gone out: those are the possible duplicates.
            assert left.get("sending", 0) < 750 + MAX_IN_FLIGHT

            go(second)
            assert await asyncio.wait_for(second.wait(), 60) == 0

        counts = api.delivery_counts()
        assert set(counts) == set(chats)  # nobody lost
        duplicates = sum(n - 1 for n in counts.values())
        assert duplicates <= MAX_IN_FLIGHT
        assert await count_status(sessions) == {"sent": RECIPIENTS}
        async with sessions() as session:
            status = await broadcast_status(session, broadcast_id)
        assert status is not None and (status.status, status.delivered) == ("done", RECIPIENTS)
    finally:
        await engine.dispose()
