"""«Nhiệm vụ»: the tasks as ``troly tasks list`` shows them, and a root admin's import of a
tasks file into TASKS_DIR — problems as ``tên-tệp:dòng`` or a preview first, nothing written,
then applied and synchronised — with roles, CSRF and escaping."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.app import App
from bot.storage.db import make_session_factory
from bot.storage.models import AuditEntry, Task
from handlers.tasks import load_task_specs, task_file_name
from knowledge import Knowledge
from tests.conftest import Chat
from tests.progress.test_tasks import LATER
from tests.web.conftest import BASE, People, make_services, person_id, set_role
from tests.web.test_console import csrf_of, get_link, sign_in
from tests.web.test_units import hidden

Client = TestClient[web.Request, web.Application]


def serve(
    knowledge: Knowledge, engine: AsyncEngine, app: App, tasks_dir: Path | None
) -> TestClient[web.Request, web.Application]:
    from web.app import create_web_app

    services = make_services(knowledge, engine, app, BASE)
    services.settings = services.settings.model_copy(update={"tasks_dir": tasks_dir})
    return TestClient(TestServer(create_web_app(services)))


@pytest.fixture
def tasks_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "nhiem-vu"
    folder.mkdir()
    return folder


@pytest.fixture
async def tasks_client(
    knowledge: Knowledge, tree: AsyncEngine, console_app: App, tasks_dir: Path
) -> AsyncIterator[Client]:
    async with serve(knowledge, tree, console_app, tasks_dir) as test_client:
        yield test_client


async def signed_in(client: Client, chat: Chat) -> str:
    """Sign ``chat``'s person in; the CSRF token of the «Nhiệm vụ» page."""
    assert (await sign_in(client, await get_link(chat))).status == 303
    page = await client.get("/nhiem-vu")
    assert page.status == 200, await page.text()
    return csrf_of(await page.text())


async def upload(
    client: Client, csrf: str | None, content: str | bytes, filename: str = "ket-luan-moi.yaml"
) -> web.StreamResponse:
    form = FormData()
    if csrf is not None:
        form.add_field("csrf", csrf)
    data = content.encode("utf-8") if isinstance(content, str) else content
    form.add_field("tep", io.BytesIO(data), filename=filename, content_type="application/yaml")
    return await client.post("/nhiem-vu/xem-truoc", data=form)


async def stored_tasks(engine: AsyncEngine) -> dict[str, Task]:
    async with make_session_factory(engine)() as session:
        return {t.code: t for t in (await session.exec(select(Task))).all()}


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


async def test_any_console_user_sees_the_knowledge_base_tasks(
    tasks_client: Client, people: People, knowledge: Knowledge, tree: AsyncEngine
) -> None:
    assert (await tasks_client.get("/nhiem-vu")).status == 401
    await signed_in(tasks_client, people.hn_admin)
    html = await (await tasks_client.get("/nhiem-vu")).text()
    assert '<a href="/nhiem-vu">Nhiệm vụ</a>' in html
    specs, _ = load_task_specs(knowledge)
    assert specs
    for spec in specs:
        assert spec.code in html
    text = text_of(html)
    first = knowledge.base.deadlines["dai-hoi-thang-8"]
    assert first.what in text
    # Vietnamese level names and dates, the citation, the origin, the state.
    assert "Cấp xã" in text and "cap_tren_co_so" not in text
    assert "31/8/2025 trong tháng 8/2025" in text
    assert first.citation in text
    assert "cơ sở tri thức" in text and "Đang theo dõi" in text
    assert f"{len(specs)} nhiệm vụ." in text
    # A unit admin sees no upload form, and may not post one.
    assert 'action="/nhiem-vu/xem-truoc"' not in html
    assert "Chỉ quản trị hệ thống nhập được tệp nhiệm vụ" in text
    csrf = csrf_of(html)
    refused = await upload(tasks_client, csrf, LATER)
    assert refused.status == 403
    assert "Chỉ quản trị hệ thống nhập được tệp nhiệm vụ" in await refused.text()
    applied = await tasks_client.post("/nhiem-vu/ap-dung", data={"csrf": csrf, "tep": "eA=="})
    assert applied.status == 403
    # Made an official: the console, this page included, is closed.
    await set_role(tree, "hn-admin", "official")
    assert (await tasks_client.get("/nhiem-vu")).status == 403
    assert (await upload(tasks_client, csrf, LATER)).status == 403


