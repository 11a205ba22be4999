"""Turning a :class:`Reply` into text for a channel: numbered choices and splitting."""

from __future__ import annotations

import re
from collections.abc import Callable

from bot.core import Reply

__all__ = ["choice_prompt", "numbered", "plain_text", "split_text"]

_SENTENCE_END = re.compile(r"(?<=[.!?…;:])\s+")


def choice_prompt(count: int) -> str:
    if count == 1:
        return "Đồng chí trả lời 1 để chọn."
    return f"Đồng chí trả lời bằng số (1–{count}) để chọn."


def numbered(reply: Reply) -> Reply:
    """The same reply for a channel without buttons: choices become a numbered list."""
    buttons = reply.flat_buttons
    if not buttons:
        return reply
    lines = [f"{index}. {button.label}" for index, button in enumerate(buttons, start=1)]
    text = f"{reply.text}\n\n" + "\n".join(lines) + f"\n\n{choice_prompt(len(buttons))}"
    return Reply(text=text, footer=reply.footer, image=reply.image)


def plain_text(reply: Reply) -> str:
    """Text and footer as one plain string (buttons must already be numbered)."""
    return f"{reply.text}\n\n{reply.footer}" if reply.footer else reply.text


def split_text(text: str, limit: int, measure: Callable[[str], int] = len) -> list[str]:
    """Split ``text`` into chunks of at most ``limit`` (as measured by ``measure``), on
    paragraph, then line, then sentence, then word boundaries; words are cut only as a last
    resort. Chunks are stripped; no empty chunk is returned."""
    if limit < 1:
        raise ValueError("limit must be positive")
    text = text.strip()
    if not text:
        return []
    if measure(text) <= limit:
        return [text]
    for pattern, joiner in _SPLITTERS:
        pieces = [p.strip() for p in pattern.split(text) if p.strip()]
        if len(pieces) > 1:
            return _pack(pieces, joiner, limit, measure)
    return _hard_cut(text, limit, measure)


_SPLITTERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\n\s*\n"), "\n\n"),  # paragraphs
    (re.compile(r"\n"), "\n"),  # lines
    (_SENTENCE_END, " "),  # sentences
    (re.compile(r"\s+"), " "),  # words
)


def _pack(pieces: list[str], joiner: str, limit: int, measure: Callable[[str], int]) -> list[str]:
    """Greedily join pieces while they fit; a piece too big on its own is split further."""
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        candidate = f"{current}{joiner}{piece}" if current else piece
        if measure(candidate) <= limit:
            current = candidate
            continue
        if current:
            chunks.append(current)
        if measure(piece) <= limit:
            current = piece
        else:
            parts = split_text(piece, limit, measure)
            chunks.extend(parts[:-1])
            current = parts[-1]
    if current:
        chunks.append(current)
    return chunks


def _hard_cut(text: str, limit: int, measure: Callable[[str], int]) -> list[str]:
    chunks: list[str] = []
    start = 0
    while start < len(text):
        end = min(len(text), start + limit)
        while end > start + 1 and measure(text[start:end]) > limit:
            end -= 1
        chunks.append(text[start:end])
        start = end
    return [c for c in (chunk.strip() for chunk in chunks) if c]
