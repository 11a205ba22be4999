"""«Thông báo» in Chromium: an admin writes an announcement to the units late on the August
congress, previews it (two people, on Telegram, from now), confirms, and watches its page
follow the delivery — the real outbox sender, started once the page is open, delivers to
the fake Bot API, and the page's script turns the progress into the final report by itself.
Photographed at desktop and phone widths under var/screenshots/."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.db import make_session_factory
from scheduler.transports import TelegramTransport
from tests.conftest import Clock
from tests.fakes.botapi_server import FakeBotAPI
from tests.progress.conftest import Enrol
from tests.scheduler.conftest import make_sender
from tests.web.test_browser import (  # noqa: F401 - fixtures
    SCREENSHOTS,
    VIEWPORTS,
    chromium,
    console,
    sign_in_link,
)

pytestmark = pytest.mark.browser

TEXT = "Đề nghị các đồng chí báo cáo tiến độ đại hội <trước 17:00> hôm nay."


@pytest.mark.parametrize("device", list(VIEWPORTS))
async def test_an_admin_sends_an_announcement_and_watches_it_delivered(
    chromium: str,  # noqa: F811
    device: str,
    console: str,  # noqa: F811
    tree: AsyncEngine,
    clock: Clock,
    enrol: Enrol,
    tmp_path: Path,
) -> None:
    from playwright.async_api import Page, async_playwright, expect

    # Officials of the two communes late on the congress (Ba Đình has reported it done).
    await enrol("HN.SS", "official", user_id="tg-ss", channel="telegram")
    await enrol("HP.CH", "official", user_id="tg-ch", channel="telegram")
    await enrol("HN.BD", "official", user_id="tg-bd", channel="telegram")
    link = await sign_in_link(tree, console, clock.now)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    async def shoot(page: Page, name: str) -> None:
        await page.screenshot(path=SCREENSHOTS / f"{device}-{name}.png", full_page=True)

    errors: list[str] = []
    async with FakeBotAPI() as api, async_playwright() as playwright:
        bot = Bot(api.token, session=AiohttpSession(api=TelegramAPIServer.from_base(api.url)))
        transport = TelegramTransport(bot, request_timeout=5)
        sender = make_sender(make_session_factory(tree), transport, clock=clock)
        stop = asyncio.Event()
        delivering: asyncio.Task[None] | None = None
        browser = await playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            options: dict[str, Any] = dict(VIEWPORTS[device])
            context = await browser.new_context(locale="vi-VN", **options)
            context.set_default_timeout(10_000)
            page = await context.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            heading = page.get_by_role("heading", level=1)

            await page.goto(link)
            await page.get_by_role("button", name="Đăng nhập").click()
            await expect(page).to_have_url(f"{console}/tien-do")

            # Compose: the text, the audience «units late on a task», the task.
            await page.get_by_role("link", name="Thông báo").click()
            await expect(heading).to_have_text("Thông báo")
            await expect(page.get_by_text("Chưa có thông báo nào.")).to_be_visible()
            await page.get_by_label("Nội dung").fill(TEXT)
            await page.get_by_label("các đơn vị quá hạn một nhiệm vụ").check()
            await page.get_by_label("Nhiệm vụ", exact=True).select_option("dai-hoi-thang-8")
            await shoot(page, "thong-bao")
            await page.get_by_role("button", name="Xem trước").click()

            # Preview: the text as received (escaped), the count per channel, the start.
            preview = page.locator("section.preview")
            await expect(preview.locator("pre")).to_contain_text(
                "THÔNG BÁO của Ban Chấp hành Trung ương (đồng chí Nguyễn Văn An gửi):"
            )
            await expect(preview.locator("pre")).to_contain_text("<trước 17:00>")
            await expect(preview).to_contain_text("2 người (Telegram: 2)")
            await expect(preview).to_contain_text("Bắt đầu gửi ngay khi đồng chí xác nhận")
            await shoot(page, "thong-bao-xem-truoc")
            await page.get_by_role("button", name="Xác nhận gửi cho 2 người").click()

            # The broadcast's page, before the sender runs: waiting, with a stop button.
            await expect(heading).to_have_text("Thông báo #1")
            await expect(page.get_by_role("status")).to_have_text(
                "Đã xếp thông báo #1 vào hàng gửi."
            )
            progress = page.locator("#tien-do")
            await expect(progress).to_contain_text("Tiến độ: đang gửi")
            await expect(progress.locator('[data-field="waiting"]')).to_have_text("2")
            await expect(page.get_by_role("button", name="Dừng gửi")).to_be_visible()
            await shoot(page, "thong-bao-dang-gui")

            # The sender starts; the page, left alone, shows the final report.
            delivering = asyncio.create_task(sender.run(stop))
            report = page.locator("#bao-cao")
            await expect(report).to_contain_text(
                "Đã gửi xong lúc 09:00 ngày 2/9/2025", timeout=20_000
            )
            await expect(report).to_contain_text("Đã nhận: 2/2 người")
            await expect(page.get_by_role("button", name="Dừng gửi")).to_have_count(0)
            await expect(page.get_by_role("status")).to_have_count(0)  # «Đã xếp…» is old news
            await shoot(page, "thong-bao-da-gui")
            assert api.delivery_counts() == {"tg-ss": 1, "tg-ch": 1}
            [text] = {r.text for r in api.delivered()}
            assert text.endswith("đại hội &lt;trước 17:00&gt; hôm nay.")  # HTML mode: as text

            # The list: the broadcast, done, 2 of 2 received.
            await page.get_by_role("link", name="Thông báo", exact=True).first.click()
            row = page.locator("table.broadcasts tbody tr").first
            await expect(row).to_contain_text("#1")
            await expect(row).to_contain_text("đã gửi xong")
            await expect(row).to_contain_text("2/2")
            await shoot(page, "thong-bao-danh-sach")
            await context.close()
        finally:
            await browser.close()
            stop.set()
            if delivering is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(delivering, 10)
            await bot.session.close()
    assert errors == []