async def test_officials_and_forms_without_csrf_are_refused(
    tasks_client: Client, people: People, tasks_dir: Path
) -> None:
    refused = await people.official.say("/web")
    assert "/dang-nhap/" not in refused  # no link for an official
    assert (await tasks_client.get("/nhiem-vu")).status == 401
    assert (await tasks_client.post("/nhiem-vu/xem-truoc", data={"csrf": "x"})).status == 403
    await signed_in(tasks_client, people.admin)
    no_csrf = await upload(tasks_client, None, LATER)
    assert no_csrf.status == 403 and "thiếu mã bảo vệ" in await no_csrf.text()
    assert (await upload(tasks_client, "sai", LATER)).status == 403
    assert list(tasks_dir.iterdir()) == []


async def test_a_bad_file_shows_its_lines_and_writes_nothing(
    tasks_client: Client, people: People, tasks_dir: Path, tree: AsyncEngine
) -> None:
    csrf = await signed_in(tasks_client, people.admin)
    before = await stored_tasks(tree)
    broken = LATER.replace("levels: [xa, truc_thuoc_tw]", "levels: [tinh]")
    page = await upload(tasks_client, csrf, broken, filename="sai.yaml")
    html = await page.text()
    assert page.status == 400, html
    assert "sai.yaml:8: hạn: không có cấp &#39;tinh&#39;" in html
    assert 'action="/nhiem-vu/ap-dung"' not in html
    # Broken YAML names its line too.
    page = await upload(tasks_client, csrf, "deadlines:\n  - id: [x\n", filename="hong.yml")
    assert page.status == 400
    assert re.search(r"hong\.yaml:\d+: YAML không hợp lệ", await page.text())
    # A code the knowledge base defines is refused, with its line.
    clash = LATER.replace("id: tong-ket-nhiem-ky", "id: dai-hoi-thang-8")
    page = await upload(tasks_client, csrf, clash)
    text = text_of(await page.text())
    assert page.status == 400
    assert "ket-luan-moi.yaml:6: mã nhiệm vụ &#39;dai-hoi-thang-8&#39; đã có trong cơ sở tri " in (
        text
    )
    # Not YAML by name.
    page = await upload(tasks_client, csrf, LATER, filename="nhiem-vu.txt")
    assert page.status == 400 and "phải là tệp YAML" in await page.text()
    assert list(tasks_dir.iterdir()) == []
    assert await stored_tasks(tree) == before


