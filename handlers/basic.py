"""Greeting, help, and messages the assistant cannot read."""

from __future__ import annotations

from bot.core import IncomingMessage, Reply
from handlers.context import Context

__all__ = ["EXAMPLES", "GREETING", "media", "stale_button", "unknown_command"]

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
