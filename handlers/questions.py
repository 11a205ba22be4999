"""Questions the knowledge base could not answer, grouped for the curators: near-duplicates
together (the project's accent folding, then rapidfuzz's ``token_set_ratio``), with how
often and when they were asked and the suggestions the asker was offered. Shared by the web
console («Câu hỏi chưa trả lời») and ``troly kb unanswered``.

Where it reads from: ``message_log`` rows routed to the Q&A (``route = 'qa'``) that found no
answer (``matched`` false) and got the no-answer, the too-vague or the "ask in full" reply
(greetings and thanks are left out). Telegram and Zalo updates keep the reply in the row, so
the suggestions offered are read back from it: buttons (``qa:<entry>``) where the channel
has them, the numbered list after «Có phải đồng chí muốn hỏi:» where it has not. Messages
without a platform id (the terminal chat) keep no reply: they count, with no suggestions,
and a greeting typed there cannot be told from a question.

Scope: a row names the asker by ``(channel, user_id)``; through ``person_channel`` that is a
person of a unit, so a unit admin sees the questions of people of their subtree. Questions of
people not enrolled (or no longer linked) belong to no unit: only an unscoped reading (the
root admin, the command line) includes them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rapidfuzz import fuzz, process
from sqlalchemy import and_
from sqlalchemy import select as select_columns
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.render import fit_label
from bot.storage.models import MessageLog, Person, PersonChannel, Unit
from handlers.qa import (
    FOLLOWUP_ALONE,
    NO_ANSWER,
    SUGGEST_HEADER,
    SUGGESTION_LABEL,
    SUGGESTION_PREFIX,
    VAGUE_QUESTION,
)
from handlers.units import path_range
from knowledge import Knowledge
from knowledge.normalize import words

__all__ = [
    "COMPARED",
    "PERIODS",
    "QuestionGroup",
    "Unanswered",
    "group_questions",
    "offered_suggestions",
    "question_key",
    "unanswered_questions",
]

PERIODS = (7, 30, 90)  # days the console offers
SIMILARITY = 85  # token_set_ratio at or above which two questions are one group
# token_set_ratio scores 100 when one question's words are all in the other ("đại hội" in
# "đại hội xã khi nào"): the shorter must also have this share of the longer's words.
SIZE_RATIO = 0.6
ROWS_READ = 20_000  # the most recent unanswered questions read for one listing
# Wordings compared by similarity, the most asked first (each with every group formed before
# it: about 1.5 µs a pair, so 1,000 wordings take under a second). Rarer wordings beyond
# this join a group only with the same folded words.
COMPARED = 1_000
VARIANTS_SHOWN = 5
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NUMBERED = re.compile(r"^\s*(\d+)\.\s+(.+?)\s*$")


@dataclass(frozen=True, slots=True)
class Unanswered:
    """One unanswered question as asked."""

    text: str
    asked_at: datetime  # UTC
    asker: str  # channel:user_id
    suggestions: tuple[str, ...]  # titles offered, in order
    vague: bool  # the too-vague reply rather than the no-answer one


@dataclass
class QuestionGroup:
    """Near-duplicate questions, most asked wording first."""

    key: str  # the folded words of the first (most asked) wording
    text: str  # that wording, as last typed
    count: int = 0
    askers: set[str] = field(default_factory=set)
    last_asked: datetime | None = None  # UTC
    wordings: Counter[str] = field(default_factory=Counter)  # original text -> times
    suggestions: Counter[str] = field(default_factory=Counter)  # title -> times offered
    vague: int = 0
    compared: bool = True  # False: beyond COMPARED, not compared with the other groups

    @property
    def variants(self) -> list[str]:
        """Other wordings, most asked first."""
        return [w for w, _ in self.wordings.most_common() if w != self.text][:VARIANTS_SHOWN]

    @property
    def offered(self) -> list[tuple[str, int]]:
        return self.suggestions.most_common()

    @property
    def people(self) -> int:
        return len(self.askers)


def question_key(text: str) -> str:
    """The question's folded words: no accents, case or punctuation (``"Đại hội xã?"`` ->
    ``"dai hoi xa"``)."""
    return " ".join(words(text))


def _titles(knowledge: Knowledge | None) -> tuple[dict[str, str], dict[str, str]]:
    """(entry id -> title, shown label -> title) for reading suggestions back."""
    if knowledge is None:
        return {}, {}
    by_id = {entry_id: entry.title for entry_id, entry in knowledge.base.entries.items()}
    by_label = {fit_label(title, SUGGESTION_LABEL): title for title in by_id.values()}
    return by_id, by_label


def offered_suggestions(
    replies: Sequence[Mapping[str, Any]] | None,
    titles: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
) -> tuple[str, ...]:
    """The suggestions a stored reply offered: from its ``qa:`` buttons, or from the numbered
    list after the suggestion header (channels without buttons). Titles come from the
    knowledge base where it still has the entry; otherwise the label as shown."""
    titles = titles or {}
    labels = labels or {}
    found: list[str] = []
    for reply in replies or ():
        for row in reply.get("buttons") or ():
            for button in row:
                label, payload = str(button[0]), str(button[1])
                if payload.startswith(SUGGESTION_PREFIX):
                    found.append(titles.get(payload.removeprefix(SUGGESTION_PREFIX), label))
        text = str(reply.get("text") or "")
        if not found and SUGGEST_HEADER in text:
            for line in text.split(SUGGEST_HEADER, 1)[1].splitlines():
                match = _NUMBERED.match(line)
                if match is not None:
                    found.append(labels.get(match.group(2), match.group(2)))
    return tuple(dict.fromkeys(found))


def _unanswered_reply(replies: Sequence[Mapping[str, Any]]) -> tuple[bool, bool]:
    """(the stored reply said it had no answer or asked to rephrase, it was the too-vague
    reply)."""
    first = str(replies[0].get("text") or "") if replies else ""
    vague = first.startswith(VAGUE_QUESTION)
    return vague or first.startswith(NO_ANSWER) or first.startswith(FOLLOWUP_ALONE), vague


async def unanswered_questions(
    session: AsyncSession,
    *,
    since: datetime,
    scope: Unit | None = None,
    knowledge: Knowledge | None = None,
) -> list[Unanswered]:
    """Unanswered questions asked since ``since``, newest first (at most ``ROWS_READ``).
    ``scope``: only those of people of that unit's subtree (None: everyone, also people not
    enrolled)."""
    statement: Any = (
        select_columns(
            col(MessageLog.text),
            col(MessageLog.created_at),
            col(MessageLog.channel),
            col(MessageLog.user_id),
            col(MessageLog.replies),
        )
        .select_from(MessageLog)
        .where(
            col(MessageLog.route) == "qa",
            col(MessageLog.matched).is_(False),
            col(MessageLog.created_at) >= since,
        )
        .order_by(col(MessageLog.created_at).desc(), col(MessageLog.id).desc())
        .limit(ROWS_READ)
    )
    if scope is not None:
        low, high = path_range(scope)
        statement = (
            statement.join(
                PersonChannel,
                and_(
                    col(PersonChannel.channel) == col(MessageLog.channel),
                    col(PersonChannel.user_id) == col(MessageLog.user_id),
                ),
            )
            .join(Person, col(Person.id) == col(PersonChannel.person_id))
            .join(Unit, col(Unit.id) == col(Person.unit_id))
            .where(col(Unit.path) >= low, col(Unit.path) < high)
        )
    titles, labels = _titles(knowledge)
    found = []
    for text, created_at, channel, user_id, replies in (await session.exec(statement)).all():
        unanswered, vague = _unanswered_reply(replies) if replies else (True, False)
        if not text or not text.strip() or not unanswered:
            continue
        found.append(
            Unanswered(
                text=" ".join(text.split()),
                asked_at=created_at if created_at.tzinfo else created_at.replace(tzinfo=UTC),
                asker=f"{channel}:{user_id}",
                suggestions=offered_suggestions(replies, titles, labels),
                vague=vague,
            )
        )
    return found


def _close(key: str, other: str) -> bool:
    a, b = set(key.split()), set(other.split())
    return min(len(a), len(b)) >= SIZE_RATIO * max(len(a), len(b))


def group_questions(questions: Iterable[Unanswered]) -> list[QuestionGroup]:
    """Near-duplicates together, the most asked groups first (then the most recent).

    The same folded words are one wording; wordings are then taken from the most asked down
    and each joins the most similar group already formed (``token_set_ratio`` at least
    ``SIMILARITY``, words of comparable number), or starts one. Only the first ``COMPARED``
    wordings are compared; the rest are groups of their own (``compared`` false)."""
    by_key: dict[str, list[Unanswered]] = {}
    for question in questions:
        key = question_key(question.text)
        if key:
            by_key.setdefault(key, []).append(question)
    ordered = sorted(
        by_key, key=lambda k: (-len(by_key[k]), -_latest(by_key[k]).asked_at.timestamp(), k)
    )
    groups: list[QuestionGroup] = []
    heads: list[str] = []
    for number, key in enumerate(ordered):
        target = None
        compared = number < COMPARED
        if compared:
            for head, _score, index in process.extract(
                key, heads, scorer=fuzz.token_set_ratio, score_cutoff=SIMILARITY, limit=5
            ):
                if _close(key, head):
                    target = groups[index]
                    break
        if target is None:
            target = QuestionGroup(key=key, text=by_key[key][0].text, compared=compared)
            groups.append(target)
            heads.append(key)
        for question in by_key[key]:
            target.count += 1
            target.askers.add(question.asker)
            target.wordings[question.text] += 1
            target.vague += question.vague
            if target.last_asked is None or question.asked_at > target.last_asked:
                target.last_asked = question.asked_at
            for title in question.suggestions:
                target.suggestions[title] += 1
    for group in groups:  # shown: the most asked wording, one with accents, the latest
        group.text = max(group.wordings, key=lambda w: (group.wordings[w], not w.isascii()))
    groups.sort(key=lambda g: (-g.count, -(g.last_asked or EPOCH).timestamp(), g.key))
    return groups


def _latest(questions: Sequence[Unanswered]) -> Unanswered:
    return max(questions, key=lambda q: q.asked_at)
