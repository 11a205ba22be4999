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
from pathlib import Path

from rapidfuzz import process
from sqlalchemy import bindparam, func, insert, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage.models import Unit
from handlers.audit import Actor, record
from handlers.context import UserError
from handlers.formatting import vn_number
from knowledge import LEVELS
from knowledge.normalize import fold, nfc

__all__ = [
    "LEVEL_NAMES",
    "PATH_DIGITS",
    "UnitImportError",
    "UnitRow",
    "apply_rows",
    "children",
    "in_subtree",
    "path_range",
    "read_rows",
    "recompute_paths",
    "require_unit",
    "search_key",
    "search_units",
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
    """The file is rejected as a whole; ``problems`` are ``row N: ...`` lines."""

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


# --------------------------------------------------------------------------- reading


def read_rows(path: Path) -> list[UnitRow]:
    """Read a CSV (UTF-8) or XLSX file with columns code,name,level,parent_code.

    Everything is read as text: a cell holding a formula keeps the formula's text.
    """
    suffix = path.suffix.lower()
    if suffix in {".xlsx", ".xlsm"}:
        table = _xlsx_table(path)
    elif suffix in {".csv", ".txt"}:
        table = _csv_table(path)
    else:
        raise UnitImportError([f"{path.name}: expected a .csv or .xlsx file"])
    if not table:
        raise UnitImportError(["row 1: the file is empty (expected a header row)"])
    header = [nfc(cell).strip().lower() for cell in table[0]]
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise UnitImportError(
            [f"row 1: missing column(s) {', '.join(missing)} (expected {','.join(COLUMNS)})"]
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


def _csv_table(path: Path) -> list[list[str]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UnitImportError(
            [f"row {line}: not UTF-8 text (save the file as CSV UTF-8)"]
        ) from None
    sample = text[:4096]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    return [list(row) for row in csv.reader(io.StringIO(text), dialect)]


def _xlsx_table(path: Path) -> list[list[str]]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=False)
    except Exception as exc:
        raise UnitImportError([f"{path.name}: not a readable XLSX workbook ({exc})"]) from None
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
        if not row.code:
            problems.append(f"row {row.row}: the code is empty")
            continue
        if not CODE_RE.match(row.code):
            problems.append(
                f"row {row.row}: code {row.code!r} must be 1-64 letters, digits, '.', '_' or '-'"
            )
        key = row.code.upper()  # codes are typed in any case: they must differ in letters
        if key in seen:
            problems.append(
                f"row {row.row}: duplicate code {row.code!r} (first on row {seen[key]})"
            )
            continue
        seen[key] = row.row
        stored = stored_upper.get(key)
        if stored is not None and stored != row.code:
            problems.append(
                f"row {row.row}: code {row.code!r} differs only in case from the existing unit "
                f"{stored!r} (write it as {stored!r})"
            )
        if not row.name:
            problems.append(f"row {row.row}: the name is empty")
        elif len(row.name) > MAX_NAME:
            problems.append(f"row {row.row}: the name is longer than {MAX_NAME} characters")
        if row.level not in LEVELS:
            problems.append(
                f"row {row.row}: unknown level {row.level!r} (levels: {', '.join(LEVELS)})"
            )
        if row.parent_code == row.code:
            problems.append(f"row {row.row}: a unit cannot be its own parent")
        elif row.parent_code and row.parent_code not in existing and row.parent_code not in in_file:
            problems.append(f"row {row.row}: unknown parent_code {row.parent_code!r}")
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
                f"row {row.row}: the parents form a cycle: {' -> '.join([*cycle, current])}"
            )
    return problems


# --------------------------------------------------------------------------- storing


async def apply_rows(
    session: AsyncSession, rows: Sequence[UnitRow], now: datetime, *, actor: Actor | None = None
) -> tuple[int, int]:
    """Validate and store the file's units, all or nothing; return (created, updated).
    With ``actor``, the import is written to the audit log in the same transaction.

    Re-importing updates names, levels and parents; nothing is deleted, so reports and
    history keep their units. Raises :class:`UnitImportError` when any row is bad.
    Statements are issued in bulk: a national tree (tens of thousands of rows) is seconds.
    """
    result = await session.exec(select(Unit))
    stored = {u.code: (u.id, u.name, u.level, u.parent_id) for u in result.all()}
    code_of = {uid: code for code, (uid, _, _, _) in stored.items()}
    existing = {
        code: code_of.get(parent) if parent else None for code, (_, _, _, parent) in stored.items()
    }
    problems = validate_rows(rows, existing)
    if problems:
        raise UnitImportError(problems)
    new = [row for row in rows if row.code not in stored]
    if new:
        await session.exec(
            insert(Unit),
            params=[
                {"code": r.code, "name": r.name, "level": r.level, "path": "", "depth": 0,
                 "search_key": search_key(r.name, r.code), "created_at": now, "updated_at": now}
                for r in new
            ],
        )  # fmt: skip
    ids = {code: uid for uid, code in (await session.exec(select(Unit.id, Unit.code))).all()}
    changes: list[dict[str, object]] = []
    updated = 0
    for row in rows:
        parent_id = ids[row.parent_code] if row.parent_code else None
        before = stored.get(row.code)
        if before is not None and before[1:] == (row.name, row.level, parent_id):
            continue
        if before is not None:
            updated += 1
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
    if actor is not None:
        record(
            session,
            actor,
            "units.import",
            f"Nhập danh sách {vn_number(len(rows))} đơn vị: thêm mới {vn_number(len(new))}, "
            f"cập nhật {vn_number(updated)}, "
            f"giữ nguyên {vn_number(len(rows) - len(new) - updated)}.",
            now=now,
            details={"rows": len(rows), "created": len(new), "updated": updated},
        )
    return len(new), updated


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
