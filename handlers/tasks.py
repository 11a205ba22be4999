"""Tasks with deadlines: the knowledge base's structured deadlines (one source of truth, each
citing its clause) plus tasks of later directives from data files (``TASKS_DIR``).

A tasks file may also arrive as bytes (the console's «Nhiệm vụ» page): :func:`plan_task_file`
checks it with the same parser as the files of ``TASKS_DIR`` and against every other task
(a code the knowledge base or another file defines is refused, or the assistant would refuse to
start), and :func:`apply_task_file` writes it into ``TASKS_DIR`` and synchronises the tasks as
start-up and ``troly tasks list`` do.
"""

from __future__ import annotations

import os
import re
import secrets
import tempfile
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path, PurePath
from urllib.parse import unquote

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage.models import Task
from handlers.audit import Actor, record
from knowledge import Knowledge, KnowledgeError, Problem
from knowledge.base import Deadline, parse_deadlines
from knowledge.yamlfile import LineDict, LineList, YamlError, load_yaml

__all__ = [
    "KNOWLEDGE_ORIGIN",
    "TaskChange",
    "TaskFilePlan",
    "TaskSpec",
    "applicable_tasks",
    "apply_task_file",
    "load_task_specs",
    "plan_task_file",
    "short_title",
    "sync_task_definitions",
    "sync_tasks",
    "task_file_name",
]

KNOWLEDGE_ORIGIN = "knowledge"  # Task.origin of the knowledge base's deadlines


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
    return _load_specs(knowledge, tasks_dir)


def _spec(deadline: Deadline, origin: str) -> TaskSpec:
    d = deadline
    entry = d.entry if origin == KNOWLEDGE_ORIGIN else None
    return TaskSpec(d.id, d.what, d.levels, d.due, d.due_text, d.citation, entry, origin)


def _load_specs(
    knowledge: Knowledge, tasks_dir: Path | None, skip: Path | None = None
) -> tuple[list[TaskSpec], list[Problem]]:
    """:func:`load_task_specs`, leaving out the file ``skip`` (one about to be replaced)."""
    specs = [_spec(d, KNOWLEDGE_ORIGIN) for d in knowledge.base.deadlines.values()]
    problems: list[Problem] = []
    if tasks_dir is not None:
        if not tasks_dir.is_dir():
            problems.append(Problem(tasks_dir, 0, "không tìm thấy thư mục nhiệm vụ (TASKS_DIR)"))
        else:
            for path in sorted(tasks_dir.rglob("*.yaml")):
                if skip is not None and path == skip:
                    continue
                deadlines, found = parse_deadlines(path, knowledge.base.sources)
                problems.extend(found)
                specs.extend(_spec(d, path.name) for d in deadlines)
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
        values = _values(spec)
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


async def sync_task_definitions(
    session: AsyncSession, knowledge: Knowledge, tasks_dir: Path | None
) -> tuple[int, int, int]:
    """Tasks from the knowledge base's deadlines and TASKS_DIR, stored (refusing bad files).
    Start-up, ``troly tasks list`` and the console's import all run this."""
    specs, problems = load_task_specs(knowledge, tasks_dir)
    if problems:
        raise KnowledgeError(problems)
    return await sync_tasks(session, specs)


# --------------------------------------------------------------------------- a new tasks file

_UNSAFE = re.compile(r"[^a-z0-9._-]+")


def task_file_name(value: object) -> str:
    """The name an uploaded tasks file gets in TASKS_DIR: its own name without folders,
    lower-case ASCII letters, digits, ``.``, ``_`` and ``-`` (Vietnamese letters lose their
    marks), never hidden, always ``.yaml`` (TASKS_DIR is read as ``*.yaml``). A name sent
    percent-encoded (aiohttp's client does so) is decoded first."""
    name = PurePath(unquote(str(value or "")).replace("\\", "/")).name
    stem = name.rsplit(".", 1)[0] if name.lower().endswith((".yaml", ".yml")) else name
    ascii_stem = (
        unicodedata.normalize("NFKD", stem.replace("đ", "d").replace("Đ", "D"))
        .encode("ascii", "ignore")
        .decode("ascii")
        .lower()
    )
    clean = _UNSAFE.sub("-", ascii_stem).strip(".-_")[:80].strip(".-_")
    return f"{clean or 'nhiem-vu'}.yaml"


@dataclass(frozen=True, slots=True)
class TaskChange:
    """A task the file defines that is stored already with other values."""

    spec: TaskSpec
    before: Task
    fields: tuple[str, ...]  # Task attributes that change


@dataclass
class TaskFilePlan:
    """What storing a tasks file would do; nothing is written while planning."""

    name: str  # its file name in TASKS_DIR
    specs: list[TaskSpec] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    added: list[TaskSpec] = field(default_factory=list)
    changed: list[TaskChange] = field(default_factory=list)
    unchanged: int = 0
    stopped: list[Task] = field(default_factory=list)  # tracked from the replaced file, not now
    replaces: bool = False  # a file of that name is in TASKS_DIR already


