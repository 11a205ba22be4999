"""Questions and answers from the knowledge base."""

from __future__ import annotations

import re

from bot.core import Button, IncomingMessage, Reply
from bot.render import fit_label
from handlers.context import Context
from handlers.routing import HandlerResult
from knowledge import Entry, SearchResult, Turn
from knowledge.normalize import fold
from knowledge.understand import is_question as looks_like_question

__all__ = [
    "answer_reply",
    "ask",
    "entry_reply",
    "looks_like_question",
    "pick_suggestion",
    "result_reply",
]

SUGGESTION_LABEL = 60  # characters of a suggestion button (cut at a word, with "…")
SUGGESTION_PREFIX = "qa:"

NO_ANSWER = (
    "Xin lỗi, hiện tôi chưa có thông tin để trả lời chính xác câu hỏi này trong các kết luận "
    "về công tác tổ chức đại hội đảng bộ các cấp."
)
SUGGEST_HEADER = "Có phải đồng chí muốn hỏi:"
SCOPE_HINT = (
    "Tôi trả lời các câu hỏi về Kết luận số 185 và Kết luận phiên họp ngày 29/8/2025 của "
    "Bộ Chính trị, Ban Bí thư: thời hạn đại hội từng cấp, trách nhiệm của các cơ quan, "
    "văn bản liên quan."
)
VAGUE_QUESTION = (
    "Câu hỏi còn khá chung nên tôi chưa xác định được đồng chí cần thông tin nào. Đồng chí "
    "vui lòng hỏi cụ thể hơn, ví dụ: «Đại hội đảng bộ xã phải hoàn thành khi nào?»"
)
RELATED_HEADER = "Đồng chí còn hỏi thêm — chọn để xem câu trả lời:"
FOLLOWUP_ALONE = (
    "Đồng chí hỏi tiếp về nội dung nào ạ? Xin đồng chí hỏi đầy đủ hơn, ví dụ: «Hạn đại hội "
    "đảng bộ tỉnh là khi nào?»"
)
GREETING_REPLY = "Xin chào đồng chí! Đồng chí cứ gõ câu hỏi, tôi sẽ trả lời kèm nguồn."
THANKS = "Cảm ơn đồng chí. Khi cần, đồng chí cứ gõ câu hỏi."
EMPTY_QUESTION = (
    "Đồng chí vui lòng gõ câu hỏi bằng chữ, ví dụ: «Đại hội đảng bộ xã phải hoàn thành khi nào?»"
)


def entry_reply(entry: Entry, text: str | None = None) -> Reply:
    """An entry's answer (or a text composed from it), ending with its citation."""
    return Reply(text=text or entry.answer, footer=f"Nguồn: {entry.citation}")


def _suggestion(entry: Entry) -> tuple[Button, ...]:
    return (
        Button(
            label=fit_label(entry.title, SUGGESTION_LABEL), payload=f"{SUGGESTION_PREFIX}{entry.id}"
        ),
    )


def result_reply(result: SearchResult) -> Reply:
    """The reply an official sees for a search result: the answer, or an honest fallback."""
    if result.matched and result.entry is not None:
        reply = entry_reply(result.entry, result.text)
        if result.related:  # the message asked more than one thing
            return Reply(
                text=f"{reply.text}\n\n{RELATED_HEADER}",
                footer=reply.footer,
                buttons=tuple(_suggestion(entry) for entry in result.related),
            )
        return reply
    if result.reason == "not_stated" and result.entry is not None:
        return Reply(
            text=result.text or result.entry.answer,
            footer=f"Đã đối chiếu: {result.entry.citation}",
        )
    if result.reason == "followup":
        return Reply(text=FOLLOWUP_ALONE)
    if result.reason == "no_question":
        thanks = "cam on" in " ".join(fold(result.query).split())
        return Reply(text=THANKS if thanks else f"{GREETING_REPLY}\n\n{SCOPE_HINT}")
    if result.reason == "empty":
        return Reply(text=EMPTY_QUESTION)
    lead = VAGUE_QUESTION if result.reason == "vague" else NO_ANSWER
    if result.suggestions:
        buttons = tuple(_suggestion(entry) for entry in result.suggestions)
        return Reply(text=f"{lead}\n\n{SUGGEST_HEADER}", buttons=buttons)
    return Reply(text=f"{lead}\n\n{SCOPE_HINT}")