async def test_a_good_file_previews_then_applies(
    tasks_client: Client, people: People, tasks_dir: Path, tree: AsyncEngine
) -> None:
    csrf = await signed_in(tasks_client, people.admin)
    page = await upload(tasks_client, csrf, LATER, filename="Kết luận mới.yml")
    html = await page.text()
    assert page.status == 200, html
    text = text_of(html)
    assert "Tệp có 1 nhiệm vụ: thêm mới 1, cập nhật 0, giữ nguyên 0" in text
    assert "tong-ket-nhiem-ky" in text and "Báo cáo tổng kết công tác đại hội" in text
    assert "31/3/2026" in text and "Cấp xã, Trực thuộc Trung ương" in text
    assert "Tệp sẽ lưu với tên ket-luan-moi.yaml" in text
    assert list(tasks_dir.iterdir()) == []  # a preview writes nothing
    assert "tong-ket-nhiem-ky" not in await stored_tasks(tree)

    done = await tasks_client.post(
        "/nhiem-vu/ap-dung",
        data={"csrf": hidden(html, "csrf"), "ten": hidden(html, "ten"), "tep": hidden(html, "tep")},
    )
    text = text_of(await done.text())
    assert done.status == 200, text
    assert "Đã nhập tệp nhiệm vụ" in text and "thêm mới 1, cập nhật 0, ngừng theo dõi 0" in text
    assert [p.name for p in tasks_dir.iterdir()] == ["ket-luan-moi.yaml"]
    assert (tasks_dir / "ket-luan-moi.yaml").read_text(encoding="utf-8") == LATER
    task = (await stored_tasks(tree))["tong-ket-nhiem-ky"]
    assert (task.origin, task.active, str(task.due)) == ("ket-luan-moi.yaml", True, "2026-03-31")
    async with make_session_factory(tree)() as session:
        entries = list(
            (
                await session.exec(
                    select(AuditEntry).where(col(AuditEntry.action) == "tasks.import")
                )
            ).all()
        )
    admin = await person_id(tree, "admin")
    assert [(e.via, e.person_id) for e in entries] == [("web", admin)]
    assert "ket-luan-moi.yaml" in entries[0].summary
    listed = text_of(await (await tasks_client.get("/nhiem-vu")).text())
    assert "tong-ket-nhiem-ky" in listed and "tệp ket-luan-moi.yaml" in listed

    # The same name again replaces the file: a changed due date, a task dropped.
    changed = LATER.replace("due: 2026-03-31", "due: 2026-04-30")
    page = await upload(tasks_client, csrf, changed)
    text = text_of(await page.text())
    assert "thêm mới 0, cập nhật 1, giữ nguyên 0" in text and "31/3/2026 → 30/4/2026" in text
    assert "(thay tệp cùng tên đã có)" in text
    # A second file may not reuse a code of the first.
    page = await upload(tasks_client, csrf, LATER, filename="khac.yaml")
    assert page.status == 400
    assert "đã có trong tệp ket-luan-moi.yaml" in await page.text()


async def test_without_tasks_dir_the_page_says_so(
    knowledge: Knowledge, tree: AsyncEngine, console_app: App, people: People
) -> None:
    async with serve(knowledge, tree, console_app, None) as client:
        csrf = await signed_in(client, people.admin)
        html = await (await client.get("/nhiem-vu")).text()
        assert "đặt biến môi trường TASKS_DIR" in html
        assert 'action="/nhiem-vu/xem-truoc"' not in html
        refused = await upload(client, csrf, LATER)
        assert refused.status == 409 and "TASKS_DIR" in await refused.text()


async def test_titles_are_escaped(
    tasks_client: Client, people: People, tasks_dir: Path, tree: AsyncEngine
) -> None:
    csrf = await signed_in(tasks_client, people.admin)
    evil = LATER.replace(
        "what: Báo cáo tổng kết công tác đại hội", "what: <script>alert(1)</script> báo cáo"
    )
    page = await upload(tasks_client, csrf, evil)
    html = await page.text()
    assert page.status == 200, html
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    done = await tasks_client.post(
        "/nhiem-vu/ap-dung",
        data={"csrf": hidden(html, "csrf"), "ten": hidden(html, "ten"), "tep": hidden(html, "tep")},
    )
    assert done.status == 200
    listed = await (await tasks_client.get("/nhiem-vu")).text()
    assert "<script>" not in listed and "&lt;script&gt;alert(1)&lt;/script&gt;" in listed


def test_file_names_are_sanitised() -> None:
    assert task_file_name("../../etc/passwd") == "passwd.yaml"
    assert task_file_name("C:\\tmp\\Kết luận 12.YML") == "ket-luan-12.yaml"
    assert task_file_name(".hidden.yaml") == "hidden.yaml"
    assert task_file_name("") == "nhiem-vu.yaml"
    assert task_file_name("K%E1%BA%BFt%20lu%E1%BA%ADn.yaml") == "ket-luan.yaml"  # aiohttp's
