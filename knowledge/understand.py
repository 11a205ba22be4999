"""Understanding a message before it is searched: what is asked (the focus), what it is about
(entities), and whether it checks a plan or a claim (yes/no).

Officials write "Chào bot, em là chuyên viên Văn phòng Đảng ủy phường, mới được điều động
về … Cho em hỏi đại hội đảng bộ phường phải xong khi nào ạ? Em cảm ơn." The greeting, the
thanks and the story around the question drown it for a word-overlap search; but the story
tells who is asking (a ward) and sometimes what they plan ("tính lùi đại hội sang tháng 9").
:func:`focus` keeps the question (with the plan it refers to) as the text to search, and the
background for what it says about the asker.

Entities come from ``entities.yaml`` (data) and are found in canonical tokens (the search
analyzer's folding, abbreviations and synonyms), longest phrase first.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from knowledge.base import KnowledgeError, Problem
from knowledge.normalize import fold, nfc
from knowledge.yamlfile import LineDict, LineList, YamlError, load_yaml

__all__ = [
    "ENTITY_KINDS",
    "EntityVocabulary",
    "Focus",
    "Mentions",
    "default_entities_path",
    "focus",
    "is_question",
    "load_entities",
]

ENTITY_KINDS = ("levels", "bodies", "documents", "places", "posts", "persons", "topics")
Phrase = tuple[str, ...]


def default_entities_path() -> Path:
    return Path(__file__).resolve().parent / "entities.yaml"


# --------------------------------------------------------------------------- entities


@dataclass(frozen=True, slots=True)
class Mentions:
    """The entities named in a text, by kind. ``levels`` keeps the order of mention (the
    first is the subject: "đảng bộ phường có được đại hội cùng đợt với thành phố không")."""

    levels: tuple[str, ...] = ()
    bodies: frozenset[str] = frozenset()
    documents: frozenset[str] = frozenset()
    places: frozenset[str] = frozenset()
    posts: frozenset[str] = frozenset()
    persons: frozenset[str] = frozenset()
    topics: frozenset[str] = frozenset()

    def of(self, kind: str) -> frozenset[str]:
        value: Iterable[str] = getattr(self, kind)
        return frozenset(value)

    def merged(self, other: Mentions) -> Mentions:
        """This text's entities, completed by ``other``'s for kinds this one lacks."""
        values: dict[str, object] = {}
        for kind in ENTITY_KINDS:
            mine = getattr(self, kind)
            values[kind] = mine if mine else getattr(other, kind)
        return Mentions(**values)  # type: ignore[arg-type]

    def __bool__(self) -> bool:
        return any(getattr(self, kind) for kind in ENTITY_KINDS)


@dataclass(frozen=True)
class EntityVocabulary:
    """Canonical phrases of each entity, ready to match token sequences."""

    phrases: Mapping[str, Mapping[Phrase, str]]  # kind -> phrase -> entity id
    generic_bodies: frozenset[str]
    level_exceptions: tuple[Phrase, ...]
    source_documents: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        index: dict[Phrase, list[tuple[str, str]]] = {}
        longest: dict[str, int] = {}
        for kind, table in self.phrases.items():
            for phrase, entity in table.items():
                index.setdefault(phrase, []).append((kind, entity))
                longest[phrase[0]] = max(longest.get(phrase[0], 0), len(phrase))
        object.__setattr__(self, "_index", index)
        object.__setattr__(self, "_longest", longest)

    def locate(self, tokens: Sequence[str]) -> list[tuple[int, int, str, str]]:
        """Every entity phrase in ``tokens`` (canonical) as (start, size, kind, id): at each
        position the longest phrase of the vocabulary, left to right."""
        index: dict[Phrase, list[tuple[str, str]]] = self._index  # type: ignore[attr-defined]
        longest: dict[str, int] = self._longest  # type: ignore[attr-defined]
        blocked = _spans(tokens, self.level_exceptions) if self.level_exceptions else set()
        found: list[tuple[int, int, str, str]] = []
        position, count = 0, len(tokens)
        while position < count:
            size = min(longest.get(tokens[position], 0), count - position)
            hits = None
            while size > 0:
                hits = index.get(tuple(tokens[position : position + size]))
                if hits is not None:
                    break
                size -= 1
            if hits is None:
                position += 1
                continue
            kinds = set()
            for kind, entity in hits:
                if kind == "levels" and position in blocked:
                    continue
                found.append((position, size, kind, entity))
                kinds.add(kind)
            # "đại hội tỉnh" is the provincial level and a congress: a shorter phrase at the
            # same place that is another kind of entity is kept too.
            for shorter in range(size - 1, 0, -1):
                for kind, entity in index.get(tuple(tokens[position : position + shorter]), ()):
                    if kind not in kinds and kind != "levels":
                        found.append((position, shorter, kind, entity))
                        kinds.add(kind)
            # "tỉnh Quảng Ninh": "tỉnh" alone folds like "tính" (to plan), but before the
            # name of a province it is the provincial level.
            if (
                "places" in kinds
                and position > 0
                and tokens[position - 1] == "tinh"
                and not any(f[2] == "levels" and f[0] == position - 1 for f in found)
            ):
                found.append((position - 1, 1, "levels", "truc_thuoc_tw"))
            position += size
        found.sort(key=lambda f: f[0])
        return found

    def find(self, tokens: Sequence[str]) -> Mentions:
        """Entities in ``tokens`` (canonical), in the order of first mention."""
        found: dict[str, list[str]] = {}
        located = self.locate(tokens)
        # "Đảng ủy … tỉnh chúng tôi là cấp trên trực tiếp của tổ chức cơ sở": what an
        # organisation says it *is* comes before the words that name it.
        said = [f for f in located if f[2] == "levels" and f[0] > 0 and tokens[f[0] - 1] == "la"]
        for _, _, kind, entity in [*said, *located]:
            bucket = found.setdefault(kind, [])
            if entity not in bucket:
                bucket.append(entity)
        return Mentions(
            levels=tuple(found.get("levels", ())),
            bodies=frozenset(found.get("bodies", ())),
            documents=frozenset(found.get("documents", ())),
            places=frozenset(found.get("places", ())),
            posts=frozenset(found.get("posts", ())),
            persons=frozenset(found.get("persons", ())),
            topics=frozenset(found.get("topics", ())),
        )


def _spans(tokens: Sequence[str], phrases: Iterable[Phrase]) -> set[int]:
    covered: set[int] = set()
    for phrase in phrases:
        size = len(phrase)
        for start in range(len(tokens) - size + 1):
            if tuple(tokens[start : start + size]) == phrase:
                covered.update(range(start, start + size))
    return covered


def load_entities(
    canonical: Callable[[str], list[str]], path: Path | None = None
) -> EntityVocabulary:
    """Read ``entities.yaml``; ``canonical(text) -> list[str]`` is the search analyzer's."""
    path = path or default_entities_path()
    problems: list[Problem] = []
    try:
        doc = load_yaml(path)
    except YamlError as exc:
        raise KnowledgeError([Problem(path, exc.line, exc.message)]) from None
    if not isinstance(doc, LineDict):
        raise KnowledgeError([Problem(path, 1, "từ vựng thực thể (entities) phải là một bảng")])
    tables: dict[str, dict[Phrase, str]] = {}
    generic: set[str] = set()
    for kind in ENTITY_KINDS:
        section = doc.get(kind)
        if section is None:
            tables[kind] = {}
            continue
        if not isinstance(section, LineDict):
            problems.append(Problem(path, doc.line_of(kind), f"{kind!r} phải là một bảng"))
            continue
        table: dict[Phrase, str] = {}
        for entity, value in section.items():
            line = section.line_of(entity)
            texts: object = value
            if isinstance(value, LineDict):
                if value.get("generic") is True:
                    generic.add(str(entity))
                texts = value.get("phrases")
            if not isinstance(texts, list) or not texts:
                problems.append(
                    Problem(path, line, f"{kind}.{entity}: phải là một danh sách cụm từ")
                )
                continue
            for text in texts:
                phrase = tuple(canonical(str(text)))
                if not phrase:
                    problems.append(Problem(path, line, f"{kind}.{entity}: có cụm từ trống"))
                    continue
                if entity == "each":  # a list of entities named by their own phrase
                    table[phrase] = "_".join(phrase)
                    continue
                if phrase in table and table[phrase] != str(entity):
                    problems.append(
                        Problem(
                            path,
                            line,
                            f"{' '.join(phrase)!r} vừa là {table[phrase]} vừa là {entity}",
                        )
                    )
                table[phrase] = str(entity)
        tables[kind] = table
    exceptions = doc.get("level_exceptions") or LineList()
    level_exceptions = tuple(
        p for p in (tuple(canonical(str(t))) for t in exceptions if isinstance(t, str)) if p
    )
    sources = doc.get("source_documents") or LineDict()
    source_documents = (
        {str(k): str(v) for k, v in sources.items()} if isinstance(sources, LineDict) else {}
    )
    if problems:
        raise KnowledgeError(problems)
    return EntityVocabulary(tables, frozenset(generic), level_exceptions, source_documents)