def answer_reply(question: str, ctx: Context) -> Reply:
    """Search (with the conversation's last question, for a follow-up, and the asker's own
    level), remember this question, record what was found, and build the reply."""
    previous = None if ctx.in_group else Turn.from_json(ctx.conversation.qa_turn)
    level = ctx.identity.unit.level if ctx.identity is not None else None
    result = ctx.knowledge.search(question, previous, asker_level=level)
    if not ctx.in_group:
        ctx.conversation.qa_turn = result.turn.to_json() if result.turn is not None else None
    ctx.log.route = "qa"
    ctx.log.matched = result.matched
    ctx.log.score = result.score
    ctx.log.entry_id = result.entry.id if result.entry is not None and result.matched else None
    return result_reply(result)


_COMMAND_WORDS = {
    "tien do": (
        "tiendo",
        "Để xem tiến độ các đơn vị, đồng chí gõ /tiendo (hoặc /tiendo <mã đơn vị>).",
    ),
    "xem tien do": (
        "tiendo",
        "Để xem tiến độ các đơn vị, đồng chí gõ /tiendo (hoặc /tiendo <mã đơn vị>).",
    ),
    "bao cao": ("baocao", "Để báo cáo tiến độ nhiệm vụ của đơn vị, đồng chí gõ /baocao."),
    "bao cao tien do": ("baocao", "Để báo cáo tiến độ nhiệm vụ của đơn vị, đồng chí gõ /baocao."),
    "thong bao": ("thongbao", "Để gửi thông báo cho cán bộ, đồng chí gõ /thongbao."),
    "gui thong bao": ("thongbao", "Để gửi thông báo cho cán bộ, đồng chí gõ /thongbao."),
}
_MANAGERS_ONLY = frozenset({"tiendo", "thongbao"})
_OWN_UNIT = re.compile(
    r"\b(don vi|xa|phuong|dac khu|dang bo|dang uy|chi bo|co so|tinh|cap|ben)\s+"
    r"(toi|minh|chung toi|em|tui|chung em|ta|nha)\b|\b(chung toi|chung em|toi|minh)\s+con\b"
)
_OPEN_TASKS = re.compile(
    r"\b(con (viec|nhiem vu|nhung viec|nhung nhiem vu)|viec gi|nhiem vu (gi|nao)|"
    r"chua (xong|hoan thanh|lam|bao cao)|phai lam (gi|nhung gi)|can lam (gi|nhung gi))\b"
)


async def ask(msg: IncomingMessage, ctx: Context) -> HandlerResult:
    """Free text or ``/hoi <câu hỏi>``."""
    command = msg.command
    question = command[1] if command is not None else (msg.text or "")
    if command is not None and not question:
        return Reply(text="Đồng chí gõ câu hỏi ngay sau lệnh /hoi, ví dụ: /hoi Ai ký Kết luận 185?")
    folded = " ".join(re.sub(r"[^\w\s]", " ", fold(question)).split())
    pointer = _COMMAND_WORDS.get(folded)
    identity = ctx.identity
    if pointer is not None and identity is not None and not ctx.in_group:
        command_name, text = pointer
        if command_name not in _MANAGERS_ONLY or identity.role in {"unit_admin", "admin"}:
            ctx.log.route = "command_word"
            return Reply(text=text)
    if (
        identity is not None
        and not ctx.in_group
        and _OWN_UNIT.search(folded)
        and _OPEN_TASKS.search(folded)
    ):
        from handlers.progress import open_tasks_reply

        return await open_tasks_reply(ctx, identity)
    return answer_reply(question, ctx)


async def pick_suggestion(msg: IncomingMessage, ctx: Context) -> Reply:
    """A suggestion button (or its number) was chosen."""
    entry_id = (msg.payload or "").removeprefix(SUGGESTION_PREFIX)
    entry = ctx.knowledge.base.entries.get(entry_id)
    ctx.log.route = "qa_pick"
    if entry is None:
        return Reply(text="Nội dung này không còn trong cơ sở tri thức. Đồng chí vui lòng hỏi lại.")
    ctx.log.entry_id = entry.id
    ctx.log.matched = True
    return entry_reply(entry)
