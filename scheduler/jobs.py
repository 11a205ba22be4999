"""APScheduler 3: reminder jobs in a persistent SQLAlchemy job store in the project database.

Jobs are module-level functions taking plain arguments (they are stored by reference and
must survive a restart); they reach the database through the runtime that :func:`start`
installs. ``misfire_grace_time`` is set deliberately (APScheduler's default of 1 s would
silently skip a reminder that fell due while the assistant was restarting), jobs coalesce,
and one scheduler runs per database (the leader, see :mod:`scheduler.leader`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from apscheduler.job import Job
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from bot.core import utcnow
from bot.storage.db import SessionFactory
from bot.storage.models import ReminderRun, Task
from scheduler.policy import PushPolicy

__all__ = [
    "JobsRuntime",
    "PlanReport",
    "build_scheduler",
    "digest_job",
    "install_runtime",
    "plan_job",
    "plan_jobs",
    "refresh_plan",
    "reminder_job",
    "reminder_key",
    "sync_url",
]

log = logging.getLogger(__name__)

REMINDER_PREFIX = "reminder:"
DIGEST_JOB = "digest:weekly"
MONITOR_JOB = "broadcasts:monitor"
PLAN_JOB = "reminders:plan"
PLAN_EVERY_MINUTES = 5
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass
class JobsRuntime:
    sessions: SessionFactory
    policy: PushPolicy
    clock: Callable[[], datetime] = utcnow
    scheduler: AsyncIOScheduler | None = None  # for the periodic re-planning


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
        await refresh_plan(runtime.scheduler, runtime.sessions, runtime.policy, runtime.clock())


async def broadcast_monitor_job() -> None:
    from scheduler.broadcasts import report_progress

    runtime = _require_runtime()
    async with runtime.sessions() as session:
        await report_progress(session, now=runtime.clock(), policy=runtime.policy)
        await session.commit()


# --------------------------------------------------------------------------- set-up


def sync_url(database_url: str) -> str:
    """The job store is synchronous: the same database through a sync driver."""
    url = make_url(database_url)
    driver = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg"}[url.get_backend_name()]
    return url.set(drivername=driver).render_as_string(hide_password=False)


def build_scheduler(database_url: str, policy: PushPolicy) -> AsyncIOScheduler:
    return AsyncIOScheduler(
        jobstores={"default": SQLAlchemyJobStore(url=sync_url(database_url))},
        job_defaults={
            "misfire_grace_time": int(policy.grace.total_seconds()) or 1,
            "coalesce": True,
            "max_instances": 1,
        },
        timezone=policy.zone,
    )


@dataclass(frozen=True, slots=True)
class PlanReport:
    planned: int
    removed: int


def plan_jobs(
    scheduler: AsyncIOScheduler,
    tasks: Iterable[Task],
    policy: PushPolicy,
    now: datetime,
    fired: Collection[str] = (),
) -> PlanReport:
    """Make the stored jobs match the tasks (idempotent; safe on every start and re-run
    periodically).

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
                day_of_week=_WEEKDAYS[policy.digest_weekday],
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
        trigger=IntervalTrigger(seconds=30, timezone=policy.zone),
        id=MONITOR_JOB,
        name=MONITOR_JOB,
        replace_existing=True,
        misfire_grace_time=30,
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
    scheduler: AsyncIOScheduler, sessions: SessionFactory, policy: PushPolicy, now: datetime
) -> PlanReport:
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
    return plan_jobs(scheduler, tasks, policy, now, fired)
