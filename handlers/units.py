"""The party hierarchy: units imported from CSV/XLSX, kept as a tree with materialised paths.

A unit's ``path`` is the chain of ids from its root, each zero-padded to ``PATH_DIGITS``
characters, so the subtree of a unit is the range of paths that start with its own path
(an index range on both SQLite and PostgreSQL).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePath

from rapidfuzz import process
from sqlalchemy import bindparam, func, insert, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage.models import Person, Unit
from handlers.audit import Actor, record
from handlers.context import UserError
from handlers.formatting import vn_number
from knowledge import LEVELS
from knowledge.normalize import fold, nfc

__all__ = [
    "LEVEL_NAMES",
    "PATH_DIGITS",
    "ChildCounts",
    "ImportPlan",
    "UnitImportError",
    "UnitRow",
    "UpdatedRow",
    "apply_rows",
    "child_counts",
    "children",
    "import_summary",
    "in_subtree",
    "path_range",
    "plan_rows",
    "read_data",
    "read_rows",
    "recompute_paths",
    "require_unit",
    "search_key",
    "search_units",
    "subtree_counts",
    "unit_by_code",
    "unit_code_argument",
    "validate_rows",
]

PATH_DIGITS = 8
COLUMNS = ("code", "name", "level", "parent_code")
CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_NAME = 300

LEVEL_NAMES = {
    "trung_uong": "Trung ương",
    "truc_thuoc_tw": "Trực thuộc Trung ương",
    "cap_tren_co_so": "Cấp trên trực tiếp cơ sở",
    "xa": "Cấp xã",
    "co_so": "Cơ sở",
}
assert tuple(LEVEL_NAMES) == LEVELS


class UnitImportError(Exception):
    """The file is rejected as a whole; ``problems`` are ``dòng N: …`` lines (Vietnamese)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class UnitRow:
    row: int  # the row number in the file (the header is row 1)
    code: str
    name: str
    level: str
    parent_code: str


@dataclass(frozen=True, slots=True)
class UpdatedRow:
    """A row that changes a stored unit, with what the unit holds now."""

    row: UnitRow
    name: str
    level: str
    parent_code: str  # "" for a root


@dataclass(frozen=True, slots=True)
class ImportPlan:
    """What importing the rows would do, computed without writing anything.

    ``problems`` (``dòng N: …``, in row order) make the whole file rejected; without them
    ``created`` are added and ``updated`` changed, the ``unchanged`` rows are left alone.
    """

    rows: list[UnitRow]
    created: list[UnitRow]
    updated: list[UpdatedRow]
    unchanged: int
    problems: list[str]


@dataclass(frozen=True, slots=True)
class _Stored:
    id: int
    name: str
    level: str
    parent_id: int | None
    path: str


# --------------------------------------------------------------------------- reading


def read_rows(path: Path) -> list[UnitRow]:
    """Read a CSV (UTF-8) or XLSX file with columns code,name,level,parent_code."""
    return read_data(path.read_bytes(), path.name)


def read_data(data: bytes, filename: str) -> list[UnitRow]:
    """Read the bytes of a CSV (UTF-8) or XLSX file, its kind told by ``filename``'s suffix.

    Everything is read as text: a cell holding a formula keeps the formula's text.
    """
    suffix = PurePath(filename).suffix.lower()
    if suffix in {".xlsx", ".xlsm"}:
        table = _xlsx_table(data, filename)
    elif suffix in {".csv", ".txt"}:
        table = _csv_table(data)
    else:
        raise UnitImportError([f"tệp {filename}: chỉ nhận tệp .csv (UTF-8) hoặc .xlsx"])
    if not table:
        raise UnitImportError(
            [f"dòng 1: tệp trống (cần dòng tiêu đề với các cột {','.join(COLUMNS)})"]
        )
    header = [nfc(cell).strip().lower() for cell in table[0]]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise UnitImportError(
            [f"dòng 1: thiếu cột {', '.join(missing)} (cần các cột {','.join(COLUMNS)})"]
        )
    index = {name: header.index(name) for name in COLUMNS}
    rows: list[UnitRow] = []
    for number, cells in enumerate(table[1:], start=2):
        if not any(cell.strip() for cell in cells):
            continue  # blank line

        def cell(name: str, cells: list[str] = cells) -> str:
            position = index[name]
            return nfc(cells[position]).strip() if position < len(cells) else ""

        rows.append(
            UnitRow(number, cell("code"), cell("name"), cell("level").lower(), cell("parent_code"))
        )
    return rows


