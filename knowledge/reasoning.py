"""Answers composed from structured data: deadlines checked against a plan or a claimed
time, and what a conversation remembers for a follow-up.

Every composed sentence states only what ``deadlines.yaml`` (and the entry it points to)
says, with that entry's citation; the verdict compares months, nothing else.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from knowledge.base import Deadline
from knowledge.normalize import fold, nfc
from knowledge.understand import ENTITY_KINDS, Mentions

__all__ = [
    "Period",
    "Turn",
    "claimed_period",
    "deadline_verdict",
    "looks_like_followup",
]

_MONTH_RE = re.compile(
    r"\b(?:(dau|giua|cuoi|het|trong|sang|den|vao)\s+)?(?:thang\s*|th|t)(\d{1,2})"
    r"(?:\s*(?:/|nam)\s*(\d{4}))?\b"
)
_DAY_RE = re.compile(r"\bngay\s+(\d{1,2})\s*/\s*(\d{1,2})(?:\s*/\s*(\d{4}))?\b")
# A date written alone ("hai ngày 14 và 15/10"), not a document's ("kết luận 29/8").
_BARE_DAY_RE = re.compile(
    r"(?<!ket luan )(?<!phien hop )(?<!hop )(?<!ngay )\b(\d{1,2})\s*/\s*(\d{1,2})"
    r"(?:\s*/\s*(\d{4}))?\b"
)
_QUARTER_RE = re.compile(r"\bquy\s+(iv|iii|ii|i|4|3|2|1)\b")
_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4}
_NEXT_YEAR_RE = re.compile(r"\b(nam sau|nam toi|sang nam|nam 2026|he nam sau|dau nam sau)\b")
_SUMMER_RE = re.compile(r"\b(he|mua he|dot he)\b")
_YEAR_END_RE = re.compile(r"\b(cuoi nam)\b")


@dataclass(frozen=True, slots=True)
class Period:
    """A time an official names for doing something: the first and last day it covers."""

    start: date
    end: date
    text: str  # as it was written, for the reply


def _last_day(year: int, month: int) -> date:
    return date(year, month, calendar.monthrange(year, month)[1])


def claimed_period(text: str, *, year: int, deadline_month: int | None = None) -> Period | None:
    """The period a plan or a yes/no question names ("giữa tháng 11/2025", "quý IV", "hè năm
    sau", "đầu tháng 9"); ``year`` is the year of the deadline it is compared with. A month
    equal to ``deadline_month`` mentioned as the subject ("xong trong tháng 8 không?") counts
    like any other."""
    written = nfc(text)
    folded = fold(written)
    if len(folded) != len(written):  # a rare letter that folds to two: quote the folded text
        written = folded

    def quoted(match: re.Match[str]) -> str:
        return " ".join(written[match.start() : match.end()].split())

    next_year = bool(_NEXT_YEAR_RE.search(folded))
    base_year = year + 1 if next_year else year
    periods: list[Period] = []
    for match in [*_DAY_RE.finditer(folded), *_BARE_DAY_RE.finditer(folded)]:
        day, month = int(match.group(1)), int(match.group(2))
        when_year = int(match.group(3)) if match.group(3) else base_year
        try:
            when = date(when_year, month, day)
        except ValueError:
            continue
        periods.append(Period(when, when, f"ngày {day}/{month}"))
    for match in _MONTH_RE.finditer(folded):
        month = int(match.group(2))
        if not 1 <= month <= 12:
            continue
        when_year = int(match.group(3)) if match.group(3) else base_year
        position = match.group(1) or ""
        first, last = date(when_year, month, 1), _last_day(when_year, month)
        if position == "dau":
            last = date(when_year, month, 10)
        elif position == "giua":
            first, last = date(when_year, month, 11), date(when_year, month, 20)
        elif position in {"cuoi", "het"}:
            first = date(when_year, month, 21)
        periods.append(Period(first, last, quoted(match)))
    for match in _QUARTER_RE.finditer(folded):
        quarter = _ROMAN.get(match.group(1)) or int(match.group(1))
        first_month = 3 * (quarter - 1) + 1
        periods.append(
            Period(
                date(base_year, first_month, 1),
                _last_day(base_year, first_month + 2),
                quoted(match),
            )
        )
    if not periods and _SUMMER_RE.search(folded) and next_year:
        periods.append(Period(date(base_year, 5, 1), date(base_year, 8, 31), "hè năm sau"))
    if not periods and _YEAR_END_RE.search(folded):
        periods.append(Period(date(base_year, 11, 1), date(base_year, 12, 31), "cuối năm"))
    if not periods and next_year:
        periods.append(Period(date(base_year, 1, 1), date(base_year, 12, 31), "năm sau"))
    if not periods:
        return None
    # The latest period named is the plan ("đã họp tháng 8, định ban hành tháng 11").
    return max(periods, key=lambda p: (p.end, p.start))


def deadline_verdict(deadline: Deadline, period: Period) -> tuple[bool | None, str]:
    """(in time?, the verdict sentence) for a plan or a claim against a deadline. ``None``
    when the period straddles the deadline."""
    due = deadline.due
    if period.end <= due:
        return True, (
            f"Đúng tiến độ: hạn là {deadline.due_text} (hạn cuối {due.day}/{due.month}/"
            f"{due.year}), nên «{period.text}» vẫn trong hạn."
        )
    if period.start > due:
        return False, (
            f"Chưa đúng tiến độ: hạn là {deadline.due_text} (hạn cuối {due.day}/{due.month}/"
            f"{due.year}), nên «{period.text}» là muộn hơn hạn."
        )
    return None, (
        f"Chỉ kịp nếu xong trước hạn: hạn là {deadline.due_text} (hạn cuối {due.day}/"
        f"{due.month}/{due.year})."
    )


# --------------------------------------------------------------------------- follow-ups

_FOLLOWUP_START = re.compile(
    r"^(con|the con|vay con|the|vay|con ve|ngoai ra|ngoai|rieng|the thi|vay thi|con ben|"
    r"con cap|con ban|con van ban|con ket luan|con viec)\b"
)
_FOLLOWUP_END = re.compile(r"\b(thi sao|thi the nao|thi ra sao|nua)\s*$")
# Endings that also close a full question ("… được giao nhiệm vụ gì nhỉ?"): a follow-up only
# when the message names nothing it is about.
_WEAK_FOLLOWUP_END = re.compile(r"\b(the nao|ra sao|sao|nhi)\s*$")
# «này» after a word of time is a time («hôm nay», «năm nay», «tối nay»), not a pointer.
_TIME_NAY = "".join(
    f"(?<!{word} )" for word in ("hom", "toi", "sang", "chieu", "trua", "dem", "bay", "dao", "nam")
)
_POINTER = re.compile(
    rf"\b(do|ay|{_TIME_NAY}nay|tren)\b\s*(?:$|\b(?:la|co|duoc|de|thi|ky|uu tien|cho|ve|phai|gom)\b)"
)
_PRONOUN = re.compile(r"\b(dong chi ay|ong ay|ba ay|nguoi do|van ban do|van ban nay|no)\b")


def looks_like_followup(
    text: str, mentions: Mentions, content_words: int, *, foreign: bool = False
) -> bool:
    """Whether a short message leans on the previous answer: «Còn cấp tỉnh thì sao?», «Ký
    ngày nào?», «Phối hợp với ai?», «Chương trình đó ưu tiên đối tượng nào?». ``foreign``:
    the message has a word the knowledge base never uses («giá vàng hôm nay»), so a short
    message naming nothing is a question of its own, not a follow-up."""
    folded = " ".join(re.sub(r"[^\w\s/]", " ", fold(text)).split())
    if not folded or content_words > 14:
        return False
    if _FOLLOWUP_START.match(folded) or _FOLLOWUP_END.search(folded):
        return True
    if _PRONOUN.search(folded) or _POINTER.search(folded):
        return True
    named = mentions.documents or mentions.bodies or mentions.places or mentions.persons
    if not named and not mentions.levels and _WEAK_FOLLOWUP_END.search(folded):
        return True
    # A short question naming nothing it is about ("Ký ngày nào?", "Phối hợp với ai?").
    return content_words <= 5 and not named and not mentions.levels and not foreign


@dataclass(frozen=True, slots=True)
class Turn:
    """What a conversation remembers of the last question answered: the focused question,
    the entry that answered it and what the question was about."""

    query: str
    entry_id: str | None
    mentions: Mentions

    def to_json(self) -> dict[str, Any]:
        return {
            "query": self.query,
            "entry": self.entry_id,
            "mentions": {
                kind: sorted(getattr(self.mentions, kind))
                if kind != "levels"
                else list(self.mentions.levels)
                for kind in ENTITY_KINDS
                if getattr(self.mentions, kind)
            },
        }

    @classmethod
    def from_json(cls, data: object) -> Turn | None:
        if not isinstance(data, dict) or not isinstance(data.get("query"), str):
            return None
        raw = data.get("mentions") if isinstance(data.get("mentions"), dict) else {}
        assert isinstance(raw, dict)
        values: dict[str, Any] = {}
        for kind in ENTITY_KINDS:
            items = raw.get(kind) or []
            if not isinstance(items, list):
                continue
            strings = [str(i) for i in items]
            values[kind] = tuple(strings) if kind == "levels" else frozenset(strings)
        entry = data.get("entry")
        return cls(str(data["query"]), str(entry) if entry else None, Mentions(**values))
