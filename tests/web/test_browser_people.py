"""«Tổng quan»'s unit search and «Cán bộ» in a real browser (Chromium driven by Playwright,
as in tests/web/test_browser.py): an admin signs in, types "ba dinh" without diacritics,
opens Ba Đình from the results, opens its people list (a Telegram official who blocked the
assistant, a Zalo official), climbs the trail to Hà Nội and reads its children. Desktop and
phone widths; screenshots under var/screenshots/<device>-<page>.png."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.db import make_session_factory
from bot.storage.models import Person
from scheduler.outbox import mark_blocked
from tests.conftest import Clock
from tests.progress.conftest import Enrol
from tests.web.conftest import person_id
from tests.web.test_browser import SCREENSHOTS, VIEWPORTS, chromium, console, sign_in_link

__all__ = ["chromium", "console"]  # fixtures, imported to be found

pytestmark = pytest.mark.browser


async def named(engine: AsyncEngine, user_id: str, name: str) -> None:
    pid = await person_id(engine, user_id)
    async with make_session_factory(engine)() as session:
        person = await session.get(Person, pid)
        assert person is not None
        person.name = name
        session.add(person)
        await session.commit()


@pytest.mark.parametrize("device", list(VIEWPORTS))
async def test_search_a_unit_and_read_its_people(
    chromium: str,
    device: str,
    console: str,
    tree: AsyncEngine,
    enrol: Enrol,
    clock: Clock,
) -> None:
    from playwright.async_api import Page, async_playwright, expect

    # Two officials of Ba Đình wrote at 9:00 (their invitation codes); the Telegram one has
    # since blocked the assistant (the sender recorded Telegram's 403).
    await enrol("HN.BD", "official", user_id="tg-bd", channel="telegram")
    await enrol("HN.BD", "official", user_id="zl-bd", channel="zalo")
    await named(tree, "tg-bd", "Lê Thị Thu")
    await named(tree, "zl-bd", "Phạm Văn Nam")
    async with make_session_factory(tree)() as session:
        await mark_blocked(session, channel="telegram", chat_id="tg-bd", now=clock.now)
        await session.commit()
    link = await sign_in_link(tree, console, clock.now)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    async def shoot(page: Page, name: str) -> None:
        await page.screenshot(path=SCREENSHOTS / f"{device}-{name}.png", full_page=True)

    errors: list[str] = []
    async with async_playwright() as playwright:
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
            await expect(heading).to_have_text("Tổng quan tiến độ — Ban Chấp hành Trung ương")

            # The search box, typed without diacritics.
            await page.get_by_label("Tìm đơn vị theo tên hoặc mã").fill("ba dinh")
            await page.get_by_role("button", name="Tìm", exact=True).click()
            found = page.locator("ul.found li")
            await expect(found).to_have_count(1)
            await expect(found).to_contain_text("Đảng ủy phường Ba Đình")
            await expect(found).to_contain_text("HN.BD")
            await expect(found).to_contain_text("thuộc Đảng bộ thành phố Hà Nội")
            await expect(page.get_by_label("Tìm đơn vị theo tên hoặc mã")).to_have_value("ba dinh")
            await shoot(page, "tim-don-vi")

            # The unit, then its people.
            await found.get_by_role("link", name="Đảng ủy phường Ba Đình").click()
            await expect(heading).to_have_text("Tổng quan tiến độ — Đảng ủy phường Ba Đình")
            await page.get_by_role("link", name="Cán bộ của đơn vị").click()
            await expect(heading).to_have_text("Cán bộ — Đảng ủy phường Ba Đình")
            rows = page.locator("table.people tbody tr")
            await expect(rows).to_have_count(2)
            thu = rows.filter(has_text="Lê Thị Thu")
            await expect(thu).to_contain_text("cán bộ báo cáo")
            await expect(thu).to_contain_text("Telegram (đã chặn trợ lý)")
            await expect(thu).to_contain_text("Đã chặn trợ lý")
            await expect(thu).to_contain_text("09:00 ngày 2/9/2025")
            nam = rows.filter(has_text="Phạm Văn Nam")
            await expect(nam).to_contain_text("Zalo")
            await expect(nam).to_contain_text("Đang hoạt động")
            await shoot(page, "can-bo")

            # Up the trail to Hà Nội: its children with their people counted.
            await (
                page.locator("nav.trail")
                .get_by_role("link", name="Đảng bộ thành phố Hà Nội")
                .click()
            )
            await expect(heading).to_have_text("Cán bộ — Đảng bộ thành phố Hà Nội")
            children = page.locator("section.card").filter(
                has=page.get_by_role("heading", name="Đơn vị trực thuộc")
            )
            ba_dinh = children.locator("tr").filter(has_text="Đảng ủy phường Ba Đình")
            await expect(ba_dinh).to_contain_text("2")
            await expect(children.locator("tr").filter(has_text="Sóc Sơn")).to_contain_text("0")
            await page.get_by_role(
                "link", name="Xem cả cán bộ của các đơn vị trực thuộc trực tiếp"
            ).click()
            await expect(page.locator("table.people tbody tr")).to_have_count(2)
            await shoot(page, "can-bo-ha-noi")
            await context.close()
        finally:
            await browser.close()
    assert errors == []
