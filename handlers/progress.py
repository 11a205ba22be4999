"""Confirming progress: ``/baocao`` -> task -> status -> optional note (and, for done, the
date) -> the report shown once more -> saved, with a confirmation repeating what was saved.

Every change is an append-only :class:`ProgressEvent`; the current status is derived (kept in
:class:`ProgressStatus` in the same transaction). A repeated submission (the same button
pressed twice, the same report sent again) creates no second event. The flow lives in the
database (it survives a restart) and expires after inactivity (handled by dispatch).
"""

from __future__ import annotations

import logging
import re
import secrets
from datetime import date, datetime

from rapidfuzz import fuzz
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core import Button, IncomingMessage, Reply
from bot.render import fit_label
from bot.storage.models import ProgressEvent, ProgressStatus, Task, Unit
from handlers.audit import Actor
from handlers.audit import record as audit
from handlers.context import Context, UserError
from handlers.dates import DateError, parse_completion
from handlers.dates import describe as describe_date
from handlers.formatting import channel_name, vn_date, vn_datetime
from handlers.people import Identity, can_manage
from handlers.qa import looks_like_question
from handlers.routing import HandlerResult
from handlers.tasks import applicable_tasks
from handlers.units import LEVEL_NAMES, require_unit, unit_code_argument
from knowledge.normalize import fold

__all__ = [
    "FLOW",
    "PREFIX",
    "STATUS_LABELS",
    "expired_notice",
    "is_progress_statement",
    "nothing_to_report",
    "on_button",
    "on_text",
    "open_tasks_reply",
    "record",
    "start",
    "statement",
]

log = logging.getLogger(__name__)

FLOW = "baocao"
PREFIX = "bc:"
STATUSES = ("done", "doing", "stuck")
STATUS_LABELS = {
    "done": "Đã hoàn thành",
    "doing": "Đang thực hiện",
    "stuck": "Gặp vướng mắc",
}
NO_REPORT = "Chưa báo cáo"
MAX_NOTE = 500

NOT_ENROLLED = (
    "Chức năng báo cáo tiến độ dành cho cán bộ đã được mời tham gia. Đồng chí vui lòng "
    "gửi mã mời do văn phòng cấp ủy cấp (ví dụ: TL-ABCDE-FGHJK) để kích hoạt. "
    "Đồng chí vẫn có thể đặt câu hỏi về các kết luận."
)


# --------------------------------------------------------------------------- recording


async def record(
    session: AsyncSession,
    *,
    unit: Unit,
    task: Task,
    person_id: int | None,
    status: str,
    done_on: date | None,
    note: str | None,
    channel: str,
    key: str,
    now: datetime,
) -> tuple[ProgressEvent, bool]:
    """Append an event (unless this submission or this very status is already recorded)
    and update the current status. Returns (event, whether a new event was created).
    A report replacing one that said «done» is a correction: it goes to the audit log."""
    assert unit.id is not None and task.id is not None
    if status not in STATUSES:
        raise ValueError(f"unknown status {status!r}")
    existing = (
        await session.exec(select(ProgressEvent).where(ProgressEvent.idempotency_key == key))
    ).first()
    if existing is not None:
        return existing, False
    current = await session.get(ProgressStatus, (unit.id, task.id))
    if current is not None and (current.status, current.done_on, current.note) == (
        status,
        done_on,
        note,
    ):
        event = await session.get(ProgressEvent, current.event_id)
        assert event is not None
        return event, False
    event = ProgressEvent(
        unit_id=unit.id,
        task_id=task.id,
        person_id=person_id,
        status=status,
        done_on=done_on,
        note=note,
        channel=channel,
        idempotency_key=key,
        created_at=now,
    )
    session.add(event)
    await session.flush()
    assert event.id is not None
    if current is not None and current.status == "done":
        before = STATUS_LABELS[current.status] + (
            f" ngày {vn_date(current.done_on)}" if current.done_on else ""
        )
        after = STATUS_LABELS[status] + (f" ngày {vn_date(done_on)}" if done_on else "")
        audit(
            session,
            Actor(channel, person_id),
            "report.correct",
            f"Sửa báo cáo nhiệm vụ «{task.title}» của {unit.name} ({unit.code}): "
            f"{before} → {after}.",
            now=now,
            unit_id=unit.id,
            details={"task": task.code, "event": event.id, "replaces": current.event_id},
        )
    if current is None:
        current = ProgressStatus(
            unit_id=unit.id, task_id=task.id, status=status, channel=channel, event_id=event.id
        )
    current.status, current.done_on, current.note = status, done_on, note
    current.person_id, current.channel, current.event_id = person_id, channel, event.id
    current.updated_at = now
    session.add(current)
    await session.flush()
    return event, True


