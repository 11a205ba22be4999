"""Enrolment, invitations from the chat, progress views and small account commands."""

from __future__ import annotations

import asyncio
import logging

from bot.core import Image, IncomingMessage, Reply
from handlers import progress
from handlers.basic import GREETING
from handlers.context import Context, UserError
from handlers.people import (
    INVALID_CODE,
    ROLE_NAMES,
    ROLES,
    Identity,
    can_manage,
    create_invite,
    redeem,
)
from handlers.reports import chart_png
from handlers.rollup import compute, render_text
from handlers.units import LEVEL_NAMES, unit_by_code

__all__ = [
    "cancel",
    "enrol",
    "invite",
    "invite_text",
    "me",
    "progress_view",
]

log = logging.getLogger(__name__)

ROLE_ALIASES = {
    "official": "official",
    "canbo": "official",
    "can_bo": "official",
    "unit_admin": "unit_admin",
    "quantri": "unit_admin",
    "quan_tri": "unit_admin",
    "admin": "admin",
}
DEFAULT_INVITE_DAYS = 14


def invite_text(code: str, unit_name: str, role: str, bot_username: str | None, days: int) -> str:
    """How to use an invitation, for the person who will pass it on."""
    compact = code.replace("-", "")
    link = (
        f"https://t.me/{bot_username}?start={compact}"
        if bot_username
        else "(liên kết Telegram: chưa biết tên bot)"
    )
    return (
        f"Mã mời: {code}\n"
        f"Đơn vị: {unit_name} — vai trò: {ROLE_NAMES[role]}\n"
        f"Hiệu lực: {days} ngày.\n\n"
        f"• Trên Telegram: mở {link}\n"
        f"• Trên Zalo: nhắn mã {code} cho trợ lý."
    )


async def enrol(msg: IncomingMessage, ctx: Context) -> Reply:
    """``/start <mã>`` (Telegram deep link) or a message that is an invitation code."""
    command = msg.command
    code = command[1] if command is not None else (msg.text or "")
    result = await redeem(
        ctx.session,
        code=code,
        user=msg.user,
        chat_id=msg.chat_id,
        name=msg.user_name,
        now=ctx.now,
    )
    ctx.log.route = "enrol"
    if result is None:
        ctx.log.route = "enrol_refused"
        return Reply(text=INVALID_CODE)
    identity, created = result
    ctx.identity = identity
    welcome = "Chào mừng đồng chí" if created else "Đã cập nhật thông tin của đồng chí"
    return Reply(
        text=(
            f"{welcome}! Đồng chí đã được ghi nhận là {ROLE_NAMES[identity.role]} của "
            f"{identity.unit.name}.\n\n{_commands_for(identity)}"
        )
    )


def _commands_for(identity: Identity | None) -> str:
    lines = ["Các lệnh:", "/hoi <câu hỏi> — hỏi về các kết luận"]
    if identity is not None:
        lines.append("/baocao — báo cáo tiến độ nhiệm vụ của đơn vị")
        if identity.role in {"unit_admin", "admin"}:
            lines.append("/tiendo [mã đơn vị] — xem tiến độ các đơn vị")
            lines.append("/moi <mã đơn vị> [canbo|quantri] — tạo mã mời")
            lines.append("/thongbao — gửi thông báo cho cán bộ")
        lines.append("/toi — thông tin tài khoản")
        lines.append("/huy — hủy thao tác đang làm")
    lines.append("/help — hướng dẫn sử dụng")
    return "\n".join(lines)


async def help_reply(msg: IncomingMessage, ctx: Context) -> Reply:
    from handlers.basic import EXAMPLES

    ctx.log.route = "help"
    return Reply(
        text=(
            f"{EXAMPLES}\n\n{_commands_for(ctx.identity)}\n\n"
            "Mỗi câu trả lời đều ghi rõ nguồn. Khi chưa có thông tin, tôi sẽ nói rõ "
            "thay vì đoán."
        )
    )


async def start(msg: IncomingMessage, ctx: Context) -> Reply:
    command = msg.command
    if command is not None and command[1]:
        return await enrol(msg, ctx)
    from handlers.basic import EXAMPLES

    ctx.log.route = "start"
    who = ""
    if ctx.identity is not None:
        who = f"\n\nĐồng chí đang là {ROLE_NAMES[ctx.identity.role]} của {ctx.identity.unit.name}."
    return Reply(text=f"{GREETING}{who}\n\n{EXAMPLES}\n\n{_commands_for(ctx.identity)}")


