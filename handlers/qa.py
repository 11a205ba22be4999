"""Questions and answers from the knowledge base."""

from __future__ import annotations

import re

from bot.core import Button, IncomingMessage, Reply
from bot.render import fit_label
from handlers.context import Context
from knowledge import Entry, SearchResult
from knowledge.normalize import fold

__all__ = [
    "answer_reply",
    "ask",
    "entry_reply",
    "looks_like_question",
    "pick_suggestion",
    "result_reply",
]

SUGGESTION_LABEL = 60  # characters of a suggestion button (cut at a word, with "…")
_QUESTION_WORDS = re.compile(
    r"^(ai|khi nao|bao gio|tai sao|vi sao|lam sao|lam the nao|nhu the nao|the nao|co phai|"
    r"co duoc|hoi|cho hoi|xin hoi|cho em hoi|cho toi hoi|o dau|bao nhieu|may|ky nao|ngay nao|"
    r"thang nao|nam nao|van ban nao|co quan nao|cap nao|nhung ai|nhung gi|gi)\b"
)
_QUESTION_ENDS = re.compile(
    r"\b(khong|ko|k|hong|chua|gi|nao|sao|ai|dau|may|bao nhieu|bao gio|the nao|ra sao|"
    r"duoc khong|phai khong|chang|u)$"
)
_POLITE_TAIL = re.compile(r"(\s+(a|ha|nhi|nhe|nha|vay|z|day|the|ah|a oi|voi|giup em|giup toi))+$")


def looks_like_question(text: str | None) -> bool:
    """Whether a message reads as a question ("Ai ký Kết luận 185?", "xã phải xong khi nào
    ạ", "hạn đại hội tỉnh là bao giờ") rather than a statement or a note."""
    if not text:
        return False
    if "?" in text:
        return True
    folded = " ".join(re.sub(r"[^\w\s]", " ", fold(text)).split())
    if not folded:
        return False
    if _QUESTION_WORDS.match(folded):
        return True
    trimmed = _POLITE_TAIL.sub("", folded)
    return bool(_QUESTION_ENDS.search(trimmed)) or " khi nao" in f" {trimmed}"


SUGGESTION_PREFIX = "qa:"

NO_ANSWER = (
    "Xin lỗi, hiện tôi chưa có thông tin để trả lời chính xác câu hỏi này trong các kết luận "
    "về công tác tổ chức đại hội đảng bộ các cấp."
)
SUGGEST_HEADER = "Có phải đồng chí muốn hỏi:"
SCOPE_HINT = (
    "Tôi trả lời các câu hỏi về Kết luận 185-KL/TW và Kết luận phiên họp ngày 29/8/2025 của "
    "Bộ Chính trị, Ban Bí thư: thời hạn đại hội từng cấp, trách nhiệm của các cơ quan, "
    "văn bản liên quan."
)
VAGUE_QUESTION = (
    "Câu hỏi còn khá chung nên tôi chưa xác định được đồng chí cần thông tin nào. Đồng chí "
    "vui lòng hỏi cụ thể hơn, ví dụ: «Đại hội đảng bộ xã phải hoàn thành khi nào?»"
)
EMPTY_QUESTION = (
    "Đồng chí vui lòng gõ câu hỏi bằng chữ, ví dụ: «Đại hội đảng bộ xã phải hoàn thành khi nào?»"
)


def entry_reply(entry: Entry) -> Reply:
    """An entry's answer, ending with its citation."""
    return Reply(text=entry.answer, footer=f"Nguồn: {entry.citation}")


def result_reply(result: SearchResult) -> Reply:
    """The reply an official sees for a search result: the answer, or an honest fallback."""
    if result.matched and result.entry is not None:
        return entry_reply(result.entry)
    if result.reason == "empty":
        return Reply(text=EMPTY_QUESTION)
    lead = VAGUE_QUESTION if result.reason == "vague" else NO_ANSWER
    if result.suggestions:
        buttons = tuple(
            (
                Button(
                    label=fit_label(entry.title, SUGGESTION_LABEL),
                    payload=f"{SUGGESTION_PREFIX}{entry.id}",
                ),
            )
            for entry in result.suggestions
        )
        return Reply(text=f"{lead}\n\n{SUGGEST_HEADER}", buttons=buttons)
    return Reply(text=f"{lead}\n\n{SCOPE_HINT}")


def answer_reply(question: str, ctx: Context) -> Reply:
    """Search, record what was found on the message log, and build the reply."""
    result = ctx.knowledge.search(question)
    ctx.log.route = "qa"
    ctx.log.matched = result.matched
    ctx.log.score = result.score
    ctx.log.entry_id = result.entry.id if result.entry is not None else None
    return result_reply(result)


async def ask(msg: IncomingMessage, ctx: Context) -> Reply:
    """Free text or ``/hoi <câu hỏi>``."""
    command = msg.command
    question = command[1] if command is not None else (msg.text or "")
    if command is not None and not question:
        return Reply(text="Đồng chí gõ câu hỏi ngay sau lệnh /hoi, ví dụ: /hoi Ai ký Kết luận 185?")
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
