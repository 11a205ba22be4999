"""«Nhắc việc» → «Đổi lịch nhắc»: a root admin changes the reminder schedule on the console
(no `.env`, no restart); the form's checks, who may, the audit entry, the leader's scheduler
re-planned at once, another process picking the change up, and going back to `.env`."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from apscheduler.schedulers.base import BaseScheduler
from multidict import MultiDict
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from typer.testing import CliRunner

from bot.cli import app as cli
from bot.settings import PushSchedule, load_settings
from bot.storage.db import make_session_factory
from bot.storage.models import AuditEntry, PushScheduleRow
from handlers.audit import Actor
from scheduler.jobs import JobsRuntime, build_scheduler, install_runtime, refresh_plan
from scheduler.schedule import LiveSchedule, reset_schedule, save_schedule, watch
from tests.conftest import Clock
from tests.web.conftest import People
from tests.web.test_console import csrf_of, get_link, sign_in
from web.reminders import ScheduleForm, clock_time

Client = TestClient[web.Request, web.Application]
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
TASK = "dai-hoi-thang-8"  # due 31/8/2025
SETTINGS = load_settings(database_url="sqlite+aiosqlite:///unused.db")

GOOD = {
    "truoc_han": "5, 1",
    "gio_nhac": "09:30",
    "qua_han_moi": "2",
    "qua_han_toi_da": "4",
    "yen_tu": "22:00",
    "yen_den": "06:30",
    "co_yen_lang": "1",
    "ngay_nghi": "2/9/2025",
    "tong_hop_thu": "fri",
    "tong_hop_gio": "16:00",
}


def at(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=ZONE).astimezone(UTC)


def form(**changes: str | list[str]) -> MultiDict[str]:
    data: MultiDict[str] = MultiDict()
    for name, value in {**GOOD, "thu_nghi": ["sun"], **changes}.items():
        for item in [value] if isinstance(value, str) else value:
            data.add(name, item)
    return data


async def stored(engine: AsyncEngine) -> PushScheduleRow | None:
    async with make_session_factory(engine)() as session:
        return await session.get(PushScheduleRow, 1)


async def audit(engine: AsyncEngine) -> list[tuple[str, str]]:
    async with make_session_factory(engine)() as session:
        entries = await session.exec(select(AuditEntry).order_by(col(AuditEntry.id)))
        return [(e.action, e.summary) for e in entries if e.action.startswith("schedule.")]


# --------------------------------------------------------------------------- the form


def test_the_form_reads_what_an_admin_types() -> None:
    typed = ScheduleForm.read(form(ngay_nghi="2/9/2025, 2026-01-01", thu_nghi=["sat", "sun"]))
    schedule = typed.schedule()
    assert typed.problems == {}
    assert schedule == PushSchedule(
        reminder_offsets_days="5,1",
        reminder_time="09:30",
        overdue_every_days=2,
        overdue_max_reminders=4,
        quiet_hours="22:00-06:30",
        non_working_days="sat,sun,2025-09-02,2026-01-01",
        weekly_digest="fri 16:00",
    )
    # and back: the form filled with a schedule shows it as typed
    again = ScheduleForm.of(schedule)
    assert (again.truoc_han, again.ngay_nghi, again.thu_nghi) == (
        "5, 1",
        "02/09/2025, 01/01/2026",
        ["sat", "sun"],
    )
    # no quiet hours, no digest
    quiet = ScheduleForm.read(form(co_yen_lang=[], tong_hop_thu="", truoc_han=""))
    assert quiet.schedule() == PushSchedule(
        reminder_offsets_days="",
        reminder_time="09:30",
        overdue_every_days=2,
        overdue_max_reminders=4,
        quiet_hours="",
        non_working_days="sun,2025-09-02",
        weekly_digest="",
    )


@pytest.mark.parametrize(
    ("typed", "read"),
    [
        ("8", "08:00"),
        ("8h", "08:00"),
        ("8h30", "08:30"),
        ("8:30", "08:30"),
        ("08.30", "08:30"),
        ("20 giờ 30", "20:30"),
        ("21g", "21:00"),
        ("24:00", "24:00"),  # as typed: the schedule's check names it
        ("8 rưỡi", "8 rưỡi"),
    ],
)
def test_times_typed_loosely(typed: str, read: str) -> None:
    assert clock_time(typed) == read


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"truoc_han": "7, ba"}, "truoc_han", "các số ngày (0–365)"),
        ({"gio_nhac": "25:00"}, "gio_nhac", "không phải giờ trong ngày"),
        ({"tong_hop_gio": "chiều"}, "tong_hop", "không phải giờ trong ngày"),
        ({"qua_han_moi": "0"}, "qua_han_moi", "phải từ 1 trở lên"),
        ({"qua_han_toi_da": "hai"}, "qua_han_toi_da", "phải là số nguyên"),
        ({"yen_tu": "07:00", "yen_den": "07:00"}, "yen_lang", "phải khác nhau"),
        ({"ngay_nghi": "31/2/2026"}, "ngay_nghi", "«31/2/2026» không phải một ngày có thật"),
        (
            {"thu_nghi": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]},
            "ngay_nghi",
            "phải còn ít nhất một ngày trong tuần",
        ),
        ({"tong_hop_thu": "someday"}, "tong_hop", "chọn một ngày trong tuần"),
    ],
)
def test_a_wrong_value_is_named_in_vietnamese(
    changes: dict[str, str | list[str]], field: str, message: str
) -> None:
    typed = ScheduleForm.read(form(**changes))
    assert typed.schedule() is None
    assert message in typed.problems[field], typed.problems


# --------------------------------------------------------------------------- the pages


async def test_a_root_admin_changes_the_schedule_and_goes_back(
    client: Client, people: People, tree: AsyncEngine, clock: Clock
) -> None:
    clock.now = at(2025, 8, 20, 10)
    assert (await sign_in(client, await get_link(people.admin))).status == 303
    page = await (await client.get("/nhac-viec")).text()
    assert "theo cấu hình máy chủ (tệp .env)" in page
    assert "Nhắc trước hạn 7 ngày: 08:00 Chủ nhật, 24/8/2025" in page
    assert '<a class="button" href="/nhac-viec/lich">Đổi lịch nhắc</a>' in page

    page = await (await client.get("/nhac-viec/lich")).text()
    csrf = csrf_of(page)
    assert 'name="gio_nhac" value="08:00"' in page
    assert 'name="truoc_han" value="7, 3, 1, 0"' in page

    # without the form's token: refused, nothing stored
    refused = await client.post("/nhac-viec/lich", data=form())
    assert refused.status == 403
    # a wrong value: the form again, with what was typed and the problem; nothing stored
    wrong = await client.post("/nhac-viec/lich", data=form(csrf=csrf, gio_nhac="8 rưỡi"))
    html = await wrong.text()
    assert wrong.status == 400
    assert "Lịch nhắc chưa được lưu" in html
    assert "&#39;8 rưỡi&#39; không phải giờ trong ngày dạng 08:00" in html
    assert 'name="truoc_han" value="5, 1"' in html
    assert await stored(tree) is None

    saved = await client.post("/nhac-viec/lich", data=form(csrf=csrf), allow_redirects=False)
    assert saved.status == 303
    assert saved.headers["Location"] == "/nhac-viec?lich=da-luu"
    page = await (await client.get(saved.headers["Location"])).text()
    assert "Đã lưu lịch nhắc mới." in page
    assert "đặt trên trang quản trị lúc 10:00 ngày 20/8/2025 (đồng chí" in page
    assert "<dt>Giờ gửi tin nhắc</dt><dd>09:30</dd>" in page
    assert "<dt>Ngày không gửi tin</dt><dd>Chủ nhật, 02/09/2025</dd>" in page
    # the next rounds at once: 5 days before (26/8) at 09:30
    assert "Nhắc trước hạn 5 ngày: 09:30 Thứ Ba, 26/8/2025" in page
    assert "Nhắc trước hạn 7 ngày" not in page
    row = await stored(tree)
    assert row is not None and row.reminder_time == "09:30" and row.updated_by is not None
    [(action, summary)] = await audit(tree)
    assert action == "schedule.update"
    assert "giờ gửi tin nhắc: 09:30" in summary

    # the same schedule again: nothing changes, nothing logged
    same = await client.post("/nhac-viec/lich", data=form(csrf=csrf), allow_redirects=False)
    assert same.headers["Location"] == "/nhac-viec?lich=khong-doi"
    assert len(await audit(tree)) == 1

    # back to .env
    page = await (await client.get("/nhac-viec/lich")).text()
    assert 'name="gio_nhac" value="09:30"' in page
    assert "Trở về lịch này" in page
    back = await client.post("/nhac-viec/lich/mac-dinh", data={"csrf": csrf}, allow_redirects=False)
    assert back.headers["Location"] == "/nhac-viec?lich=mac-dinh"
    page = await (await client.get(back.headers["Location"])).text()
    assert "Đã trở về lịch nhắc theo cấu hình máy chủ (tệp .env)." in page
    assert "Nhắc trước hạn 7 ngày: 08:00 Chủ nhật, 24/8/2025" in page
    assert await stored(tree) is None
    assert [action for action, _ in await audit(tree)] == ["schedule.update", "schedule.reset"]
    # on «Nhật ký» too
    journal = await (await client.get("/nhat-ky")).text()
    assert "Đổi lịch nhắc" in journal and "Trả lịch nhắc về cấu hình máy chủ" in journal


async def test_a_unit_admin_sees_the_schedule_but_cannot_change_it(
    client: Client, people: People, tree: AsyncEngine
) -> None:
    assert (await sign_in(client, await get_link(people.hn_admin))).status == 303
    page = await (await client.get("/nhac-viec")).text()
    assert "<dt>Giờ gửi tin nhắc</dt><dd>08:00</dd>" in page
    assert "Chỉ quản trị hệ thống đổi được lịch nhắc." in page
    assert "/nhac-viec/lich" not in page
    csrf = csrf_of(page)
    refused = await client.get("/nhac-viec/lich")
    assert refused.status == 403
    assert "Chỉ quản trị hệ thống đổi được lịch nhắc" in await refused.text()
    for path in ("/nhac-viec/lich", "/nhac-viec/lich/mac-dinh"):
        assert (await client.post(path, data=form(csrf=csrf))).status == 403
    assert await stored(tree) is None


async def test_an_official_and_a_stranger_are_refused(client: Client, people: People) -> None:
    assert (await client.get("/nhac-viec/lich")).status == 401
    reply = await people.official.say("/web")
    assert "/dang-nhap/" not in reply  # an official gets no console link at all


# --------------------------------------------------------------------------- the leader


@pytest.mark.parametrize("saved_by", ["this process", "another process"])
async def test_the_leader_replans_at_once_and_skips_rounds_already_past(
    client: Client, people: People, tree: AsyncEngine, clock: Clock, saved_by: str
) -> None:
    """Saved at 10:00 on 26/8: the new «5 days before» round (26/8 09:30) is already past,
    so it is not sent; «1 day before» moves to 30/8 09:30; the digest to Friday 16:00.
    Saved by another process, the leader re-plans as soon as it reads the schedule — here
    when a page shows it (else within the watcher's 30 s)."""
    clock.now = at(2025, 8, 26, 10)
    sessions = make_session_factory(tree)
    live = LiveSchedule(SETTINGS)
    scheduler: BaseScheduler = build_scheduler(
        tree.url.render_as_string(hide_password=False), live.policy
    )
    scheduler.start(paused=True)
    install_runtime(JobsRuntime(sessions, live.policy, clock, scheduler=scheduler))
    try:
        await refresh_plan(scheduler, sessions, live.policy, clock())

        def rounds() -> dict[str, datetime]:
            return {
                job.id: job.next_run_time
                for job in scheduler.get_jobs()
                if job.id.startswith(f"reminder:{TASK}:")
            }

        before = await asyncio.to_thread(rounds)
        assert before[f"reminder:{TASK}:before:1"] == at(2025, 8, 30, 8)
        assert f"reminder:{TASK}:before:3" in before

        assert (await sign_in(client, await get_link(people.admin))).status == 303
        if saved_by == "this process":
            csrf = csrf_of(await (await client.get("/nhac-viec/lich")).text())
            saved = await client.post(
                "/nhac-viec/lich", data=form(csrf=csrf), allow_redirects=False
            )
            assert saved.status == 303
        else:
            schedule = ScheduleForm.read(form()).schedule()
            assert schedule is not None
            async with sessions() as session:
                await save_schedule(session, schedule, actor=Actor("web"), now=clock())
                await session.commit()
            assert (await client.get("/nhac-viec")).status == 200

        after = await asyncio.to_thread(rounds)
        assert after == {
            f"reminder:{TASK}:before:1": at(2025, 8, 30, 9, 30),
            f"reminder:{TASK}:overdue:1": at(2025, 9, 2, 9, 30),
            f"reminder:{TASK}:overdue:2": at(2025, 9, 4, 9, 30),
            f"reminder:{TASK}:overdue:3": at(2025, 9, 6, 9, 30),
            f"reminder:{TASK}:overdue:4": at(2025, 9, 8, 9, 30),
        }
        digest = await asyncio.to_thread(scheduler.get_job, "digest:weekly")
        assert digest is not None and str(digest.trigger).startswith(
            "cron[day_of_week='fri', hour='16', minute='0'"
        )
    finally:
        install_runtime(None)
        await asyncio.to_thread(scheduler.shutdown, False)


# --------------------------------------------------------------------------- other processes


async def test_another_process_picks_the_change_up(
    tree: AsyncEngine, people: People, caplog: pytest.LogCaptureFixture
) -> None:
    sessions = make_session_factory(tree)
    here, there = LiveSchedule(SETTINGS), LiveSchedule(SETTINGS)
    schedule = ScheduleForm.read(form()).schedule()
    assert schedule is not None
    now = at(2025, 8, 20, 10)
    async with sessions() as session:
        assert await save_schedule(session, schedule, actor=Actor("web"), now=now)
        await session.commit()
    assert await here.reload(sessions)

    stop = asyncio.Event()
    watching = asyncio.create_task(watch(there, sessions, stop, every=0.02))
    for _ in range(200):
        if there.policy.at.hour == 9:
            break
        await asyncio.sleep(0.02)
    assert (there.policy.at.hour, there.policy.at.minute) == (9, 30)
    assert there.policy.since == now and there.from_console
    assert there.next_allowed(at(2025, 8, 20, 23)) == at(2025, 8, 21, 6, 30)  # quiet hours
    async with sessions() as session:
        assert await reset_schedule(session, SETTINGS, actor=Actor("web"), now=now)
        await session.commit()
    for _ in range(200):
        if not there.from_console:
            break
        await asyncio.sleep(0.02)
    stop.set()
    await watching
    assert there.schedule == SETTINGS.push_schedule and there.policy.since is None
    assert not await there.reload(sessions)  # nothing new

    # a row spoiled by hand: the schedule of .env, said in the log
    async with sessions() as session:
        session.add(
            PushScheduleRow(
                reminder_offsets_days="7,3",
                reminder_time="8 giờ",
                overdue_every_days=3,
                overdue_max_reminders=3,
                quiet_hours="",
                non_working_days="",
                weekly_digest="",
            )
        )
        await session.commit()
    with caplog.at_level(logging.ERROR, logger="scheduler.schedule"):
        assert not await there.reload(sessions)
    assert there.schedule == SETTINGS.push_schedule
    assert "the stored reminder schedule is invalid" in caplog.text


async def test_the_command_line_shows_the_schedule_in_force(
    tree: AsyncEngine,
    people: People,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    runner = CliRunner()
    first = await asyncio.to_thread(runner.invoke, cli, ["reminders", "status"])
    assert first.exit_code == 0, first.output
    assert "Lịch nhắc theo cấu hình máy chủ (tệp .env):" in first.stdout
    assert "Giờ gửi tin nhắc: 08:00" in first.stdout
    schedule = ScheduleForm.read(form()).schedule()
    assert schedule is not None
    async with make_session_factory(tree)() as session:
        await save_schedule(session, schedule, actor=Actor("web"), now=at(2025, 8, 20, 10))
        await session.commit()
    second = await asyncio.to_thread(runner.invoke, cli, ["reminders", "status"])
    assert second.exit_code == 0, second.output
    text = " ".join(second.stdout.split())
    assert "Lịch nhắc đặt trên trang quản trị lúc 10:00 ngày 20/8/2025:" in text
    assert "Giờ gửi tin nhắc: 09:30" in text
    assert "Tổng hợp tiến độ tuần cho quản trị: Thứ Sáu, lúc 16:00" in text
