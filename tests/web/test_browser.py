"""The web console in a real browser: Chromium from Debian's packages (`apt-get install
chromium`, which `.ci/run` does) driven by Playwright for Python. Playwright's own browser
download is never used; the browser is launched by path.

A person signs in with a one-time link, reads «Tổng quan» with its tasks and late units,
drills into a city and back, downloads the Excel workbook, signs out and finds the progress
page closed. The same journey runs at desktop and phone widths; every page is photographed
under var/screenshots/ (the README shows two of them, copied to docs/screenshots/).

Skipped on a machine without Chromium or Playwright; under CI=true that is a failure."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from aiohttp import web
from openpyxl import load_workbook
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.app import App
from bot.storage.db import make_session_factory
from bot.storage.models import Person, Task
from handlers.progress import record
from handlers.units import unit_by_code
from handlers.weblogin import create_login_link
from knowledge import Knowledge
from tests.conftest import ROOT, Clock, require
from tests.test_zalo import free_port
from tests.web.conftest import make_services
from web.app import create_web_app

if TYPE_CHECKING:
    from playwright.async_api import Page

pytestmark = pytest.mark.browser

SCREENSHOTS = ROOT / "var" / "screenshots"
CODE = re.compile(r"TL-[A-Z0-9]{5}-[A-Z0-9]{5}")
TASK = "dai-hoi-thang-8"  # due 31/8/2025
VIEWPORTS = {
    "desktop": {"viewport": {"width": 1280, "height": 800}},
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 2,
        "is_mobile": True,
        "has_touch": True,
    },
}


@pytest.fixture
def chromium() -> str:
    """Debian's Chromium (or $CHROMIUM); skip without it and Playwright, fail under CI."""
    path = os.environ.get("CHROMIUM") or shutil.which("chromium")
    require(
        path is not None,
        "Chromium is not installed: apt-get install chromium (.ci/run installs it)",
    )
    require(
        importlib.util.find_spec("playwright") is not None,
        "Playwright for Python is not installed: pip install -e '.[dev]'",
    )
    assert path is not None
    return path


async def report(
    engine: AsyncEngine, unit_code: str, status: str, note: str | None, now: datetime
) -> None:
    async with make_session_factory(engine)() as session:
        unit = await unit_by_code(session, unit_code)
        task = (await session.exec(select(Task).where(Task.code == TASK))).one()
        assert unit is not None
        await record(
            session,
            unit=unit,
            task=task,
            person_id=None,
            status=status,
            done_on=date(2025, 8, 15) if status == "done" else None,
            note=note,
            channel="telegram",
            key=f"browser:{unit_code}:{status}",
            now=now,
        )
        await session.commit()


async def sign_in_link(engine: AsyncEngine, base_url: str, now: datetime) -> str:
    """An admin at the root and a link for them, made as `troly web link` makes it."""
    async with make_session_factory(engine)() as session:
        root = await unit_by_code(session, "TW")
        assert root is not None and root.id is not None
        person = Person(name="Nguyễn Văn An", unit_id=root.id, role="admin")
        session.add(person)
        await session.flush()
        link = await create_login_link(
            session, person=person, base_url=base_url, via="cli", now=now
        )
        await session.commit()
        return link


@contextlib.asynccontextmanager
async def signed_in_page(
    chromium: str, device: str, console: str, link: str, errors: list[str]
) -> AsyncIterator[Page]:
    """Chromium at ``device``'s size, signed in with ``link`` (on «Tổng quan»); script errors
    of the page go to ``errors``. Launched with --no-sandbox: CI runs as root in a container,
    where Chromium's sandbox cannot start."""
    from playwright.async_api import async_playwright, expect

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            options: dict[str, Any] = dict(VIEWPORTS[device])
            context = await browser.new_context(locale="vi-VN", **options)
            context.set_default_timeout(10_000)
            page = await context.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(link)
            await page.get_by_role("button", name="Đăng nhập").click()
            await expect(page).to_have_url(f"{console}/tien-do")
            yield page
            await context.close()
        finally:
            await browser.close()