def _deadline_lines(path: Path) -> dict[str, int]:
    """Line of each deadline id in a (well-formed) tasks file."""
    try:
        document = load_yaml(path)
    except YamlError:
        return {}
    items = document.get("deadlines") if isinstance(document, LineDict) else None
    if not isinstance(items, LineList):
        return {}
    lines: dict[str, int] = {}
    for index, item in enumerate(items):
        if isinstance(item, LineDict) and isinstance(item.get("id"), str):
            lines.setdefault(item["id"], items.line_of(index))
    return lines


def _read_task_bytes(
    knowledge: Knowledge, name: str, data: bytes
) -> tuple[list[TaskSpec], list[Problem], dict[str, int]]:
    """A tasks file given as bytes, read exactly as a file of TASKS_DIR; problems name
    ``name`` (not the temporary copy)."""
    with tempfile.TemporaryDirectory(prefix="troly-tasks-") as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        deadlines, found = parse_deadlines(path, knowledge.base.sources)
        lines = _deadline_lines(path)
    problems = [Problem(Path(name), p.line, p.message) for p in found]
    return [_spec(d, name) for d in deadlines], problems, lines


def _values(spec: TaskSpec) -> dict[str, object]:
    return {
        "title": spec.title,
        "levels": list(spec.levels),
        "due": spec.due,
        "due_text": spec.due_text,
        "citation": spec.citation,
        "entry_id": spec.entry_id,
        "origin": spec.origin,
        "active": True,
    }


async def plan_task_file(
    session: AsyncSession,
    knowledge: Knowledge,
    tasks_dir: Path | None,
    filename: str,
    data: bytes,
) -> TaskFilePlan:
    """Check an uploaded tasks file as TASKS_DIR's files are checked, and against every other
    task definition; what storing it would add, change or stop tracking."""
    name = task_file_name(filename)
    plan = TaskFilePlan(name)
    if tasks_dir is None:
        plan.problems.append(
            Problem(Path(name), 0, "chưa cấu hình thư mục nhiệm vụ (biến môi trường TASKS_DIR)")
        )
        return plan
    target = tasks_dir / name
    plan.replaces = target.is_file()
    specs, problems, lines = _read_task_bytes(knowledge, name, data)
    plan.specs = specs
    plan.problems.extend(problems)
    if not specs and not problems:
        plan.problems.append(Problem(Path(name), 1, "tệp không có nhiệm vụ nào (phần 'deadlines')"))
    others, other_problems = _load_specs(knowledge, tasks_dir, skip=target)
    plan.problems.extend(other_problems)
    origins = {spec.code: spec.origin for spec in others}
    for spec in specs:
        origin = origins.get(spec.code)
        if origin is not None:
            where = "cơ sở tri thức" if origin == KNOWLEDGE_ORIGIN else f"tệp {origin}"
            plan.problems.append(
                Problem(
                    Path(name),
                    lines.get(spec.code, 0),
                    f"mã nhiệm vụ {spec.code!r} đã có trong {where}; đồng chí đặt mã khác",
                )
            )
    if plan.problems:
        return plan
    stored = {t.code: t for t in (await session.exec(select(Task))).all()}
    for spec in specs:
        task = stored.get(spec.code)
        if task is None:
            plan.added.append(spec)
            continue
        changed = tuple(k for k, v in _values(spec).items() if getattr(task, k) != v)
        if changed:
            plan.changed.append(TaskChange(spec, task, changed))
        else:
            plan.unchanged += 1
    codes = {spec.code for spec in specs}
    plan.stopped = sorted(
        (t for t in stored.values() if t.origin == name and t.active and t.code not in codes),
        key=lambda t: t.code,
    )
    return plan


def _write_atomically(target: Path, data: bytes) -> None:
    """The whole file or nothing: a hidden temporary file (not ``*.yaml``, so never read as
    tasks) in the same folder, then renamed over the target."""
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        with temporary.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


async def apply_task_file(
    session: AsyncSession,
    knowledge: Knowledge,
    tasks_dir: Path | None,
    filename: str,
    data: bytes,
    *,
    actor: Actor,
    now: datetime,
) -> tuple[TaskFilePlan, tuple[int, int, int]]:
    """Plan again, write the file into TASKS_DIR and synchronise every task definition (as
    start-up does), with an audit entry. Raises :class:`KnowledgeError` with the problems
    (nothing written). The caller commits; the file is in place already."""
    plan = await plan_task_file(session, knowledge, tasks_dir, filename, data)
    if plan.problems or tasks_dir is None:
        raise KnowledgeError(plan.problems)
    target = tasks_dir / plan.name
    previous = target.read_bytes() if plan.replaces else None
    _write_atomically(target, data)
    try:
        counts = await sync_task_definitions(session, knowledge, tasks_dir)
    except BaseException:
        # Another file changed meanwhile: leave TASKS_DIR as it was, or start-up would refuse.
        if previous is None:
            target.unlink(missing_ok=True)
        else:
            _write_atomically(target, previous)
        raise
    created, updated, deactivated = counts
    record(
        session,
        actor,
        "tasks.import",
        f"Nhập tệp nhiệm vụ {plan.name}: {len(plan.specs)} nhiệm vụ "
        f"(thêm {created}, cập nhật {updated}, ngừng theo dõi {deactivated})",
        now=now,
        details={
            "file": plan.name,
            "codes": [spec.code for spec in plan.specs],
            "created": created,
            "updated": updated,
            "deactivated": deactivated,
        },
    )
    return plan, counts
