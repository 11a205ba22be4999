"""People and invitations managed from the chat by unit admins (and admins), within their
subtree: ``/canbo`` lists people, ``/khoa``, ``/molai`` and ``/chuyen`` deactivate, reactivate
or move one (after a confirmation); ``/mamoi`` lists invitations and ``/thuhoi`` revokes one.
The same account functions serve ``troly people`` and ``troly invite`` on the command line."""

from __future__ import annotations

import secrets
from datetime import datetime

from bot.core import Button, IncomingMessage, Reply
from bot.storage.models import Person, Unit
from handlers.accounts import (
    ADMIN_ROLE_ONLY,
    SELF_DEACTIVATE,
    SELF_MOVE,
    activate_person,
    deactivate_person,
    deactivate_question,
    get_unit,
    list_invites,
    list_people,
    move_person,
    move_question,
    revoke_invite,
)
from handlers.audit import Actor
from handlers.context import Context, UserError
from handlers.formatting import vn_date, vn_datetime, vn_number
from handlers.people import ROLE_NAMES, Identity
from handlers.units import unit_code_argument

__all__ = [
    "FLOW",
    "PREFIX",
    "activate",
    "deactivate",
    "expired_notice",
    "invites",
    "move",
    "on_button",
    "people",
    "revoke",
]

FLOW = "quanly"
PREFIX = "ql:"
SHOWN = 30  # lines of a list in one message
ROLE_ARGUMENTS = {"canbo": "official", "quantri": "unit_admin", "admin": "admin"}


def _manager(ctx: Context) -> Identity:
    identity = ctx.identity
    if identity is None or identity.role not in {"unit_admin", "admin"}:
        raise UserError("Chức năng này dành cho quản trị đơn vị và quản trị hệ thống.")
    return identity


def _scope(identity: Identity) -> Unit | None:
    return None if identity.role == "admin" else identity.unit


async def _unit_argument(ctx: Context, identity: Identity, text: str, usage: str) -> Unit | None:
    code = unit_code_argument(text, usage)
    return await get_unit(ctx.session, code, scope=_scope(identity)) if code else None


def _when(ctx: Context, moment: datetime | None) -> str:
    if moment is None:
        return "chưa nhắn"
    return vn_datetime(moment.astimezone(ctx.zone))


async def people(msg: IncomingMessage, ctx: Context) -> Reply:
    """``/canbo [mã đơn vị]``: the people of the subtree, with what can be done."""
    identity = _manager(ctx)
    usage = "/canbo [mã đơn vị]"
    unit = await _unit_argument(ctx, identity, msg.command[1] if msg.command else "", usage)
    found = await list_people(ctx.session, scope=_scope(identity), unit=unit, inactive=True)
    where = (unit or identity.unit).name if unit or identity.role != "admin" else "toàn hệ thống"
    if not found:
        return Reply(text=f"Chưa có cán bộ nào đăng ký ở {where}.")
    active = sum(1 for p in found if p.active)
    lines = [
        f"Cán bộ ở {where}: {vn_number(active)} đang hoạt động, {len(found) - active} đã khóa."
    ]
    for info in found[:SHOWN]:
        channels = ", ".join(c.label for c in info.channels) or "chưa có kênh"
        state = "" if info.active else " — ĐÃ KHÓA"
        lines.append(
            f"#{info.id} {info.name} — {info.role_name}, {info.unit_name} ({info.unit_code}); "
            f"{channels}; nhắn gần nhất: {_when(ctx, info.last_message_at)}{state}"
        )
    if len(found) > SHOWN:
        lines.append(
            f"… và {vn_number(len(found) - SHOWN)} người khác: gõ /canbo <mã đơn vị> để xem "
            "từng đơn vị."
        )
    lines.append(
        "\nKhóa tài khoản: /khoa <số>. Mở lại: /molai <số>. Chuyển đơn vị hoặc vai trò: "
        "/chuyen <số> <mã đơn vị> [canbo|quantri]."
    )
    return Reply(text="\n".join(lines))


def _person_id(text: str, usage: str) -> int:
    value = text.split()[0].lstrip("#") if text.split() else ""
    if not value.isdigit():
        raise UserError(f"Cách dùng: {usage} (số của cán bộ trong danh sách /canbo).")
    return int(value)


