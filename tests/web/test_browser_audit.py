"""«Nhật ký» in a real browser (Debian's Chromium driven by Playwright, as in
tests/web/test_browser.py): an administrator signs in, creates invitations for Hà Nội's
subtree, opens «Nhật ký» from the navigation and finds the invitations, the sign-in and the
link at the top, filters by action, at desktop and phone widths (screenshots under
var/screenshots/)."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Clock
from tests.web.test_browser import (  # noqa: F401 - fixtures
    SCREENSHOTS,
    VIEWPORTS,
    chromium,
    console,
    sign_in_link,
    signed_in_page,
)

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("device", list(VIEWPORTS))
async def test_the_audit_log_in_chromium(
    chromium: str,  # noqa: F811
    device: str,
    console: str,  # noqa: F811
    tree: AsyncEngine,
    clock: Clock,
) -> None:
    from playwright.async_api import expect

    link = await sign_in_link(tree, console, clock.now)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    async with signed_in_page(chromium, device, console, link, errors) as page:
        heading = page.get_by_role("heading", level=1)

        # Something to log: invitations for Hà Nội and its units, from the form.
        await page.get_by_role("link", name="Cán bộ và mã mời").click()
        await page.get_by_label("Mã đơn vị").fill("hn")
        await page.get_by_label("đơn vị này và mọi đơn vị trực thuộc").check()
        await page.get_by_role("button", name="Tạo mã mời").click()
        await expect(heading).to_have_text("Đã tạo 4 mã mời")

        # «Nhật ký» from the navigation: newest first, who, the channel, what.
        await page.get_by_role("link", name="Nhật ký").click()
        await expect(heading).to_have_text("Nhật ký")
        rows = page.locator("tbody tr")
        await expect(rows).to_have_count(3)
        first = rows.nth(0)
        await expect(first).to_contain_text("Nguyễn Văn An (Ban Chấp hành Trung ương)")
        await expect(first).to_contain_text("Trang quản trị")
        await expect(first).to_contain_text(
            "Tạo 4 mã mời vai trò cán bộ báo cáo cho Đảng bộ thành phố Hà Nội (HN)"
        )
        await expect(rows.nth(1)).to_contain_text("Đăng nhập trang quản trị")
        await expect(rows.nth(2)).to_contain_text("Dòng lệnh")  # `troly web link`
        await expect(rows.nth(2)).to_contain_text("Người vận hành (dòng lệnh)")
        await page.screenshot(path=SCREENSHOTS / f"{device}-nhat-ky.png", full_page=True)

        # Filtered by action, as a person would choose it.
        await page.get_by_label("Việc").select_option(label="Đăng nhập trang quản trị")
        await page.get_by_role("button", name="Lọc").click()
        await expect(page).to_have_url(f"{console}/nhat-ky?action=web.sign_in&unit=")
        await expect(rows).to_have_count(1)
        await expect(rows.nth(0)).to_contain_text("Đăng nhập trang quản trị")
        await page.get_by_role("link", name="Bỏ lọc").click()
        await expect(rows).to_have_count(3)
        await page.get_by_label("Mã đơn vị").fill("HP")
        await page.get_by_role("button", name="Lọc").click()
        await expect(page.get_by_text("Chưa có mục nào khớp bộ lọc.")).to_be_visible()
        await page.screenshot(path=SCREENSHOTS / f"{device}-nhat-ky-loc.png", full_page=True)
    assert errors == []