# --------------------------------------------------------------------------- the flow
#
# task -> status -> note (and, for "done", the date) -> review -> saved. Nothing is saved
# before the official presses «Lưu báo cáo» on the review; every message on the way says so.

CANCEL = Button("Hủy", f"{PREFIX}x", command="/huy")
TASK_LABEL = 64  # characters of a task button on Telegram, the deadline included


def _require_identity(ctx: Context) -> Identity:
    if ctx.identity is None:
        raise UserError(NOT_ENROLLED)
    return ctx.identity


def _reset(ctx: Context) -> None:
    conversation = ctx.conversation
    conversation.flow = conversation.step = None
    conversation.data = {}


def _set(ctx: Context, step: str, **data: object) -> None:
    conversation = ctx.conversation
    conversation.flow = FLOW
    conversation.step = step
    conversation.data = {**(conversation.data or {}), **data}


def _nonce(ctx: Context) -> str:
    return str((ctx.conversation.data or {}).get("nonce", ""))


async def _unit_for(ctx: Context, identity: Identity, code: str) -> Unit:
    if not code:
        return identity.unit
    scope = None if identity.role == "admin" else identity.unit
    unit = await require_unit(ctx.session, code, scope)
    if not can_manage(identity, unit):
        log.warning(
            "refused: person %s (%s, unit %s) tried to report for unit %s",
            identity.person.id,
            identity.role,
            identity.unit.code,
            unit.code,
        )
        raise UserError("Đồng chí chỉ được báo cáo cho đơn vị mình phụ trách.")
    return unit


async def start(msg: IncomingMessage, ctx: Context) -> Reply:
    """``/baocao [mã đơn vị]``: the unit's tasks."""
    identity = _require_identity(ctx)
    command = msg.command
    code = unit_code_argument(command[1] if command else "", "/baocao [mã đơn vị]")
    unit = await _unit_for(ctx, identity, code)
    return await _task_menu(ctx, unit)


async def _start_with_task(ctx: Context, identity: Identity, task_id: str) -> Reply:
    unit = identity.unit
    task = await ctx.session.get(Task, int(task_id)) if task_id.isdigit() else None
    if task is None or not task.active or unit.level not in task.levels:
        return await _task_menu(ctx, unit)
    _reset(ctx)
    _set(ctx, "task", unit_id=unit.id, unit_name=unit.name, nonce=secrets.token_hex(6))
    return await _choose_task(ctx, unit, task)


def nothing_to_report(unit: Unit) -> str:
    level = LEVEL_NAMES.get(unit.level, unit.level).lower()
    return (
        f"Hiện chưa có nhiệm vụ nào cần báo cáo qua trợ lý cho {level} ({unit.name}). "
        "Đồng chí vẫn có thể hỏi về các kết luận (gõ câu hỏi) và xem tài khoản (/toi); khi có "
        "nhiệm vụ mới, trợ lý sẽ nhắc đồng chí."
    )


async def _task_menu(ctx: Context, unit: Unit) -> Reply:
    """Every task of the unit's level, in a fixed order (by deadline), so that "1" is always
    the same task; finished ones stay on the list to be corrected."""
    assert unit.id is not None
    tasks = await applicable_tasks(ctx.session, unit.level)
    _reset(ctx)
    if not tasks:
        return Reply(text=nothing_to_report(unit))
    statuses = await _statuses(ctx.session, unit, tasks)
    _set(ctx, "task", unit_id=unit.id, unit_name=unit.name, nonce=secrets.token_hex(6))
    done = sum(1 for t in tasks if statuses.get(t.id or 0) == "done")
    head = f"Nhiệm vụ của {unit.name}: đã hoàn thành {done}/{len(tasks)}."
    buttons: list[tuple[Button, ...]] = []
    lines: list[str] = []
    for task in tasks:
        state = STATUS_LABELS.get(statuses.get(task.id or 0, ""), NO_REPORT)
        due = f"hạn {vn_date(task.due)}"
        if ctx.buttons:
            lines.append(f"• {task.title} — {due} ({state.lower()})")
            suffix = f" (hạn {task.due.day}/{task.due.month})"
            mark = "✓ " if statuses.get(task.id or 0) == "done" else ""
            label = mark + fit_label(task.title, TASK_LABEL - len(suffix) - len(mark)) + suffix
        else:
            label = f"{task.title} ({due}) — {state.lower()}"
        buttons.append((Button(label, f"{PREFIX}t:{task.id}"),))
    body = "\n".join(lines)
    text = f"{head}\n{body}\n\nChọn nhiệm vụ cần báo cáo:" if body else head
    if done:
        text += "\n(Nhiệm vụ đã hoàn thành vẫn chọn được để sửa báo cáo.)"
    return Reply(text=text, buttons=(*buttons, (CANCEL,)))


