"""Enrolment, invitations from the chat, progress views and small account commands."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import timedelta

from sqlmodel import select

from bot.core import Image, IncomingMessage, Reply
from bot.storage.models import PersonChannel, Unit
from handlers.accounts import invitation_text
from handlers.audit import Actor
from handlers.basic import EXAMPLES, GREETING, private_only
from handlers.context import Context, UserError
from handlers.enrolment import enrol
from handlers.formatting import channel_name
from handlers.menus import commands_text
from handlers.people import (
    ROLE_NAMES,
    ROLES,
    Identity,
    can_manage,
    create_invite,
    invitable_roles,
)
from handlers.reports import chart_png
from handlers.rollup import children_text, compute, render_text
from handlers.routing import Handler, HandlerResult
from handlers.units import LEVEL_NAMES, require_unit, unit_code_argument

__all__ = [
    "DEEP_LINKS",
    "cancel",
    "help_reply",
    "invite",
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


async def help_reply(msg: IncomingMessage, ctx: Context) -> Reply:
    ctx.log.route = "help"
    return Reply(
        text=(
            f"{EXAMPLES}\n\n{await _commands(ctx)}\n\n"
            "Mỗi câu trả lời đều ghi rõ nguồn. Khi chưa có thông tin, tôi sẽ nói rõ "
            "thay vì đoán."
        )
    )


async def _commands(ctx: Context) -> str:
    if ctx.in_group:
        return "Các lệnh trong nhóm:\n/hoi <câu hỏi> — hỏi về các kết luận\n/help — hướng dẫn"
    return await commands_text(ctx.session, ctx.identity)


DEEP_LINKS: dict[str, Handler] = {}  # filled below: /start baocao -> /baocao, ...


async def start(msg: IncomingMessage, ctx: Context) -> HandlerResult:
    """``/start``, ``/start <mã mời>`` (a Telegram invitation link) or ``/start baocao`` (a
    "continue in the private chat" link)."""
    command = msg.command
    payload = command[1] if command is not None else ""
    if payload and ctx.in_group:
        return await private_only(msg, ctx)  # a code or a personal link, typed in a group
    if payload:
        action = DEEP_LINKS.get(payload.lower())
        if action is not None:
            return await action(replace(msg, text=f"/{payload.lower()}"), ctx)
        return await enrol(msg, ctx)
    ctx.log.route = "start"
    who = ""
    if ctx.identity is not None and not ctx.in_group:
        who = f"\n\nĐồng chí đang là {ROLE_NAMES[ctx.identity.role]} của {ctx.identity.unit.name}."
    return Reply(text=f"{GREETING}{who}\n\n{EXAMPLES}\n\n{await _commands(ctx)}")


async def me(msg: IncomingMessage, ctx: Context) -> Reply:
    identity = ctx.identity
    if identity is None:
        return Reply(
            text=(
                "Đồng chí chưa có tài khoản trên trợ lý. Đồng chí vẫn hỏi được về các kết "
                "luận; để báo cáo tiến độ, xin gửi mã mời do văn phòng cấp ủy cấp (dạng "
                "TL-ABCDE-FGHJK)."
            )
        )
    unit = identity.unit
    links = (
        await ctx.session.exec(
            select(PersonChannel.channel).where(PersonChannel.person_id == identity.person.id)
        )
    ).all()
    channels = ", ".join(sorted(channel_name(c) for c in links))
    return Reply(
        text=(
            f"Đồng chí {identity.person.name}\n"
            f"Đơn vị: {unit.name} (mã {unit.code}, {LEVEL_NAMES.get(unit.level, unit.level)})\n"
            f"Vai trò: {ROLE_NAMES[identity.role]}\n"
            f"Kênh đã liên kết: {channels}\n\n{await _commands(ctx)}"
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


INVITE_USAGE = "/moi <mã đơn vị> [canbo|quantri] [số người dùng] [số ngày]"


async def invite(msg: IncomingMessage, ctx: Context) -> Reply:
    """``/moi <mã đơn vị> [canbo|quantri|admin] [số người dùng] [số ngày]``."""
    identity = _require_manager(ctx)
    args = (msg.command[1] if msg.command else "").split()
    if not args:
        return Reply(text=f"Cách dùng: {INVITE_USAGE}\nVí dụ: /moi HN.XA01 canbo 1 14")
    if len(args) > 4:
        raise UserError(f"Lệnh có phần thừa «{' '.join(args[4:])}». Cách dùng: {INVITE_USAGE}")
    unit = await require_unit(ctx.session, args[0], _scope(identity))
    if not can_manage(identity, unit):
        raise UserError("Đồng chí chỉ tạo được mã mời cho các đơn vị mình quản lý.")
    role = ROLE_ALIASES.get(args[1].lower(), "") if len(args) > 1 else "official"
    if role not in ROLES:
        raise UserError("Vai trò phải là canbo (cán bộ báo cáo) hoặc quantri (quản trị đơn vị).")
    if role not in invitable_roles(identity):
        raise UserError("Chỉ quản trị hệ thống mới tạo được mã quản trị hệ thống.")
    try:
        uses = int(args[2]) if len(args) > 2 else 1
        days = int(args[3]) if len(args) > 3 else DEFAULT_INVITE_DAYS
    except ValueError:
        raise UserError(
            "Số người dùng và số ngày phải là số, ví dụ: /moi HN.XA01 canbo 1 14"
        ) from None
    code = await create_invite(
        ctx.session,
        unit=unit,
        role=role,
        uses=uses,
        days=days,
        created_by=f"person:{identity.person.id}",
        now=ctx.now,
        actor=Actor.of(ctx),
    )
    ctx.log.route = "invite_created"
    return Reply(
        text=invitation_text(
            code,
            unit.name,
            role,
            telegram_username=ctx.bot_username,
            telegram="telegram" in ctx.channels or ctx.bot_username is not None,
            zalo="zalo" in ctx.channels,
            uses=uses,
            days=days,
            expires_at=(ctx.now + timedelta(days=days)).astimezone(ctx.zone),
        )
    )


def _scope(identity: Identity) -> Unit | None:
    return None if identity.role == "admin" else identity.unit


TIENDO_USAGE = "/tiendo [mã đơn vị]"


async def progress_view(msg: IncomingMessage, ctx: Context) -> list[Reply]:
    """``/tiendo [mã đơn vị]``: the roll-up for the manager's subtree, with a chart (as text
    where pictures cannot be shown)."""
    identity = _require_manager(ctx)
    code = unit_code_argument(msg.command[1] if msg.command else "", TIENDO_USAGE)
    unit = identity.unit
    if code:
        found = await require_unit(ctx.session, code, _scope(identity))
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
                image=Image(
                    png,
                    "tien-do.png",
                    f"Tỷ lệ hoàn thành theo đơn vị — {unit.name}",
                    alt_text=children_text(rollup),
                ),
            )
        )
    return replies
