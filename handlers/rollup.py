"""Progress rolled up a subtree of the hierarchy: per task, counts by level and status, the
late units, and completion per child unit (for the chart). One grouped query per task."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple

from sqlalchemy import and_, func, literal, or_
from sqlalchemy import select as select_columns
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage.models import Person, ProgressStatus, Task, Unit
from handlers.formatting import vn_date, vn_datetime, vn_number
from handlers.tasks import applicable_tasks
from handlers.units import LEVEL_NAMES, PATH_DIGITS, path_range

__all__ = [
    "ChildProgress",
    "LateUnit",
    "LevelCounts",
    "Rollup",
    "TaskRollup",
    "UnitReport",
    "all_late_units",
    "children_text",
    "compute",
    "render_text",
    "to_json",
    "unit_rows",
]

STATES = ("done", "doing", "stuck", "none")
LATE_SHOWN = 10


@dataclass
class LevelCounts:
    level: str
    done: int = 0
    doing: int = 0
    stuck: int = 0
    none: int = 0  # no report
    late: int = 0

    @property
    def applicable(self) -> int:
        return self.done + self.doing + self.stuck + self.none


class LateUnit(NamedTuple):
    """A unit that has not done a task past its deadline, with its last report (none yet:
    ``status`` and ``reported_at`` are None)."""

    id: int
    code: str
    name: str
    level: str
    status: str | None  # doing, stuck
    reported_at: datetime | None


@dataclass
class TaskRollup:
    task: Task
    levels: dict[str, LevelCounts]
    overdue: bool
    late_units: list[LateUnit] = field(default_factory=list)

    @property
    def total(self) -> LevelCounts:
        total = LevelCounts("all")
        for counts in self.levels.values():
            for name in (*STATES, "late"):
                setattr(total, name, getattr(total, name) + getattr(counts, name))
        return total


@dataclass
class ChildProgress:
    unit: Unit
    applicable: int = 0
    done: int = 0

    @property
    def share(self) -> float:
        return self.done / self.applicable if self.applicable else 0.0


@dataclass
class Rollup:
    root: Unit
    today: date
    tasks: list[TaskRollup]
    children: list[ChildProgress]


async def compute(session: AsyncSession, root: Unit, today: date) -> Rollup:
    low, high = path_range(root)
    kids = {
        unit.path: ChildProgress(unit)
        for unit in (await session.exec(select(Unit).where(Unit.parent_id == root.id))).all()
    }
    results: list[TaskRollup] = []
    for task in await applicable_tasks(session):
        if not task.levels:
            continue
        child_key = func.substr(col(Unit.path), 1, len(root.path) + PATH_DIGITS)
        state = func.coalesce(col(ProgressStatus.status), literal("none"))
        statement = (
            select(col(Unit.level), state, child_key, func.count())
            .select_from(Unit)
            .outerjoin(
                ProgressStatus,
                _status_join(task),
            )
            .where(col(Unit.path) >= low, col(Unit.path) < high, col(Unit.level).in_(task.levels))
            .group_by(col(Unit.level), state, child_key)
        )
        overdue = task.due < today
        levels: dict[str, LevelCounts] = {}
        for level, status, key, count in (await session.exec(statement)).all():
            counts = levels.setdefault(level, LevelCounts(level))
            status = status if status in STATES else "none"
            setattr(counts, status, getattr(counts, status) + count)
            if overdue and status != "done":
                counts.late += count
            child = kids.get(key)
            if child is not None:
                child.applicable += count
                child.done += count if status == "done" else 0
        ordered = {lv: levels[lv] for lv in LEVEL_NAMES if lv in levels}
        rollup = TaskRollup(task, ordered, overdue)
        if overdue and any(c.late for c in ordered.values()):
            rollup.late_units = await _late_units(session, task, low, high, LATE_SHOWN)
        results.append(rollup)
    children = sorted(kids.values(), key=lambda c: c.unit.name)
    return Rollup(root, today, results, children)


def _status_join(task: Task) -> Any:
    """The unit's status row for ``task`` (absent: no report yet)."""
    return and_(col(ProgressStatus.unit_id) == col(Unit.id), col(ProgressStatus.task_id) == task.id)


def _not_done() -> Any:
    return or_(col(ProgressStatus.status).is_(None), col(ProgressStatus.status) != "done")


async def _late_units(
    session: AsyncSession, task: Task, low: str, high: str, limit: int | None
) -> list[LateUnit]:
    # sqlmodel's select() and exec() are typed for up to four columns
    statement: Any = (
        select_columns(
            col(Unit.id),
            col(Unit.code),
            col(Unit.name),
            col(Unit.level),
            col(ProgressStatus.status),
            col(ProgressStatus.updated_at),
        )
        .select_from(Unit)
        .outerjoin(
            ProgressStatus,
            _status_join(task),
        )
        .where(
            col(Unit.path) >= low,
            col(Unit.path) < high,
            col(Unit.level).in_(task.levels),
            _not_done(),
        )
        .order_by(col(Unit.path))
    )
    if limit is not None:
        statement = statement.limit(limit)
    return [LateUnit(*row) for row in (await session.exec(statement)).all()]


# --------------------------------------------------------------------------- presentation


def _percent(part: int, whole: int) -> str:
    return f"{round(100 * part / whole)}%" if whole else "—"


