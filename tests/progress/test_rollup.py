"""Seeing progress: /tiendo, `troly report` (text, JSON, XLSX), the chart."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from pathlib import Path

import pytest
from openpyxl import load_workbook
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from typer.testing import CliRunner

from bot.app import App
from bot.cli import app as cli
from bot.core import utcnow
from bot.storage.db import create_engine, make_session_factory
from bot.storage.models import Task, Unit
from handlers.progress import record
from handlers.rollup import compute
from handlers.units import unit_by_code
from knowledge import Knowledge
from tests.conftest import Clock
from tests.fakes.telegram import FakeTelegram, plain
from tests.progress.conftest import Enrol, build_tree, invite_code

TASK = "dai-hoi-thang-8"


async def report_for(
    engine: AsyncEngine, unit_code: str, status: str, note: str | None = None, task: str = TASK
) -> None:
    async with make_session_factory(engine)() as session:
        unit = await unit_by_code(session, unit_code)
        found = (await session.exec(select(Task).where(Task.code == task))).one()
        assert unit is not None
        await record(
            session,
            unit=unit,
            task=found,
            person_id=None,
            status=status,
            done_on=date(2025, 8, 15) if status == "done" else None,
            note=note,
            channel="console",
            key=f"test:{unit_code}:{task}:{status}:{note}",
            now=utcnow(),
        )
        await session.commit()


async def test_counts_by_level_and_status(tree: AsyncEngine) -> None:
    await report_for(tree, "HN.BD", "done")
    await report_for(tree, "HP.CH", "stuck", "Thiếu nhân sự")
    async with make_session_factory(tree)() as session:
        root = (await session.exec(select(Unit).where(Unit.code == "TW"))).one()
        before = await compute(session, root, date(2025, 8, 20))
        after = await compute(session, root, date(2025, 9, 1))  # past the 31/8 deadline
    item = next(t for t in before.tasks if t.task.code == TASK)
    xa = item.levels["xa"]
    assert (xa.applicable, xa.done, xa.doing, xa.stuck, xa.none) == (3, 1, 0, 1, 1)
    assert xa.late == 0 and not item.overdue
    late = next(t for t in after.tasks if t.task.code == TASK)
    assert late.overdue and late.levels["xa"].late == 2
    late_names = [unit.name for unit in late.late_units]
    assert late_names == ["Đảng ủy xã Sóc Sơn", "Đảng ủy phường Cát Hải"]  # tree order
    # each with its last report: none yet from Sóc Sơn, «stuck» from Cát Hải
    last = [(unit.status, unit.reported_at is not None) for unit in late.late_units]
    assert last == [(None, False), ("stuck", True)]
    by_child = {c.unit.code: (c.done, c.applicable) for c in after.children}
    assert by_child["HN"][0] == 1 and by_child["HP"][0] == 0
    assert by_child["HN"][1] > by_child["HN"][0]


async def test_tiendo_on_telegram_sends_text_and_chart(
    tree: AsyncEngine, app: App, clock: Clock
) -> None:
    await report_for(tree, "HN.BD", "done")
    code = await invite_code(tree, "HN", "unit_admin")
    telegram = FakeTelegram(app)
    await telegram.send_text(code, user_id=9)
    clock.advance(days=15)  # 4/9/2025: the August tasks are late
    sent = await telegram.send_text("/tiendo", user_id=9)
    text = plain(sent[0].params["text"])
    assert text.startswith("TIẾN ĐỘ: Đảng bộ thành phố Hà Nội")
    assert "Cấp xã: 1/2 hoàn thành (50%)" in text
    assert "Đơn vị quá hạn: Đảng ủy xã Sóc Sơn" in text
    assert "Hải Phòng" not in text and "Cát Hải" not in text  # outside the subtree
    photos = [c for c in telegram.session.calls if c.name == "sendPhoto"]
    assert len(photos) == 1
    photo = photos[0].params["photo"]
    assert photo.data.startswith(b"\x89PNG")


async def test_only_managers_see_progress(tree: AsyncEngine, enrol: Enrol) -> None:
    official = await enrol("HN.BD", "official", user_id="u1")
    assert "dành cho quản trị" in await official.say("/tiendo")
    manager = await enrol("HN", "unit_admin", user_id="m1")
    assert "chỉ xem được tiến độ các đơn vị mình quản lý" in await manager.say("/tiendo HP")
    assert "TIẾN ĐỘ: Đảng ủy xã Sóc Sơn" in await manager.say("/tiendo HN.SS")


@pytest.fixture
def cli_db(
    sqlite_url: str, knowledge: Knowledge, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> str:
    async def prepare() -> None:
        engine = create_engine(sqlite_url)
        await build_tree(engine, knowledge)
        await report_for(engine, "HN.BD", "done", '=HYPERLINK("http://evil")')
        await report_for(engine, "HN.SS", "doing", "Đang chuẩn bị")
        await engine.dispose()

    asyncio.run(prepare())
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.chdir(tmp_path)
    return sqlite_url


def test_report_json(cli_db: str) -> None:
    result = CliRunner().invoke(cli, ["report", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["unit"]["code"] == "TW"
    task = next(t for t in data["tasks"] if t["code"] == TASK)
    assert task["counts"]["done"] == 1 and task["counts"]["doing"] == 1
    assert task["levels"]["xa"] == {
        "applicable": 3, "done": 1, "doing": 1, "stuck": 0, "no_report": 1,
        "late": 2 if task["overdue"] else 0,
    }  # fmt: skip
    assert {u["code"] for u in task["late_units"]} == (
        {"HN.SS", "HP.CH"} if task["overdue"] else set()
    )


def test_report_text_for_a_unit(cli_db: str) -> None:
    result = CliRunner().invoke(cli, ["report", "--unit", "HN"])
    assert result.exit_code == 0
    assert "TIẾN ĐỘ: Đảng bộ thành phố Hà Nội" in result.stdout
    assert CliRunner().invoke(cli, ["report", "--unit", "NOPE"]).exit_code == 1


def test_xlsx_round_trip(cli_db: str, tmp_path: Path) -> None:
    path = tmp_path / "bao-cao.xlsx"
    result = CliRunner().invoke(cli, ["report", "--xlsx", str(path)])
    assert result.exit_code == 0, result.output
    workbook = load_workbook(path)  # the file opens
    assert workbook.sheetnames[0] == "Tổng hợp"
    assert len(workbook.sheetnames) == 6  # summary + 5 tasks
    sheet = workbook[workbook.sheetnames[1]]
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    header = rows[3]
    assert header[:4] == ["Mã đơn vị", "Tên đơn vị", "Cấp", "Tình trạng"]
    by_code = {row[0]: row for row in rows[4:]}
    assert set(by_code) == {"HN.BD", "HN.SS", "HP.CH"}
    assert by_code["HN.BD"][3] == "Đã hoàn thành"
    assert by_code["HN.BD"][5] == '=HYPERLINK("http://evil")'  # the text, not a formula
    assert sheet.cell(row=5, column=6).data_type == "s"
    assert by_code["HN.SS"][3] == "Đang thực hiện" and by_code["HN.SS"][5] == "Đang chuẩn bị"
    assert by_code["HP.CH"][3] == "Chưa báo cáo"
    summary = [[c.value for c in row] for row in workbook["Tổng hợp"].iter_rows()]
    assert any(row[2] == "Cấp xã" and row[3] == 3 and row[4] == 1 for row in summary[4:])