async def _target(ctx: Context, identity: Identity, person_id: int) -> tuple[Person, Unit]:
    person = await ctx.session.get(Person, person_id)
    unit = await ctx.session.get(Unit, person.unit_id) if person is not None else None
    scope = _scope(identity)
    if (
        person is None
        or unit is None
        or (scope is not None and not unit.path.startswith(scope.path))
    ):
        raise UserError(f"Không tìm thấy cán bộ số {person_id} trong phạm vi đồng chí quản lý.")
    return person, unit


def _confirm(ctx: Context, action: str, data: dict[str, object], question: str) -> Reply:
    nonce = secrets.token_hex(6)
    ctx.conversation.flow, ctx.conversation.step = FLOW, "confirm"
    ctx.conversation.data = {"action": action, "nonce": nonce, **data}
    return Reply(
        text=question,
        buttons=(
            (Button("Không, giữ nguyên", f"{PREFIX}no"),),
            (Button("Đồng ý", f"{PREFIX}ok:{nonce}"),),
        ),
    )


async def deactivate(msg: IncomingMessage, ctx: Context) -> Reply:
    """``/khoa <số>``: the person no longer reaches the assistant as an official."""
    identity = _manager(ctx)
    person_id = _person_id(msg.command[1] if msg.command else "", "/khoa <số>")
    if person_id == identity.person.id:
        raise UserError(SELF_DEACTIVATE)
    person, unit = await _target(ctx, identity, person_id)
    if not person.active:
        return Reply(text=f"Tài khoản của {person.name} đã khóa từ trước.")
    return _confirm(
        ctx,
        "deactivate",
        {"person_id": person_id, "name": person.name},
        deactivate_question(person, unit),
    )


async def activate(msg: IncomingMessage, ctx: Context) -> Reply:
    """``/molai <số>``: a deactivated person is active again."""
    identity = _manager(ctx)
    person_id = _person_id(msg.command[1] if msg.command else "", "/molai <số>")
    await _target(ctx, identity, person_id)
    change = await activate_person(
        ctx.session, person_id=person_id, scope=_scope(identity), actor=Actor.of(ctx), now=ctx.now
    )
    ctx.log.route = "person_activated"
    if not change.changed:
        return Reply(text=f"Tài khoản của {change.person.name} đang hoạt động, không cần mở lại.")
    return Reply(text=f"Đã mở lại tài khoản của {change.person.name} ({change.unit.name}).")


async def move(msg: IncomingMessage, ctx: Context) -> Reply:
    """``/chuyen <số> <mã đơn vị> [canbo|quantri]``: another unit and/or role."""
    identity = _manager(ctx)
    usage = "/chuyen <số> <mã đơn vị> [canbo|quantri]"
    args = (msg.command[1] if msg.command else "").split()
    if len(args) not in (2, 3):
        raise UserError(f"Cách dùng: {usage}")
    person_id = _person_id(args[0], usage)
    role = ROLE_ARGUMENTS.get(args[2].lower()) if len(args) == 3 else None
    if len(args) == 3 and role is None:
        raise UserError("Vai trò phải là canbo (cán bộ báo cáo) hoặc quantri (quản trị đơn vị).")
    if role == "admin" and identity.role != "admin":
        raise UserError(ADMIN_ROLE_ONLY)
    if person_id == identity.person.id:
        raise UserError(SELF_MOVE)
    person, unit = await _target(ctx, identity, person_id)
    target = await get_unit(ctx.session, args[1], scope=_scope(identity))
    new_role = role or person.role
    return _confirm(
        ctx,
        "move",
        {"person_id": person_id, "unit_id": target.id, "role": new_role, "name": person.name},
        move_question(person, unit, target, new_role),
    )


