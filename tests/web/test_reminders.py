"""«Nhắc việc»: the next rounds and the rounds fired through the real job (``reminder_job``)
and delivered by the real sender, the outbox backlog, and what a unit admin may see."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from typer.testing import CliRunner

from bot.cli import app as cli
from bot.core import Button, PermanentFailure
from bot.settings import load_settings
from bot.storage.db import make_session_factory
from bot.storage.models import OutboxMessage, ReminderRun
from scheduler.jobs import JobsRuntime, digest_job, install_runtime, reminder_job
from scheduler.policy import PushPolicy
from scheduler.sender import Sender
from tests.conftest import Clock
from tests.progress.conftest import Enrol
from tests.web.conftest import People, set_role
from tests.web.test_console import get_link, sign_in

Client = TestClient[web.Request, web.Application]
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
TASK = "dai-hoi-thang-8"  # levels cap_tren_co_so and xa, due 31/8/2025


def row(html: str, header: str) -> list[str]:
    """The cells of the table row headed ``header``."""
    start = html.index(f">{header}</th>")
    return re.findall(r"<td[^>]*>(.*?)</td>", html[start : html.index("</tr>", start)])


def card_of(html: str, code: str) -> str:
    card = html[html.index(f"Mã {code}") :]
    return card[: card.index("</section>")]


def at(y: int, m: int, d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=ZONE).astimezone(UTC)


class Console:
    """The terminal channel's pushes, refused for good to the chats in ``refuse``."""

    channel = "console"
    buttons = False

    def __init__(self, refuse: set[str]) -> None:
        self.refuse = refuse
        self.delivered: list[str] = []

    async def deliver(self, chat_id: str, text: str, buttons: Sequence[Sequence[Button]]) -> None:
        if chat_id in self.refuse:
            raise PermanentFailure("Bad Request: chat not found")
        self.delivered.append(chat_id)


async def fire_round(
    engine: AsyncEngine, clock: Clock, kind: str, number: int, *, refuse: set[str]
) -> Console:
    """The stored job fires (as APScheduler would call it), then the sender runs until idle."""
    policy = PushPolicy.from_settings(load_settings(database_url="sqlite+aiosqlite:///x.db"))
    sessions = make_session_factory(engine)
    install_runtime(JobsRuntime(sessions, policy, clock))
    try:
        await reminder_job(TASK, kind, number)
    finally:
        install_runtime(None)
    transport = Console(refuse)
    await Sender(sessions, [transport], clock=clock, poll_interval=0.01).run(until_idle=True)
    return transport


async def plan_digest(engine: AsyncEngine, clock: Clock) -> None:
    policy = PushPolicy.from_settings(load_settings(database_url="sqlite+aiosqlite:///x.db"))
    install_runtime(JobsRuntime(make_session_factory(engine), policy, clock))
    try:
        await digest_job()
    finally:
        install_runtime(None)


async def test_sign_in_is_required(client: Client) -> None:
    page = await client.get("/nhac-viec")
    assert page.status == 401
    assert "Cần đăng nhập" in await page.text()


async def test_a_former_unit_admin_is_refused(
    client: Client, people: People, tree: AsyncEngine
) -> None:
    assert (await sign_in(client, await get_link(people.hn_admin))).status == 303
    assert (await client.get("/nhac-viec")).status == 200
    await set_role(tree, "hn-admin", "official")
    page = await client.get("/nhac-viec")
    assert page.status == 403
    assert "Không có quyền truy cập" in await page.text()


