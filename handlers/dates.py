"""Completion dates typed by officials after they choose «Đã hoàn thành».

An official may answer with a date, a note or both: «20/8 Đã tổ chức xong đại hội», «hôm qua,
xong rồi», «Đã tổ chức đại hội ngày 18/8, 120 đại biểu». :func:`parse_completion` finds the
completion date, decides what is kept as the note, and refuses dates that cannot be right (31/2,
a day in the future, one more than three years ago) with a :class:`DateError` whose ``message``
is a sentence for the official. Nothing here reads the clock: ``today`` is always passed in.

What counts as a date:

* the forms «hôm nay», «hôm qua», «hôm kia» («hôm kìa»: three days ago); «20/8», «20-8», «20.8»
  with an optional year («20/8/2025», «20/08/25»); ISO «2025-08-20»; «15 tháng 8», «15 thg 8»
  with an optional «năm 2025» / «, 2025»; a year may also be written «năm nay» / «năm ngoái»;
* at the very start of the text (after an optional «xong», «hoàn thành», «đã xong», «ngày»,
  «từ», «vào» …) it is the completion date and is cut from the note; elsewhere it counts only
  after «ngày», «vào» or «hôm», or as «hôm qua» and the like, and the note is the whole text;
* «5/5 chi bộ», «15/20 đơn vị», «3/4 %» are counts, not dates (see ``_COUNT_NOUNS``), unless
  the word «ngày» or «hôm» stands right before them;
* «từ 18/8 đến 20/8» and «18/8 - 20/8» are one period: the day it ended is the completion date;
* a start such as «8/2025» or «20/8/202» is refused: it was meant as a date but names no day.

Matching runs on a folded copy of the text (lower case, no accents, ``đ`` -> ``d``) with a map
from each folded character back to the character it came from, so the note and ``source`` are
cut from the text exactly as typed, diacritics and all (even when typed decomposed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import date, timedelta
from functools import lru_cache

from handlers.formatting import vn_date
from knowledge.normalize import fold, nfc

__all__ = [
    "MAX_AGE_YEARS",
    "Completion",
    "DateError",
    "DateMention",
    "describe",
    "find_dates",
    "parse_completion",
]

MAX_AGE_YEARS = 3


class DateError(ValueError):
    """A date that cannot be the completion date; ``message`` tells the official why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Completion:
    """What an official's answer says: the completion date (if any) and the note to store."""

    done_on: date | None  # None: the text names no date, or see ``choices``
    note: str  # what to store as the note («» when nothing is left)
    choices: tuple[date, ...] = ()  # non-empty: done_on is None, ask which (oldest first)
    source: str = ""  # the date words as typed («hôm qua», «20/8»), for the confirmation


@dataclass(frozen=True, slots=True)
class DateMention:
    """A date written in a text. ``start``/``end`` index the text as given; ``year`` is None when
    none was typed (2-digit years are already 20xx). For a period («18/8 - 20/8») the span covers
    both ends and the day, month and year are those of its end."""

    start: int
    end: int
    source: str
    day: int
    month: int
    year: int | None
    leading: bool  # at the very start, after an optional «xong», «hoàn thành ngày» …
    marked: bool  # after «ngày», «vào», «hôm», or a word such as «hôm qua»
    is_range: bool = False


# --------------------------------------------------------------------------- folding


@lru_cache(maxsize=4096)
def _fold_char(char: str) -> str:
    return fold(char)