# --------------------------------------------------------------------------- the focus

_CONTRAST_RE = re.compile(r"[;,]\s*(?:con|the con|nhung con)\s+")
_SENTENCE_RE = re.compile(r"(?<=[.?!…])\s+|\n+")
_LIST_NUMBER_RE = re.compile(
    r"^\s*(?:(?:câu hỏi|cau hoi|câu|cau|hỏi|hoi|q)\s*(?:số|so)?\s*)?\d{1,3}\s*[.):\-–]\s+",
    re.IGNORECASE,
)
_GREETING_RE = re.compile(
    r"^(?:d?a\s+)?(?:(?:em|toi|minh|chung em|chung toi|con|chau|tui)\s+(?=(?:xin |kinh )?chao))?"
    r"(?:xin chao|kinh chao|kinh gui|chao|hello|hi|alo|da|thua|ad oi|bot oi|"
    r"tro ly oi|anh chi oi|moi nguoi oi|ca nha oi|mn oi)\b[^,.!?]*?(?:[,.!]|$)"
)
# What a message that only acknowledges an answer says ("Dạ vâng, em hiểu rồi ạ.").
_ACK_RE = re.compile(
    r"^(?:(?:da|vang|ok|oke|okay|uh|u|duoc|tot|hay|roi|ro|hieu|em|toi|minh|chung em|"
    r"chung toi|da ro|nhe|nha|a|qua|lam|nhieu|vay|the|ha)\s*)+$"
)
_WISH_RE = re.compile(r"^(?:(?:da|em|toi|minh|chung em|chung toi)\s+)*(?:xin\s+)?chuc\b")
_THANKS_RE = re.compile(r"\b(cam on|camon|thanks|thank you|tks|thanks nhieu|xin cam on)\b")
_SELF_RE = re.compile(
    r"^(?:toi|em|minh|chung toi|chung em|tui|tao|anh|chi|bac)\s+"
    r"(?:la|dang|vua|moi|duoc|o|lam|phu trach|thuoc|co|can)\b"
)
# A sentence about the asker that still names what a later "văn bản đó" points to ("Tôi
# đang xem Kết luận 185. Văn bản đó ai ký?").
_NAMES_THING_RE = re.compile(
    r"\b(ket luan|chi thi|bao cao|nghi quyet|quy dinh|van ban|hoi nghi|phien hop|cuoc hop|"
    r"buoi lam viec|cuoc lam viec|thong bao|huong dan|ke hoach|chuong trinh|dai hoi)\b"
)
_PLAN_RE = re.compile(
    r"\b(du kien|du dinh|dinh|dang tinh|tinh lui|tinh gop|tinh de|tinh to chuc|ke hoach|"
    r"se to chuc|muon|de nghi|lui|gop|keo dai|keo sang|chuyen sang|de den|thue|"
    r"len ke hoach|chi thao luan|giu nguyen|bo qua|khong can)\b"
)
_ANAPHORA_RE = re.compile(
    r"\b(nhu vay|nhu the|lam vay|lam the|the nay|dieu nay|viec nay|nhu tren|dieu do|"
    r"viec do|phuong an nay|cach nay|lam nhu the)\b|"
    r"\b(bao cao|van ban|viec|cuoc lam viec|buoi|chuong trinh|ke hoach|tai lieu|ket luan|"
    r"hoi nghi|lop|dot|tap huan|cuoc hop|phien hop|chi thi|dong chi|co quan|ban|lich|"
    r"du kien|phuong an|du thao|de xuat|y kien|noi dung|truong hop|tinh huong|van de|"
    r"chuyen)\s+(do|ay|nay)\b"
)
# A pointer to a whole situation ("trường hợp này"): the story told before it, not one thing.
_SITUATION_RE = re.compile(r"\b(truong hop|tinh huong|hoan canh|van de|chuyen)\s+(do|ay|nay)\b")
_YESNO_RE = re.compile(
    r"\b(co phai|phai khong|dung khong|duoc khong|co duoc|co dung|co cham|co som|"
    r"co kip|co hop le|co phu hop|co can|co bat buoc|co cho phep|hay khong|co dung tien do|"
    r"co sao khong|duoc chua|chu nhi$|dung chu|phai ko|dung ko|duoc ko|duoc hong|dung hong|"
    r"phai hong|dc ko|dc khong|dc hong|dc k|duoc k|dc chua|ok ko|ok khong|phai k|dung k)\b"
)
_QUESTION_WORDS = re.compile(
    r"^(ai|khi nao|bao gio|tai sao|vi sao|lam sao|lam the nao|nhu the nao|the nao|co phai|"
    r"co duoc|hoi|cho hoi|xin hoi|cho em hoi|cho toi hoi|cho minh hoi|o dau|bao nhieu|may|"
    r"ky nao|ngay nao|thang nao|nam nao|van ban nao|co quan nao|cap nao|nhung ai|nhung gi|gi)\b"
)
_QUESTION_ENDS = re.compile(
    r"\b(khong|ko|k|hong|chua|gi|j|nao|sao|ai|dau|may|bao nhieu|bao gio|the nao|ra sao|"
    r"duoc khong|phai khong|chang|u|vay|day|the|nhi|bn|ko|dc ko)$"
)
_QUESTION_INSIDE = re.compile(
    r"\b(khi nao|bao gio|thang may|thang nao|ngay nao|ngay may|nhu the nao|the nao|"
    r"la gi|lam gi|gi khong|duoc khong|phai khong|dung khong|co phai|ra sao|bao nhieu|"
    r"nhung gi|nhung ai|ai la|la ai|do ai|cua ai|voi ai|cho ai|nhung viec gi|viec gi|"
    r"noi dung gi|nao|ai ky|ai ban hanh|ai chu tri|ai phu trach|ngay bn|bn)\b"
)
_POLITE_TAIL = re.compile(
    r"(\s+(a|ha|nhi|nhe|nha|vay|z|day|the|ah|ak|a oi|voi|giup em|giup toi|nhe a|nha a|"
    r"a anh|a chi|ad|mn|moi nguoi|nhieu|ta|v|hen|ne|dzay|dza|ha|hem|hong))+$"
)
_NEGATED_RE = re.compile(
    r"(?:\(\s*)?(?:chu\s+)?khong\s+phai(?:\s+la)?\s+([^,.;()?!]+?)"
    r"(?=\s*(?:[,.;()?!]|$)|\s+ma(?:\s+la)?\s)"
)


