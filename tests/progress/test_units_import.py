"""`troly units import`: CSV and XLSX, all-or-nothing with `dòng N:` problems, re-imports."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import Workbook
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from typer.testing import CliRunner

from bot.cli import app as cli
from bot.core import utcnow
from bot.storage.db import create_engine, make_session_factory
from bot.storage.models import Person, Unit
from handlers.units import (
    UnitImportError,
    apply_rows,
    child_counts,
    plan_rows,
    read_data,
    read_rows,
    subtree_counts,
    unit_by_code,
)
from tests.progress.conftest import TREE

HEADER = "code,name,level,parent_code\n"
GOOD = HEADER + "".join(f"{c},{n},{lv},{p}\n" for c, n, lv, p in TREE)


def write(tmp_path: Path, text: str, name: str = "units.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding=encoding)
    return path


async def units(engine: AsyncEngine) -> dict[str, Unit]:
    async with make_session_factory(engine)() as session:
        return {u.code: u for u in (await session.exec(select(Unit).order_by(col(Unit.id)))).all()}


async def import_file(engine: AsyncEngine, path: Path) -> tuple[int, int]:
    async with make_session_factory(engine)() as session:
        result = await apply_rows(session, read_rows(path), utcnow())
        await session.commit()
        return result


async def test_csv_import_builds_the_tree(db_url: str, tmp_path: Path) -> None:
    engine = create_engine(db_url)
    try:
        assert await import_file(engine, write(tmp_path, GOOD)) == (len(TREE), 0)
        stored = await units(engine)
        assert stored["HN.BD"].name == "Đảng ủy phường Ba Đình"
        assert stored["HN.BD"].parent_id == stored["HN"].id
        assert stored["HN.BD.CB1"].path.startswith(stored["HN.BD"].path)
        assert stored["HN.BD.CB1"].depth == 3
        assert not stored["HP.CH"].path.startswith(stored["HN"].path)
    finally:
        await engine.dispose()


async def test_xlsx_import_reads_everything_as_text(engine: AsyncEngine, tmp_path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["code", "name", "level", "parent_code"])
    sheet.append(["TW", "Ban Chấp hành Trung ương", "trung_uong", None])
    sheet.append([101, '=HYPERLINK("http://x","Đảng bộ")', "truc_thuoc_tw", "TW"])
    path = tmp_path / "units.xlsx"
    workbook.save(path)
    assert await import_file(engine, path) == (2, 0)
    stored = await units(engine)
    assert stored["101"].name == '=HYPERLINK("http://x","Đảng bộ")'  # kept as text


async def test_bom_and_semicolons(engine: AsyncEngine, tmp_path: Path) -> None:
    text = GOOD.replace(",", ";")
    path = write(tmp_path, text, encoding="utf-8-sig")
    assert await import_file(engine, path) == (len(TREE), 0)


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        ("X,Tên,tinh,TW\n", "dòng 9: cấp «tinh» không đúng"),
        ("X,Tên,xa,KHONG\n", "dòng 9: không có đơn vị cấp trên mã «KHONG»"),
        ("HN,Trùng,xa,TW\n", "dòng 9: mã «HN» bị trùng (đã có ở dòng 3)"),
        (",Tên,xa,TW\n", "dòng 9: thiếu mã đơn vị"),
        ("X,,xa,TW\n", "dòng 9: thiếu tên đơn vị"),
        ("X Y,Tên,xa,TW\n", "dòng 9: mã «X Y» chỉ được gồm"),
        ("X,Tên,xa,X\n", "dòng 9: đơn vị không thể là cấp trên của chính nó"),
    ],
)
async def test_a_bad_row_rejects_the_whole_file(
    engine: AsyncEngine, tmp_path: Path, rows: str, problem: str
) -> None:
    path = write(tmp_path, GOOD + rows)
    with pytest.raises(UnitImportError) as caught:
        await import_file(engine, path)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems
    assert await units(engine) == {}  # nothing changed


async def test_cycle_through_existing_units_is_refused(engine: AsyncEngine, tmp_path: Path) -> None:
    await import_file(engine, write(tmp_path, GOOD))
    before = {c: (u.parent_id, u.path) for c, u in (await units(engine)).items()}
    cyclic = HEADER + "HN,Đảng bộ thành phố Hà Nội,truc_thuoc_tw,HN.BD.CB1\n"
    with pytest.raises(UnitImportError) as caught:
        await import_file(engine, write(tmp_path, cyclic, "again.csv"))
    assert caught.value.problems[0].startswith(
        "dòng 2: các đơn vị cấp trên tạo thành vòng lặp: HN → "
    )
    assert {c: (u.parent_id, u.path) for c, u in (await units(engine)).items()} == before


async def test_reimport_updates_names_and_parents(engine: AsyncEngine, tmp_path: Path) -> None:
    await import_file(engine, write(tmp_path, GOOD))
    first = await units(engine)
    moved = HEADER + "HN.SS,Đảng ủy xã Sóc Sơn (mới),xa,HP\nHN.BD,Đảng ủy phường Ba Đình,xa,HN\n"
    assert await import_file(engine, write(tmp_path, moved, "moved.csv")) == (0, 1)
    after = await units(engine)
    assert after["HN.SS"].id == first["HN.SS"].id  # same unit: history stays attached
    assert after["HN.SS"].name == "Đảng ủy xã Sóc Sơn (mới)"
    assert after["HN.SS"].path.startswith(after["HP"].path)
    assert len(after) == len(TREE)  # units absent from the file are kept


def test_missing_columns_and_bad_encoding(tmp_path: Path) -> None:
    with pytest.raises(UnitImportError) as caught:
        read_rows(write(tmp_path, "code,name\nA,B\n"))
    assert caught.value.problems == [
        "dòng 1: thiếu cột level, parent_code (cần các cột code,name,level,parent_code)"
    ]
    path = tmp_path / "latin.csv"
    path.write_bytes(HEADER.encode() + b"A,\xd0\xe0i h\xf4i,xa,\n")
    with pytest.raises(UnitImportError) as caught:
        read_rows(path)
    assert caught.value.problems[0].startswith("dòng 2: không phải văn bản UTF-8")


def test_cli_import_and_list(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    bad = runner.invoke(cli, ["units", "import", str(write(tmp_path, GOOD + "X,Y,tinh,TW\n"))])
    assert bad.exit_code == 1
    assert "dòng 9: cấp «tinh» không đúng" in bad.stdout
    assert "Lỗi: Tệp units.csv bị từ chối, chưa thay đổi gì." in bad.output
    good = runner.invoke(cli, ["units", "import", str(write(tmp_path, GOOD, "ok.csv"))])
    assert good.exit_code == 0, good.output
    assert f"thêm mới {len(TREE)} đơn vị" in good.stdout
    listing = runner.invoke(cli, ["units", "list"])
    lines = listing.stdout.splitlines()
    assert lines[0].startswith("Ban Chấp hành Trung ương [TW]")
    assert lines.index(next(x for x in lines if "Ba Đình" in x)) < lines.index(
        next(x for x in lines if "Sóc Sơn" in x)
    )
    assert lines[-1] == f"Tổng cộng {len(TREE)} đơn vị."


def test_cli_list_a_subtree_counts_the_subtree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(cli, ["units", "import", str(write(tmp_path, GOOD))]).exit_code == 0
    listing = runner.invoke(cli, ["units", "list", "--root", "hn"])  # any case
    assert listing.exit_code == 0, listing.output
    lines = listing.stdout.splitlines()
    assert lines[0].startswith("Đảng bộ thành phố Hà Nội [HN]")
    assert not any("Hải Phòng" in line or "Trung ương [TW]" in line for line in lines)
    # HN, HN.BD, HN.SS and HN.BD.CB1: the subtree, not the 7 units of the database.
    assert lines[-1] == "Đảng bộ thành phố Hà Nội (HN) và các đơn vị trực thuộc: 4 đơn vị."
    shallow = runner.invoke(cli, ["units", "list", "--root", "HN", "--depth", "1"])
    assert "Chi bộ khu phố 1" not in shallow.stdout
    assert "4 đơn vị." in shallow.stdout  # the count is still the whole subtree
    assert "xem sâu hơn: --depth 2" in shallow.stdout
    unknown = runner.invoke(cli, ["units", "list", "--root", "NOPE"])
    assert unknown.exit_code == 1
    assert "Không tìm thấy đơn vị có mã «NOPE»." in unknown.output


def test_cli_dry_run_plans_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    assert runner.invoke(cli, ["units", "import", str(write(tmp_path, GOOD))]).exit_code == 0
    moved = HEADER + "HN.SS,Đảng ủy xã Sóc Sơn (mới),xa,HP\nHN.NEW,Chi bộ mới,co_so,HN\n"
    path = write(tmp_path, moved, "moved.csv")
    plan = runner.invoke(cli, ["units", "import", "--dry-run", str(path)])
    assert plan.exit_code == 0, plan.output
    assert "dòng 2: cập nhật HN.SS (Đảng ủy xã Sóc Sơn)" in plan.stdout
    assert "Tệp có 2 dòng: sẽ thêm mới 1 đơn vị, cập nhật 1, giữ nguyên 0." in plan.stdout
    listing = runner.invoke(cli, ["units", "list"])
    assert "Chi bộ mới" not in listing.stdout and "(mới)" not in listing.stdout
    bad = runner.invoke(
        cli, ["units", "import", "--dry-run", str(write(tmp_path, GOOD + "X,,xa,TW\n"))]
    )
    assert bad.exit_code == 1 and "dòng 9: thiếu tên đơn vị (cột name)" in bad.stdout
    applied = runner.invoke(cli, ["units", "import", str(path)])
    assert "Đã đọc 2 dòng: thêm mới 1 đơn vị, cập nhật 1, giữ nguyên 0." in applied.stdout


async def test_plan_rows_writes_nothing_and_keeps_a_unit_admin_in_their_subtree(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    await import_file(engine, write(tmp_path, GOOD))
    text = (
        HEADER
        + "HN.SS,Đảng ủy xã Sóc Sơn (mới),xa,HN\n"  # 2: updated, inside HN
        + "HN.BD,Đảng ủy phường Ba Đình,xa,HN\n"  # 3: unchanged
        + "HN.NEW,Chi bộ mới,co_so,HN.BD\n"  # 4: created under HN.BD
        + "HP.X,Chi bộ Hải Phòng,co_so,HP\n"  # 5: parent outside HN
        + "HP.CH,Đảng ủy phường Cát Hải,xa,HN\n"  # 6: a unit outside HN pulled in
        + "HN,Hà Nội đổi tên,truc_thuoc_tw,TW\n"  # 7: the admin's own unit
        + "TOP,Đơn vị gốc,trung_uong,\n"  # 8: a new root
    )
    rows = read_data(text.encode(), "units.csv")
    async with make_session_factory(engine)() as session:
        hn = await unit_by_code(session, "HN")
        assert hn is not None
        plan = await plan_rows(session, rows, scope=hn)
        whole = await plan_rows(session, rows[:3])  # a root admin: no scope
    assert plan.problems == [
        "dòng 5: đơn vị cấp trên «HP» không thuộc phạm vi đồng chí quản lý",
        "dòng 6: đơn vị «HP.CH» đã có và không thuộc phạm vi đồng chí quản lý",
        "dòng 7: «HN» là đơn vị gốc trong phạm vi của đồng chí; tên, cấp và đơn vị cấp trên "
        "của đơn vị này do quản trị cấp trên sửa",
        "dòng 8: cần mã đơn vị cấp trên (cột parent_code) thuộc phạm vi đồng chí quản lý",
    ]
    assert whole.problems == []
    assert [r.code for r in whole.created] == ["HN.NEW"]
    assert [(u.row.code, u.name) for u in whole.updated] == [("HN.SS", "Đảng ủy xã Sóc Sơn")]
    assert whole.unchanged == 1
    assert "HN.NEW" not in await units(engine)  # planning wrote nothing
    async with make_session_factory(engine)() as session:
        with pytest.raises(UnitImportError):
            await apply_rows(session, rows, utcnow(), scope=hn)
        hn = await unit_by_code(session, "HN")
        assert hn is not None
        assert await apply_rows(session, rows[:3], utcnow(), scope=hn) == (1, 1)
        await session.commit()
    stored = await units(engine)
    assert stored["HN.NEW"].path.startswith(stored["HN.BD"].path)


async def test_child_counts_on_both_databases(db_url: str, tmp_path: Path) -> None:
    """One level of the tree with its counts (the console's «Đơn vị»), from the paths."""
    engine = create_engine(db_url)
    try:
        await import_file(engine, write(tmp_path, GOOD + "KHAC,Đơn vị gốc khác,trung_uong,\n"))
        async with make_session_factory(engine)() as session:
            tw = await unit_by_code(session, "TW")
            hn = await unit_by_code(session, "HN")
            assert tw is not None and hn is not None and hn.id is not None
            session.add(Person(name="Cán bộ", unit_id=hn.id, role="official"))
            session.add(Person(name="Đã nghỉ", unit_id=hn.id, role="official", active=False))
            await session.commit()
            rows, total = await child_counts(session, tw, limit=10)
            counts = [(r.unit.code, r.children, r.below, r.people) for r in rows]
            assert (counts, total) == ([("HN", 2, 3, 1), ("HP", 1, 1, 0)], 2)
            first, total = await child_counts(session, tw, limit=1)
            assert [r.unit.code for r in first] == ["HN"] and total == 2
            roots, total = await child_counts(session, None, limit=10)
            assert [(r.unit.code, r.below, r.people) for r in roots] == [
                ("TW", 6, 1),
                ("KHAC", 0, 0),
            ]
            assert await subtree_counts(session, hn) == (3, 1)
            leaf = await unit_by_code(session, "HN.SS")
            assert leaf is not None
            assert await child_counts(session, leaf, limit=10) == ([], 0)
    finally:
        await engine.dispose()