async def on_button(msg: IncomingMessage, ctx: Context) -> Reply:
    """The answer to a confirmation of /khoa or /chuyen."""
    identity = _manager(ctx)
    action, _, nonce = (msg.payload or "").removeprefix(PREFIX).partition(":")
    data = dict(ctx.conversation.data or {})
    pending = ctx.conversation.flow == FLOW and ctx.conversation.step == "confirm"
    ctx.conversation.flow = ctx.conversation.step = None
    ctx.conversation.data = {}
    if not pending:
        return Reply(text="Yêu cầu này đã được xử lý hoặc đã hết hạn; không có gì thay đổi.")
    if action != "ok" or data.get("nonce") != nonce:
        return Reply(text=f"Đã giữ nguyên, không thay đổi tài khoản của {data.get('name', '')}.")
    person_id = int(str(data.get("person_id", 0)))
    scope = _scope(identity)
    if data.get("action") == "deactivate":
        change = await deactivate_person(
            ctx.session, person_id=person_id, scope=scope, now=ctx.now, actor=Actor.of(ctx)
        )
        ctx.log.route = "person_deactivated"
        cancelled = (
            f" {vn_number(change.cancelled_pushes)} tin đang chờ gửi cho người này đã được hủy."
            if change.cancelled_pushes
            else ""
        )
        return Reply(text=f"Đã khóa tài khoản của {change.person.name}.{cancelled}")
    target = await ctx.session.get(Unit, int(str(data.get("unit_id", 0))))
    if target is None:
        raise UserError("Đơn vị này không còn; không có gì thay đổi.")
    change = await move_person(
        ctx.session,
        person_id=person_id,
        unit=target,
        role=str(data.get("role")),
        scope=scope,
        actor=Actor.of(ctx),
        now=ctx.now,
    )
    ctx.log.route = "person_moved"
    return Reply(
        text=(
            f"Đã chuyển {change.person.name}: nay là {ROLE_NAMES[change.person.role]} của "
            f"{change.unit.name}."
        )
    )


async def invites(msg: IncomingMessage, ctx: Context) -> Reply:
    """``/mamoi [mã đơn vị]``: the invitations still usable in the subtree."""
    identity = _manager(ctx)
    usage = "/mamoi [mã đơn vị]"
    unit = await _unit_argument(ctx, identity, msg.command[1] if msg.command else "", usage)
    found = await list_invites(ctx.session, scope=_scope(identity), now=ctx.now, unit=unit)
    if not found:
        return Reply(text="Không có mã mời nào còn hiệu lực. Tạo mã mới: /moi <mã đơn vị>.")
    lines = [f"Mã mời còn hiệu lực: {len(found)} (mã chỉ hiện một lần khi tạo, nên không in lại)."]
    for info in found[:SHOWN]:
        expires = vn_date(info.expires_at.astimezone(ctx.zone))
        lines.append(
            f"#{info.id} {info.unit_name} ({info.unit_code}) — {info.role_name}; đã dùng "
            f"{info.uses}/{info.max_uses}; hết hạn {expires}; tạo bởi {info.created_by}"
        )
    if len(found) > SHOWN:
        lines.append(f"… và {vn_number(len(found) - SHOWN)} mã khác.")
    lines.append("\nThu hồi một mã: /thuhoi <số>.")
    return Reply(text="\n".join(lines))


async def revoke(msg: IncomingMessage, ctx: Context) -> Reply:
    """``/thuhoi <số>``: the code no longer enrols anyone."""
    identity = _manager(ctx)
    text = msg.command[1] if msg.command else ""
    value = text.split()[0].lstrip("#") if text.split() else ""
    if not value.isdigit():
        raise UserError("Cách dùng: /thuhoi <số> (số của mã trong danh sách /mamoi).")
    info, was_usable = await revoke_invite(
        ctx.session, invite_id=int(value), scope=_scope(identity), now=ctx.now, actor=Actor.of(ctx)
    )
    ctx.log.route = "invite_revoked"
    if not was_usable:
        return Reply(text=f"Mã mời #{info.id} đã không còn dùng được ({info.state}).")
    return Reply(
        text=(
            f"Đã thu hồi mã mời #{info.id} ({info.role_name}, {info.unit_name}): mã này không "
            "dùng được nữa."
        )
    )


def expired_notice(data: dict[str, object]) -> str:
    return (
        f"Thay đổi tài khoản của {data.get('name', 'cán bộ')} chưa được xác nhận trong thời gian "
        "chờ nên không có gì thay đổi."
    )
