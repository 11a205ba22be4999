"""«Đơn vị» in a real browser (Debian's Chromium driven by Playwright, as in test_browser.py):
a root admin opens the tree, drills into Hà Nội, uploads a CSV with a bad row and reads the
row's problem, then uploads a good file, reads the preview and applies it; the new units are
in the tree. At desktop and phone widths, photographed under var/screenshots/."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.storage.db import make_session_factory
from bot.storage.models import Unit
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

HEADER = "code,name,level,parent_code\n"
BAD = HEADER + "HN.MOI,Đảng ủy phường Mới,xa,HN\nHN.MOI.CB1,Chi bộ số 1,tinh,HN.MOI\n"
GOOD = HEADER + "HN.MOI,Đảng ủy phường Mới,xa,HN\nHN.MOI.CB1,Chi bộ số 1,co_so,HN.MOI\n"


@pytest.mark.parametrize("device", list(VIEWPORTS))
async def test_a_root_admin_imports_units_in_chromium(
    chromium: str,  # noqa: F811
    device: str,
    console: str,  # noqa: F811
    tree: AsyncEngine,
    clock: Clock,
    tmp_path: Path,
) -> None:
    from playwright.async_api import Page, expect

    link = await sign_in_link(tree, console, clock.now)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    bad = tmp_path / "don-vi-loi.csv"
    bad.write_text(BAD, encoding="utf-8")
    good = tmp_path / "don-vi.csv"
    good.write_text(GOOD, encoding="utf-8")

    async def shoot(page: Page, name: str) -> None:
        await page.screenshot(path=SCREENSHOTS / f"{device}-{name}.png", full_page=True)

    errors: list[str] = []
    async with signed_in_page(chromium, device, console, link, errors) as page:
        heading = page.get_by_role("heading", level=1)

        # The tree: the root's children with their counts; one click into Hà Nội.
        await page.locator("header nav").get_by_role("link", name="Đơn vị").click()
        await expect(heading).to_have_text("Đơn vị — Ban Chấp hành Trung ương")
        table = page.locator("main table")
        await expect(table).to_contain_text("Đảng bộ thành phố Hải Phòng")
        await table.get_by_role("link", name="Đảng bộ thành phố Hà Nội").click()
        await expect(heading).to_have_text("Đơn vị — Đảng bộ thành phố Hà Nội")
        await expect(page.locator("main table")).to_contain_text("Đảng ủy phường Ba Đình")
        await expect(page.locator("main")).not_to_contain_text("Hải Phòng")
        await shoot(page, "don-vi")

        # A file with a bad row: the row's problem, nothing to apply.
        await page.get_by_label("Tệp danh sách đơn vị").set_input_files(bad)
        await page.get_by_role("button", name="Xem trước").click()
        await expect(heading).to_have_text("Xem trước danh sách đơn vị")
        problems = page.get_by_role("alert")
        await expect(problems).to_contain_text("dòng 3: cấp «tinh» không đúng")
        await expect(page.get_by_role("button", name="Áp dụng")).to_have_count(0)
        await shoot(page, "don-vi-loi")

        # The corrected file: the preview, then applied.
        await page.get_by_label("Tệp danh sách đơn vị").set_input_files(good)
        await page.get_by_role("button", name="Xem trước").click()
        await expect(page.get_by_role("status")).to_contain_text(
            "Tệp có 2 dòng: sẽ thêm mới 2 đơn vị, cập nhật 0, giữ nguyên 0."
        )
        await expect(page.locator("table.preview-created")).to_contain_text("Chi bộ số 1")
        await shoot(page, "don-vi-xem-truoc")
        async with make_session_factory(tree)() as session:
            found = (await session.exec(select(Unit).where(Unit.code == "HN.MOI"))).first()
        assert found is None  # the preview wrote nothing
        await page.get_by_role("button", name="Áp dụng").click()
        await expect(heading).to_have_text("Đã nhập danh sách đơn vị")
        await expect(page.get_by_role("status")).to_contain_text(
            "Đã đọc 2 dòng: thêm mới 2 đơn vị, cập nhật 0, giữ nguyên 0."
        )
        await shoot(page, "don-vi-da-nhap")

        # The new units in the tree.
        await page.get_by_role("link", name="Xem cây đơn vị").click()
        await (
            page.locator("main table").get_by_role("link", name="Đảng bộ thành phố Hà Nội").click()
        )
        await expect(page.locator("main table")).to_contain_text("Đảng ủy phường Mới")
        await page.locator("main table").get_by_role("link", name="Đảng ủy phường Mới").click()
        await expect(heading).to_have_text("Đơn vị — Đảng ủy phường Mới")
        await expect(page.locator("main table")).to_contain_text("Chi bộ số 1")
        await expect(page.locator("nav.trail")).to_contain_text("Đảng bộ thành phố Hà Nội")
        await shoot(page, "don-vi-moi")
    assert errors == []