def render_text(rollup: Rollup, as_of: datetime) -> str:
    """The /tiendo text (also `troly report` in the terminal)."""
    lines = [f"TIẾN ĐỘ: {rollup.root.name}", f"Cập nhật lúc {vn_datetime(as_of)}"]
    if not rollup.tasks:
        lines.append("\nChưa có nhiệm vụ nào.")
    for number, item in enumerate(rollup.tasks, start=1):
        task = item.task
        due = f"hạn {vn_date(task.due)}" + (" — đã quá hạn" if item.overdue else "")
        lines.append(f"\n{number}. {task.title} ({due})")
        if not item.levels:
            lines.append("   Không có đơn vị nào thuộc cấp áp dụng trong phạm vi này.")
            continue
        for level, counts in item.levels.items():
            lines.append(
                f"   • {LEVEL_NAMES.get(level, level)}: {_level_line(counts, item.overdue)}"
            )
        late = item.total.late
        if item.late_units:
            names = ", ".join(unit.name for unit in item.late_units)
            more = late - len(item.late_units)
            lines.append(
                f"   Đơn vị quá hạn: {names}"
                + (f" và {vn_number(more)} đơn vị khác" if more > 0 else "")
            )
    return "\n".join(lines)


def _level_line(counts: LevelCounts, overdue: bool) -> str:
    """«1/3 hoàn thành (33%); 2 chưa hoàn thành, đã quá hạn (1 đang thực hiện, 1 chưa báo
    cáo)»: the units not done are one group, split by state; "late" is that group once the
    deadline has passed, not a further count."""
    line = (
        f"{vn_number(counts.done)}/{vn_number(counts.applicable)} hoàn thành "
        f"({_percent(counts.done, counts.applicable)})"
    )
    rest = counts.applicable - counts.done
    if not rest:
        return line + "."
    states = [
        f"{vn_number(n)} {name}"
        for n, name in (
            (counts.doing, "đang thực hiện"),
            (counts.stuck, "gặp vướng mắc"),
            (counts.none, "chưa báo cáo"),
        )
        if n
    ]
    late = ", đã quá hạn" if overdue else ""
    return f"{line}; {vn_number(rest)} chưa hoàn thành{late} ({', '.join(states)})."


def children_text(rollup: Rollup, limit: int = 40) -> str:
    """Completion per child unit, lowest first: the chart as text, for channels that cannot
    show pictures."""
    children = sorted((c for c in rollup.children if c.applicable), key=lambda c: c.share)
    if not children:
        return "Chưa có đơn vị trực thuộc nào thuộc cấp áp dụng."
    lines = [f"Tỷ lệ hoàn thành theo đơn vị trực thuộc — {rollup.root.name} (thấp nhất trước):"]
    lines.extend(
        f"{n}. {c.unit.name}: {_percent(c.done, c.applicable)} "
        f"({vn_number(c.done)}/{vn_number(c.applicable)})"
        for n, c in enumerate(children[:limit], start=1)
    )
    if len(children) > limit:
        lines.append(f"… và {vn_number(len(children) - limit)} đơn vị khác.")
    return "\n".join(lines)


def to_json(rollup: Rollup, late_units: dict[int, list[LateUnit]]) -> dict[str, Any]:
    """Machine-readable roll-up: per task, counts by status and level, and the late units."""
    tasks = []
    for item in rollup.tasks:
        task = item.task
        tasks.append(
            {
                "code": task.code,
                "title": task.title,
                "due": task.due.isoformat(),
                "overdue": item.overdue,
                "citation": task.citation,
                "counts": _counts(item.total),
                "levels": {level: _counts(c) for level, c in item.levels.items()},
                "late_units": [
                    {
                        "code": unit.code,
                        "name": unit.name,
                        "level": unit.level,
                        "status": unit.status or "none",
                        "reported_at": unit.reported_at.isoformat() if unit.reported_at else None,
                    }
                    for unit in late_units.get(task.id or 0, [])
                ],
            }
        )
    return {
        "unit": {"code": rollup.root.code, "name": rollup.root.name, "level": rollup.root.level},
        "as_of": rollup.today.isoformat(),
        "tasks": tasks,
        "children": [
            {"code": c.unit.code, "name": c.unit.name, "applicable": c.applicable, "done": c.done}
            for c in rollup.children
        ],
    }


def _counts(counts: LevelCounts) -> dict[str, int]:
    return {
        "applicable": counts.applicable,
        "done": counts.done,
        "doing": counts.doing,
        "stuck": counts.stuck,
        "no_report": counts.none,
        "late": counts.late,
    }


async def all_late_units(session: AsyncSession, rollup: Rollup) -> dict[int, list[LateUnit]]:
    low, high = path_range(rollup.root)
    return {
        item.task.id or 0: await _late_units(session, item.task, low, high, None)
        for item in rollup.tasks
        if item.overdue
    }


class UnitReport(NamedTuple):
    """One unit's line in a report: the unit, its status on a task (None: no report)."""

    code: str
    name: str
    level: str
    status: str | None
    done_on: date | None
    note: str | None
    channel: str | None
    updated_at: datetime | None
    reporter: str | None


async def unit_rows(session: AsyncSession, root: Unit, task: Task) -> list[UnitReport]:
    """Every unit of the subtree the task applies to, with its status and reporter's name.
    Columns, not ORM objects: a report of the whole country lists tens of thousands."""
    low, high = path_range(root)
    # sqlmodel's select() and exec() are typed for up to four columns
    statement: Any = (
        select_columns(
            col(Unit.code),
            col(Unit.name),
            col(Unit.level),
            col(ProgressStatus.status),
            col(ProgressStatus.done_on),
            col(ProgressStatus.note),
            col(ProgressStatus.channel),
            col(ProgressStatus.updated_at),
            col(Person.name).label("reporter"),
        )
        .select_from(Unit)
        .outerjoin(ProgressStatus, _status_join(task))
        .outerjoin(Person, col(Person.id) == col(ProgressStatus.person_id))
        .where(col(Unit.path) >= low, col(Unit.path) < high, col(Unit.level).in_(task.levels))
        .order_by(col(Unit.path))
    )
    return [UnitReport(*row) for row in (await session.exec(statement)).all()]
