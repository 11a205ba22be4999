"""Confirming progress: ``/baocao`` -> task -> status -> optional note (and, for done, the
date) -> a confirmation repeating what was recorded.

Every change is an append-only :class:`ProgressEvent`; the current status is derived (kept in
:class:`ProgressStatus` in the same transaction). A repeated submission (the same button
pressed twice, the same report sent again) creates no second event. The flow lives in the
database (it survives a restart) and expires after inactivity (handled by dispatch).
"""

from __future__ import annotations

import logging
import re
import secrets
from datetime import date, datetime, timedelta

from rapidfuzz import fuzz
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core import Button, IncomingMessage, Reply
from bot.storage.models import ProgressEvent, ProgressStatus, Task, Unit
from handlers.context import Context, UserError
from handlers.formatting import vn_date, vn_datetime
from handlers.people import Identity, can_manage
from handlers.tasks import applicable_tasks, short_title
from handlers.units import unit_by_code
from knowledge.normalize import fold

__all__ = [
    "FLOW",
    "PREFIX",
    "STATUS_LABELS",
    "is_progress_statement",
    "on_button",
    "on_text",
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
CHANNEL_NAMES = {"telegram": "Telegram", "zalo": "Zalo", "console": "máy tính"}

NOT_ENROLLED = (
    "Chức năng báo cáo tiến độ dành cho cán bộ đã được mời tham gia. Đồng chí vui lòng "
    "gửi mã mời do văn phòng cấp ủy cấp (ví dụ: TL-ABCDE-FGHJK) để kích hoạt. "
    "Đồng chí vẫn có thể đặt câu hỏi về các kết luận."
)
_DATE_PREFIX = re.compile(
    r"^\s*(\d{1,2})\s*[/.\-]\s*(\d{1,2})(?:\s*[/.\-]\s*(\d{2,4}))?\s*[,:;.\-–]?\s*(.*)$",
    re.DOTALL,
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
    and update the current status. Returns (event, whether a new event was created)."""
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


async def _unit_for(ctx: Context, identity: Identity, code: str) -> Unit:
    if not code:
        return identity.unit
    unit = await unit_by_code(ctx.session, code)
    if unit is None:
        raise UserError(f"Không tìm thấy đơn vị có mã {code}.")
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
    """``/baocao [mã đơn vị]``: the unit's open tasks."""
    identity = _require_identity(ctx)
    command = msg.command
    unit = await _unit_for(ctx, identity, command[1] if command else "")
    return await _task_menu(ctx, unit)


async def _start_with_task(ctx: Context, identity: Identity, task_id: str) -> Reply:
    unit = identity.unit
    task = await ctx.session.get(Task, int(task_id)) if task_id.isdigit() else None
    if task is None or not task.active or unit.level not in task.levels:
        return await _task_menu(ctx, unit)
    _set(ctx, "status", unit_id=unit.id, nonce=secrets.token_hex(6), task_id=task.id)
    return _status_menu(task, unit)


async def _task_menu(ctx: Context, unit: Unit) -> Reply:
    assert unit.id is not None
    tasks = await applicable_tasks(ctx.session, unit.level)
    if not tasks:
        _reset(ctx)
        return Reply(text=f"Hiện chưa có nhiệm vụ nào cần báo cáo cho cấp của {unit.name}.")
    statuses = await _statuses(ctx.session, unit, tasks)
    open_tasks = [t for t in tasks if statuses.get(t.id or 0) != "done"]
    shown = open_tasks or tasks
    _set(ctx, "task", unit_id=unit.id, nonce=secrets.token_hex(6))
    lines = []
    for task in shown:
        state = STATUS_LABELS.get(statuses.get(task.id or 0, ""), NO_REPORT)
        lines.append(f"• {task.title} — hạn {vn_date(task.due)} ({state.lower()})")
    head = (
        f"Các nhiệm vụ chưa hoàn thành của {unit.name}:"
        if open_tasks
        else f"{unit.name} đã báo cáo hoàn thành mọi nhiệm vụ. Chọn nhiệm vụ nếu cần sửa:"
    )
    buttons = tuple(
        (Button(f"{short_title(t)} (hạn {t.due.day}/{t.due.month})", f"{PREFIX}t:{t.id}"),)
        for t in shown
    )
    return Reply(
        text=head + "\n" + "\n".join(lines) + "\n\nChọn nhiệm vụ cần báo cáo:",
        buttons=(*buttons, (Button("Hủy", f"{PREFIX}x"),)),
    )


async def _statuses(session: AsyncSession, unit: Unit, tasks: list[Task]) -> dict[int, str]:
    ids = [t.id for t in tasks]
    rows = await session.exec(select(ProgressStatus).where(ProgressStatus.unit_id == unit.id))
    return {s.task_id: s.status for s in rows.all() if s.task_id in ids}


async def _load(ctx: Context) -> tuple[Unit, Task | None]:
    data = ctx.conversation.data or {}
    unit = await ctx.session.get(Unit, data.get("unit_id", 0))
    if unit is None:
        _reset(ctx)
        raise UserError("Phiên báo cáo đã kết thúc. Đồng chí gõ /baocao để bắt đầu lại.")
    task = await ctx.session.get(Task, data["task_id"]) if "task_id" in data else None
    return unit, task


def _status_menu(task: Task, unit: Unit, lead: str = "") -> Reply:
    text = (
        f"{lead}Nhiệm vụ: {task.title} (hạn {vn_date(task.due)})\nĐơn vị: {unit.name}\n\n"
        "Tình trạng hiện nay?"
    )
    buttons = tuple((Button(label, f"{PREFIX}s:{key}"),) for key, label in STATUS_LABELS.items())
    return Reply(
        text=text,
        buttons=(
            *buttons,
            (Button("Chọn nhiệm vụ khác", f"{PREFIX}l"),),
            (Button("Hủy", f"{PREFIX}x"),),
        ),
    )


def _note_prompt(ctx: Context, status: str) -> Reply:
    today = ctx.local_now.date()
    nonce = str((ctx.conversation.data or {}).get("nonce", ""))
    if status == "done":
        text = (
            f"Ghi nhận «{STATUS_LABELS[status]}», ngày hoàn thành hôm nay ({vn_date(today)}).\n"
            "Nếu hoàn thành vào ngày khác hoặc muốn thêm ghi chú, đồng chí gõ ngay, ví dụ: "
            "«20/8 Đã tổ chức xong đại hội». Nếu không, chọn «Ghi nhận»."
        )
    elif status == "stuck":
        text = (
            f"Ghi nhận «{STATUS_LABELS[status]}». Đồng chí gõ ngắn gọn vướng mắc (tối đa "
            f"{MAX_NOTE} ký tự) để cấp trên nắm và hỗ trợ, hoặc chọn «Ghi nhận»."
        )
    else:
        text = (
            f"Ghi nhận «{STATUS_LABELS[status]}». Đồng chí có thể gõ ghi chú (tối đa {MAX_NOTE} "
            "ký tự), hoặc chọn «Ghi nhận»."
        )
    return Reply(
        text=text,
        buttons=((Button("Ghi nhận", f"{PREFIX}ok:{nonce}"),), (Button("Hủy", f"{PREFIX}x"),)),
    )


async def on_button(msg: IncomingMessage, ctx: Context) -> Reply:
    """Every ``bc:`` button (or its number on channels without buttons)."""
    identity = _require_identity(ctx)
    action, _, value = (msg.payload or "").removeprefix(PREFIX).partition(":")
    if action == "x":
        _reset(ctx)
        return Reply(text="Đã hủy. Chưa có gì được ghi nhận.")
    if action == "ok":
        return await _confirm(ctx, identity, value, note=None, done_on=None)
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
        _set(ctx, "status", task_id=chosen.id)
        return _status_menu(chosen, unit)
    if action == "s" and value in STATUSES and task is not None:
        _set(ctx, "note", status=value)
        return _note_prompt(ctx, value)
    raise UserError("Lựa chọn này không còn hiệu lực. Đồng chí gõ /baocao để bắt đầu lại.")


async def on_text(msg: IncomingMessage, ctx: Context) -> Reply:
    """Free text while the flow waits for something typed."""
    identity = _require_identity(ctx)
    step = ctx.conversation.step
    if step != "note":
        hint = "chọn nhiệm vụ" if step == "task" else "chọn tình trạng"
        return Reply(
            text=f"Đồng chí vui lòng {hint} ở trên (hoặc gõ /huy để hủy báo cáo).",
        )
    text = (msg.text or "").strip()
    done_on, note = _date_and_note(text, ctx.local_now.date(), ctx)
    nonce = str((ctx.conversation.data or {}).get("nonce", ""))
    return await _confirm(ctx, identity, nonce, note=note or None, done_on=done_on)


def _date_and_note(text: str, today: date, ctx: Context) -> tuple[date | None, str]:
    status = (ctx.conversation.data or {}).get("status")
    match = _DATE_PREFIX.match(text)
    done_on: date | None = None
    if match and status == "done":
        day, month = int(match.group(1)), int(match.group(2))
        year_text = match.group(3)
        try:
            if year_text:
                year = int(year_text) + (2000 if len(year_text) == 2 else 0)
                done_on = date(year, month, day)
            else:  # the most recent such day
                done_on = date(today.year, month, day)
                if done_on > today:
                    done_on = date(today.year - 1, month, day)
        except ValueError:
            raise UserError(
                f"Ngày «{match.group(0)[:20].strip()}» không hợp lệ. Đồng chí gõ theo dạng "
                "ngày/tháng/năm, ví dụ 20/8/2025."
            ) from None
        if done_on > today:
            raise UserError("Ngày hoàn thành không thể sau hôm nay. Đồng chí vui lòng gõ lại.")
        if done_on < today - timedelta(days=3 * 365):
            raise UserError("Ngày hoàn thành quá xa trong quá khứ. Đồng chí vui lòng kiểm tra lại.")
        text = match.group(4).strip()
    if len(text) > MAX_NOTE:
        raise UserError(
            f"Ghi chú dài {len(text)} ký tự, tối đa {MAX_NOTE}. "
            "Đồng chí vui lòng rút gọn rồi gửi lại."
        )
    return done_on, text


async def _confirm(
    ctx: Context, identity: Identity, nonce: str, *, note: str | None, done_on: date | None
) -> Reply:
    data = ctx.conversation.data or {}
    active = ctx.conversation.flow == FLOW and data.get("nonce") == nonce and "status" in data
    if not active:
        previous = (
            await ctx.session.exec(
                select(ProgressEvent).where(ProgressEvent.idempotency_key == f"{FLOW}:{nonce}")
            )
        ).first()
        if previous is not None:
            return Reply(
                text="Báo cáo này đã được ghi nhận trước đó "
                f"(lúc {vn_datetime(previous.created_at.astimezone(ctx.zone))}), không ghi lại."
            )
        raise UserError("Phiên báo cáo đã kết thúc. Đồng chí gõ /baocao để bắt đầu lại.")
    unit, task = await _load(ctx)
    if task is None or not can_manage(identity, unit):
        _reset(ctx)
        raise UserError("Phiên báo cáo đã kết thúc. Đồng chí gõ /baocao để bắt đầu lại.")
    status = str(data["status"])
    if status == "done" and done_on is None:
        done_on = ctx.local_now.date()
    if status != "done":
        done_on = None
    event, created = await record(
        ctx.session,
        unit=unit,
        task=task,
        person_id=identity.person.id,
        status=status,
        done_on=done_on,
        note=note,
        channel=ctx.conversation.channel,
        key=f"{FLOW}:{nonce}",
        now=ctx.now,
    )
    _reset(ctx)
    ctx.log.route = "baocao_recorded" if created else "baocao_unchanged"
    if not created:
        return Reply(text="Tình trạng này đã được ghi nhận trước đó, không có gì thay đổi.")
    lines = [
        "Đã ghi nhận báo cáo:",
        f"• Đơn vị: {unit.name}",
        f"• Nhiệm vụ: {task.title}",
        f"• Tình trạng: {STATUS_LABELS[status]}"
        + (f", ngày {vn_date(done_on)}" if done_on else ""),
    ]
    if note:
        lines.append(f"• Ghi chú: {note}")
    channel = CHANNEL_NAMES.get(ctx.conversation.channel, ctx.conversation.channel)
    lines.append(
        f"• Người báo cáo: {identity.person.name}, lúc "
        f"{vn_datetime(event.created_at.astimezone(ctx.zone))} qua {channel}"
    )
    lines.append("\nNếu cần sửa, đồng chí gõ /baocao và báo cáo lại; bản mới sẽ thay bản này.")
    return Reply(text="\n".join(lines), footer=f"Căn cứ: {task.citation}")


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
        return Reply(text=f"Hiện chưa có nhiệm vụ nào cần báo cáo cho cấp của {unit.name}.")
    folded = fold(msg.text or "")
    best = max(tasks, key=lambda t: fuzz.token_set_ratio(folded, fold(t.title)))
    _set(ctx, "status", unit_id=unit.id, nonce=secrets.token_hex(6), task_id=best.id)
    return _status_menu(best, unit, lead="Đồng chí muốn báo cáo tiến độ?\n")
