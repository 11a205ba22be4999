"""APScheduler 3: reminder jobs in a persistent SQLAlchemy job store in the project database.

Jobs are module-level functions taking plain arguments (they are stored by reference and
must survive a restart); they reach the database through the runtime that :func:`start`
installs. ``misfire_grace_time`` is set deliberately (APScheduler's default of 1 s would
silently skip a reminder that fell due while the assistant was restarting), jobs coalesce,
and one scheduler runs per database (the leader, see :mod:`scheduler.leader`).

The job store is synchronous and shares the database with the chats. On SQLite a chat's
transaction holds the one write lock across awaits (dispatch commits once, at the end), so a
job store write issued on the event loop would wait for a lock that can only be released by
the loop it blocks: "database is locked" after the busy timeout. So the scheduler runs in its
own thread (:class:`~apscheduler.schedulers.background.BackgroundScheduler`) and only the jobs,
coroutines, run on the application's loop (:class:`LoopExecutor`); callers on the loop reach
the job store through a thread too (:func:`refresh_plan`, :func:`stop_scheduler`). The store's
engine has the application's settings (WAL, ``busy_timeout``; ``pool_pre_ping`` on
PostgreSQL), see :func:`job_store`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sys
from collections.abc import Callable, Collection, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from apscheduler.executors.base import BaseExecutor, run_coroutine_job, run_job
from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import STATE_RUNNING, BaseScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from apscheduler.util import iscoroutinefunction_partial
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from bot.core import utcnow
from bot.settings import WEEKDAYS
from bot.storage.db import SessionFactory, create_sync_engine, sync_url
from bot.storage.models import ReminderRun, Task
from scheduler.policy import PushPolicy

__all__ = [
    "MONITOR_EVERY_SECONDS",
    "JobsRuntime",
    "LoopExecutor",
    "PlanReport",
    "apply_policy",
    "build_scheduler",
    "digest_job",
    "install_runtime",
    "job_store",
    "plan_job",
    "plan_jobs",
    "refresh_plan",
    "reminder_job",
    "reminder_key",
    "stop_scheduler",
    "sync_url",
]

log = logging.getLogger(__name__)

REMINDER_PREFIX = "reminder:"
DIGEST_JOB = "digest:weekly"
MONITOR_JOB = "broadcasts:monitor"
PLAN_JOB = "reminders:plan"
PLAN_EVERY_MINUTES = 5
# The broadcast monitor (scheduler.broadcasts.report_progress): often enough that a broadcast
# to 1,000 people at Telegram's 25 pushes/s (40 s) gets its 25/50/75 % progress reports.
MONITOR_EVERY_SECONDS = 5


@dataclass
class JobsRuntime:
    sessions: SessionFactory
    policy: PushPolicy
    clock: Callable[[], datetime] = utcnow
    scheduler: BaseScheduler | None = None  # for the periodic re-planning
    # one re-planning at a time (the periodic one, one after a schedule change)
    planning: asyncio.Lock = field(default_factory=asyncio.Lock)


_runtime: JobsRuntime | None = None


def install_runtime(runtime: JobsRuntime | None) -> None:
    """What the stored jobs use when they fire (set by the process that runs them)."""
    global _runtime
    _runtime = runtime


def _require_runtime() -> JobsRuntime:
    if _runtime is None:
        raise RuntimeError("scheduler jobs fired before install_runtime()")
    return _runtime


# --------------------------------------------------------------------------- the jobs


def reminder_key(task_code: str, kind: str, number: int) -> str:
    """The job id of a reminder round, also its :class:`ReminderRun` key."""
    return f"{REMINDER_PREFIX}{task_code}:{kind}:{number}"


async def reminder_job(task_code: str, kind: str, number: int) -> None:
    """Fire one reminder round, once: the round's :class:`ReminderRun` row is written in
    the transaction that queues its pushes, so a second fire finds it (or, racing, fails on
    its primary key and rolls back) and sends nothing."""
    from scheduler.reminders import fire_reminder

    runtime = _require_runtime()
    key = reminder_key(task_code, kind, number)
    async with runtime.sessions() as session:
        if await session.get(ReminderRun, key) is not None:
            log.info("reminder %s already fired: skipped", key)
            return
        reminders, escalations = await fire_reminder(
            session,
            task_code=task_code,
            kind=kind,
            number=number,
            now=runtime.clock(),
            policy=runtime.policy,
        )
        session.add(
            ReminderRun(
                key=key, fired_at=runtime.clock(), reminders=reminders, escalations=escalations
            )
        )
        try:
            await session.commit()
        except IntegrityError:
            log.info("reminder %s fired concurrently elsewhere: skipped", key)


async def digest_job() -> None:
    from scheduler.reminders import weekly_digest

    runtime = _require_runtime()
    async with runtime.sessions() as session:
        await weekly_digest(session, now=runtime.clock(), policy=runtime.policy)
        await session.commit()


async def plan_job() -> None:
    """Re-plan from the tasks table (tasks are added, re-dated or retired while running)."""
    runtime = _require_runtime()
    if runtime.scheduler is not None:
        async with runtime.planning:
            await refresh_plan(runtime.scheduler, runtime.sessions, runtime.policy, runtime.clock())


async def apply_policy(policy: PushPolicy) -> bool:
    """From now on the jobs of this process use ``policy``, and the reminder plan is redone
    at once (the reminder schedule was changed: ``scheduler.schedule``). False when this
    process runs no scheduler (it is not the leader): nothing to do."""
    runtime = _runtime
    if runtime is None:
        return False
    runtime.policy = policy
    if runtime.scheduler is not None:
        async with runtime.planning:
            await refresh_plan(runtime.scheduler, runtime.sessions, policy, runtime.clock())
    return True


async def broadcast_monitor_job() -> None:
    from scheduler.broadcasts import report_progress

    runtime = _require_runtime()
    async with runtime.sessions() as session:
        await report_progress(session, now=runtime.clock(), policy=runtime.policy)
        await session.commit()


# --------------------------------------------------------------------------- set-up


class LoopExecutor(BaseExecutor):  # type: ignore[misc]
    """Runs the jobs on the application's event loop (coroutines as tasks, plain functions in
    its default thread pool) for a scheduler that runs in its own thread.

    ``loop``: the loop to use; by default the one running when the scheduler starts."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__()
        self._loop = loop
        self._futures: set[concurrent.futures.Future[Any]] = set()

    def start(self, scheduler: BaseScheduler, alias: str) -> None:
        super().start(scheduler, alias)
        if self._loop is None:
            self._loop = asyncio.get_running_loop()

    def shutdown(self, wait: bool = True) -> None:
        for future in list(self._futures):
            future.cancel()
        self._futures.clear()

    def _do_submit_job(self, job: Job, run_times: list[datetime]) -> None:
        assert self._loop is not None, "the executor has not been started"
        logger = self._logger.name
        coroutine: Coroutine[Any, Any, Any]
        if iscoroutinefunction_partial(job.func):
            coroutine = run_coroutine_job(job, job._jobstore_alias, run_times, logger)
        else:
            coroutine = asyncio.to_thread(run_job, job, job._jobstore_alias, run_times, logger)
        try:
            future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        except RuntimeError:  # the loop is closed
            coroutine.close()
            raise

        def done(future: concurrent.futures.Future[Any]) -> None:
            self._futures.discard(future)
            if future.cancelled():
                self._run_job_success(job.id, [])
                return
            try:
                events = future.result()
            except BaseException:
                self._run_job_error(job.id, *sys.exc_info()[1:])
            else:
                self._run_job_success(job.id, events)

        self._futures.add(future)
        future.add_done_callback(done)