def _simple(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s/]", " ", fold(text)).split())


def is_question(text: str | None) -> bool:
    """Whether a message reads as a question ("Ai ký Kết luận 185?", "xã phải xong khi nào
    ạ", "hạn đại hội tỉnh là bao giờ") rather than a statement or a note."""
    if not text:
        return False
    if "?" in text:
        return True
    folded = _simple(text)
    if not folded:
        return False
    if _QUESTION_WORDS.match(folded):
        return True
    trimmed = _POLITE_TAIL.sub("", folded)
    return bool(_QUESTION_ENDS.search(trimmed)) or bool(_QUESTION_INSIDE.search(trimmed))


@dataclass(frozen=True, slots=True)
class Focus:
    """What a message asks. ``query`` is the text to search (the first question, with the
    plan or the sentence it refers to); ``question`` that question sentence itself;
    ``others`` the further questions of a message that asks several; ``background`` the
    rest (what the asker says about themselves)."""

    text: str
    query: str
    background: str = ""
    yesno: bool = False
    plan: bool = False
    question: str = ""
    others: tuple[str, ...] = ()
    negated: tuple[str, ...] = field(default=())
    no_question: bool = False  # only greetings, thanks or the asker's own introduction


def _sentences(text: str) -> list[str]:
    parts = [p.strip() for p in _SENTENCE_RE.split(text) if p and p.strip()]
    return parts or [text.strip()]