@pytest.fixture
async def console(
    knowledge: Knowledge,
    tree: AsyncEngine,
    console_app: App,
    clock: Clock,
) -> AsyncIterator[str]:
    """The console served by a real aiohttp server on a free port, two days after the
    August congress deadline: Ba Đình has reported done, Cát Hải is stuck, Sóc Sơn silent."""
    clock.now = datetime(2025, 8, 29, 2, 0, tzinfo=UTC)
    await report(tree, "HN.BD", "done", None, clock.now)
    await report(tree, "HP.CH", "stuck", "Thiếu nhân sự", clock.now)
    clock.now = datetime(2025, 9, 2, 2, 0, tzinfo=UTC)  # 9:00 in Hà Nội
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    runner = web.AppRunner(create_web_app(make_services(knowledge, tree, console_app, base)))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield base
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("device", list(VIEWPORTS))
async def test_a_person_uses_the_console_in_chromium(
    chromium: str, device: str, console: str, tree: AsyncEngine, clock: Clock, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright, expect

    link = await sign_in_link(tree, console, clock.now)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shots = iter(range(1, 100))

    async def shoot(page: Page, name: str, *, screen: bool = False) -> None:
        """The whole page; with ``screen`` also what fits on the first screen."""
        number = next(shots)
        await page.screenshot(
            path=SCREENSHOTS / f"{number:02d}-{name}-{device}.png", full_page=True
        )
        if screen:
            await page.screenshot(path=SCREENSHOTS / f"{number:02d}-{name}-{device}-screen.png")

    errors: list[str] = []
    async with async_playwright() as playwright:
        # --no-sandbox: CI runs as root in a container, where Chromium's sandbox cannot start.
        browser = await playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            options: dict[str, Any] = dict(VIEWPORTS[device])
            context = await browser.new_context(locale="vi-VN", accept_downloads=True, **options)
            context.set_default_timeout(10_000)
            page = await context.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            heading = page.get_by_role("heading", level=1)

            # The link from the chat: a page with one button, the link not yet used.
            opened = await page.goto(link)
            assert opened is not None and opened.status == 200
            await expect(heading).to_have_text("Đăng nhập trang quản trị")
            await expect(page.get_by_text("chỉ dùng được một lần")).to_be_visible()
            await shoot(page, "dang-nhap")
            await page.get_by_role("button", name="Đăng nhập").click()

            # Tổng quan for the whole tree: the tasks, the late units, the person's name.
            await expect(page).to_have_url(f"{console}/tien-do")
            await expect(heading).to_have_text("Tổng quan tiến độ — Ban Chấp hành Trung ương")
            await expect(page.get_by_text("Nguyễn Văn An — ")).to_be_visible()
            task_titles = page.locator("section.task h2")
            assert await task_titles.count() >= 1
            congress = page.locator("section.task").filter(has_text="đã quá hạn").first
            await expect(congress).to_contain_text("Đơn vị quá hạn:")
            await expect(congress).to_contain_text("Đảng ủy xã Sóc Sơn (HN.SS)")
            await expect(congress).to_contain_text("Đảng ủy phường Cát Hải (HP.CH)")
            await expect(congress).not_to_contain_text("Ba Đình (HN.BD)")  # it reported done
            await expect(page.get_by_role("link", name="Tải tệp Excel")).to_be_visible()
            await shoot(page, "tong-quan", screen=True)

            # Drill down into Hà Nội: its communes, nothing of Hải Phòng; then back up.
            await page.get_by_role("link", name="Đảng bộ thành phố Hà Nội").click()
            await expect(heading).to_have_text("Tổng quan tiến độ — Đảng bộ thành phố Hà Nội")
            children = page.locator("section.card").filter(
                has=page.get_by_role("heading", name="Đơn vị trực thuộc")
            )
            await expect(children).to_contain_text("Đảng ủy phường Ba Đình")
            await expect(children).to_contain_text("Đảng ủy xã Sóc Sơn")
            await expect(page.locator("main")).not_to_contain_text("Cát Hải")
            await expect(page.get_by_text("Đảng ủy xã Sóc Sơn (HN.SS)").first).to_be_visible()
            await shoot(page, "tong-quan-ha-noi")
            await (
                page.locator("nav.trail")
                .get_by_role("link", name="Ban Chấp hành Trung ương")
                .click()
            )
            await expect(heading).to_have_text("Tổng quan tiến độ — Ban Chấp hành Trung ương")

            # The Excel download: the report workbook for the whole tree.
            async with page.expect_download() as waiting:
                await page.get_by_role("link", name="Tải tệp Excel").click()
            download = await waiting.value
            assert download.suggested_filename == "tien-do-TW-20250902.xlsx"
            saved = tmp_path / download.suggested_filename
            await download.save_as(saved)
            book = load_workbook(saved)
            assert book.sheetnames[0] == "Tổng hợp"
            assert book["Tổng hợp"]["A1"].value == "Tiến độ: Ban Chấp hành Trung ương (TW)"
            cells = {
                str(value)
                for sheet in book.worksheets[1:]
                for row in sheet.iter_rows(values_only=True)
                for value in row
                if value is not None
            }
            assert {"Đảng ủy xã Sóc Sơn", "Đảng ủy phường Cát Hải"} <= cells

            # «Cán bộ và mã mời»: one invitation per unit of Hà Nội's subtree, typed and pressed
            # as a person would; the codes on the result page, the sheet, the QR print page.
            await page.get_by_role("link", name="Cán bộ và mã mời").click()
            await expect(heading).to_have_text("Cán bộ và mã mời")
            await page.get_by_label("Mã đơn vị").fill("hn")
            await page.get_by_label("đơn vị này và mọi đơn vị trực thuộc").check()
            await page.get_by_label("Vai trò của người được mời").select_option("official")
            await page.get_by_label("Hiệu lực (ngày)").fill("30")
            await shoot(page, "ma-moi")
            await page.get_by_role("button", name="Tạo mã mời").click()
            await expect(heading).to_have_text("Đã tạo 4 mã mời")
            await expect(page.get_by_text("Mã chỉ hiện lần này")).to_be_visible()
            shown = [text.strip() for text in await page.locator("td.code").all_inner_texts()]
            assert len(shown) == 4 and all(CODE.fullmatch(code) for code in shown), shown
            await shoot(page, "ma-moi-da-tao")
            async with page.expect_download() as waiting:
                await page.get_by_role("button", name="Tải tệp Excel").click()
            download = await waiting.value
            assert download.suggested_filename == "ma-moi-HN-20250902.xlsx"
            saved = tmp_path / download.suggested_filename
            await download.save_as(saved)
            rows = list(load_workbook(saved).active.iter_rows(values_only=True))
            assert rows[0][:3] == ("Đơn vị", "Mã đơn vị", "Mã mời")
            assert [row[1] for row in rows[1:]] == ["HN", "HN.BD", "HN.BD.CB1", "HN.SS"]
            assert [row[2] for row in rows[1:]] == shown  # one row per unit, the codes shown
            assert rows[1][0] == "Đảng bộ thành phố Hà Nội"
            async with page.expect_popup() as opening:
                await page.get_by_role("button", name="Mở trang in (mã QR)").click()
            printing = await opening.value
            await expect(printing.get_by_role("heading", level=1)).to_have_text(
                "In mã mời (4 đơn vị)"
            )
            await expect(printing.locator("section.qr-card svg")).to_have_count(4)
            await shoot(printing, "in-ma-moi")
            await printing.close()

            # Sign out with the header's button; the progress page is closed afterwards.
            await page.get_by_role("button", name="Đăng xuất").click()
            await expect(heading).to_have_text("Đã đăng xuất")
            await shoot(page, "da-dang-xuat")
            closed = await page.goto(f"{console}/tien-do")
            assert closed is not None and closed.status == 401
            await expect(heading).to_have_text("Cần đăng nhập")
            await expect(page.get_by_role("button", name="Đăng xuất")).to_have_count(0)
            await shoot(page, "can-dang-nhap")

            # The used link is refused with a clear page.
            used = await page.goto(link)
            assert used is not None and used.status == 410
            await expect(heading).to_have_text("Liên kết đã được sử dụng")
            await context.close()
        finally:
            await browser.close()
    assert errors == []