def _csv_table(raw: bytes) -> list[list[str]]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UnitImportError(
            [f"dòng {line}: không phải văn bản UTF-8 (lưu tệp dạng «CSV UTF-8»)"]
        ) from None
    sample = text[:4096]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    try:
        return [list(row) for row in csv.reader(io.StringIO(text), dialect)]
    except csv.Error as exc:  # e.g. a NUL byte: not a text file saved as CSV
        raise UnitImportError([f"tệp CSV không đọc được ({exc})"]) from None


def _xlsx_table(data: bytes, filename: str) -> list[list[str]]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=False)
    except Exception:
        raise UnitImportError(
            [f"tệp {filename}: không phải bảng tính XLSX đọc được (lưu lại bằng Excel dạng .xlsx)"]
        ) from None
    try:
        sheet = workbook.worksheets[0]
        return [[_cell_text(value) for value in row] for row in sheet.iter_rows(values_only=True)]
    finally:
        workbook.close()


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a code typed as a number
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


# --------------------------------------------------------------------------- validating


def validate_rows(rows: Sequence[UnitRow], existing: dict[str, str | None]) -> list[str]:
    """Every problem of the file, given the units already stored (code -> parent code)."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    stored_upper = {code.upper(): code for code in existing}
    in_file = {row.code for row in rows}
    for row in rows:
        line = f"dòng {row.row}:"
        if not row.code:
            problems.append(f"{line} thiếu mã đơn vị (cột code)")
            continue
        if not CODE_RE.match(row.code):
            problems.append(
                f"{line} mã «{row.code}» chỉ được gồm 1–64 chữ cái không dấu, chữ số, "
                "dấu chấm, gạch dưới hoặc gạch ngang"
            )
        key = row.code.upper()  # codes are typed in any case: they must differ in letters
        if key in seen:
            problems.append(f"{line} mã «{row.code}» bị trùng (đã có ở dòng {seen[key]})")
            continue
        seen[key] = row.row
        stored = stored_upper.get(key)
        if stored is not None and stored != row.code:
            problems.append(
                f"{line} mã «{row.code}» chỉ khác chữ hoa, chữ thường với đơn vị đã có "
                f"«{stored}» (xin viết đúng là «{stored}»)"
            )
        if not row.name:
            problems.append(f"{line} thiếu tên đơn vị (cột name)")
        elif len(row.name) > MAX_NAME:
            problems.append(f"{line} tên đơn vị dài quá {MAX_NAME} ký tự")
        if row.level not in LEVELS:
            shown = f"«{row.level}»" if row.level else "trống"
            problems.append(f"{line} cấp {shown} không đúng (cột level nhận: {', '.join(LEVELS)})")
        if row.parent_code == row.code:
            problems.append(f"{line} đơn vị không thể là cấp trên của chính nó")
        elif row.parent_code and row.parent_code not in existing and row.parent_code not in in_file:
            problems.append(
                f"{line} không có đơn vị cấp trên mã «{row.parent_code}» (cột parent_code) "
                "trong hệ thống hay trong tệp"
            )
    if problems:
        return problems
    # Cycles, with the file's parents taking precedence over the stored ones.
    parent = dict(existing)
    parent.update({row.code: row.parent_code or None for row in rows})
    reported: set[str] = set()
    for row in rows:
        trail: list[str] = []
        current: str | None = row.code
        while current is not None and current not in trail:
            trail.append(current)
            current = parent.get(current)
        if current is not None and current not in reported:
            cycle = trail[trail.index(current) :]
            reported.update(cycle)
            problems.append(
                f"dòng {row.row}: các đơn vị cấp trên tạo thành vòng lặp: "
                f"{' → '.join([*cycle, current])}"
            )
    return problems


def _scope_problems(
    rows: Sequence[UnitRow], stored: dict[str, _Stored], codes: dict[int, str], scope: Unit
) -> list[str]:
    """A unit admin imports only below their own unit: every stored unit a row touches must
    be in ``scope``'s subtree, its parent too, and ``scope`` itself is left as it is."""
    problems: list[str] = []
    outside = "không thuộc phạm vi đồng chí quản lý"
    for row in rows:
        line = f"dòng {row.row}:"
        if not row.code:
            continue
        before = stored.get(row.code)
        if before is not None and not before.path.startswith(scope.path):
            problems.append(f"{line} đơn vị «{row.code}» đã có và {outside}")
            continue
        if before is not None and before.id == scope.id:
            same_parent = codes.get(before.parent_id) if before.parent_id else ""
            if (before.name, before.level, same_parent) != (row.name, row.level, row.parent_code):
                problems.append(
                    f"{line} «{row.code}» là đơn vị gốc trong phạm vi của đồng chí; tên, cấp và "
                    "đơn vị cấp trên của đơn vị này do quản trị cấp trên sửa"
                )
            continue
        if not row.parent_code:
            problems.append(
                f"{line} cần mã đơn vị cấp trên (cột parent_code) thuộc phạm vi đồng chí quản lý"
            )
            continue
        parent = stored.get(row.parent_code)
        if parent is not None and not parent.path.startswith(scope.path):
            problems.append(f"{line} đơn vị cấp trên «{row.parent_code}» {outside}")
    return problems