def _strip_greeting(sentence: str) -> str:
    """ "Chào bot, em là …" -> "em là …"; a sentence that is only a greeting -> ""."""
    folded = fold(sentence)
    match = _GREETING_RE.match(folded)
    if match is None:
        return sentence
    rest_start = match.end()
    return sentence[rest_start:].strip(" ,.!")


def _content_words(sentence: str) -> int:
    words = _simple(sentence).split()
    return sum(1 for w in words if len(w) > 1)


def focus(text: str) -> Focus:
    """The focus of ``text``: see :class:`Focus`."""
    text = nfc(text).strip()
    cleaned = _LIST_NUMBER_RE.sub("", text)
    sentences: list[str] = []
    for raw in _sentences(cleaned):
        raw = _LIST_NUMBER_RE.sub("", raw)
        whole = _simple(raw)
        polite = _THANKS_RE.search(whole) or _WISH_RE.match(whole)
        if polite and not is_question(raw) and len(whole.split()) <= 14:
            continue  # "Em cảm ơn nhiều.", "Chúc các đồng chí một tuần làm việc hiệu quả!"
        sentence = _strip_greeting(raw)
        folded = _simple(sentence)
        if not folded or _ACK_RE.match(folded):
            continue
        sentences.append(sentence)
    if not sentences:
        return Focus(text=text, query=cleaned, no_question=True)
    # When some sentence ends with a question mark, those are the questions: "… chưa rõ ai
    # làm, khi nào xong." only reports what a draft lacks.
    marked = [i for i, s in enumerate(sentences) if s.rstrip().endswith("?")]
    asked = marked or [i for i, s in enumerate(sentences) if is_question(s)]
    if not asked:
        # No question mark or question word: the last sentence is what is meant (a message
        # like "hạn đại hội cấp xã"), unless it is only about the asker.
        candidates = [i for i, s in enumerate(sentences) if not _SELF_RE.match(_simple(s))]
        if not candidates:
            return Focus(text=text, query=cleaned, background=cleaned, no_question=True)
        asked = [candidates[-1]]
    # "X …; còn Y thì …?": the question is about Y, X is what the asker already knows.
    for i in asked:
        match = _CONTRAST_RE.search(fold(sentences[i]))
        if match is not None and _content_words(sentences[i][match.end() :]) >= 3:
            sentences[i : i + 1] = [sentences[i][: match.start()], sentences[i][match.end() :]]
            asked = [j + 1 if j > i else j for j in asked]
            asked = [j if j != i else i + 1 for j in asked]
            break
    substantive = [i for i in asked if _content_words(sentences[i]) >= 3] or asked
    first = substantive[0]
    parts = [sentences[first]]
    # A question that points back ("Làm vậy có được không?") or checks a plan stated before
    # it is searched together with that plan.
    lead = _simple(sentences[first])
    plan = False
    if first > 0:
        previous = sentences[first - 1]
        refers = bool(_ANAPHORA_RE.search(lead)) or _content_words(sentences[first]) <= 6
        planned = bool(_PLAN_RE.search(_simple(previous)))
        if planned and _YESNO_RE.search(lead):
            parts.insert(0, previous)
            plan = True

        elif refers:
            pointed = _ANAPHORA_RE.search(lead)
            noun = pointed.group(2) if pointed is not None else None
            # "cuộc làm việc ấy": the earlier sentence that names a "làm việc", if one does.
            named = [
                i
                for i in range(first - 1, -1, -1)
                if noun and re.search(rf"\b{noun.split()[-1]}\b", _simple(sentences[i]))
            ]
            if noun and _SITUATION_RE.search(lead):
                # "trường hợp này": the situation told in the (up to two) sentences before.
                story = [
                    i for i in range(first - 1, -1, -1) if not _SELF_RE.match(_simple(sentences[i]))
                ]
                for index in sorted(story[:2], reverse=True):
                    parts.insert(0, sentences[index])
            elif named and noun not in {"viec", "ban", "dong chi"}:
                parts.insert(0, sentences[named[0]])
            # The nearest earlier sentence that is not only about the asker ("Tôi là …"): a
            # long one that starts with "Chúng tôi đang viết bài về buổi …" still names what
            # "buổi đó" is.
            for index in range(first - 1, -1, -1) if len(parts) == 1 else ():
                earlier = sentences[index]
                simple = _simple(earlier)
                if (
                    not _SELF_RE.match(simple)
                    or _content_words(earlier) >= 12
                    or _NAMES_THING_RE.search(simple)
                ):
                    parts.insert(0, earlier)
                    break
    if not plan and _PLAN_RE.search(lead) and _YESNO_RE.search(lead):
        plan = True
    query = " ".join(parts)
    others = tuple(sentences[i] for i in substantive[1:])
    used = {sentences[i] for i in asked}
    background = " ".join(s for s in sentences if s not in used and s not in parts)
    # "… có được không?", "… có phải … không": a yes/no question ends with its particle; "Việc
    # nào được giao mà không có thời hạn riêng?" asks which.
    lead_trimmed = _POLITE_TAIL.sub("", lead)
    yesno = bool(_YESNO_RE.search(lead)) or bool(
        re.search(r"\b(co|duoc)\b.*\b(khong|ko|hong|chua)$", lead_trimmed)
    )
    negated = tuple(m.group(1).strip() for m in _NEGATED_RE.finditer(fold(query)))
    return Focus(
        text=text,
        query=query,
        background=background,
        yesno=yesno,
        plan=plan,
        question=sentences[first],
        others=others,
        negated=negated,
    )
