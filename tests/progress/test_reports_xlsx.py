"""The Excel report: text stays text (never a formula, no visible apostrophe), real dates
and percentages, readable channel names, column widths and a frozen header."""

from __future__ import annotations

import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

from openpyxl import Workbook, load_workbook
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.storage.db import make_session_factory
from bot.storage.models import Person, Task, Unit
from handlers.progress import record
from handlers.reports import write_workbook
from handlers.rollup import compute
from handlers.units import unit_by_code
from tests.conftest import ZONE

TASK = "dai-hoi-thang-8"
NOW = datetime(2025, 8, 20, 3, 0, tzinfo=UTC)  # 10:00 in Hà Nội


async def _report(
    engine: AsyncEngine,
    unit_code: str,
    status: str,
    note: str,
    *,
    channel: str,
    reporter: str | None = None,
) -> None:
    async with make_session_factory(engine)() as session:
        unit = await unit_by_code(session, unit_code)
        task = (await session.exec(select(Task).where(Task.code == TASK))).one()
        assert unit is not None and unit.id is not None
        person_id = None
        if reporter is not None:
            person = Person(name=reporter, unit_id=unit.id, role="official")
            session.add(person)
            await session.flush()
            person_id = person.id
        await record(
            session,
            unit=unit,
            task=task,
            person_id=person_id,
            status=status,
            done_on=date(2025, 8, 15) if status == "done" else None,
            note=note,
            channel=channel,
            key=f"xlsx:{unit_code}",
            now=NOW,
        )
        await session.commit()


async def _workbook(engine: AsyncEngine, path: Path) -> None:
    async with make_session_factory(engine)() as session:
        root = (await session.exec(select(Unit).where(Unit.code == "TW"))).one()
        rollup = await compute(session, root, date(2025, 8, 20))
        await write_workbook(session, rollup, path, ZONE, NOW)


def _task_sheet(workbook: Workbook) -> Worksheet:
    return next(s for s in workbook.worksheets if str(s["A1"].value).startswith("Hoàn thành đại"))


async def test_text_that_looks_like_a_formula_stays_text(tree: AsyncEngine, tmp_path: Path) -> None:
    await _report(tree, "HN.BD", "done", "=1+1", channel="zalo", reporter="+84 912 345 678")
    await _report(tree, "HN.SS", "doing", "-5 ngày", channel="telegram", reporter="@lan")
    await _report(tree, "HP.CH", "stuck", "#N/A", channel="console", reporter="Bình\x0b")
    path = tmp_path / "bao-cao.xlsx"
    await _workbook(tree, path)

    sheet = _task_sheet(load_workbook(path))
    rows = {row[0].value: row for row in sheet.iter_rows(min_row=5)}
    note, reporter = rows["HN.BD"][5], rows["HN.BD"][6]
    assert (note.value, note.data_type) == ("=1+1", "s")  # exactly what was typed
    assert (reporter.value, reporter.data_type) == ("+84 912 345 678", "s")
    assert (rows["HN.SS"][5].value, rows["HN.SS"][5].data_type) == ("-5 ngày", "s")
    assert (rows["HN.SS"][6].value, rows["HN.SS"][6].data_type) == ("@lan", "s")
    assert (rows["HP.CH"][5].value, rows["HP.CH"][5].data_type) == ("#N/A", "s")  # not an error
    assert rows["HP.CH"][6].value == "Bình"  # a control character Excel refuses is left out
    # No formula anywhere in the file.
    with zipfile.ZipFile(path) as archive:
        sheets = [n for n in archive.namelist() if n.startswith("xl/worksheets/sheet")]
        assert len(sheets) == 6
        for name in sheets:
            xml = archive.read(name).decode()
            assert "<f>" not in xml and "<f " not in xml, name
            assert "'=1+1" not in xml


async def test_dates_percentages_and_channels(tree: AsyncEngine, tmp_path: Path) -> None:
    await _report(tree, "HN.BD", "done", "Xong", channel="zalo", reporter="Nguyễn Văn A")
    await _report(tree, "HN.SS", "doing", "Đang làm", channel="console")
    path = tmp_path / "bao-cao.xlsx"
    await _workbook(tree, path)
    workbook = load_workbook(path)

    summary = workbook["Tổng hợp"]
    assert summary["A2"].value == "Cập nhật lúc"
    assert summary["B2"].value == datetime(2025, 8, 20, 10, 0)  # local time
    assert summary["B2"].number_format == "DD/MM/YYYY HH:MM"
    assert [c.value for c in summary[4]][-1] == "Tỷ lệ hoàn thành"
    xa = next(
        row
        for row in summary.iter_rows(min_row=5)
        if row[0].value.startswith("Hoàn thành đại hội") and row[2].value == "Cấp xã"
    )
    assert xa[1].value == datetime(2025, 8, 31) and xa[1].number_format == "DD/MM/YYYY"
    assert xa[3].value == 3 and xa[4].value == 1
    assert xa[9].value == 0.3333 and xa[9].number_format == "0%"
    assert summary.freeze_panes == "A5"

    sheet = _task_sheet(workbook)
    assert [c.value for c in sheet[4]][4:9] == [
        "Ngày hoàn thành",
        "Ghi chú",
        "Người báo cáo",
        "Kênh",
        "Cập nhật lúc",
    ]
    rows = {row[0].value: row for row in sheet.iter_rows(min_row=5)}
    done_on, updated = rows["HN.BD"][4], rows["HN.BD"][8]
    assert done_on.value == datetime(2025, 8, 15) and done_on.number_format == "DD/MM/YYYY"
    assert updated.value == datetime(2025, 8, 20, 10, 0)
    assert updated.number_format == "DD/MM/YYYY HH:MM"
    assert rows["HN.BD"][7].value == "Zalo"
    assert rows["HN.SS"][7].value == "Máy tính"
    assert rows["HP.CH"][3].value == "Chưa báo cáo" and rows["HP.CH"][7].value is None
    assert sheet.freeze_panes == "A5"
    assert sheet.column_dimensions["B"].width >= 30  # unit names are readable
    assert sheet.column_dimensions["F"].width >= 30  # so are notes