def _row_number(problem: str) -> int:
    match = re.match(r"dòng (\d+):", problem)
    return int(match.group(1)) if match else 0


async def _stored_units(session: AsyncSession) -> dict[str, _Stored]:
    # Plain columns, not ORM objects: for a national tree that is ~10x faster.
    names = await session.exec(select(Unit.id, Unit.code, Unit.name, Unit.level))
    links = dict(
        (uid, (parent, path))
        for uid, parent, path in (await session.exec(select(Unit.id, Unit.parent_id, Unit.path)))
    )
    return {
        code: _Stored(uid, name, level, *links[uid])
        for uid, code, name, level in names.all()
        if uid is not None
    }


def _plan(rows: Sequence[UnitRow], stored: dict[str, _Stored], scope: Unit | None) -> ImportPlan:
    codes = {unit.id: code for code, unit in stored.items()}
    existing = {
        code: codes.get(unit.parent_id) if unit.parent_id else None for code, unit in stored.items()
    }
    problems = validate_rows(rows, existing)
    if scope is not None:
        problems += _scope_problems(rows, stored, codes, scope)
    problems.sort(key=_row_number)  # stable: a row's problems keep their order
    created: list[UnitRow] = []
    updated: list[UpdatedRow] = []
    unchanged = 0
    for row in rows:
        before = stored.get(row.code)
        if before is None:
            created.append(row)
            continue
        parent = codes.get(before.parent_id, "") if before.parent_id else ""
        if (before.name, before.level, parent) == (row.name, row.level, row.parent_code):
            unchanged += 1
        else:
            updated.append(UpdatedRow(row, before.name, before.level, parent))
    return ImportPlan(list(rows), created, updated, unchanged, problems)


