"""«Câu hỏi chưa trả lời»: questions asked through the chat core that found no answer,
grouped (accents or not, a few words more), with the suggestions offered (buttons on
Telegram, a numbered list elsewhere), the period, the scope, escaping and the downloads."""

from __future__ import annotations

import csv
import io
import itertools
import re

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openpyxl import load_workbook
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import App
from bot.core import IncomingMessage
from bot.render import plain_text
from handlers import questions
from tests.conftest import Chat, Clock
from tests.progress.conftest import Enrol
from tests.web.conftest import People, set_role
from tests.web.test_console import get_link, sign_in

Client = TestClient[web.Request, web.Application]
SCRIPT = "<script>alert('x')</script> giá vàng hôm nay bao nhiêu?"


UPDATES = itertools.count(1)


async def ask(chat: Chat, text: str) -> str:
    """A message as Telegram and Zalo deliver it: with the platform's update id, so the
    reply is kept in the log (what the page reads the suggestions from)."""
    msg = IncomingMessage(
        channel=chat.channel,
        user_id=chat.user_id,
        chat_id=chat.user_id,
        text=text,
        update_key=f"u{next(UPDATES)}",
    )
    replies = await chat.app.dispatch(msg, buttons=chat.buttons)
    chat.history.extend(replies)
    return "\n\n".join(plain_text(r) for r in replies)


def groups_of(html: str) -> list[tuple[str, list[str]]]:
    """(question shown, its cells) for each row of the questions table."""
    body = html[html.index("<tbody>") : html.index("</tbody>")]
    found = []
    for row in body.split("</tr>")[:-1]:
        question = re.search(r"<strong>(.*?)</strong>", row, re.S)
        assert question is not None, row
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        found.append((question.group(1), cells[1:]))
    return found


async def ask_around(people: People, enrol: Enrol, console_app: App, clock: Clock) -> Chat:
    """Questions through the real dispatch; returns Hải Phòng's official (outside Hà Nội)."""
    hp = await enrol("HP.CH", "official", user_id="hp")
    telegram = await enrol("HN.SS", "official", user_id="tg", channel="telegram", buttons=True)
    assert "chưa có thông tin" in await ask(people.admin, "Thủ tục cấp sổ đỏ cho hộ gia đình")
    clock.advance(days=10)  # the rest is recent; the land question is 10 days old
    assert "chưa có thông tin" in await ask(people.official, "Công thức làm bánh chưng")
    assert "chưa có thông tin" in await ask(people.hn_admin, "cong thuc lam banh chung")
    assert "chưa có thông tin" in await ask(hp, "Công thức làm bánh chưng ngày Tết")
    assert "Có phải đồng chí muốn hỏi:" in await ask(people.official, "kết luận 185")
    await ask(telegram, "kết luận 185")  # Telegram: the suggestions are buttons
    assert any(b.payload.startswith("qa:") for b in telegram.history[-1].flat_buttons)
    assert "chưa có thông tin" in await ask(people.hn_admin, SCRIPT)
    assert "Trần Cẩm Tú" in await ask(people.official, "Ai ký Kết luận 185?")  # answered
    await ask(people.official, "Xin chào")  # a greeting: no question
    return hp


async def test_sign_in_is_required(client: Client) -> None:
    for path in ("/cau-hoi", "/cau-hoi.csv", "/cau-hoi.xlsx"):
        page = await client.get(path)
        assert page.status == 401, path


async def test_a_former_unit_admin_is_refused(
    client: Client, people: People, tree: AsyncEngine
) -> None:
    assert (await sign_in(client, await get_link(people.hn_admin))).status == 303
    assert (await client.get("/cau-hoi")).status == 200
    await set_role(tree, "hn-admin", "official")
    for path in ("/cau-hoi", "/cau-hoi.csv", "/cau-hoi.xlsx"):
        assert (await client.get(path)).status == 403, path