async def _statuses(session: AsyncSession, unit: Unit, tasks: list[Task]) -> dict[int, str]:
    current = await _current(session, unit, tasks)
    return {task_id: status.status for task_id, status in current.items()}


async def _current(
    session: AsyncSession, unit: Unit, tasks: list[Task]
) -> dict[int, ProgressStatus]:
    ids = [t.id for t in tasks]
    rows = await session.exec(select(ProgressStatus).where(ProgressStatus.unit_id == unit.id))
    return {s.task_id: s for s in rows.all() if s.task_id in ids}


async def _load(ctx: Context) -> tuple[Unit, Task | None]:
    data = ctx.conversation.data or {}
    unit = await ctx.session.get(Unit, data.get("unit_id", 0))
    if unit is None:
        _reset(ctx)
        raise UserError("Phiên báo cáo đã kết thúc. Đồng chí gõ /baocao để bắt đầu lại.")
    task = await ctx.session.get(Task, data["task_id"]) if "task_id" in data else None
    return unit, task


async def _choose_task(ctx: Context, unit: Unit, task: Task, lead: str = "") -> Reply:
    _set(ctx, "status", task_id=task.id, task_title=task.title)
    current = (await _current(ctx.session, unit, [task])).get(task.id or 0)
    before = ""
    if current is not None:
        detail = STATUS_LABELS.get(current.status, current.status)
        if current.done_on is not None:
            detail += f" ngày {vn_date(current.done_on)}"
        if current.note:
            detail += f" (ghi chú: {current.note})"
        when = vn_datetime(current.updated_at.astimezone(ctx.zone))
        before = (
            f"Đã báo cáo: {detail}, lúc {when}.\n"
            "Báo cáo lại sẽ thay báo cáo này (báo cáo cũ vẫn được lưu vết).\n\n"
        )
    text = (
        f"{lead}Nhiệm vụ: {task.title} (hạn {vn_date(task.due)})\nĐơn vị: {unit.name}\n\n"
        f"{before}Tình trạng hiện nay?"
    )
    buttons = tuple((Button(label, f"{PREFIX}s:{key}"),) for key, label in STATUS_LABELS.items())
    return Reply(
        text=text,
        buttons=(*buttons, (Button("Chọn nhiệm vụ khác", f"{PREFIX}l"),), (CANCEL,)),
    )


def _note_prompt(ctx: Context, status: str, lead: str = "") -> Reply:
    today = ctx.local_now.date()
    chosen = f"Đã chọn «{STATUS_LABELS[status]}» (chưa lưu).\n"
    if status == "done":
        text = (
            "Đồng chí gõ ngày hoàn thành và ghi chú nếu có, ví dụ «20/8 Đã tổ chức xong đại "
            f"hội» hoặc «hôm qua». Không gõ ngày thì tính là hôm nay ({vn_date(today)})."
        )
    elif status == "stuck":
        text = (
            f"Đồng chí gõ ngắn gọn vướng mắc (tối đa {MAX_NOTE} ký tự) để cấp trên nắm và hỗ trợ."
        )
    else:
        text = f"Đồng chí có thể gõ ghi chú (tối đa {MAX_NOTE} ký tự)."
    return Reply(
        text=f"{lead}{chosen}{text}",
        buttons=(
            (Button("Không có ghi chú", f"{PREFIX}nn:{_nonce(ctx)}"),),
            (Button("Chọn tình trạng khác", f"{PREFIX}b"),),
            (CANCEL,),
        ),
    )


