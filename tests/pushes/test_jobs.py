"""APScheduler with the persistent job store: planning from tasks, restarts, misfires."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.storage.db import make_session_factory
from bot.storage.models import OutboxMessage, ReminderRun, Task
from scheduler.jobs import (
    JobsRuntime,
    build_scheduler,
    install_runtime,
    plan_jobs,
    refresh_plan,
    reminder_job,
)
from scheduler.policy import PushPolicy
from tests.progress.conftest import Enrol

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
POLICY = PushPolicy(zone=ZONE)


def database_url(engine: AsyncEngine) -> str:
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture
async def scheduler_factory(tree: AsyncEngine) -> AsyncIterator[list[BaseScheduler]]:
    started: list[BaseScheduler] = []
    yield started
    for scheduler in started:
        if scheduler.running:
            scheduler.shutdown(wait=False)
    install_runtime(None)


def new_scheduler(engine: AsyncEngine, started: list[BaseScheduler]) -> BaseScheduler:
    scheduler = build_scheduler(database_url(engine), POLICY)
    started.append(scheduler)
    return scheduler


async def tasks(engine: AsyncEngine) -> list[Task]:
    async with make_session_factory(engine)() as session:
        return list((await session.exec(select(Task))).all())


async def test_planning_is_persistent_idempotent_and_skips_old_deadlines(
    tree: AsyncEngine, scheduler_factory: list[BaseScheduler]
) -> None:
    now = datetime(2025, 8, 20, 3, tzinfo=UTC)
    first = new_scheduler(tree, scheduler_factory)
    first.start(paused=True)
    report = plan_jobs(first, await tasks(tree), POLICY, now)
    ids = {job.id for job in first.get_jobs()}
    assert "reminder:dai-hoi-thang-8:before:7" in ids
    assert "reminder:dai-hoi-truc-thuoc-tw-thang-10:overdue:3" in ids
    assert "digest:weekly" in ids and "broadcasts:monitor" in ids
    job = first.get_job("reminder:dai-hoi-thang-8:before:3")
    assert job is not None
    assert job.next_run_time == datetime(2025, 8, 28, 8, tzinfo=ZONE)
    assert job.misfire_grace_time == 12 * 3600  # set deliberately, not APScheduler's 1 s
    assert job.coalesce
    first.shutdown(wait=False)

    again = new_scheduler(tree, scheduler_factory)  # a restart: the jobs are in the database
    again.start(paused=True)
    assert {job.id for job in again.get_jobs()} == ids
    assert plan_jobs(again, await tasks(tree), POLICY, now).planned == report.planned
    assert {job.id for job in again.get_jobs()} == ids  # planning twice changes nothing

    # A fresh install long after every deadline: no reminder at all (no burst).
    late = plan_jobs(again, await tasks(tree), POLICY, datetime(2026, 11, 23, tzinfo=UTC))
    assert late.planned == 0
    assert not [j for j in again.get_jobs() if j.id.startswith("reminder:")]


async def test_a_removed_task_loses_its_jobs(
    tree: AsyncEngine, scheduler_factory: list[BaseScheduler]
) -> None:
    scheduler = new_scheduler(tree, scheduler_factory)
    scheduler.start(paused=True)
    now = datetime(2025, 8, 20, 3, tzinfo=UTC)
    all_tasks = await tasks(tree)
    plan_jobs(scheduler, all_tasks, POLICY, now)
    remaining = [t for t in all_tasks if t.code != "dai-hoi-thang-8"]
    report = plan_jobs(scheduler, remaining, POLICY, now)
    assert report.removed == 7
    assert not [j for j in scheduler.get_jobs() if "dai-hoi-thang-8" in j.id]


async def test_misfired_reminders_run_on_start_within_the_grace_window(
    tree: AsyncEngine, enrol: Enrol, scheduler_factory: list[BaseScheduler]
) -> None:
    await enrol("HN.SS", "official", user_id="ss", channel="telegram", buttons=True)
    # Due dates relative to the real clock: APScheduler judges misfires by it.
    real_now = datetime.now(UTC)
    async with make_session_factory(tree)() as session:
        task = (await session.exec(select(Task).where(Task.code == "dai-hoi-thang-8"))).one()
        task.due = real_now.astimezone(ZONE).date() + timedelta(days=5)
        session.add(task)
        await session.commit()

    down = new_scheduler(tree, scheduler_factory)  # the jobs were planned, then the bot died
    down.start(paused=True)
    for job_id, args, ago in (
        ("reminder:dai-hoi-thang-8:before:3", ["dai-hoi-thang-8", "before", 3], 1),
        ("reminder:dai-hoi-thang-8:before:7", ["dai-hoi-thang-8", "before", 7], 13),
    ):
        down.add_job(
            "scheduler.jobs:reminder_job",
            trigger="date",
            run_date=real_now - timedelta(hours=ago),
            args=args,
            id=job_id,
            replace_existing=True,
        )
    down.shutdown(wait=False)

    install_runtime(JobsRuntime(make_session_factory(tree), POLICY, clock=lambda: real_now))
    up = new_scheduler(tree, scheduler_factory)
    up.start()
    keys: list[str] = []
    for _ in range(100):
        async with make_session_factory(tree)() as session:
            keys = list(
                (
                    await session.exec(
                        select(OutboxMessage.idempotency_key).order_by(col(OutboxMessage.id))
                    )
                ).all()
            )
        if keys:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    async with make_session_factory(tree)() as session:
        keys = list((await session.exec(select(OutboxMessage.idempotency_key))).all())
    assert keys == ["reminder:dai-hoi-thang-8:before:3:telegram:ss"]  # 1 h late: sent
    assert up.get_job("reminder:dai-hoi-thang-8:before:7") is None  # 13 h late: skipped


async def test_a_round_fires_once_and_is_not_planned_again(
    tree: AsyncEngine, enrol: Enrol, scheduler_factory: list[BaseScheduler]
) -> None:
    await enrol("HN.SS", "official", user_id="once", channel="telegram", buttons=True)
    now = datetime(2025, 8, 28, 1, 5, tzinfo=UTC)  # 08:05 local, three days before 31/8
    sessions = make_session_factory(tree)
    install_runtime(JobsRuntime(sessions, POLICY, clock=lambda: now))
    await reminder_job("dai-hoi-thang-8", "before", 3)
    await reminder_job("dai-hoi-thang-8", "before", 3)  # a second scheduler, a re-plan
    async with sessions() as session:
        keys = list((await session.exec(select(OutboxMessage.idempotency_key))).all())
        run = await session.get(ReminderRun, "reminder:dai-hoi-thang-8:before:3")
    assert keys == ["reminder:dai-hoi-thang-8:before:3:telegram:once"]
    assert run is not None and (run.reminders, run.escalations) == (1, 0)

    # Re-planning (a restart within the grace window, the periodic refresh) leaves the fired
    # round out and keeps the later ones.
    scheduler = new_scheduler(tree, scheduler_factory)
    scheduler.start(paused=True)
    await refresh_plan(scheduler, sessions, POLICY, now)
    ids = {job.id for job in scheduler.get_jobs()}
    assert "reminder:dai-hoi-thang-8:before:3" not in ids
    assert {"reminder:dai-hoi-thang-8:before:1", "reminders:plan"} <= ids
