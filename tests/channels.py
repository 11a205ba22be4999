"""Ways to put a question to the assistant, one per channel, all ending in what the official
sees. The accuracy test runs the same sets through each of them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from bot.render import numbered, plain_text
from handlers.qa import result_reply
from knowledge import Knowledge

# (question) -> (matched, text the official sees)
Asker = Callable[[str], Awaitable[tuple[bool, str]]]
# (the turns of one conversation) -> (matched, text the official sees) of the last reply
Converser = Callable[[Sequence[str]], Awaitable[tuple[bool, str]]]
CITATION_MARK = "Nguồn:"


def shown_as_answer(text: str) -> bool:
    """An answer always ends with its citation; a fallback never carries one."""
    return CITATION_MARK in text


def engine_asker(knowledge: Knowledge) -> Asker:
    async def ask(question: str) -> tuple[bool, str]:
        result = knowledge.search(question)
        return result.matched, plain_text(numbered(result_reply(result)))

    return ask


def engine_converser(knowledge: Knowledge) -> Converser:
    """The turns searched one after the other, each with the turn the one before left."""

    async def converse(turns: Sequence[str]) -> tuple[bool, str]:
        previous = None
        for turn in turns:
            result = knowledge.search(turn, previous)
            previous = result.turn
        return result.matched, plain_text(numbered(result_reply(result)))

    return converse