async def _review(ctx: Context, lead: str = "") -> Reply:
    unit, task = await _load(ctx)
    data = ctx.conversation.data or {}
    if task is None or "status" not in data:
        _reset(ctx)
        raise UserError("Phiên báo cáo đã kết thúc. Đồng chí gõ /baocao để bắt đầu lại.")
    status = str(data["status"])
    _set(ctx, "review")
    state = STATUS_LABELS[status]
    if status == "done":
        done_on = _done_on(ctx)
        state += f", ngày {describe_date(done_on, ctx.local_now.date())}"
    lines = [
        f"{lead}Xem lại báo cáo (chưa lưu):",
        f"• Đơn vị: {unit.name}",
        f"• Nhiệm vụ: {task.title}",
        f"• Tình trạng: {state}",
        f"• Ghi chú: {data.get('note') or '(không có)'}",
        "",
        "Chọn «Lưu báo cáo» để lưu. Muốn sửa ghi chú"
        + (" hoặc ngày" if status == "done" else "")
        + " thì gõ lại.",
    ]
    return Reply(
        text="\n".join(lines),
        buttons=(
            (Button("Lưu báo cáo", f"{PREFIX}ok:{_nonce(ctx)}"),),
            (Button("Chọn tình trạng khác", f"{PREFIX}b"),),
            (CANCEL,),
        ),
    )


def _done_on(ctx: Context) -> date:
    raw = (ctx.conversation.data or {}).get("done_on")
    return date.fromisoformat(str(raw)) if raw else ctx.local_now.date()


async def on_button(msg: IncomingMessage, ctx: Context) -> Reply:
    """Every ``bc:`` button (or its number on channels without buttons)."""
    identity = _require_identity(ctx)
    action, _, value = (msg.payload or "").removeprefix(PREFIX).partition(":")
    if action == "x":
        _reset(ctx)
        return Reply(text="Đã hủy. Chưa có gì được lưu.")
    if action == "ok":
        return await _save(ctx, identity, value)
    if action == "go":  # "Báo cáo ngay" under a reminder: straight to this task's status
        return await _start_with_task(ctx, identity, value)
    if ctx.conversation.flow != FLOW:
        raise UserError("Phiên báo cáo đã kết thúc. Đồng chí gõ /baocao để bắt đầu lại.")
    unit, task = await _load(ctx)
    if not can_manage(identity, unit):
        _reset(ctx)
        raise UserError("Đồng chí chỉ được báo cáo cho đơn vị mình phụ trách.")
    if action == "l":
        return await _task_menu(ctx, unit)
    if action == "t":
        chosen = await ctx.session.get(Task, int(value)) if value.isdigit() else None
        if chosen is None or not chosen.active or unit.level not in chosen.levels:
            return await _task_menu(ctx, unit)
        return await _choose_task(ctx, unit, chosen)
    if action == "b" and task is not None:
        return await _choose_task(ctx, unit, task)
    if action == "s" and value in STATUSES and task is not None:
        data = {k: v for k, v in (ctx.conversation.data or {}).items() if k not in DRAFT}
        ctx.conversation.data = data
        _set(ctx, "note", status=value)
        return _note_prompt(ctx, value)
    if action == "nn" and task is not None and value == _nonce(ctx):
        _set(ctx, "review", note=None, done_on=None)
        return await _review(ctx)
    if action == "y" and task is not None and ctx.conversation.step == "year":
        try:
            chosen_date = date.fromisoformat(value)
        except ValueError:
            chosen_date = None
        if chosen_date is None or value not in (ctx.conversation.data or {}).get("years", []):
            raise UserError("Lựa chọn này không còn hiệu lực. Đồng chí gõ lại ngày hoàn thành.")
        _set(ctx, "review", done_on=chosen_date.isoformat())
        return await _review(ctx)
    raise UserError("Lựa chọn này không còn hiệu lực. Đồng chí gõ /baocao để bắt đầu lại.")


DRAFT = ("status", "note", "done_on", "years")


async def on_text(msg: IncomingMessage, ctx: Context) -> HandlerResult:
    """Free text while the flow waits: a note (and date) at the note and review steps; a
    choice typed in words is matched by dispatch, anything else repeats the choices."""
    _require_identity(ctx)
    step = ctx.conversation.step
    text = (msg.text or "").strip()
    unit, task = await _load(ctx)
    if step in {"note", "review", "year"} and task is not None:
        if looks_like_question(text):
            return await _question_during(ctx, text, task)
        return await _take_note(ctx, text, task)
    if step == "status" and task is not None:
        return await _choose_task(
            ctx, unit, task, lead="Đồng chí vui lòng chọn tình trạng (hoặc /huy để hủy).\n\n"
        )
    menu = await _task_menu(ctx, unit)
    return Reply(
        text=f"Đồng chí vui lòng chọn nhiệm vụ (hoặc /huy để hủy).\n\n{menu.text}",
        buttons=menu.buttons,
    )