class _Scheduler(BackgroundScheduler):  # type: ignore[misc]
    def _process_jobs(self) -> float | None:
        # BackgroundScheduler's thread may wake once more after shutdown() marked it stopped
        # (a wakeup from just before): it must not run jobs then.
        if self.state != STATE_RUNNING:
            return None
        result: float | None = super()._process_jobs()
        return result


def job_store(database_url: str) -> SQLAlchemyJobStore:
    """The job store: the project database through a sync engine with the application's
    settings (SQLite: WAL, ``busy_timeout`` 30 s; PostgreSQL: ``pool_pre_ping``)."""
    return SQLAlchemyJobStore(engine=create_sync_engine(database_url))


def build_scheduler(
    database_url: str, policy: PushPolicy, *, loop: asyncio.AbstractEventLoop | None = None
) -> BackgroundScheduler:
    """The scheduler (its own thread, see the module's notes). Start it on the loop that is to
    run the jobs, or pass that ``loop``; ``start()`` only reads the job store, but anything
    that writes to it (adding, removing jobs, shutting down) goes through a thread when called
    from the loop."""
    return _Scheduler(
        jobstores={"default": job_store(database_url)},
        executors={"default": LoopExecutor(loop)},
        job_defaults={
            "misfire_grace_time": int(policy.grace.total_seconds()) or 1,
            "coalesce": True,
            "max_instances": 1,
        },
        timezone=policy.zone,
    )


