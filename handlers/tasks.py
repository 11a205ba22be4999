"""Tasks with deadlines: the knowledge base's structured deadlines (one source of truth, each
citing its clause) plus tasks of later directives from data files (``TASKS_DIR``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage.models import Task
from knowledge import Knowledge, Problem
from knowledge.base import parse_deadlines

__all__ = ["TaskSpec", "applicable_tasks", "load_task_specs", "short_title", "sync_tasks"]


@dataclass(frozen=True, slots=True)
class TaskSpec:
    code: str
    title: str
    levels: tuple[str, ...]
    due: date
    due_text: str
    citation: str
    entry_id: str | None
    origin: str


def load_task_specs(
    knowledge: Knowledge, tasks_dir: Path | None = None
) -> tuple[list[TaskSpec], list[Problem]]:
    """All task definitions; problems are ``file:line`` like the knowledge base's."""
    specs = [
        TaskSpec(d.id, d.what, d.levels, d.due, d.due_text, d.citation, d.entry, "knowledge")
        for d in knowledge.base.deadlines.values()
    ]
    problems: list[Problem] = []
    if tasks_dir is not None:
        if not tasks_dir.is_dir():
            problems.append(Problem(tasks_dir, 0, "không tìm thấy thư mục nhiệm vụ (TASKS_DIR)"))
        else:
            for path in sorted(tasks_dir.rglob("*.yaml")):
                deadlines, found = parse_deadlines(path, knowledge.base.sources)
                problems.extend(found)
                specs.extend(
                    TaskSpec(d.id, d.what, d.levels, d.due, d.due_text, d.citation, None, path.name)
                    for d in deadlines
                )
    seen: dict[str, str] = {}
    for spec in specs:
        if spec.code in seen:
            problems.append(
                Problem(
                    Path(spec.origin),
                    0,
                    f"mã nhiệm vụ {spec.code!r} trùng với nhiệm vụ trong {seen[spec.code]}",
                )
            )
        seen[spec.code] = spec.origin
    return specs, problems


async def sync_tasks(session: AsyncSession, specs: Sequence[TaskSpec]) -> tuple[int, int, int]:
    """Upsert tasks by code; deactivate the ones no longer defined (history is kept).
    Returns (created, updated, deactivated)."""
    stored = {t.code: t for t in (await session.exec(select(Task))).all()}
    created = updated = deactivated = 0
    wanted = {spec.code for spec in specs}
    for spec in specs:
        values = {
            "title": spec.title,
            "levels": list(spec.levels),
            "due": spec.due,
            "due_text": spec.due_text,
            "citation": spec.citation,
            "entry_id": spec.entry_id,
            "origin": spec.origin,
            "active": True,
        }
        task = stored.get(spec.code)
        if task is None:
            session.add(Task(code=spec.code, **values))  # type: ignore[arg-type]
            created += 1
        elif any(getattr(task, k) != v for k, v in values.items()):
            for key, value in values.items():
                setattr(task, key, value)
            session.add(task)
            updated += 1
    for code, task in stored.items():
        if code not in wanted and task.active:
            task.active = False
            session.add(task)
            deactivated += 1
    await session.flush()
    return created, updated, deactivated


async def applicable_tasks(session: AsyncSession, level: str | None = None) -> list[Task]:
    """Active tasks, by due date; only those applying to ``level`` when given."""
    statement = select(Task).where(col(Task.active)).order_by(col(Task.due), col(Task.id))
    tasks = list((await session.exec(statement)).all())
    return [t for t in tasks if level is None or level in t.levels]


def short_title(task: Task, limit: int = 60) -> str:
    title = task.title
    return title if len(title) <= limit else title[: limit - 1].rstrip() + "…"