async def _question_during(ctx: Context, text: str, task: Task) -> list[Reply]:
    """A question typed where a note was expected is answered, not saved as the note."""
    from handlers.qa import answer_reply

    answer = answer_reply(text, ctx)
    ctx.log.route = "baocao_question"
    step = ctx.conversation.step
    if step == "review":
        reminder = await _review(ctx, lead="Báo cáo vẫn đang chờ lưu.\n")
    else:
        reminder = _note_prompt(
            ctx,
            str((ctx.conversation.data or {}).get("status", "doing")),
            lead=f"Câu vừa gõ là câu hỏi nên chưa được ghi làm ghi chú. Báo cáo «{task.title}» "
            "vẫn đang chờ.\n",
        )
    return [answer, reminder]


async def _take_note(ctx: Context, text: str, task: Task) -> Reply:
    data = ctx.conversation.data or {}
    status = str(data.get("status", ""))
    done_on: date | None = None
    note = text
    if status == "done":
        try:
            found = parse_completion(text, today=ctx.local_now.date(), due=task.due)
        except DateError as exc:
            return _retry(ctx, status, exc.message)
        note = found.note
        if found.choices:
            _set(ctx, "year", note=note or None, years=[d.isoformat() for d in found.choices])
            typed = f"«{found.source}»" if found.source else "Ngày vừa gõ"
            return Reply(
                text=(
                    f"{typed} là ngày nào? Nhiệm vụ có hạn {vn_date(task.due)}; đồng chí "
                    "chọn đúng năm:"
                ),
                buttons=(
                    *((Button(vn_date(d), f"{PREFIX}y:{d.isoformat()}"),) for d in found.choices),
                    (CANCEL,),
                ),
            )
        done_on = found.done_on
    if len(note) > MAX_NOTE:
        return _retry(
            ctx,
            status,
            f"Ghi chú dài {len(note)} ký tự, tối đa {MAX_NOTE}. Đồng chí vui lòng rút gọn rồi "
            "gửi lại.",
        )
    _set(
        ctx,
        "review",
        note=note or None,
        done_on=done_on.isoformat() if done_on else None,
        years=[],
    )
    return await _review(ctx)


def _retry(ctx: Context, status: str, problem: str) -> Reply:
    """A bad note or date: say what is wrong and wait for it again (nothing is lost)."""
    prompt = _note_prompt(ctx, status or "doing")
    _set(ctx, "note")
    return Reply(text=f"{problem}\n\n{prompt.text}", buttons=prompt.buttons)


async def _save(ctx: Context, identity: Identity, nonce: str) -> Reply:
    data = ctx.conversation.data or {}
    active = (
        ctx.conversation.flow == FLOW
        and ctx.conversation.step == "review"
        and data.get("nonce") == nonce
        and "status" in data
    )
    if not active:
        previous = (
            await ctx.session.exec(
                select(ProgressEvent).where(ProgressEvent.idempotency_key == f"{FLOW}:{nonce}")
            )
        ).first()
        if previous is not None:
            return Reply(
                text="Báo cáo này đã được lưu trước đó "
                f"(lúc {vn_datetime(previous.created_at.astimezone(ctx.zone))}), không lưu lại."
            )
        raise UserError("Phiên báo cáo đã kết thúc. Đồng chí gõ /baocao để bắt đầu lại.")
    unit, task = await _load(ctx)
    if task is None or not can_manage(identity, unit):
        _reset(ctx)
        raise UserError("Phiên báo cáo đã kết thúc. Đồng chí gõ /baocao để bắt đầu lại.")
    status = str(data["status"])
    done_on = _done_on(ctx) if status == "done" else None
    note = data.get("note") or None
    event, created = await record(
        ctx.session,
        unit=unit,
        task=task,
        person_id=identity.person.id,
        status=status,
        done_on=done_on,
        note=str(note) if note else None,
        channel=ctx.conversation.channel,
        key=f"{FLOW}:{nonce}",
        now=ctx.now,
    )
    _reset(ctx)
    ctx.log.route = "baocao_recorded" if created else "baocao_unchanged"
    if not created:
        return Reply(text="Tình trạng này đã được lưu trước đó, không có gì thay đổi.")
    lines = [
        "Đã lưu báo cáo:",
        f"• Đơn vị: {unit.name}",
        f"• Nhiệm vụ: {task.title}",
        f"• Tình trạng: {STATUS_LABELS[status]}"
        + (f", ngày {vn_date(done_on)}" if done_on else ""),
    ]
    if note:
        lines.append(f"• Ghi chú: {note}")
    channel = channel_name(ctx.conversation.channel)
    lines.append(
        f"• Người báo cáo: {identity.person.name}, lúc "
        f"{vn_datetime(event.created_at.astimezone(ctx.zone))} qua {channel}"
    )
    lines.append(
        "\nNếu cần sửa, đồng chí gõ /baocao, chọn lại nhiệm vụ này và báo cáo lại; bản mới sẽ "
        "thay bản này."
    )
    return Reply(text="\n".join(lines), footer=f"Căn cứ: {task.citation}")