async def me(msg: IncomingMessage, ctx: Context) -> Reply:
    identity = ctx.identity
    if identity is None:
        return Reply(text=progress.NOT_ENROLLED)
    unit = identity.unit
    return Reply(
        text=(
            f"Đồng chí {identity.person.name}\n"
            f"Đơn vị: {unit.name} (mã {unit.code}, {LEVEL_NAMES.get(unit.level, unit.level)})\n"
            f"Vai trò: {ROLE_NAMES[identity.role]}"
        )
    )


async def cancel(msg: IncomingMessage, ctx: Context) -> Reply:
    conversation = ctx.conversation
    had = conversation.flow is not None
    conversation.flow = conversation.step = None
    conversation.data = {}
    return Reply(text="Đã hủy thao tác đang làm." if had else "Không có thao tác nào đang làm.")


def _require_manager(ctx: Context) -> Identity:
    identity = ctx.identity
    if identity is None or identity.role not in {"unit_admin", "admin"}:
        raise UserError("Chức năng này dành cho quản trị đơn vị và quản trị hệ thống.")
    return identity


async def invite(msg: IncomingMessage, ctx: Context) -> Reply:
    """``/moi <mã đơn vị> [canbo|quantri|admin] [số lượt] [số ngày]``."""
    identity = _require_manager(ctx)
    args = (msg.command[1] if msg.command else "").split()
    if not args:
        return Reply(
            text=(
                "Cách dùng: /moi <mã đơn vị> [canbo|quantri] [số lượt] [số ngày]\n"
                "Ví dụ: /moi HN.XA01 canbo 1 14"
            )
        )
    unit = await unit_by_code(ctx.session, args[0])
    if unit is None:
        raise UserError(f"Không tìm thấy đơn vị có mã {args[0]}.")
    if not can_manage(identity, unit):
        raise UserError("Đồng chí chỉ tạo được mã mời cho các đơn vị mình quản lý.")
    role = ROLE_ALIASES.get(args[1].lower(), "") if len(args) > 1 else "official"
    if role not in ROLES:
        raise UserError("Vai trò phải là canbo (cán bộ báo cáo) hoặc quantri (quản trị đơn vị).")
    if role == "admin" and identity.role != "admin":
        raise UserError("Chỉ quản trị hệ thống mới tạo được mã quản trị hệ thống.")
    try:
        uses = int(args[2]) if len(args) > 2 else 1
        days = int(args[3]) if len(args) > 3 else DEFAULT_INVITE_DAYS
    except ValueError:
        raise UserError("Số lượt và số ngày phải là số, ví dụ: /moi HN.XA01 canbo 1 14") from None
    code = await create_invite(
        ctx.session,
        unit=unit,
        role=role,
        uses=uses,
        days=days,
        created_by=f"person:{identity.person.id}",
        now=ctx.now,
    )
    ctx.log.route = "invite_created"
    return Reply(text=invite_text(code, unit.name, role, ctx.bot_username, days))


async def progress_view(msg: IncomingMessage, ctx: Context) -> list[Reply]:
    """``/tiendo [mã đơn vị]``: the roll-up for the manager's subtree, with a chart."""
    identity = _require_manager(ctx)
    code = msg.command[1] if msg.command else ""
    unit = identity.unit
    if code:
        found = await unit_by_code(ctx.session, code)
        if found is None:
            raise UserError(f"Không tìm thấy đơn vị có mã {code}.")
        if not can_manage(identity, found):
            raise UserError("Đồng chí chỉ xem được tiến độ các đơn vị mình quản lý.")
        unit = found
    rollup = await compute(ctx.session, unit, ctx.local_now.date())
    replies = [Reply(text=render_text(rollup, ctx.local_now))]
    png = await asyncio.to_thread(chart_png, rollup)  # never block other people's messages
    if png is not None:
        replies.append(
            Reply(
                text="",
                image=Image(png, "tien-do.png", f"Tỷ lệ hoàn thành theo đơn vị — {unit.name}"),
            )
        )
    return replies
