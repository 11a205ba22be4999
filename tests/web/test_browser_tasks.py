"""«Nhiệm vụ» in a real browser (Debian's Chromium driven by Playwright, as in
test_browser.py): a root admin reads the knowledge base's tasks, uploads a tasks file with a
bad line and reads its ``tên-tệp:dòng`` problem, then uploads the corrected file, reads the
preview and applies it; the new task is listed. At desktop and phone widths, photographed
under var/screenshots/."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import App
from knowledge import Knowledge
from tests.conftest import Clock
from tests.progress.test_tasks import LATER
from tests.test_zalo import free_port
from tests.web.conftest import make_services
from tests.web.test_browser import (  # noqa: F401 - fixtures
    SCREENSHOTS,
    VIEWPORTS,
    chromium,
    sign_in_link,
    signed_in_page,
)
from tests.web.test_tasks import stored_tasks

pytestmark = pytest.mark.browser


@pytest.fixture
async def tasks_console(
    knowledge: Knowledge, tree: AsyncEngine, console_app: App, tmp_path: Path
) -> AsyncIterator[tuple[str, Path]]:
    """The console on a free port with TASKS_DIR set to an empty folder."""
    from web.app import create_web_app

    tasks_dir = tmp_path / "nhiem-vu"
    tasks_dir.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    services = make_services(knowledge, tree, console_app, base)
    services.settings = services.settings.model_copy(update={"tasks_dir": tasks_dir})
    runner = web.AppRunner(create_web_app(services))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield base, tasks_dir
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("device", list(VIEWPORTS))
async def test_a_root_admin_imports_a_tasks_file_in_chromium(
    chromium: str,  # noqa: F811
    device: str,
    tasks_console: tuple[str, Path],
    tree: AsyncEngine,
    clock: Clock,
    tmp_path: Path,
) -> None:
    from playwright.async_api import Page, expect

    console, tasks_dir = tasks_console
    link = await sign_in_link(tree, console, clock.now)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    bad = tmp_path / "ket-luan-moi-loi.yaml"
    bad.write_text(LATER.replace("levels: [xa, truc_thuoc_tw]", "levels: [tinh]"), "utf-8")
    good = tmp_path / "ket-luan-moi.yaml"
    good.write_text(LATER, encoding="utf-8")

    async def shoot(page: Page, name: str) -> None:
        await page.screenshot(path=SCREENSHOTS / f"{device}-{name}.png", full_page=True)

    errors: list[str] = []
    async with signed_in_page(chromium, device, console, link, errors) as page:
        heading = page.get_by_role("heading", level=1)

        await page.locator("header nav").get_by_role("link", name="Nhiệm vụ").click()
        await expect(heading).to_have_text("Nhiệm vụ")
        table = page.locator("table.tasks")
        await expect(table).to_contain_text("dai-hoi-thang-8")
        await expect(table).to_contain_text("cơ sở tri thức")
        await shoot(page, "nhiem-vu")

        # A bad line: its file and line, nothing to apply, nothing written.
        await page.get_by_label("Tệp nhiệm vụ").set_input_files(bad)
        await page.get_by_role("button", name="Xem trước").click()
        await expect(heading).to_have_text("Xem trước tệp nhiệm vụ")
        await expect(page.get_by_role("alert")).to_contain_text(
            "ket-luan-moi-loi.yaml:8: hạn: không có cấp 'tinh'"
        )
        await expect(page.get_by_role("button", name="Áp dụng")).to_have_count(0)
        await shoot(page, "nhiem-vu-loi")

        # The corrected file: the preview, then applied.
        await page.get_by_label("Tệp nhiệm vụ").set_input_files(good)
        await page.get_by_role("button", name="Xem trước").click()
        await expect(page.get_by_role("status")).to_contain_text(
            "Tệp có 1 nhiệm vụ: thêm mới 1, cập nhật 0, giữ nguyên 0."
        )
        await expect(page.locator("table.preview-added")).to_contain_text("tong-ket-nhiem-ky")
        await shoot(page, "nhiem-vu-xem-truoc")
        assert list(tasks_dir.iterdir()) == []  # the preview wrote nothing
        await page.get_by_role("button", name="Áp dụng").click()
        await expect(heading).to_have_text("Đã nhập tệp nhiệm vụ")
        await expect(page.get_by_role("status")).to_contain_text("thêm mới 1")
        await page.get_by_role("link", name="Xem danh sách nhiệm vụ").click()
        await expect(table).to_contain_text("tong-ket-nhiem-ky")
        await expect(table).to_contain_text("tệp ket-luan-moi.yaml")
        await shoot(page, "nhiem-vu-da-nhap")
    assert errors == []
    assert (tasks_dir / "ket-luan-moi.yaml").read_text(encoding="utf-8") == LATER
    assert "tong-ket-nhiem-ky" in await stored_tasks(tree)