@dataclass(frozen=True, slots=True)
class _Folded:
    """``folded`` is ``text`` folded character by character; ``origin[i]`` is the index in
    ``text`` of the character ``folded[i]`` came from (combining marks fold to nothing, so a
    decomposed «ô» folds to one «o» pointing at the base letter), and
    ``origin[len(folded)] == len(text)``."""

    text: str
    folded: str
    origin: tuple[int, ...]

    @classmethod
    def of(cls, text: str) -> _Folded:
        parts: list[str] = []
        origin: list[int] = []
        for index, char in enumerate(text):
            folded = _fold_char(char)
            parts.append(folded)
            origin.extend([index] * len(folded))
        origin.append(len(text))
        return cls(text, "".join(parts), tuple(origin))

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The span of ``text`` that ``folded[start:end]`` came from (trailing marks included)."""
        return self.origin[start], self.origin[end]

    def original(self, start: int, end: int) -> str:
        first, last = self.span(start, end)
        return self.text[first:last]


# --------------------------------------------------------------------------- patterns (folded)

_DATE_RE = re.compile(
    r"""
    (?<![0-9])(?:
        (?P<iso>(?P<iso_y>[0-9]{4})(?P<iso_sep>[-/.])(?P<iso_m>[0-9]{1,2})(?P=iso_sep)
            (?P<iso_d>[0-9]{1,2}))
      | (?P<num>(?P<num_d>[0-9]{1,2})[ ]?(?P<sep>[-/.])[ ]?(?P<num_m>[0-9]{1,2})
            (?:[ ]?(?P=sep)[ ]?(?P<num_y>[0-9]{4}|[0-9]{2}))?)
      | (?P<words>(?P<words_d>[0-9]{1,2})[ \t]*(?:thang|thg\.?)[ \t]*(?P<words_m>[0-9]{1,2})
            (?:[ \t]*,[ \t]*(?P<words_y>[0-9]{4}))?)
    )(?![0-9])
    | (?<![a-z0-9])hom[ \t]*(?P<rel>nay|qua|kia)(?![a-z0-9])
    """,
    re.VERBOSE,
)
_RELATIVE_DAYS = {"nay": 0, "qua": 1, "kia": 2}

# «20/8 năm 2025», «15 tháng 8 năm nay».
_YEAR_WORDS_RE = re.compile(
    r"[ \t]*nam[ \t]*(?:(?P<year>[0-9]{4}|[0-9]{2})(?![0-9])"
    r"|(?P<rel>nay|ngoai|truoc|roi)(?![a-z0-9]))"
)
_LAST_YEAR = ("ngoai", "truoc", "roi")

# What may come before a leading date: a bullet, «xong», «(đã) hoàn thành», «từ», «vào», «ngày».
_LEAD_RE = re.compile(
    r"[\s\-–—+*•>]*(?:(?:da\s+)?(?:xong|hoan\s+thanh)\s*[,:]?\s*)?(?:(?:tu|vao)\s+)?(?:(?:ngay|hom)\s*)?"
)
# A word right before a date that marks it as one («ngày 18/8», «vào 18/8», «hôm 18/8»); not
# after a number («trong 2 ngày 5/5 chi bộ …» is a duration).
_MARK_RE = re.compile(r"(?<![a-z0-9])(?<![0-9] )(?P<word>ngay|vao|hom)\s*$")
# «Hướng dẫn số 12-HD/TW ngày 15/7/2025», «Kết luận 18-KL/TW ngày …»: a document's date.
_DOC_REF_RE = re.compile(
    r"(?:(?<![a-z0-9])so\s*[0-9][^\s,;]*|[0-9]+\s*[-/]\s*[a-z][a-z0-9/-]*)\s*,?\s*$"
)
# At the start, something meant as a date that names no day: «8/2025», «tháng 8 năm 2025»,
# or a year of the wrong length, «20/8/202».
_NO_DAY_RE = re.compile(
    r"""
    (?:
        (?:thang[ \t]*)?[0-9]{1,2}(?:[ ]?[-/][ ]?|\.)[0-9]{4}
      | thang[ \t]*[0-9]{1,2}[ \t]*nam[ \t]*[0-9]{4}
      | [0-9]{1,2}[ ]?(?P<sep>[-/.])[ ]?[0-9]{1,2}[ ]?(?P=sep)[ ]?(?:[0-9]{5,}|[0-9]{3}|[0-9])
    )(?![0-9])
    """,
    re.VERBOSE,
)
# Between the two ends of a period.
_RANGE_RE = re.compile(r"[ \t]*(?:-|–|—|den|toi)[ \t]*(?:ngay[ \t]*)?")
# After a leading date, on the original text: one separator on the same line.
_SEPARATOR_RE = re.compile(r"[^\S\n]*[,;:.\-–—]?")

# Nouns that make a «d/m» just before them a count («5/5 chi bộ», «15/20 đơn vị»).
_COUNT_NOUNS = (
    "chi bộ",
    "đảng bộ",
    "đảng viên",
    "tổ chức đảng",
    "tổ chức cơ sở đảng",
    "cơ sở",
    "cấp ủy",
    "ủy viên",
    "đồng chí",
    "cán bộ",
    "người",
    "đại biểu",
    "đoàn viên",
    "hội viên",
    "học viên",
    "gia đình",
    "đơn vị",
    "đặc khu",
    "huyện",
    "thị trấn",
    "thôn",
    "khu phố",
    "tổ dân phố",
    "văn bản",
    "nhiệm vụ",
    "chỉ tiêu",
    "tiêu chí",
    "nội dung",
    "tuần",
    "triệu",
    "nghìn",
    "ngàn",
)
# Count nouns whose unaccented spelling is also an everyday word: typed with accents they count
# only when spelt exactly so («phương án», «bàn giao», «xả lũ» are no counts).
# «Ban» (board) is spelt like «bản» (village) without accents, hence the «Ban Chỉ đạo» guard.
_STRICT_COUNT_NOUNS = ("xã", "phường", "tỉnh", "làng", "bản", "ấp", "tổ")
# Folded words after which a count noun is something else: «tổ chức» (organise), «Ban Chỉ
# đạo», «áp dụng».
_NOT_FOLLOWED_BY = {
    "to": r"chuc",
    "ban": (
        r"chi\s+dao|thuong\s+vu|thuong\s+truc|chap\s+hanh|to\s+chuc|tuyen\s+giao|kiem\s+tra"
        r"|dan\s+van|noi\s+chinh|can\s+su|bi\s+thu|quan\s+ly|dai\s+dien|van\s+dong|cong\s+tac"
        r"|lanh\s+dao|bao\s+ve|giam\s+doc|nhan\s+dan|hanh\s+dong"
    ),
    "ap": r"dung",
}
_STRICT = {fold(noun): noun for noun in _STRICT_COUNT_NOUNS}


def _count_pattern() -> re.Pattern[str]:
    keys = {fold(noun) for noun in (*_COUNT_NOUNS, *_STRICT_COUNT_NOUNS)}
    alternatives = []
    for key in sorted(keys, key=len, reverse=True):  # «tổ dân phố» before «tổ»
        body = r"\s+".join(re.escape(word) for word in key.split())
        after = _NOT_FOLLOWED_BY.get(key)
        guard = rf"(?!\s+(?:{after})(?![a-z0-9]))" if after else ""
        alternatives.append(rf"{body}(?![a-z0-9]){guard}")
    nouns = "|".join(alternatives)
    return re.compile(rf"\s*(?:%|phan\s+tram(?![a-z0-9])|(?:(?:tong\s+)?so\s+)?(?P<noun>{nouns}))")


_COUNT_RE = _count_pattern()


def _count_follows(folded: _Folded, end: int) -> bool:
    """Whether a counting noun (or %) follows the number ending at ``end``."""
    match = _COUNT_RE.match(folded.folded, end)
    if match is None:
        return False
    if match["noun"] is None:
        return True
    accented = _STRICT.get(" ".join(match["noun"].split()))
    if accented is None:
        return True
    typed = nfc(folded.original(*match.span("noun"))).lower()
    return typed == fold(typed) or typed == accented


# --------------------------------------------------------------------------- finding dates


def find_dates(text: str, *, today: date) -> tuple[DateMention, ...]:
    """Every date written in ``text``, in order (counts such as «5/5 chi bộ» are not dates).
    Nothing is validated: «31/2» is a mention with day 31 and month 2."""
    folded = _Folded.of(text)
    found: list[DateMention] = []
    for match in _DATE_RE.finditer(folded.folded):
        mention = _mention(match, folded, today)
        if mention is not None:
            found.append(mention)
    return tuple(_join_periods(found, folded))


def _mention(match: re.Match[str], folded: _Folded, today: date) -> DateMention | None:
    """The date ``match`` found, with folded positions (see ``_join_periods``), or None."""
    text = folded.folded
    start, end = match.span()
    leading = _LEAD_RE.fullmatch(text, 0, start) is not None
    if match["rel"] is not None:
        days = _RELATIVE_DAYS[match["rel"]]
        if nfc(folded.original(*match.span("rel"))).lower() == "kìa":
            days = 3  # «hôm kìa»: the day before «hôm kia»
        when = today - timedelta(days=days)
        return DateMention(start, end, "", when.day, when.month, when.year, leading, True)

    marker = _MARK_RE.search(text, 0, start)
    word = marker["word"] if marker is not None else None
    if marker is not None and word == "ngay" and _DOC_REF_RE.search(text, 0, marker.start()):
        word = None  # the date of a document named just before
    year: int | None
    if match["iso"] is not None:
        day, month, year = int(match["iso_d"]), int(match["iso_m"]), int(match["iso_y"])
    elif match["num"] is not None:
        sep = match["sep"]
        if sep == "." and " " in match["num"]:
            return None  # «1. 5 …» is a numbered line
        if (start >= 2 and text[start - 1] == sep and text[start - 2].isdigit()) or re.match(
            rf"[ ]?{re.escape(sep)}[ ]?[0-9]", text[end : end + 3]
        ):
            return None  # part of a longer number such as 1/2/3 or a reference
        day, month = int(match["num_d"]), int(match["num_m"])
        year = _full_year(match["num_y"])
    else:
        day, month = int(match["words_d"]), int(match["words_m"])
        year = int(match["words_y"]) if match["words_y"] else None
        if year is not None and _count_follows(folded, end):
            year, end = None, match.end("words_m")  # «15 tháng 8, 2000 đại biểu»
    if year is None and (words := _YEAR_WORDS_RE.match(text, end)) is not None:
        if words["year"] is not None:
            year = _full_year(words["year"])
        else:
            year = today.year - (1 if words["rel"] in _LAST_YEAR else 0)
        end = words.end()
    if (
        year is None
        and match["num"] is not None
        and word not in ("ngay", "hom")
        and _count_follows(folded, end)
    ):
        return None
    return DateMention(start, end, "", day, month, year, leading, word is not None)


def _full_year(digits: str | None) -> int | None:
    if digits is None:
        return None
    return int(digits) + (2000 if len(digits) == 2 else 0)


def _join_periods(found: list[DateMention], folded: _Folded) -> list[DateMention]:
    """Join «18/8 - 20/8» into one mention of its end, and map folded spans back to the text."""
    joined: list[DateMention] = []
    index = 0
    while index < len(found):
        first = found[index]
        mention = first
        if index + 1 < len(found):
            second = found[index + 1]
            link = _RANGE_RE.match(folded.folded, first.end)
            if (
                link is not None
                and link.end() == second.start
                and _is_numeric(folded, first)
                and _is_numeric(folded, second)
            ):
                mention = replace(
                    second,
                    start=first.start,
                    leading=first.leading,
                    marked=first.marked or second.marked,
                    is_range=True,
                )
                index += 1
        index += 1
        start, end = folded.span(mention.start, mention.end)
        joined.append(replace(mention, start=start, end=end, source=folded.text[start:end]))
    return joined


def _is_numeric(folded: _Folded, mention: DateMention) -> bool:
    return folded.folded[mention.start].isdigit()


# --------------------------------------------------------------------------- the answer


def parse_completion(text: str, *, today: date, due: date | None = None) -> Completion:
    """Read an official's answer to «Ngày hoàn thành / ghi chú?» for a task due on ``due``.

    * A date at the very start (see the module doc) is the completion date; it is cut from the
      note together with one separator after it (``, ; : . - –``). A period at the start («từ
      18/8 đến 20/8 …») gives its end and leaves the note whole.
    * Otherwise a marked date elsewhere («… ngày 18/8, …», «hôm qua») is the completion date and
      the note is the whole text; several different ones raise :class:`DateError`.
    * No date: ``done_on`` is None and the note is the text (stripped); the caller uses today.
    * Without a typed year the date is the most recent such day up to today. When that falls in
      a later year than ``due`` and the same day of ``due``'s year is possible too, the official
      is asked: ``done_on`` is None and ``choices`` holds both, oldest first.
    * A day that does not exist, one after ``today`` or one more than ``MAX_AGE_YEARS`` years
      before it raises :class:`DateError`, and so does a start that names no day («8/2025»).
    """
    stripped = text.strip()
    mentions = find_dates(stripped, today=today)
    if mentions and mentions[0].leading:
        chosen = mentions[0]
        if chosen.is_range:
            note = stripped
        else:
            separator = _SEPARATOR_RE.match(stripped, chosen.end)
            assert separator is not None  # the pattern matches the empty string
            note = stripped[separator.end() :].strip()
    else:
        _refuse_leading_date_without_day(stripped, today)
        marked = [mention for mention in mentions if mention.marked]
        if not marked:
            return Completion(None, stripped)
        chosen = _the_one(marked)
        note = stripped
    done_on, choices = _resolve(chosen, today=today, due=due)
    return Completion(done_on, note, choices, chosen.source)


def describe(d: date, today: date) -> str:
    """«hôm nay (2/12/2026)», «hôm qua (1/12/2026)» or «20/8/2025», for confirmations."""
    if d == today:
        return f"hôm nay ({vn_date(d)})"
    if d == today - timedelta(days=1):
        return f"hôm qua ({vn_date(d)})"
    return vn_date(d)


def _refuse_leading_date_without_day(text: str, today: date) -> None:
    """«8/2025 Đã xong» or «20/8/202»: the official meant a date but the day is not clear."""
    folded = _Folded.of(text)
    lead = _LEAD_RE.match(folded.folded)
    assert lead is not None  # the pattern matches the empty string
    match = _NO_DAY_RE.match(folded.folded, lead.end())
    if match is not None and not re.match(r"[ ]?[-/.][ ]?[0-9]", folded.folded[match.end() :]):
        raise DateError(
            f"Chưa rõ ngày hoàn thành trong «{folded.original(*match.span())}». Đồng chí vui "
            f"lòng gõ đủ ngày/tháng/năm, ví dụ {vn_date(today)}."
        )


def _the_one(marked: list[DateMention]) -> DateMention:
    """The one date all the marked mentions agree on («ngày 1/12 … hôm qua» may be one day)."""
    first = marked[0]
    years = {mention.year for mention in marked if mention.year is not None}
    if len(years) <= 1 and all(
        (mention.day, mention.month) == (first.day, first.month) for mention in marked
    ):
        return next((mention for mention in marked if mention.year is not None), first)
    sources = ", ".join(dict.fromkeys(f"«{mention.source}»" for mention in marked))
    raise DateError(
        f"Tin nhắn có nhiều ngày khác nhau: {sources}. Đồng chí vui lòng ghi ngày hoàn thành "
        f"ở đầu tin nhắn, ví dụ «{first.day}/{first.month} Đã tổ chức xong»."
    )


def _resolve(
    mention: DateMention, *, today: date, due: date | None
) -> tuple[date | None, tuple[date, ...]]:
    """The completion date of ``mention``, or the choices to offer (see parse_completion)."""
    if mention.year is not None:
        when = _valid(mention.year, mention.month, mention.day)
        if when is None:
            raise DateError(_not_real(mention, today))
        _check_age(when, mention, today)
        return when, ()
    latest = _most_recent(mention.day, mention.month, today)
    if latest is None:
        raise DateError(_not_real(mention, today))
    _check_age(latest, mention, today)
    if due is not None and latest.year > due.year:
        other = _valid(due.year, mention.month, mention.day)
        if other is not None and _oldest(today) <= other <= today:
            return None, (other, latest)
    return latest, ()


def _valid(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _most_recent(day: int, month: int, today: date) -> date | None:
    """The latest ``day``/``month`` not after ``today`` (29/2 may be up to 8 years back)."""
    for year in range(today.year, max(today.year - 9, 0), -1):
        when = _valid(year, month, day)
        if when is not None and when <= today:
            return when
    return None


def _oldest(today: date) -> date:
    """The earliest completion date accepted: ``MAX_AGE_YEARS`` years before ``today``."""
    year = max(today.year - MAX_AGE_YEARS, 1)
    return _valid(year, today.month, today.day) or date(year, today.month, today.day - 1)


def _check_age(when: date, mention: DateMention, today: date) -> None:
    typed = "" if mention.source == vn_date(when) else f" (đồng chí gõ «{mention.source}»)"
    if when > today:
        raise DateError(
            f"Ngày hoàn thành {vn_date(when)}{typed} còn ở tương lai (hôm nay là "
            f"{vn_date(today)}). Đồng chí vui lòng kiểm tra và gõ lại ngày đã hoàn thành."
        )
    if when < _oldest(today):
        raise DateError(
            f"Ngày hoàn thành {vn_date(when)}{typed} đã cách đây hơn {MAX_AGE_YEARS} năm. "
            "Đồng chí vui lòng kiểm tra lại và gõ theo dạng ngày/tháng/năm, "
            f"ví dụ {vn_date(today)}."
        )


def _not_real(mention: DateMention, today: date) -> str:
    return (
        f"Ngày «{mention.source}» không có thật. Đồng chí gõ lại theo dạng ngày/tháng/năm, "
        f"ví dụ {vn_date(today)}."
    )