async def test_grouped_with_suggestions_and_escaped(
    client: Client, people: People, enrol: Enrol, console_app: App, clock: Clock
) -> None:
    await ask_around(people, enrol, console_app, clock)
    assert (await sign_in(client, await get_link(people.admin))).status == 303
    page = await client.get("/cau-hoi")
    html = await page.text()
    assert page.status == 200, html
    assert '<a href="/cau-hoi">Câu hỏi chưa trả lời</a>' in html
    assert '<option value="30" selected>30 ngày qua</option>' in html
    groups = dict(groups_of(html))
    # Three wordings of one question (accents, no accents, more words): one group of 3
    # asked by 3 people; the vague "kết luận 185" twice, with the suggestions both times.
    cake = groups["Công thức làm bánh chưng"]
    assert cake[:2] == ["3", "3"]
    assert "Không có gợi ý" in cake[3]
    assert "«cong thuc lam banh chung»" in html
    assert "«Công thức làm bánh chưng ngày Tết»" in html
    vague = groups["kết luận 185"]
    assert vague[:2] == ["2", "2"]
    offered = re.findall(r"<li>(.*?) \((\d+) lần\)</li>", vague[3])
    assert len(offered) == 3 and all(times == "2" for _, times in offered)
    assert "Sổ đỏ".lower() in html.lower()  # 10 days old: within 30 days
    assert "Ai ký Kết luận 185" not in html and "Xin chào" not in html
    # The script is text, never markup.
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; giá vàng" in html
    assert "7 lượt hỏi chưa có câu trả lời, gộp thành 4 nhóm" in html  # cake, 185, gold, land
    week = await (await client.get("/cau-hoi?ngay=7")).text()
    assert "sổ đỏ" not in week.lower()
    assert '<option value="7" selected>7 ngày qua</option>' in week
    assert "gộp thành 3 nhóm" in week


async def test_a_unit_admin_sees_the_subtree_only(
    client: Client, people: People, enrol: Enrol, console_app: App, clock: Clock
) -> None:
    await ask_around(people, enrol, console_app, clock)
    assert (await sign_in(client, await get_link(people.hn_admin))).status == 303
    html = await (await client.get("/cau-hoi")).text()
    assert "Chỉ gồm câu hỏi của cán bộ thuộc Đảng bộ thành phố Hà Nội" in html
    groups = dict(groups_of(html))
    assert groups["Công thức làm bánh chưng"][:2] == ["2", "2"]  # not Hải Phòng's
    assert "ngày Tết" not in html


async def test_downloads(
    client: Client, people: People, enrol: Enrol, console_app: App, clock: Clock
) -> None:
    await ask_around(people, enrol, console_app, clock)
    assert (await sign_in(client, await get_link(people.admin))).status == 303
    sheet = await client.get("/cau-hoi.xlsx?ngay=30")
    assert sheet.status == 200
    assert "cau-hoi-chua-tra-loi-30-ngay-" in sheet.headers["Content-Disposition"]
    rows = list(load_workbook(io.BytesIO(await sheet.read())).active.iter_rows(values_only=True))
    assert rows[0][:4] == ("Câu hỏi", "Số lần hỏi", "Số người hỏi", "Lần hỏi gần nhất")
    by_question = {row[0]: row for row in rows[1:]}
    assert by_question["Công thức làm bánh chưng"][1:3] == (3, 3)
    assert "cong thuc lam banh chung" in by_question["Công thức làm bánh chưng"][4]
    assert SCRIPT in by_question
    text = (await (await client.get("/cau-hoi.csv?ngay=7")).read()).decode("utf-8-sig")
    read = list(csv.reader(io.StringIO(text)))
    assert read[0][0] == "Câu hỏi" and len(read) == 4  # the header and 3 groups
    assert read[1][:3] == ["Công thức làm bánh chưng", "3", "3"]


async def test_only_the_most_asked_wordings_are_compared(
    client: Client,
    people: People,
    enrol: Enrol,
    console_app: App,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await ask_around(people, enrol, console_app, clock)
    monkeypatch.setattr(questions, "COMPARED", 2)  # bánh chưng (2 alike) and 185 (2)
    assert (await sign_in(client, await get_link(people.admin))).status == 303
    html = await (await client.get("/cau-hoi")).text()
    groups = dict(groups_of(html))
    # The Tết wording is asked once: beyond the first two, it is no longer compared.
    assert groups["Công thức làm bánh chưng"][:2] == ["2", "2"]
    assert groups["Công thức làm bánh chưng ngày Tết"][:2] == ["1", "1"]
    assert "chỉ 2 cách hỏi nhiều nhất được so sánh để gộp nhóm; 3 câu hỏi ít gặp hơn" in html
