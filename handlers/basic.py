"""Greeting, help, and messages the assistant cannot read."""

from __future__ import annotations

from bot.core import IncomingMessage, Reply
from bot.redaction import DEEP_LINK_ACTIONS, find_code
from handlers.context import Context
from knowledge.understand import is_question

__all__ = [
    "EXAMPLES",
    "GREETING",
    "media",
    "private_only",
    "stale_button",
    "unknown_command",
]

GREETING = (
    "Xin chào đồng chí! Tôi là Trợ lý Kết luận, trả lời các câu hỏi về kết luận của Bộ Chính "
    "trị, Ban Bí thư về công tác tổ chức đại hội đảng bộ các cấp tiến tới Đại hội XIV của Đảng."
)
EXAMPLES = (
    "Đồng chí có thể hỏi trực tiếp, ví dụ:\n"
    "• Đại hội đảng bộ xã phải hoàn thành khi nào?\n"
    "• Ai ký Kết luận 185?\n"
    "• Ủy ban Kiểm tra Trung ương được giao nhiệm vụ gì?"
)


async def media(msg: IncomingMessage, ctx: Context) -> Reply:
    """A photo, sticker or voice message. A photo whose caption is a question gets the
    answer to the caption."""
    if msg.text and is_question(msg.text):
        from handlers.qa import answer_reply

        return answer_reply(msg.text, ctx)
    ctx.log.route = "media"
    return Reply(
        text=(
            "Xin lỗi, hiện tôi chỉ đọc được tin nhắn chữ. Đồng chí vui lòng gõ câu hỏi, "
            "ví dụ: «Đại hội đảng bộ xã phải hoàn thành khi nào?»"
        )
    )


async def unknown_command(msg: IncomingMessage, ctx: Context) -> Reply:
    ctx.log.route = "unknown_command"
    return Reply(text="Tôi chưa hiểu lệnh này. Đồng chí gõ /help để xem các lệnh.")


async def stale_button(msg: IncomingMessage, ctx: Context) -> Reply:
    ctx.log.route = "stale_button"
    return Reply(
        text="Lựa chọn này không còn hiệu lực. Đồng chí vui lòng gõ lại câu hỏi hoặc lệnh."
    )


async def private_only(msg: IncomingMessage, ctx: Context) -> Reply:
    """A personal or administrative request made in a group: nothing of it runs there."""
    ctx.log.route = "private_only"
    command = msg.command
    action = command[0] if command is not None and command[0] in DEEP_LINK_ACTIONS else ""
    if ctx.bot_username:
        link = f"https://t.me/{ctx.bot_username}" + (f"?start={action}" if action else "")
        where = f"trong tin nhắn riêng với trợ lý: {link}"
    else:
        where = "trong tin nhắn riêng với trợ lý."
    if find_code(msg.text) is not None:
        return Reply(
            text=(
                "Mã mời là thông tin riêng, xin đừng gửi trong nhóm. Đồng chí vui lòng gửi mã "
                f"{where}"
            )
        )
    return Reply(
        text=(
            "Việc này có thông tin riêng nên không làm trong nhóm. Đồng chí vui lòng tiếp tục "
            f"{where}"
        )
    )
