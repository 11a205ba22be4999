"""Enrolment by invitation code, from ``/start <code>`` (a Telegram deep link), a typed code,
or a code inside a sentence.

Roles never change by accident: a person already enrolled who opens a code for another unit
or another role is shown what would change and asked to confirm (the code is used only
then); the role of a unit admin or an admin is never lowered by a code (the code stays
valid for the person it was meant for); a code opened by someone who already holds exactly
that enrolment is a friendly "already enrolled", not a failed attempt.
"""

from __future__ import annotations

import secrets

from bot.core import Button, IncomingMessage, Reply
from bot.redaction import find_code
from bot.render import fit_label
from bot.storage.models import Invite, Person, Unit
from handlers.context import Context, UserError
from handlers.menus import commands_text
from handlers.people import (
    INVALID_CODE,
    MAX_FAILED_PER_HOUR,
    RANK,
    ROLE_NAMES,
    TOO_MANY,
    apply_invite,
    consume,
    enrolment_of,
    failed_attempts,
    find_invite,
    record_attempt,
    target_of,
    usable,
)

__all__ = ["FLOW", "PREFIX", "enrol", "expired_notice", "on_button"]

FLOW = "dangky"
PREFIX = "dk:"


def _who(role: str, unit: Unit) -> str:
    return f"{ROLE_NAMES[role]} của {unit.name}"


async def enrol(msg: IncomingMessage, ctx: Context) -> Reply:
    """A message carrying an invitation code."""
    command = msg.command
    code = find_code(command[1] if command is not None else msg.text)
    user = msg.user
    ctx.log.route = "enrol"
    if await failed_attempts(ctx.session, user, ctx.now) >= MAX_FAILED_PER_HOUR:
        raise UserError(TOO_MANY)
    invite = await find_invite(ctx.session, code) if code is not None else None
    current = await enrolment_of(ctx.session, user)
    if invite is not None and current is not None:
        person, unit = current
        target_unit, target_role, linked = await target_of(ctx.session, invite)
        same = (
            linked.id == person.id
            if linked is not None
            else (target_unit.id, target_role) == (unit.id, person.role)
        )
        if same and person.active:
            record_attempt(ctx.session, user, ok=True, now=ctx.now)
            ctx.log.route = "enrol_already"
            return Reply(
                text=(
                    f"Đồng chí đã được ghi nhận là {_who(person.role, unit)} từ trước, không "
                    "cần dùng lại mã mời.\n\n" + await commands_text(ctx.session, ctx.identity)
                )
            )
    if invite is None or not usable(invite, ctx.now):
        record_attempt(ctx.session, user, ok=False, now=ctx.now)
        ctx.log.route = "enrol_refused"
        return Reply(text=INVALID_CODE)
    record_attempt(ctx.session, user, ok=True, now=ctx.now)
    if current is not None and current[0].active:
        return await _offer_change(ctx, invite, *current)
    return await _apply(ctx, msg, invite)


async def _offer_change(ctx: Context, invite: Invite, person: Person, unit: Unit) -> Reply:
    target_unit, target_role, _ = await target_of(ctx.session, invite)
    if RANK[target_role] < RANK[person.role] and person.role in {"unit_admin", "admin"}:
        ctx.log.route = "enrol_kept_role"
        return Reply(
            text=(
                f"Đồng chí đang là {_who(person.role, unit)}. Mã mời này dành cho "
                f"{_who(target_role, target_unit)} nên không áp dụng cho đồng chí: vai trò của "
                "đồng chí giữ nguyên, và mã vẫn còn hiệu lực để chuyển cho người cần dùng."
            )
        )
    nonce = secrets.token_hex(6)
    ctx.conversation.flow, ctx.conversation.step = FLOW, "confirm"
    ctx.conversation.data = {
        "invite_id": invite.id,
        "nonce": nonce,
        "target": _who(target_role, target_unit),
        "current": _who(person.role, unit),
    }
    ctx.log.route = "enrol_confirm"
    return Reply(
        text=(
            f"Đồng chí đang là {_who(person.role, unit)}.\n"
            f"Mã mời này sẽ chuyển đồng chí thành {_who(target_role, target_unit)}.\n\n"
            "Đồng chí có muốn thay đổi không?"
        ),
        buttons=(
            (Button("Giữ nguyên như cũ", f"{PREFIX}keep"),),
            (
                Button(
                    fit_label(f"Đồng ý chuyển sang {target_unit.name}", 60), f"{PREFIX}ok:{nonce}"
                ),
            ),
        ),
    )


async def _apply(ctx: Context, msg: IncomingMessage, invite: Invite) -> Reply:
    if not await consume(ctx.session, invite):
        ctx.log.route = "enrol_refused"
        return Reply(text=INVALID_CODE)
    result = await apply_invite(
        ctx.session, invite, user=msg.user, chat_id=msg.chat_id, name=msg.user_name, now=ctx.now
    )
    if result is None:
        ctx.log.route = "enrol_refused"
        return Reply(text=INVALID_CODE)
    identity, created = result
    ctx.identity = identity
    welcome = "Chào mừng đồng chí" if created else "Đã cập nhật thông tin của đồng chí"
    return Reply(
        text=(
            f"{welcome}! Đồng chí đã được ghi nhận là {_who(identity.role, identity.unit)}."
            f"\n\n{await commands_text(ctx.session, identity)}"
        )
    )


async def on_button(msg: IncomingMessage, ctx: Context) -> Reply:
    """«Giữ nguyên» or «Đồng ý chuyển» after a code that would change an enrolment."""
    action, _, nonce = (msg.payload or "").removeprefix(PREFIX).partition(":")
    conversation = ctx.conversation
    data = conversation.data or {}
    pending = conversation.flow == FLOW and conversation.step == "confirm"
    if not pending:
        return Reply(text="Yêu cầu này đã được xử lý hoặc đã hết hạn; thông tin giữ nguyên.")
    conversation.flow = conversation.step = None
    conversation.data = {}
    if action == "keep" or data.get("nonce") != nonce:
        ctx.log.route = "enrol_kept"
        return Reply(
            text=(
                f"Đã giữ nguyên: đồng chí vẫn là {data.get('current', '')}. Mã mời chưa bị sử dụng."
            )
        )
    invite = await ctx.session.get(Invite, int(data.get("invite_id") or 0))
    if invite is None or not usable(invite, ctx.now):
        ctx.log.route = "enrol_refused"
        return Reply(text=f"{INVALID_CODE} Thông tin của đồng chí giữ nguyên.")
    ctx.log.route = "enrol_changed"
    return await _apply(ctx, msg, invite)


def expired_notice(data: dict[str, object]) -> str:
    return (
        f"Việc chuyển thành {data.get('target', 'đơn vị mới')} chưa được xác nhận trong thời "
        "gian chờ nên thông tin của đồng chí giữ nguyên. Nếu vẫn cần, đồng chí gửi lại mã mời."
    )