def stop_scheduler(scheduler: BaseScheduler) -> None:
    """Shut the scheduler down (blocking: from the loop, ``await asyncio.to_thread(...)``)."""
    if scheduler.running:
        scheduler.shutdown(wait=False)


@dataclass(frozen=True, slots=True)
class PlanReport:
    planned: int
    removed: int


def plan_jobs(
    scheduler: BaseScheduler,
    tasks: Iterable[Task],
    policy: PushPolicy,
    now: datetime,
    fired: Collection[str] = (),
) -> PlanReport:
    """Make the stored jobs match the tasks (idempotent; safe on every start and re-run
    periodically). Blocking (job store queries): from the loop, use :func:`refresh_plan`.

    Each active task gets date jobs at its reminder times that fall within the grace window
    or later, except the rounds in ``fired`` (already sent); jobs of removed or re-dated
    tasks are deleted. Unchanged jobs are left alone.
    """
    wanted: dict[str, tuple[datetime, list[object]]] = {}
    for task in tasks:
        if not task.active:
            continue
        for fire in policy.fire_times(task.due):
            job_id = reminder_key(task.code, fire.kind, fire.number)
            if job_id not in fired and policy.worth_planning(fire, now):
                wanted[job_id] = (fire.at, [task.code, fire.kind, fire.number])
    removed = 0
    current: dict[str, Job] = {}
    for job in scheduler.get_jobs():
        if not job.id.startswith(REMINDER_PREFIX):
            continue
        if job.id in wanted:
            current[job.id] = job
        else:
            job.remove()
            removed += 1
    for job_id, (run_at, args) in wanted.items():
        job = current.get(job_id)
        if job is not None and getattr(job, "next_run_time", None) == run_at:
            continue
        scheduler.add_job(
            "scheduler.jobs:reminder_job",
            trigger="date",
            run_date=run_at,
            args=args,
            id=job_id,
            name=job_id,
            replace_existing=True,
        )
    if policy.digest_weekday is not None:
        scheduler.add_job(
            "scheduler.jobs:digest_job",
            trigger=CronTrigger(
                day_of_week=WEEKDAYS[policy.digest_weekday],
                hour=policy.digest_at.hour,
                minute=policy.digest_at.minute,
                timezone=policy.zone,
            ),
            id=DIGEST_JOB,
            name=DIGEST_JOB,
            replace_existing=True,
        )
    elif scheduler.get_job(DIGEST_JOB) is not None:
        scheduler.remove_job(DIGEST_JOB)
    scheduler.add_job(
        "scheduler.jobs:broadcast_monitor_job",
        trigger=IntervalTrigger(seconds=MONITOR_EVERY_SECONDS, timezone=policy.zone),
        id=MONITOR_JOB,
        name=MONITOR_JOB,
        replace_existing=True,
        misfire_grace_time=MONITOR_EVERY_SECONDS,
    )
    if scheduler.get_job(PLAN_JOB) is None:
        scheduler.add_job(
            "scheduler.jobs:plan_job",
            trigger=IntervalTrigger(minutes=PLAN_EVERY_MINUTES, timezone=policy.zone),
            id=PLAN_JOB,
            name=PLAN_JOB,
            misfire_grace_time=60,
        )
    log.debug("reminder plan: %d dated jobs, %d obsolete removed", len(wanted), removed)
    return PlanReport(planned=len(wanted), removed=removed)


async def refresh_plan(
    scheduler: BaseScheduler, sessions: SessionFactory, policy: PushPolicy, now: datetime
) -> PlanReport:
    """Re-plan from the tasks table; the job store is written from a thread, so waiting for
    a chat's write lock never stalls the loop."""
    async with sessions() as session:
        tasks = list((await session.exec(select(Task).where(col(Task.active)))).all())
        horizon = now - policy.grace - timedelta(days=1)
        fired = set(
            (
                await session.exec(
                    select(ReminderRun.key).where(col(ReminderRun.fired_at) >= horizon)
                )
            ).all()
        )
    return await asyncio.to_thread(plan_jobs, scheduler, tasks, policy, now, fired)
