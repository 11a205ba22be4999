"""Turning a :class:`Reply` into text for a channel: numbered choices and splitting."""

from __future__ import annotations

import re
from collections.abc import Callable

from bot.core import Button, Reply

__all__ = [
    "PART_MARK_ROOM",
    "choice_prompt",
    "fit_label",
    "mark_parts",
    "numbered",
    "numbered_buttons",
    "plain_text",
    "split_text",
]

# Sentence ends only: a ";" or ":" is inside a sentence (a list of duties, "như sau:").
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
PART_MARK_ROOM = 10  # room kept for "(12/12) " when a message goes out in parts


def choice_prompt(count: int) -> str:
    if count == 1:
        return "Đồng chí trả lời 1 để chọn."
    return f"Đồng chí trả lời bằng số (1–{count}) để chọn."


def numbered(reply: Reply) -> Reply:
    """The same reply for a channel without buttons: choices become a numbered list. A
    choice with a ``command`` (cancel, stop) gets no number: it is typed instead."""
    buttons = [b for b in reply.flat_buttons if b.command is None]
    typed = [b for b in reply.flat_buttons if b.command is not None]
    if not buttons and not typed:
        return reply
    text = reply.text
    if buttons:
        lines = [f"{index}. {button.label}" for index, button in enumerate(buttons, start=1)]
        text = f"{text}\n\n" + "\n".join(lines) + f"\n\n{choice_prompt(len(buttons))}"
    if typed:
        hints = " ".join(f"Gõ {b.command} để {b.label[:1].lower()}{b.label[1:]}." for b in typed)
        text = f"{text}\n{hints}" if buttons else f"{text}\n\n{hints}"
    return Reply(text=text, footer=reply.footer, image=reply.image)


def numbered_buttons(reply: Reply) -> list[Button]:
    """The choices :func:`numbered` gives numbers to, in order."""
    return [b for b in reply.flat_buttons if b.command is None]


def fit_label(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters at a word boundary, with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:–-") + "…"


def mark_parts(parts: list[str]) -> list[str]:
    """``(1/3) …``, ``(2/3) …`` when a message goes out in several parts."""
    if len(parts) < 2:
        return parts
    total = len(parts)
    return [f"({index}/{total}) {part}" for index, part in enumerate(parts, start=1)]


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
    """Greedily join pieces while they fit; a piece too big on its own is split further. A
    short lead (a heading) is never sent alone: the start of the next piece fills its
    message."""
    chunks: list[str] = []
    current = ""
    queue = list(pieces)
    while queue:
        piece = queue.pop(0)
        candidate = f"{current}{joiner}{piece}" if current else piece
        if measure(candidate) <= limit:
            current = candidate
            continue
        room = limit - measure(f"{current}{joiner}") if current else 0
        if current and measure(current) < limit // 4 and room >= limit // 4:
            head = split_text(piece, room, measure)
            if len(head) > 1 or measure(head[0]) <= room:
                chunks.append(f"{current}{joiner}{head[0]}")
                rest = piece[len(head[0]) :] if piece.startswith(head[0]) else ""
                rest = rest.strip() or " ".join(head[1:])
                current = ""
                if rest:
                    queue.insert(0, rest)
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