async def plan_rows(
    session: AsyncSession, rows: Sequence[UnitRow], *, scope: Unit | None = None
) -> ImportPlan:
    """What importing ``rows`` would create, update and leave, and every problem; nothing is
    written. ``scope``: the unit of a unit admin, who imports only below it (None: anywhere)."""
    return _plan(rows, await _stored_units(session), scope)


def import_summary(rows: int, created: int, updated: int, *, planned: bool = False) -> str:
    """``Đã đọc 8 dòng: thêm mới 7 đơn vị, cập nhật 1, giữ nguyên 0.``; ``planned``: the
    same as a preview (``Tệp có 8 dòng: sẽ thêm mới …``). Shared by the CLI and the console."""
    unchanged = rows - created - updated
    head = f"Tệp có {vn_number(rows)} dòng: sẽ" if planned else f"Đã đọc {vn_number(rows)} dòng:"
    return (
        f"{head} thêm mới {vn_number(created)} đơn vị, cập nhật {vn_number(updated)}, "
        f"giữ nguyên {vn_number(unchanged)}."
    )


# --------------------------------------------------------------------------- storing


async def apply_rows(
    session: AsyncSession,
    rows: Sequence[UnitRow],
    now: datetime,
    *,
    scope: Unit | None = None,
    actor: Actor | None = None,
) -> tuple[int, int]:
    """Validate and store the file's units, all or nothing; return (created, updated).
    With ``actor``, the import is written to the audit log in the same transaction.

    Re-importing updates names, levels and parents; nothing is deleted, so reports and
    history keep their units. Raises :class:`UnitImportError` when any row is bad (the
    rules of :func:`plan_rows`, checked again against what is stored now).
    Statements are issued in bulk: a national tree (tens of thousands of rows) is seconds.
    """
    stored = await _stored_units(session)
    plan = _plan(rows, stored, scope)
    if plan.problems:
        raise UnitImportError(plan.problems)
    if plan.created:
        await session.exec(
            insert(Unit),
            params=[
                {"code": r.code, "name": r.name, "level": r.level, "path": "", "depth": 0,
                 "search_key": search_key(r.name, r.code), "created_at": now, "updated_at": now}
                for r in plan.created
            ],
        )  # fmt: skip
    ids = {code: uid for uid, code in (await session.exec(select(Unit.id, Unit.code))).all()}
    changes: list[dict[str, object]] = []
    for row in rows:
        parent_id = ids[row.parent_code] if row.parent_code else None
        before = stored.get(row.code)
        if before is not None and (before.name, before.level, before.parent_id) == (
            row.name,
            row.level,
            parent_id,
        ):
            continue
        changes.append(
            {"uid": ids[row.code], "name": row.name, "level": row.level, "parent_id": parent_id,
             "search_key": search_key(row.name, row.code), "updated_at": now}
        )  # fmt: skip
    if changes:
        statement = (
            update(Unit)
            .where(col(Unit.id) == bindparam("uid"))
            .values(
                name=bindparam("name"),
                level=bindparam("level"),
                parent_id=bindparam("parent_id"),
                search_key=bindparam("search_key"),
                updated_at=bindparam("updated_at"),
            )
        )
        await (await session.connection()).execute(statement, changes)
    await recompute_paths(session)
    created, updated = len(plan.created), len(plan.updated)
    if actor is not None:
        record(
            session,
            actor,
            "units.import",
            f"Nhập danh sách {vn_number(len(rows))} đơn vị: thêm mới {vn_number(created)}, "
            f"cập nhật {vn_number(updated)}, "
            f"giữ nguyên {vn_number(len(rows) - created - updated)}.",
            now=now,
            details={"rows": len(rows), "created": created, "updated": updated},
        )
    return created, updated