async def open_tasks_reply(ctx: Context, identity: Identity) -> Reply:
    """«Đơn vị tôi còn việc gì?»: the unit's tasks not reported done, with their deadlines."""
    unit = identity.unit
    tasks = await applicable_tasks(ctx.session, unit.level)
    ctx.log.route = "own_tasks"
    if not tasks:
        return Reply(text=nothing_to_report(unit))
    statuses = await _statuses(ctx.session, unit, tasks)
    today = ctx.local_now.date()
    open_tasks = [t for t in tasks if statuses.get(t.id or 0) != "done"]
    if not open_tasks:
        return Reply(text=f"{unit.name} đã báo cáo hoàn thành tất cả {len(tasks)} nhiệm vụ.")
    lines = [f"Nhiệm vụ {unit.name} chưa báo cáo hoàn thành ({len(open_tasks)}/{len(tasks)}):"]
    for task in open_tasks:
        state = STATUS_LABELS.get(statuses.get(task.id or 0, ""), NO_REPORT).lower()
        late = " — đã quá hạn" if task.due < today else ""
        lines.append(f"• {task.title} — hạn {vn_date(task.due)} ({state}){late}")
    lines.append("\nĐể báo cáo, đồng chí gõ /baocao.")
    return Reply(text="\n".join(lines))


def expired_notice(data: dict[str, object]) -> str:
    """What is lost when an idle report flow expires."""
    title, unit = data.get("task_title"), data.get("unit_name")
    if not title:
        return "Phiên báo cáo đã hết hạn do lâu không có phản hồi; chưa có gì được lưu."
    status = STATUS_LABELS.get(str(data.get("status", "")))
    chosen = f" («{status}»)" if status else ""
    return (
        f"Báo cáo nhiệm vụ «{title}» của {unit}{chosen} chưa được lưu vì lâu không có phản "
        "hồi. Đồng chí gõ /baocao để báo cáo lại."
    )


# --------------------------------------------------------------------------- natural sentences

_COMPLETION = re.compile(
    r"\b(da|vua|moi)\b.*\b(xong|hoan thanh|to chuc|ban hanh|chi dinh|kien toan|tap huan|"
    r"boi duong|phan cong|xay dung)\b"
)
_QUESTION = re.compile(r"\?|\b(khi nao|bao gio|chua|co phai|the nao|nhu the nao|ra sao|gi)\s*$")


def is_progress_statement(text: str | None) -> bool:
    """ "đã tổ chức xong đại hội" is a report, "đã tổ chức xong đại hội chưa?" is not."""
    if not text or len(text) > 300:
        return False
    folded = " ".join(fold(text).split())
    return bool(_COMPLETION.search(folded)) and not _QUESTION.search(folded)


async def statement(msg: IncomingMessage, ctx: Context) -> Reply:
    """An enrolled official wrote that something is done: the same flow, likely task chosen."""
    identity = _require_identity(ctx)
    unit = identity.unit
    tasks = await applicable_tasks(ctx.session, unit.level)
    if not tasks:
        return Reply(text=nothing_to_report(unit))
    folded = fold(msg.text or "")
    best = max(tasks, key=lambda t: fuzz.token_set_ratio(folded, fold(t.title)))
    _reset(ctx)
    _set(ctx, "task", unit_id=unit.id, unit_name=unit.name, nonce=secrets.token_hex(6))
    return await _choose_task(ctx, unit, best, lead="Đồng chí muốn báo cáo tiến độ?\n")
