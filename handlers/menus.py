"""The commands each person sees in their messenger's command menu (Telegram's "/" menu):
what their role lets them do, nothing more."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core import Menu, MenuCommand
from handlers.people import Identity
from handlers.tasks import applicable_tasks

__all__ = [
    "GROUP_MENU",
    "GUEST_MENU",
    "Menu",
    "MenuCommand",
    "commands_text",
    "menu_for",
    "menu_key",
]

ASK = ("hoi", "Hỏi về các kết luận")
HELP = ("help", "Hướng dẫn sử dụng")
START = ("start", "Bắt đầu, giới thiệu trợ lý")
REPORT = ("baocao", "Báo cáo tiến độ nhiệm vụ của đơn vị")
ME = ("toi", "Thông tin tài khoản của đồng chí")
CANCEL = ("huy", "Hủy thao tác đang làm")
PROGRESS = ("tiendo", "Xem tiến độ các đơn vị")
BROADCAST = ("thongbao", "Gửi thông báo cho cán bộ")
INVITE = ("moi", "Tạo mã mời cho một đơn vị")
PEOPLE = ("canbo", "Xem cán bộ; khóa, mở lại, chuyển đơn vị")
INVITES = ("mamoi", "Xem và thu hồi mã mời")
WEB = ("web", "Nhận liên kết đăng nhập trang quản trị")

GUEST_MENU = Menu("guest", (ASK, START, HELP))
GROUP_MENU = Menu("group", (ASK, HELP))


def menu_key(identity: Identity | None) -> str:
    if identity is None:
        return GUEST_MENU.key
    return f"{identity.role}:{identity.unit.level}"


async def menu_for(session: AsyncSession, identity: Identity | None) -> Menu:
    """The menu for a person in their private chat with the assistant. An official whose
    level has nothing to report on is not offered /baocao."""
    key = menu_key(identity)
    if identity is None:
        return GUEST_MENU
    commands: list[MenuCommand] = [ASK]
    if await applicable_tasks(session, identity.unit.level) or identity.role != "official":
        commands.append(REPORT)
    if identity.role in {"unit_admin", "admin"}:
        commands.extend([PROGRESS, BROADCAST, INVITE, PEOPLE, INVITES, WEB])
    commands.extend([ME, CANCEL, HELP])
    return Menu(key, tuple(commands))


USAGE = {
    "hoi": "/hoi <câu hỏi>",
    "baocao": "/baocao",
    "tiendo": "/tiendo [mã đơn vị]",
    "moi": "/moi <mã đơn vị> [canbo|quantri] [số người] [số ngày]",
    "canbo": "/canbo [mã đơn vị]",
    "mamoi": "/mamoi [mã đơn vị]",
}


async def commands_text(session: AsyncSession, identity: Identity | None) -> str:
    """The commands this person can use, one per line (the same list as their menu)."""
    menu = await menu_for(session, identity)
    lines = ["Các lệnh:"]
    for command, description in menu.commands:
        if command == "start":
            continue
        lines.append(
            f"{USAGE.get(command, '/' + command)} — {description[:1].lower()}{description[1:]}"
        )
    if identity is not None and not any(c == "baocao" for c, _ in menu.commands):
        lines.append(
            "(Cấp của đơn vị đồng chí hiện chưa có nhiệm vụ cần báo cáo; khi có, trợ lý sẽ nhắc.)"
        )
    return "\n".join(lines)
