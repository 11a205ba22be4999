"""«Nhắc việc» and «Câu hỏi chưa trả lời» in Chromium (see tests/web/test_browser.py for the
browser set-up): a reminder round fired by the real job and delivered by the real sender,
questions asked through the chat core, then the admin signs in and reads both pages, at
desktop and phone widths; screenshots under var/screenshots/."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Clock
from tests.progress.conftest import Enrol
from tests.web.test_browser import (
    SCREENSHOTS,
    VIEWPORTS,
    chromium,
    console,
    sign_in_link,
    signed_in_page,
)
from tests.web.test_questions import SCRIPT, ask
from tests.web.test_reminders import at, fire_round

__all__ = ["chromium", "console"]  # fixtures

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("device", list(VIEWPORTS))
async def test_reminders_and_unanswered_questions_in_chromium(
    chromium: str, device: str, console: str, enrol: Enrol, tree: AsyncEngine, clock: Clock
) -> None:
    from playwright.async_api import expect

    back = clock.now  # 9:00 on 2/9/2025, set by the console fixture
    ss = await enrol("HN.SS", "official", user_id="ss")
    hp = await enrol("HP.CH", "official", user_id="hp")
    clock.now = at(2025, 8, 28, 8)  # "3 days before": Sóc Sơn and Cát Hải have not reported
    await fire_round(tree, clock, "before", 3, refuse={"hp"})
    clock.now = back
    assert "chưa có thông tin" in await ask(ss, "Công thức làm bánh chưng")
    assert "chưa có thông tin" in await ask(hp, "cong thuc lam banh chung")
    assert "chưa có thông tin" in await ask(hp, SCRIPT)
    telegram = await enrol("HN.BD", "official", user_id="tg", channel="telegram", buttons=True)
    await ask(telegram, "kết luận 185")  # too vague: three suggestions as buttons
    link = await sign_in_link(tree, console, clock.now)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    errors: list[str] = []
    dialogs: list[str] = []
    async with signed_in_page(chromium, device, console, link, errors) as page:
        page.on("dialog", lambda dialog: dialogs.append(dialog.message))
        heading = page.get_by_role("heading", level=1)

        # «Nhắc việc» from the menu: the round of 28/8 (1 sent, 1 refused), what comes next.
        await page.get_by_role("link", name="Nhắc việc").click()
        await expect(page).to_have_url(f"{console}/nhac-viec")
        await expect(heading).to_have_text("Nhắc việc")
        card = page.locator("section.task").filter(has_text="Mã dai-hoi-thang-8")
        fired = card.locator("tr").filter(has_text="Nhắc trước hạn 3 ngày")
        await expect(fired.locator("td")).to_have_text(
            ["08:00 Thứ Năm, 28/8/2025", "2", "1", "1", "0", "—"]
        )
        await expect(card).to_contain_text("Nhắc quá hạn lần 1: 08:00 Thứ Tư, 3/9/2025")
        await expect(page.get_by_text("refused: Bad Request: chat not found")).to_be_visible()
        await page.screenshot(path=SCREENSHOTS / f"{device}-nhac-viec.png", full_page=True)

        # «Câu hỏi chưa trả lời»: one group for the two wordings, the script as text.
        await page.get_by_role("link", name="Câu hỏi chưa trả lời").click()
        await expect(heading).to_have_text("Câu hỏi chưa trả lời")
        rows = page.locator("table.questions tbody tr")
        await expect(rows).to_have_count(3)
        vague = rows.filter(has_text="kết luận 185")
        await expect(vague.locator("li")).to_have_count(3)
        await expect(vague.locator("li").first).to_contain_text("(1 lần)")
        cake = rows.filter(has_text="Công thức làm bánh chưng")
        await expect(cake.locator("td").nth(1)).to_have_text("2")
        await expect(cake).to_contain_text("«cong thuc lam banh chung»")
        await expect(page.get_by_text(SCRIPT)).to_be_visible()
        await page.screenshot(path=SCREENSHOTS / f"{device}-cau-hoi.png", full_page=True)

        # The period: 7 days still has them (asked today).
        await page.get_by_label("Khoảng thời gian").select_option("7")
        await page.get_by_role("button", name="Xem").click()
        await expect(page).to_have_url(f"{console}/cau-hoi?ngay=7")
        await expect(rows).to_have_count(3)
    assert errors == [] and dialogs == []  # no script error, and the question's never ran
