"""Leader election: only one process runs the scheduler and the sender.

PostgreSQL: the leader holds a session-level advisory lock on a dedicated connection (in
autocommit, so no transaction stays open). It checks that connection every
``check_interval``; if the check fails or times out, leadership is lost: the job is cancelled
and the process becomes a standby again. Standbys try the lock every ``retry_interval``.
A new leader waits ``takeover_delay`` (default ``check_interval + check_timeout``) before
starting the job, so a previous leader whose connection was cut has noticed and stopped; a
process that lost or gave up leadership waits ``2 * retry_interval`` before contending again.

SQLite: there is one process; it is always the leader.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.core import wait_event
from bot.metrics import METRICS

__all__ = ["LOCK_NAME", "LeaderElection", "lock_key"]

log = logging.getLogger(__name__)

LOCK_NAME = "troly:scheduler"

Job = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class LeaderElection:
    """Run a job only while this process is the leader.

    ``await election.run(job, stop)``: ``job(job_stop)`` runs while leader; ``job_stop`` is
    set for a graceful stop (``stop`` was set), and the job's task is cancelled when
    leadership is lost. A job that returns or fails gives leadership up (another process may
    take over) and is started again on re-election.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        name: str = LOCK_NAME,
        retry_interval: float = 5.0,
        check_interval: float = 2.0,
        check_timeout: float = 3.0,
        takeover_delay: float | None = None,
        stop_timeout: float = 90.0,
    ) -> None:
        self.engine = engine
        self.name = name
        self.key = lock_key(name)
        self.retry_interval = retry_interval
        self.check_interval = check_interval
        self.check_timeout = check_timeout
        self.takeover_delay = (
            check_interval + check_timeout if takeover_delay is None else takeover_delay
        )
        self.stop_timeout = stop_timeout
        self._is_leader = False
        self.is_leader = False
        self.backend_pid: int | None = None
        self._connection: AsyncConnection | None = None

    @property
    def is_leader(self) -> bool:
        return self._is_leader

    @is_leader.setter
    def is_leader(self, value: bool) -> None:
        """Also the ``troly_leader{lock=...}`` gauge (the lock's name: never a token)."""
        self._is_leader = value
        METRICS.leader.labels(self.name).set(1 if value else 0)

    @property
    def uses_lock(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    # ------------------------------------------------------------------ primitives

    async def try_acquire(self) -> bool:
        """Try once; True when this process is (now) the leader."""
        if self.is_leader:
            return True
        if not self.uses_lock:
            self.is_leader = True
            return True
        connection = await self.engine.connect()
        try:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            got = (
                await connection.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
                )
            ).scalar()
            if not got:
                await connection.close()
                return False
            self.backend_pid = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar()
        except BaseException:
            await self._discard(connection)
            raise
        self._connection = connection
        self.is_leader = True
        log.info("leader: holding lock %r (backend %s)", self.name, self.backend_pid)
        return True

    async def check(self) -> bool:
        """Whether leadership still holds (the lock's connection answers in time)."""
        if not self.is_leader:
            return False
        if not self.uses_lock:
            return True
        connection = self._connection
        assert connection is not None
        try:
            async with asyncio.timeout(self.check_timeout):
                await connection.execute(text("SELECT 1"))
            return True
        except Exception as exc:
            log.warning("leader: lost the lock's connection (%s)", type(exc).__name__)
            await self._lost()
            return False

    async def release(self) -> None:
        """Give leadership up (the lock is released, the connection closed)."""
        connection, self._connection = self._connection, None
        was_leader, self.is_leader = self.is_leader, False
        if connection is None:
            return
        try:
            async with asyncio.timeout(self.check_timeout):
                await connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": self.key})
            await connection.close()
        except Exception:
            await self._discard(connection)
        if was_leader:
            log.info("leader: released lock %r", self.name)

    async def _lost(self) -> None:
        connection, self._connection = self._connection, None
        self.is_leader = False
        if connection is not None:
            await self._discard(connection)

    @staticmethod
    async def _discard(connection: AsyncConnection) -> None:
        """Close a connection that may be broken without returning it to the pool."""
        with contextlib.suppress(Exception):
            await connection.invalidate()
        with contextlib.suppress(Exception):
            await connection.close()

    # ------------------------------------------------------------------ the loop

    async def run(self, job: Job, stop: asyncio.Event) -> None:
        """Stand by, lead when elected, until ``stop`` is set."""
        try:
            while not stop.is_set():
                try:
                    elected = await self.try_acquire()
                except Exception as exc:
                    log.warning("leader: could not try the lock (%s)", type(exc).__name__)
                    elected = False
                if not elected:
                    await _wait(stop, self.retry_interval)
                    continue
                if self.uses_lock and self.takeover_delay > 0:
                    await _wait(stop, self.takeover_delay)
                    if stop.is_set() or not await self.check():
                        continue
                ended_by_itself = await self._lead(job, stop)
                if ended_by_itself:
                    await self.release()
                if not stop.is_set():
                    # Leadership lost or given up: let the standbys (trying every
                    # retry_interval) have the lock before contending again.
                    await _wait(stop, 2 * self.retry_interval)
        finally:
            await self.release()

    async def _lead(self, job: Job, stop: asyncio.Event) -> bool:
        """Run the job while leading; True when it ended by itself."""
        job_stop = asyncio.Event()
        task = asyncio.create_task(job(job_stop), name=f"leader-job:{self.name}")
        try:
            while True:
                if await _wait_task(task, stop, self.check_interval):
                    break
                if stop.is_set():
                    job_stop.set()
                    await asyncio.wait({task}, timeout=self.stop_timeout)
                    if task.done() and not task.cancelled() and task.exception() is not None:
                        log.error("leader: job %r failed", self.name, exc_info=task.exception())
                    return False
                if not await self.check():
                    log.warning("leader: leadership lost, stopping %r", self.name)
                    return False
            if task.cancelled():
                log.warning("leader: job %r was cancelled", self.name)
            elif task.exception() is not None:
                log.error("leader: job %r failed", self.name, exc_info=task.exception())
            else:
                log.info("leader: job %r ended", self.name)
            return True
        finally:
            if not task.done():
                task.cancel()
                await asyncio.wait({task})


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    await wait_event(stop, seconds)


async def _wait_task(task: asyncio.Task[None], stop: asyncio.Event, seconds: float) -> bool:
    """Wait for ``task`` to end, ``stop`` or ``seconds``; True when the task ended."""
    stopper = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({task, stopper}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stopper
    return task.done()
