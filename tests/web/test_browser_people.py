"""«Tổng quan»'s unit search and «Cán bộ» in a real browser (Chromium driven by Playwright,
as in tests/web/test_browser.py): an admin signs in, types "ba dinh" without diacritics,
opens Ba Đình from the results, opens its people list (a Telegram official who blocked the
assistant, a Zalo official), locks the Zalo official's account after the confirmation page
and reopens it, climbs the trail to Hà Nội, reads its children and moves the official to
Sóc Sơn. Desktop and phone widths; screenshots under var/screenshots/<device>-<page>.png."""

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

            # «Khóa»: the confirmation page, then the list says it is done.
            await page.get_by_role("link", name="Khóa tài khoản của Phạm Văn Nam").click()
            await expect(heading).to_have_text("Khóa tài khoản")
            await expect(page.locator("p.question")).to_contain_text(
                "Khóa tài khoản của Phạm Văn Nam (cán bộ báo cáo, Đảng ủy phường Ba Đình)?"
            )
            await expect(page.locator("p.question")).to_contain_text(
                "các tin đang chờ gửi cho họ bị hủy"
            )
            await shoot(page, "can-bo-khoa")
            await page.get_by_role("button", name="Xác nhận khóa").click()
            await expect(heading).to_have_text("Cán bộ — Đảng ủy phường Ba Đình")
            await expect(page.get_by_role("status")).to_have_text(
                "Đã khóa tài khoản của Phạm Văn Nam (Đảng ủy phường Ba Đình)."
            )
            await expect(nam).to_contain_text("Đã khóa")
            await shoot(page, "can-bo-da-khoa")

            # «Mở lại», «Quay lại» first (nothing changes), then confirmed.
            await page.get_by_role("link", name="Mở lại tài khoản của Phạm Văn Nam").click()
            await page.get_by_role("link", name="Quay lại").click()
            await expect(nam).to_contain_text("Đã khóa")
            await page.get_by_role("link", name="Mở lại tài khoản của Phạm Văn Nam").click()
            await page.get_by_role("button", name="Xác nhận mở lại").click()
            await expect(page.get_by_role("status")).to_have_text(
                "Đã mở lại tài khoản của Phạm Văn Nam (Đảng ủy phường Ba Đình)."
            )
            await expect(nam).to_contain_text("Đang hoạt động")

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

            # «Chuyển»: the new unit's code and the role, the confirmation, back to the list.
            await page.get_by_role("link", name="Chuyển đơn vị, vai trò của Phạm Văn Nam").click()
            await expect(heading).to_have_text("Chuyển đơn vị, vai trò")
            await page.get_by_label("Mã đơn vị mới").fill("HN.SS")
            await page.get_by_label("Vai trò mới").select_option(label="quản trị đơn vị")
            await page.get_by_role("button", name="Tiếp tục").click()
            await expect(page.locator("p.question")).to_have_text(
                "Chuyển Phạm Văn Nam từ cán bộ báo cáo của Đảng ủy phường Ba Đình thành quản "
                "trị đơn vị của Đảng ủy xã Sóc Sơn?"
            )
            await page.get_by_role("button", name="Xác nhận chuyển").click()
            await expect(heading).to_have_text("Cán bộ — Đảng bộ thành phố Hà Nội")
            await expect(page.get_by_role("status")).to_have_text(
                "Đã chuyển Phạm Văn Nam: nay là quản trị đơn vị của Đảng ủy xã Sóc Sơn."
            )
            moved = page.locator("table.people tbody tr").filter(has_text="Phạm Văn Nam")
            await expect(moved).to_contain_text("Đảng ủy xã Sóc Sơn")
            await expect(moved).to_contain_text("quản trị đơn vị")
            await shoot(page, "can-bo-da-chuyen")
            await context.close()
        finally:
            await browser.close()
    assert errors == []
