"""The push service run by the leader process: APScheduler (reminders, digests, broadcast
reports) and the outbox sender, started and stopped together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from bot.core import Transport, utcnow
from bot.settings import Settings
from bot.storage.db import SessionFactory
from scheduler.jobs import (
    JobsRuntime,
    build_scheduler,
    install_runtime,
    refresh_plan,
    stop_scheduler,
)
from scheduler.limits import ChannelLimits
from scheduler.schedule import LiveSchedule
from scheduler.sender import Sender

__all__ = ["channel_limits", "push_service"]

log = logging.getLogger(__name__)


def channel_limits(settings: Settings) -> dict[str, ChannelLimits]:
    return {
        "telegram": ChannelLimits(
            rate=settings.telegram_rate, per_chat_interval=settings.per_chat_interval
        ),
        "zalo": ChannelLimits(
            rate=settings.zalo_rate, per_chat_interval=settings.per_chat_interval
        ),
    }


def push_service(
    settings: Settings,
    sessions: SessionFactory,
    transports: Sequence[Transport],
    schedule: LiveSchedule,
) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
    """The job the elected leader runs until ``stop`` is set (or leadership is lost), with
    the reminder schedule in force when it is elected (``schedule``, reloaded then; a change
    later re-plans through :func:`scheduler.jobs.apply_policy`)."""

    async def run(stop: asyncio.Event) -> None:
        await schedule.reload(sessions)
        policy = schedule.policy
        scheduler = build_scheduler(settings.database_url, policy)
        install_runtime(JobsRuntime(sessions, policy, scheduler=scheduler))
        scheduler.start()
        try:
            report = await refresh_plan(scheduler, sessions, policy, utcnow())
            log.info("leader: scheduler started (%d reminder jobs)", report.planned)
            sender = Sender(sessions, transports, limits=channel_limits(settings))
            await sender.run(stop)
        finally:
            try:
                # from a thread: the scheduler's thread may be waiting for the write lock
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(stop_scheduler, scheduler)
            finally:
                install_runtime(None)
                log.info("leader: scheduler and sender stopped")

    return run
