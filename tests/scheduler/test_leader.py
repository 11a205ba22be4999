"""Leader election: one process runs the sender and the scheduler. On PostgreSQL two
contenders share an advisory lock and the standby takes over when the leader's connection
dies or it stops; on SQLite the one process is always the leader."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.db import create_engine
from scheduler.leader import LeaderElection, lock_key


class Job:
    """A leader job that records when it ran and how it ended."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.started: list[float] = []
        self.ended: list[tuple[float, str]] = []
        self.running = asyncio.Event()

    async def __call__(self, stop: asyncio.Event) -> None:
        self.started.append(time.monotonic())
        self.running.set()
        try:
            await stop.wait()
            self.ended.append((time.monotonic(), "stopped"))
        except asyncio.CancelledError:
            self.ended.append((time.monotonic(), "cancelled"))
            raise
        finally:
            self.running.clear()


def election(engine: AsyncEngine) -> LeaderElection:
    return LeaderElection(
        engine, retry_interval=0.1, check_interval=0.1, check_timeout=1.0, takeover_delay=0.3
    )


async def wait_for(condition: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.fixture
async def pg_engines(postgres_database: str) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """Two processes' engines on the same PostgreSQL database."""
    first, second = create_engine(postgres_database), create_engine(postgres_database)
    yield first, second
    await first.dispose()
    await second.dispose()


async def test_sqlite_process_is_always_the_leader(sqlite_url: str) -> None:
    engine = create_engine(sqlite_url)
    try:
        leader = election(engine)
        job, stop = Job("only"), asyncio.Event()
        task = asyncio.create_task(leader.run(job, stop))
        await asyncio.wait_for(job.running.wait(), 2)
        assert leader.is_leader and not leader.uses_lock
        stop.set()
        await asyncio.wait_for(task, 5)
        assert [how for _, how in job.ended] == ["stopped"]
    finally:
        await engine.dispose()


async def test_standby_takes_over_when_the_leader_connection_dies(
    pg_engines: tuple[AsyncEngine, AsyncEngine], postgres_database: str
) -> None:
    engine_a, engine_b = pg_engines
    a, b = election(engine_a), election(engine_b)
    job_a, job_b = Job("a"), Job("b")
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    task_a = asyncio.create_task(a.run(job_a, stop_a))
    task_b: asyncio.Task[None] | None = None
    try:
        await asyncio.wait_for(job_a.running.wait(), 5)
        task_b = asyncio.create_task(b.run(job_b, stop_b))
        await asyncio.sleep(0.6)  # several of b's attempts
        assert a.is_leader and not b.is_leader and job_b.started == []

        # The leader's connection is cut (a crashed process, a network failure, a DBA).
        admin = create_engine(postgres_database)
        try:
            async with admin.connect() as connection:
                await connection.execute(
                    text("SELECT pg_terminate_backend(:pid)"), {"pid": a.backend_pid}
                )
        finally:
            await admin.dispose()
        await wait_for(lambda: job_b.started, timeout=5)
        assert [how for _, how in job_a.ended] == ["cancelled"]
        assert job_a.ended[0][0] <= job_b.started[0]  # never both at once
        assert b.is_leader and not a.is_leader

        # a is a standby now; when b stops gracefully, a takes over again.
        stop_b.set()
        await asyncio.wait_for(task_b, 5)
        assert [how for _, how in job_b.ended] == ["stopped"]
        await wait_for(lambda: len(job_a.started) == 2, timeout=5)
        assert a.is_leader
        stop_a.set()
        await asyncio.wait_for(task_a, 5)
        assert not a.is_leader and [how for _, how in job_a.ended] == ["cancelled", "stopped"]
    finally:  # leave no contender running, whatever happened
        stop_a.set()
        stop_b.set()
        await asyncio.wait_for(asyncio.gather(task_a, *([task_b] if task_b else [])), 10)


async def test_only_one_contender_holds_the_lock(
    pg_engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    engine_a, engine_b = pg_engines
    a, b = election(engine_a), election(engine_b)
    try:
        assert await a.try_acquire()
        assert await a.try_acquire()  # re-entrant for the holder
        assert not await b.try_acquire()
        assert await a.check()
        await a.release()
        assert await b.try_acquire()
        assert not await a.try_acquire()
    finally:
        await a.release()
        await b.release()
    assert lock_key("troly:scheduler") == lock_key("troly:scheduler") != lock_key("other")