async def recompute_paths(session: AsyncSession) -> None:
    """Rebuild every unit's path and depth from the parent links (after moves)."""
    result = await session.exec(select(Unit.id, Unit.parent_id, Unit.path, Unit.depth))
    rows = result.all()
    kids: dict[int | None, list[int]] = {}
    current: dict[int, tuple[str, int]] = {}
    for unit_id, parent_id, path, depth in rows:
        assert unit_id is not None
        kids.setdefault(parent_id, []).append(unit_id)
        current[unit_id] = (path, depth)
    changes: list[dict[str, object]] = []
    stack: list[tuple[int, str, int]] = [(u, "", 0) for u in kids.get(None, [])]
    while stack:
        unit_id, parent_path, depth = stack.pop()
        path = f"{parent_path}{unit_id:0{PATH_DIGITS}d}"
        if current[unit_id] != (path, depth):
            changes.append({"uid": unit_id, "path": path, "depth": depth})
        stack.extend((child, path, depth + 1) for child in kids.get(unit_id, []))
    if changes:
        statement = (
            update(Unit)
            .where(col(Unit.id) == bindparam("uid"))
            .values(path=bindparam("path"), depth=bindparam("depth"))
        )
        connection = await session.connection()
        await connection.execute(statement, changes)


# --------------------------------------------------------------------------- queries


def path_range(unit: Unit) -> tuple[str, str]:
    """``(low, high)``: a unit's subtree is ``low <= path < high``."""
    return unit.path, unit.path + "~"  # '~' sorts after every digit


async def unit_by_code(session: AsyncSession, code: str) -> Unit | None:
    """The unit with this code: the exact code first, else the one code that matches it
    ignoring case (``tng.py`` finds ``TNG.PY``). Two stored codes differing only in case
    (possible in data from before imports refused them) make that ambiguous: a
    :class:`UserError` asks for the exact code."""
    code = code.strip()
    if not code:
        return None
    found = (await session.exec(select(Unit).where(Unit.code == code))).first()
    if found is not None:
        return found
    # Codes are ASCII (CODE_RE): lower() means the same on every database.
    statement = select(Unit).where(func.lower(col(Unit.code)) == code.lower()).limit(3)
    matches = list((await session.exec(statement)).all())
    if len(matches) > 1:
        codes = ", ".join(sorted(u.code for u in matches))
        raise UserError(f"Mã {code} khớp với nhiều đơn vị ({codes}): xin gõ đúng chữ hoa, thường.")
    return matches[0] if matches else None


def unit_code_argument(text: str, usage: str) -> str:
    """The one unit code of a command's arguments ("" when none); extra words are an error
    rather than part of the code."""
    parts = text.split()
    if len(parts) > 1:
        raise UserError(
            f"Mã đơn vị viết liền, không có dấu cách («{parts[0]}»); phần thêm "
            f"«{' '.join(parts[1:])}» không dùng được. Cách dùng: {usage}"
        )
    return parts[0] if parts else ""


async def require_unit(session: AsyncSession, code: str, scope: Unit | None = None) -> Unit:
    """The unit with ``code``, or a :class:`UserError` naming it, with the closest codes
    (within ``scope``'s subtree when given) as suggestions."""
    unit = await unit_by_code(session, code)
    if unit is not None:
        return unit
    statement = select(Unit.code)
    if scope is not None:
        low, high = path_range(scope)
        statement = statement.where(col(Unit.path) >= low, col(Unit.path) < high)
    codes = list((await session.exec(statement)).all())
    close = process.extract(code.upper(), codes, processor=str.upper, limit=3, score_cutoff=70)
    hint = f" Có phải: {', '.join(c for c, _, _ in close)}?" if close else ""
    raise UserError(f"Không tìm thấy đơn vị có mã «{code}».{hint}")


async def children(session: AsyncSession, unit: Unit) -> list[Unit]:
    statement = select(Unit).where(Unit.parent_id == unit.id).order_by(col(Unit.name))
    return list((await session.exec(statement)).all())


def in_subtree(unit: Unit, root: Unit) -> bool:
    return unit.path.startswith(root.path)


