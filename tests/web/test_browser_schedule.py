"""«Đổi lịch nhắc» in Chromium (see tests/web/test_browser.py for the browser set-up): on
2/9/2025, two days after the August deadline, the root admin opens «Nhắc việc», changes the
schedule (a wrong holiday first, read back next to its field), saves it and reads the next
overdue round at its new time, deferred past the holiday; then goes back to the schedule of
`.env`. At desktop and phone widths; screenshots under var/screenshots/."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Clock
from tests.web.test_browser import (
    SCREENSHOTS,
    VIEWPORTS,
    chromium,
    console,
    sign_in_link,
    signed_in_page,
)
from tests.web.test_schedule import stored

__all__ = ["chromium", "console"]  # fixtures

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("device", list(VIEWPORTS))
async def test_a_root_admin_changes_the_reminder_schedule_in_chromium(
    chromium: str, device: str, console: str, tree: AsyncEngine, clock: Clock
) -> None:
    from playwright.async_api import expect

    link = await sign_in_link(tree, console, clock.now)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    async with signed_in_page(chromium, device, console, link, errors) as page:
        heading = page.get_by_role("heading", level=1)
        await page.get_by_role("link", name="Nhắc việc").click()
        card = page.locator("section.task").filter(has_text="Mã dai-hoi-thang-8")
        await expect(card).to_contain_text("Nhắc quá hạn lần 1: 08:00 Thứ Tư, 3/9/2025")
        schedule = page.locator("#lich-nhac")
        await expect(schedule).to_contain_text("theo cấu hình máy chủ (tệp .env)")

        await page.get_by_role("link", name="Đổi lịch nhắc").click()
        await expect(heading).to_have_text("Đổi lịch nhắc")
        await expect(page.get_by_label("Giờ gửi tin nhắc")).to_have_value("08:00")
        await page.get_by_label("Giờ gửi tin nhắc").fill("9h30")  # as officials write it
        await page.get_by_label("Nhắc lại mỗi (ngày)").fill("2")
        await page.get_by_label("Chủ nhật").check()
        await page.get_by_label("Ngày lễ, ngày nghỉ").fill("31/2/2025")
        await page.screenshot(path=SCREENSHOTS / f"{device}-lich-nhac.png", full_page=True)
        await page.get_by_role("button", name="Lưu lịch nhắc").click()

        # the wrong day, named at the top and next to its field; what was typed is kept
        alert = page.get_by_role("alert")
        await expect(alert).to_contain_text("Lịch nhắc chưa được lưu")
        await expect(alert).to_contain_text("«31/2/2025» không phải một ngày có thật")
        field = page.get_by_label("Ngày lễ, ngày nghỉ")
        await expect(field).to_have_attribute("aria-invalid", "true")
        await expect(page.get_by_label("Giờ gửi tin nhắc")).to_have_value("9h30")
        await expect(page.get_by_label("Chủ nhật")).to_be_checked()
        await page.screenshot(path=SCREENSHOTS / f"{device}-lich-nhac-loi.png", full_page=True)
        assert await stored(tree) is None

        await field.fill("02/09/2025")
        await page.get_by_role("button", name="Lưu lịch nhắc").click()
        await expect(page).to_have_url(f"{console}/nhac-viec?lich=da-luu")
        await expect(page.get_by_role("status")).to_contain_text("Đã lưu lịch nhắc mới.")
        await expect(schedule).to_contain_text("đặt trên trang quản trị lúc 09:00 ngày 2/9/2025")
        await expect(schedule).to_contain_text("Chủ nhật, 02/09/2025")
        # overdue every 2 days: 2/9 at 09:30 — a holiday, so the next morning at 07:00
        await expect(card).to_contain_text(
            "Nhắc quá hạn lần 1: 09:30 Thứ Ba, 2/9/2025 (trùng giờ nghỉ, gửi lúc 07:00 Thứ Tư, "
            "3/9/2025)"
        )
        await page.screenshot(path=SCREENSHOTS / f"{device}-lich-nhac-da-luu.png", full_page=True)
        row = await stored(tree)
        assert row is not None and row.non_working_days == "sun,2025-09-02"

        await page.get_by_role("link", name="Đổi lịch nhắc").click()
        await page.get_by_role("button", name="Trở về lịch này").click()
        await expect(page).to_have_url(f"{console}/nhac-viec?lich=mac-dinh")
        await expect(schedule).to_contain_text("theo cấu hình máy chủ (tệp .env)")
        await expect(card).to_contain_text("Nhắc quá hạn lần 1: 08:00 Thứ Tư, 3/9/2025")
    assert errors == []
    assert await stored(tree) is None