async def test_rounds_fired_and_delivered_then_the_backlog(
    client: Client, people: People, enrol: Enrol, tree: AsyncEngine, clock: Clock
) -> None:
    await enrol("HN.SS", "official", user_id="ss")
    await enrol("HP.CH", "official", user_id="hp")  # outside Hà Nội; its chat refuses pushes
    clock.now = at(2025, 8, 28, 8)  # the morning of "3 days before"
    transport = await fire_round(tree, clock, "before", 3, refuse={"hp"})
    assert sorted(transport.delivered) == ["official", "ss"]
    async with make_session_factory(tree)() as session:
        run = await session.get(ReminderRun, f"reminder:{TASK}:before:3")
        assert run is not None and run.reminders == 3
        statuses = sorted(
            (row.chat_id, row.status) for row in (await session.exec(select(OutboxMessage))).all()
        )
    assert statuses == [("hp", "failed"), ("official", "sent"), ("ss", "sent")]

    # Monday's digest planned at 22:00 on Sunday 31/8: quiet hours hold it until 07:00.
    clock.now = at(2025, 8, 31, 22)
    await plan_digest(tree, clock)

    assert (await sign_in(client, await get_link(people.admin))).status == 303
    page = await client.get("/nhac-viec")
    html = await page.text()
    assert page.status == 200, html
    assert '<a href="/nhac-viec">Nhắc việc</a>' in html
    assert "Cập nhật lúc 22:00 Chủ nhật, 31/8/2025" in html
    assert (
        "Giờ yên lặng</dt><dd>từ 21:00 đến 07:00 (tin đến giờ trong khoảng này được hoãn "
        "đến 07:00)</dd>"
    ) in html
    assert "theo cấu hình máy chủ (tệp .env)" in html
    # This task's card: the round fired, what became of its pushes, the rounds to come.
    card = card_of(html, TASK)
    # when, planned (global), sent, failed, waiting, escalations
    assert row(card, "Nhắc trước hạn 3 ngày") == [
        "08:00 Thứ Năm, 28/8/2025",
        "3",
        "2",
        "1",
        "0",
        "—",
    ]
    # 24/8, 30/8 and 31/8 (08:00) passed without firing (no scheduler runs here) beyond the
    # 12-hour grace: skipped, never sent late; the first overdue round is still to come.
    assert "3 đợt đã qua khi trợ lý chưa chạy" in card
    assert "Nhắc trước hạn 1 ngày" not in card and "Nhắc vào ngày hết hạn" not in card
    assert "Nhắc quá hạn lần 1: 08:00 Thứ Tư, 3/9/2025" in card
    # The backlog: the two managers' digests wait for the morning; the refused reminder.
    assert "Đang chờ gửi: <strong>2</strong> tin (2 tin hẹn gửi sau" in html
    assert 'Không gửi được: <strong class="late">1</strong> tin.' in html
    assert "Tổng hợp tuần</th>" in html
    assert "Nhắc việc · Máy tính: <code>refused: Bad Request: chat not found</code>" in html


async def test_a_unit_admin_counts_only_the_subtree(
    client: Client, people: People, enrol: Enrol, tree: AsyncEngine, clock: Clock
) -> None:
    await enrol("HP.CH", "official", user_id="hp")
    clock.now = at(2025, 8, 28, 8)
    await fire_round(tree, clock, "before", 3, refuse={"hp"})
    assert (await sign_in(client, await get_link(people.hn_admin))).status == 303
    html = await (await client.get("/nhac-viec")).text()
    assert "Số tin nhắn tính cho cán bộ thuộc Đảng bộ thành phố Hà Nội" in html
    card = card_of(html, TASK)
    assert "Số tin đã lập" not in card  # the global total is not shown to a unit admin
    # Ba Đình's official: sent; Hải Phòng's refusal is not in Hà Nội's figures.
    assert row(card, "Nhắc trước hạn 3 ngày") == ["08:00 Thứ Năm, 28/8/2025", "1", "0", "0", "—"]
    assert "Không gửi được: <strong>0</strong> tin." in html
    assert "Lỗi gửi gần đây" not in html
    assert "Nhắc trước hạn 1 ngày: 08:00 Thứ Bảy, 30/8/2025" in card
    assert "Nhắc vào ngày hết hạn: 08:00 Chủ nhật, 31/8/2025" in card


async def test_no_rounds_yet(client: Client, people: People, clock: Clock) -> None:
    assert (await sign_in(client, await get_link(people.admin))).status == 303
    html = await (await client.get("/nhac-viec")).text()
    assert "Chưa có tin nào trong hàng đợi." in html
    assert "Chưa gửi đợt nào." in html
    assert "Nhắc trước hạn 7 ngày: 08:00 Chủ nhật, 24/8/2025" in html  # from 20/8


async def test_the_command_line_reads_the_same_overview(
    people: People,
    enrol: Enrol,
    tree: AsyncEngine,
    clock: Clock,
    sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    await enrol("HN.SS", "official", user_id="ss")
    await enrol("HP.CH", "official", user_id="hp")
    clock.now = at(2025, 8, 28, 8)
    await fire_round(tree, clock, "before", 3, refuse={"hp"})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    runner = CliRunner()
    # The command runs its own event loop: in a thread, beside this test's.
    everything = await asyncio.to_thread(runner.invoke, cli, ["reminders", "status"])
    assert everything.exit_code == 0, everything.output
    text = " ".join(everything.stdout.split())
    assert "Hàng đợi: 0 tin đang chờ gửi; 1 tin không gửi được." in text
    assert "Mã dai-hoi-thang-8, hạn 31/8/2025." in text
    assert "Nhắc trước hạn 3 ngày │ 08:00 Thứ Năm, 28/8/2025 │ 2 │ 1 │ 0" in text
    hanoi = await asyncio.to_thread(runner.invoke, cli, ["reminders", "status", "--unit", "HN"])
    assert hanoi.exit_code == 0, hanoi.output
    text = " ".join(hanoi.stdout.split())
    assert "Số tin tính cho cán bộ thuộc Đảng bộ thành phố Hà Nội (HN)" in text
    assert "0 tin không gửi được." in text
    assert "Nhắc trước hạn 3 ngày │ 08:00 Thứ Năm, 28/8/2025 │ 2 │ 0 │ 0" in text