def search_key(name: str, code: str) -> str:
    """What a unit is found by: its name and code folded (no diacritics, lower case, single
    spaces), as stored in ``Unit.search_key``."""
    return " ".join(fold(f"{name} {code}").split())[:400]


async def search_units(
    session: AsyncSession, query: str, *, scope: Unit | None, limit: int
) -> list[Unit]:
    """Units of ``scope``'s subtree (``None``: all) whose name or code holds every word of
    ``query``, diacritics and case ignored (``ba dinh`` finds «Ba Đình», ``hn.bd`` the code
    HN.BD): at most ``limit``, the higher levels first. One query on the stored
    ``search_key`` (a scan of the subtree's rows, no unit loaded that does not match)."""
    words = fold(query).split()[:8]
    if not words:
        return []
    statement = select(Unit)
    for word in words:
        pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        statement = statement.where(col(Unit.search_key).like(pattern, escape="\\"))
    if scope is not None:
        low, high = path_range(scope)
        statement = statement.where(col(Unit.path) >= low, col(Unit.path) < high)
    statement = statement.order_by(col(Unit.depth), col(Unit.name), col(Unit.id)).limit(limit)
    return list((await session.exec(statement)).all())


@dataclass(frozen=True, slots=True)
class ChildCounts:
    """A unit of one level of the tree with what lies below it."""

    unit: Unit
    children: int  # units directly below
    below: int  # units below, every level
    people: int  # active people enrolled in the unit and below


async def child_counts(
    session: AsyncSession, parent: Unit | None, *, limit: int
) -> tuple[list[ChildCounts], int]:
    """The first ``limit`` units directly below ``parent`` (None: the roots) by name, each
    with its counts, and how many there are in all. Three grouped queries whatever the
    size of the tree: counts come from the materialised paths, not from walking it."""
    where = Unit.parent_id == (parent.id if parent is not None else None)
    total = (await session.exec(select(func.count()).select_from(Unit).where(where))).one()
    statement = select(Unit).where(where).order_by(col(Unit.name), col(Unit.code)).limit(limit)
    units = list((await session.exec(statement)).all())
    if not units:
        return [], total
    ids = [u.id for u in units]
    direct = dict(
        (
            await session.exec(
                select(Unit.parent_id, func.count())
                .where(col(Unit.parent_id).in_(ids))
                .group_by(col(Unit.parent_id))
            )
        ).all()
    )
    width = len(units[0].path)  # every child's path: the parent's and one more id
    prefix = func.substr(col(Unit.path), 1, width)
    low, high = path_range(parent) if parent is not None else ("", "~")
    in_range = (col(Unit.path) > low, col(Unit.path) < high)
    below = dict(
        (
            await session.exec(
                select(prefix, func.count())
                .where(*in_range, func.length(col(Unit.path)) > width)
                .group_by(prefix)
            )
        ).all()
    )
    people = dict(
        (
            await session.exec(
                select(prefix, func.count())
                .select_from(Person)
                .join(Unit, col(Unit.id) == col(Person.unit_id))
                .where(*in_range, col(Person.active))
                .group_by(prefix)
            )
        ).all()
    )
    return [
        ChildCounts(u, direct.get(u.id, 0), below.get(u.path, 0), people.get(u.path, 0))
        for u in units
    ], total


async def subtree_counts(session: AsyncSession, unit: Unit) -> tuple[int, int]:
    """(units below ``unit``, every level; active people in it and below)."""
    low, high = path_range(unit)
    below = (
        await session.exec(
            select(func.count())
            .select_from(Unit)
            .where(col(Unit.path) > low, col(Unit.path) < high)
        )
    ).one()
    people = (
        await session.exec(
            select(func.count())
            .select_from(Person)
            .join(Unit, col(Unit.id) == col(Person.unit_id))
            .where(col(Unit.path) >= low, col(Unit.path) < high, col(Person.active))
        )
    ).one()
    return below, people
