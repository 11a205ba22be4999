"""Vietnamese question search: BM25 candidates re-ranked with rapidfuzz, plus guards.

Text goes through one :class:`Analyzer` on both sides (knowledge base and question):
folding (accents, đ), numbers (leading zeros, Roman numerals), typo correction against the
knowledge base's own vocabulary (questions only), abbreviations and synonym phrases from the
lexicon. Features are the resulting words plus adjacent word pairs (Vietnamese words are
mostly two syllables: "đại hội", "trung ương").

Confidence (0..1) mixes how much of the question's information the entry covers (IDF
weighted) with the closest phrasing's fuzzy similarity. A match also has to pass two guards:
every number of the question appears in the entry (under the same head: "Chỉ thị 35" is not
"Chỉ thị 45"), and no out-of-scope subject ("Đoàn thanh niên") is named that the entry lacks.
"""

from __future__ import annotations

import itertools
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import bm25s
import numpy as np
from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA

from knowledge.base import Deadline, Entry, KnowledgeError, Problem
from knowledge.normalize import fold, nfc, roman_to_int, words
from knowledge.reasoning import Turn, claimed_period, deadline_verdict, looks_like_followup
from knowledge.understand import (
    ENTITY_KINDS,
    EntityVocabulary,
    Focus,
    Mentions,
    focus,
    is_question,
    load_entities,
)
from knowledge.yamlfile import LineDict, LineList, YamlError, load_yaml

__all__ = [
    "Analyzer",
    "Lexicon",
    "SearchEngine",
    "SearchResult",
    "default_lexicon_path",
    "load_lexicon",
]

Phrase = tuple[str, ...]

_UPPER_ROMAN_RE = re.compile(r"\b[IVX]{2,}\b")
_ROMAN_CHARS = re.compile(r"[ivx]{2,}")
_DATE_RE = re.compile(r"(?<![\d/])(\d{1,2})\s*/\s*(\d{1,2})(?:\s*/\s*(\d{4}))?(?![\d/])")
_MONTH_SHORTHAND = frozenset({"t", "th"})  # "t8", "th8" -> "tháng 8"
_MAX_NUMBER_DIGITS = 12
_MAX_QUERY_TOKENS = 200  # a 10,000-character message is searched by its start


def default_lexicon_path() -> Path:
    return Path(__file__).resolve().parent / "lexicon.yaml"


@dataclass(frozen=True)
class Lexicon:
    abbreviations: Mapping[str, Phrase]
    synonyms: Mapping[Phrase, Phrase]
    number_heads: frozenset[Phrase]
    number_fillers: frozenset[str]
    out_of_scope: tuple[Phrase, ...]
    roman_exceptions: frozenset[str]
    intents: Mapping[str, tuple[Phrase, ...]]
    threshold: float
    suggest_floor: float
    candidates: int
    min_information: float = 1.0
    domain_words: tuple[str, ...] = ()

    def known_words(self) -> set[str]:
        """Every word the lexicon itself can recognise (typo correction must keep them)."""
        known: set[str] = set(self.abbreviations)
        for phrase in self.synonyms:
            known.update(phrase)
        for phrases in (self.number_heads, self.out_of_scope, *self.intents.values()):
            for phrase in phrases:
                known.update(phrase)
        known.update(self.number_fillers)
        return known


def _phrase(text: str) -> Phrase:
    return tuple(words(text))


def load_lexicon(path: Path | None = None) -> Lexicon:
    """Read the lexicon; raise :class:`KnowledgeError` with ``file:line`` problems."""
    path = path or default_lexicon_path()
    problems: list[Problem] = []
    try:
        doc = load_yaml(path)
    except YamlError as exc:
        raise KnowledgeError([Problem(path, exc.line, exc.message)]) from None
    if not isinstance(doc, LineDict):
        raise KnowledgeError([Problem(path, 1, "từ điển (lexicon) phải là một bảng")])

    def text_list(key: str) -> list[tuple[int, str]]:
        value = doc.get(key)
        if value is None:
            return []
        if not isinstance(value, LineList):
            problems.append(Problem(path, doc.line_of(key), f"{key!r} phải là một danh sách"))
            return []
        items = []
        for index, item in enumerate(value):
            if not isinstance(item, str) or not words(item):
                problems.append(Problem(path, value.line_of(index), f"{key!r}: có phần tử trống"))
                continue
            items.append((value.line_of(index), item))
        return items

    abbreviations: dict[str, Phrase] = {}
    raw_abbr = doc.get("abbreviations") or LineDict()
    if not isinstance(raw_abbr, LineDict):
        problems.append(
            Problem(path, doc.line_of("abbreviations"), "'abbreviations' phải là một bảng")
        )
        raw_abbr = LineDict()
    for key, value in raw_abbr.items():
        short = words(key)
        expansion = _phrase(str(value)) if value is not None else ()
        if len(short) != 1 or not expansion:
            problems.append(
                Problem(
                    path, raw_abbr.line_of(key), f"viết tắt {key!r}: cần một từ -> cụm từ đầy đủ"
                )
            )
            continue
        abbreviations[short[0]] = expansion

    synonyms: dict[Phrase, Phrase] = {}
    raw_groups = doc.get("synonyms") or LineList()
    if not isinstance(raw_groups, LineList):
        problems.append(Problem(path, doc.line_of("synonyms"), "'synonyms' phải là một danh sách"))
        raw_groups = LineList()
    for index, group in enumerate(raw_groups):
        line = raw_groups.line_of(index)
        if not isinstance(group, list) or len(group) < 2:
            problems.append(Problem(path, line, "mỗi nhóm từ đồng nghĩa cần ít nhất hai cụm từ"))
            continue
        phrases = [_phrase(str(item)) for item in group]
        if not all(phrases):
            problems.append(Problem(path, line, "nhóm từ đồng nghĩa có cụm từ trống"))
            continue
        canonical = phrases[0]
        for variant in phrases[1:]:
            if variant in synonyms and synonyms[variant] != canonical:
                problems.append(Problem(path, line, f"{' '.join(variant)!r} nằm trong hai nhóm"))
            synonyms[variant] = canonical

    intents: dict[str, tuple[Phrase, ...]] = {}
    raw_intents = doc.get("intents") or LineDict()
    if not isinstance(raw_intents, LineDict):
        problems.append(Problem(path, doc.line_of("intents"), "'intents' phải là một bảng"))
        raw_intents = LineDict()
    for name, texts in raw_intents.items():
        if not isinstance(texts, list) or not all(isinstance(item, str) for item in texts):
            problems.append(
                Problem(
                    path,
                    raw_intents.line_of(name),
                    f"ý định {name!r}: phải là một danh sách cụm từ",
                )
            )
            continue
        intents[name] = tuple(phrase for phrase in map(_phrase, texts) if phrase)

    settings = doc.get("search")
    if not isinstance(settings, LineDict):
        problems.append(Problem(path, doc.line, "thiếu phần cài đặt 'search'"))
        settings = LineDict()

    def number(key: str, default: float) -> float:
        value = settings.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(Problem(path, settings.line_of(key), f"search.{key} phải là một số"))
            return default
        return float(value)

    lexicon = Lexicon(
        abbreviations=abbreviations,
        synonyms=synonyms,
        number_heads=frozenset(_phrase(t) for _, t in text_list("number_heads")),
        number_fillers=frozenset(w for _, t in text_list("number_fillers") for w in words(t)),
        out_of_scope=tuple(_phrase(t) for _, t in text_list("out_of_scope")),
        roman_exceptions=frozenset(w for _, t in text_list("roman_exceptions") for w in words(t)),
        intents=intents,
        threshold=number("threshold", 0.5),
        suggest_floor=number("suggest_floor", 0.3),
        candidates=int(number("candidates", 20)),
        min_information=number("min_information", 1.0),
        domain_words=tuple(t for _, t in text_list("domain_words")),
    )
    if problems:
        raise KnowledgeError(problems)
    return lexicon


class Analyzer:
    """Turns text into canonical words; the same steps for documents and questions."""

    def __init__(self, lexicon: Lexicon) -> None:
        self.lexicon = lexicon
        # First word of each synonym phrase -> the longest phrase starting with it.
        self._synonym_starts: dict[str, int] = {}
        for phrase in lexicon.synonyms:
            self._synonym_starts[phrase[0]] = max(
                len(phrase), self._synonym_starts.get(phrase[0], 0)
            )
        # Out-of-scope phrases and number heads go through the same canonicalisation.
        self.out_of_scope = tuple(
            p for p in (tuple(self.canonical(" ".join(t))) for t in lexicon.out_of_scope) if p
        )
        self.number_heads = frozenset(
            tuple(self.canonical(" ".join(h))) for h in lexicon.number_heads
        )
        self.intent_phrases = {
            name: tuple(p for p in (tuple(self.canonical(" ".join(t))) for t in phrases) if p)
            for name, phrases in lexicon.intents.items()
        }

    def intents(self, tokens: Sequence[str]) -> frozenset[str]:
        """The question intents (``"time"``, ...) that ``tokens`` express."""
        return frozenset(
            name
            for name, phrases in self.intent_phrases.items()
            if any(_contains(tokens, phrase) for phrase in phrases)
        )

    @staticmethod
    def dates(text: str) -> list[tuple[int, int, int | None]]:
        """Calendar dates written day/month[/year] (``"29/8/2025"``)."""
        found = []
        for match in _DATE_RE.finditer(text):
            day, month = int(match.group(1)), int(match.group(2))
            year = int(match.group(3)) if match.group(3) else None
            if 1 <= day <= 31 and 1 <= month <= 12:
                found.append((day, month, year))
        return found

    def raw_words(self, text: str) -> list[str]:
        """Folded words with numbers normalised (``"XIV"`` -> ``"14"``, ``"08"`` -> ``"8"``)."""
        text = _UPPER_ROMAN_RE.sub(_roman_sub, nfc(text))
        result: list[str] = []
        exceptions = self.lexicon.roman_exceptions
        for token in words(text):
            if token.isdigit():
                result.append(str(int(token)) if len(token) <= _MAX_NUMBER_DIGITS else token)
            elif token[0] in "ivx" and token not in exceptions and _ROMAN_CHARS.fullmatch(token):
                value = roman_to_int(token)
                result.append(str(value) if value is not None else token)
            else:
                result.append(token)
        return result

    def canonical(self, text: str, correct: Callable[[str], Phrase] | None = None) -> list[str]:
        """Canonical words of ``text``; ``correct`` maps an unknown word to known ones."""
        return self.expand(self.raw_words(text), correct)

    def expand(self, raw: list[str], correct: Callable[[str], Phrase] | None = None) -> list[str]:
        """Typo correction (if given), abbreviations and synonyms applied to raw words."""
        if correct is not None:
            corrected: list[str] = []
            for token in raw:
                corrected.extend(correct(token))
            raw = corrected
        expanded: list[str] = []
        abbreviations = self.lexicon.abbreviations
        for index, token in enumerate(raw):
            if token in _MONTH_SHORTHAND and index + 1 < len(raw) and raw[index + 1].isdigit():
                expanded.append("thang")
            elif token in abbreviations:
                expanded.extend(abbreviations[token])
            else:
                expanded.append(token)
        return self._replace_synonyms(expanded)

    def _replace_synonyms(self, tokens: list[str]) -> list[str]:
        synonyms = self.lexicon.synonyms
        starts = self._synonym_starts
        out: list[str] = []
        i = 0
        n = len(tokens)
        while i < n:
            longest = starts.get(tokens[i])
            if longest is not None:
                for size in range(min(longest, n - i), 0, -1):
                    canonical = synonyms.get(tuple(tokens[i : i + size]))
                    if canonical is not None:
                        out.extend(canonical)
                        i += size
                        break
                else:
                    out.append(tokens[i])
                    i += 1
            else:
                out.append(tokens[i])
                i += 1
        return out

    def numbers_with_heads(
        self, tokens: Sequence[str], skip: frozenset[str] = frozenset()
    ) -> dict[str, set[Phrase | None]]:
        """Each number in ``tokens`` with the head it follows (``None`` if no known head);
        numbers in ``skip`` (the parts of dates) are left out."""
        found: dict[str, set[Phrase | None]] = {}
        fillers = self.lexicon.number_fillers
        heads = self.number_heads
        sizes = sorted({len(h) for h in heads}, reverse=True)
        for index, token in enumerate(tokens):
            if not token.isdigit() or token in skip:
                continue
            # "30 phút cho thảo luận", "500 đại biểu": an amount in a story, not a fact
            # an entry must hold.
            if (
                tuple(tokens[index + 1 : index + 2]) in _UNITS
                or tuple(tokens[index + 1 : index + 3]) in _UNITS
            ):
                continue
            j = index
            while j > 0 and tokens[j - 1] in fillers:
                j -= 1
            head: Phrase | None = None
            for size in sizes:
                if j - size >= 0 and tuple(tokens[j - size : j]) in heads:
                    head = tuple(tokens[j - size : j])
                    break
            found.setdefault(token, set()).add(head)
        return found


_UNITS = frozenset(
    tuple(unit.split())
    for unit in (
        "phut",
        "gio",
        "tieng",
        "nguoi",
        "dai bieu",
        "dang vien",
        "trieu",
        "ty",
        "nghin",
        "ngan",
        "dong",
        "phan tram",
        "km",
        "buoi",
        "phong",
        "xe",
        "mon",
        "tiet muc",
    )
)


# A folded Vietnamese syllable: onset, vowel nucleus, final consonant.
_SYLLABLE_RE = re.compile(
    r"(?:ngh|ng|nh|ch|gh|gi|kh|ph|qu|th|tr|b|c|d|g|h|k|l|m|n|p|r|s|t|v|x)?"
    r"(?:uye|uya|ieu|yeu|uoi|uou|oai|oay|oao|oeo|uay|uai|ai|ao|au|ay|eo|eu|ia|ie|iu|oa|oe|"
    r"oi|ua|ue|ui|uo|uu|uy|ye|a|e|i|o|u|y)"
    r"(?:ch|nh|ng|c|m|n|p|t)?"
)
_TELEX_PAIRS = (
    ("dd", "d"),
    ("aa", "a"),
    ("aw", "a"),
    ("ee", "e"),
    ("oo", "o"),
    ("ow", "o"),
    ("uw", "u"),
)
_TELEX_TONES = frozenset("sfrxj")


def _detelex(token: str) -> str:
    """``token`` with Telex accent keys removed: "dduowcj" -> "duoc", "keets" -> "ket"."""
    plain = token
    for pair, letter in _TELEX_PAIRS:
        plain = plain.replace(pair, letter)
    vowels = "aeiouy"
    if len(plain) > 2 and plain[-1] in _TELEX_TONES and any(c in vowels for c in plain[:-1]):
        plain = plain[:-1]
    else:  # a tone key typed before the final consonant ("tieesng")
        for index in range(1, len(plain) - 1):
            if plain[index] in _TELEX_TONES and plain[index - 1] in vowels:
                plain = plain[:index] + plain[index + 1 :]
                break
    return plain


def _roman_sub(match: re.Match[str]) -> str:
    value = roman_to_int(match.group(0))
    return str(value) if value is not None else match.group(0)


def features(tokens: Sequence[str]) -> list[str]:
    """Words and adjacent word pairs."""
    return [*tokens, *(f"{a}_{b}" for a, b in itertools.pairwise(tokens))]


def _contains(haystack: Sequence[str], needle: Phrase) -> bool:
    first = needle[0]
    if first not in haystack:
        return False
    size = len(needle)
    if size == 1:
        return True
    return any(
        haystack[i] == first and tuple(haystack[i : i + size]) == needle
        for i in range(len(haystack) - size + 1)
    )


@dataclass(frozen=True, slots=True)
class SearchResult:
    """The outcome of one question; ``score`` is the confidence in ``entry`` (0..1).

    ``text``: the reply when it is not the entry's answer as written — a verdict composed
    from the structured deadlines before it, or, with ``reason == "not_stated"``, the entry
    that says plainly what the sources do not state (then ``matched`` is False and ``entry``
    is that entry, for its citation). ``turn``: what a conversation keeps to resolve a
    follow-up to this question.
    """

    query: str
    matched: bool
    entry: Entry | None
    score: float
    suggestions: tuple[Entry, ...]
    reason: str  # "ok", "empty", "vague", "low_confidence", "number", "intent", "out_of_scope",
    #              "not_stated", "followup" (a follow-up with nothing to follow), entity kinds
    text: str | None = None
    turn: Turn | None = None
    verdict: bool | None = None  # a checked plan or claim: in time / right (None: no verdict)
    related: tuple[Entry, ...] = ()  # the answers to the further questions of the message


@dataclass(frozen=True, slots=True)
class _Facts:
    """What the guards compare between a question and an entry."""

    numbers: Mapping[str, frozenset[Phrase | None]]  # number -> the heads it follows
    dates: frozenset[tuple[int, int]]  # (day, month)
    intents: frozenset[str]
    # (number, day, month): a document's date ("Báo cáo số 447-BC/VPTW, ngày 28/8/2025")
    document_dates: frozenset[tuple[str, int, int]] = frozenset()


# A document's number followed by its date: "báo cáo số 447-bc/vptw, ngày 28/8/2025",
# "chỉ thị 45 ký ngày 14/4", "báo cáo 447 đề ngày 29/8".
_DOCUMENT_DATE_RE = re.compile(
    r"\b(?:chi thi|ket luan|bao cao|nghi quyet|quy dinh|thong bao|huong dan|cong van|"
    r"quyet dinh)\s+(?:so\s+)?(\d{1,4})(?:-[a-z]+(?:/[a-z]+)*)?[\s,]*"
    r"(?:(?:de|ky|ban hanh|dat|la|vao|duoc|co)\s+){0,3}ngay\s+(\d{1,2})\s*/\s*(\d{1,2})\b"
)


def _document_dates(text: str) -> frozenset[tuple[str, int, int]]:
    return frozenset(
        (m.group(1), int(m.group(2)), int(m.group(3)))
        for m in _DOCUMENT_DATE_RE.finditer(fold(text))
    )


def _numbers_verdict(doc: _Doc, facts: _Facts) -> bool | None:
    """What a yes/no question's numbers and document dates say against the entry: False
    when it claims one the entry states otherwise ("Hội nghị Trung ương 12" where the entry
    says 13 under the same head, "Báo cáo 447 đề ngày 29/8" where it dates the report
    28/8); True when a document's date is the one the entry gives; else None (a number
    that agrees proves nothing: the claim may be about something else)."""
    for number, heads in facts.numbers.items():
        named = heads - {None}
        if not named or (number in doc.facts.numbers and named & doc.facts.numbers[number]):
            continue
        if any(named & held for held in doc.facts.numbers.values()):
            return False
    agreed = False
    for number, day, month in facts.document_dates:
        held = {(d, m) for n, d, m in doc.facts.document_dates if n == number}
        if held and (day, month) not in held:
            return False
        agreed = agreed or bool(held)
    return True if agreed else None


@dataclass(frozen=True, slots=True)
class _Doc:
    entry: Entry
    phrasings: tuple[str, ...]  # canonical title and questions, for the fuzzy score
    facts: _Facts
    scope: frozenset[int]  # indices of the out-of-scope subjects the entry itself names
    mentions: Mentions  # the entities the entry names (and the document it cites)
    levels: frozenset[str]  # the levels the entry is about (declared, or from its deadline)
    not_stated: bool  # the entry says what the sources do not state


class SearchEngine:
    """Search over a fixed list of entries. Build once; ``search`` is read-only and fast."""

    FUZZY_WEIGHT = 0.4
    BM25_RANK_WEIGHT = 0.1

    def __init__(
        self,
        entries: Iterable[Entry],
        lexicon: Lexicon,
        *,
        deadlines: Iterable[Deadline] = (),
        entities_path: Path | None = None,
    ) -> None:
        self.lexicon = lexicon
        self.analyzer = Analyzer(lexicon)
        self.vocabulary: EntityVocabulary = load_entities(self.analyzer.canonical, entities_path)
        generic = self.vocabulary.generic_bodies
        deadline_list = list(deadlines)
        entry_levels: dict[str, set[str]] = {}
        for deadline in deadline_list:
            if deadline.entry is not None:
                entry_levels.setdefault(deadline.entry, set()).update(deadline.levels)
        # Each deadline with what it is about ("đại hội", "quy chế làm việc"...).
        self._deadlines: tuple[tuple[Deadline, frozenset[str]], ...] = tuple(
            (d, self.vocabulary.find(self.analyzer.canonical(d.what)).topics) for d in deadline_list
        )
        self._generic_bodies = generic
        self._domain = tuple(
            phrase
            for phrase in (tuple(self.analyzer.canonical(t)) for t in lexicon.domain_words)
            if phrase
        )
        self.semantic: Any = None  # a semantic index, attached by the loader when available
        docs: list[_Doc] = []
        vocabulary: Counter[str] = Counter()
        analyzer = self.analyzer
        # Feature -> id, shared by BM25 and the coverage score (ids keep the index compact).
        vocab: dict[str, int] = {}
        corpus: list[list[int]] = []
        for entry in entries:
            texts = (entry.title, *entry.questions, entry.answer)
            raws = [analyzer.raw_words(text) for text in texts]
            for raw in raws:
                vocabulary.update(raw)
            segments = [analyzer.expand(raw) for raw in raws]  # title, questions..., answer
            phrasing_tokens = segments[:-1]
            tokens = [token for segment in segments for token in segment]
            corpus.append(
                [vocab.setdefault(f, len(vocab)) for seg in segments for f in features(seg)]
            )
            intents = frozenset().union(*(analyzer.intents(t) for t in phrasing_tokens))
            found = self.vocabulary.find(tokens)
            document = self.vocabulary.source_documents.get(entry.source)
            if document is not None:
                found = replace(found, documents=found.documents | {document})
            declared = tuple(getattr(entry, "levels", ()) or ())
            docs.append(
                _Doc(
                    entry=entry,
                    phrasings=tuple(" ".join(t) for t in phrasing_tokens),
                    facts=self._facts("\n".join(texts), tokens, intents, skip_dates=False),
                    scope=frozenset(
                        index
                        for index, phrase in enumerate(analyzer.out_of_scope)
                        if _contains(tokens, phrase)
                    ),
                    mentions=found,
                    levels=frozenset(declared)
                    | frozenset(entry_levels.get(entry.id, ()))
                    | (
                        # An entry about what the sources do not state is about the levels
                        # its own title and phrasings name ("huyện", "chi bộ").
                        frozenset(
                            self.vocabulary.find([t for seg in segments[:-1] for t in seg]).levels
                        )
                        if getattr(entry, "kind", "answer") == "not_stated" and not declared
                        else frozenset()
                    ),
                    not_stated=getattr(entry, "kind", "answer") == "not_stated",
                )
            )
        self._docs = docs
        count = len(docs)
        # Each entry's distinct feature ids, sorted, as one CSR structure (compact to keep
        # and to load from the cache).
        rows = [np.unique(np.asarray(ids, dtype=np.int32)) for ids in corpus]
        self._indptr = np.zeros(count + 1, dtype=np.int64)
        np.cumsum([len(r) for r in rows], out=self._indptr[1:])
        self._indices = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int32)
        df = np.bincount(self._indices, minlength=len(vocab))
        self._idf = np.log((count - df + 0.5) / (df + 0.5) + 1.0)
        self._idf_unknown = math.log((count + 0.5) / 0.5 + 1.0)
        self._bm25 = bm25s.BM25()
        self._bm25.index((corpus, vocab), show_progress=False)
        self._vocab = vocab
        # Typo correction targets: words seen in the knowledge base and the lexicon,
        # most frequent first so that ties go to the common word.
        for word in lexicon.known_words():
            vocabulary[word] += 1
        self._known = {w for w in vocabulary if not w.isdigit()}
        by_length: dict[int, list[str]] = {}
        for word, _ in vocabulary.most_common():
            if not word.isdigit():
                by_length.setdefault(len(word), []).append(word)
        self._by_length = by_length
        self._frequency = vocabulary
        self._correct_cached = lru_cache(maxsize=20_000)(self._correct_uncached)

    def __len__(self) -> int:
        return len(self._docs)

    @property
    def entries(self) -> list[Entry]:
        """The entries, in index order (the order of a semantic index's rows)."""
        return [doc.entry for doc in self._docs]

    def __getstate__(self) -> dict[str, object]:
        """Compact state for the index cache: the feature vocabulary (hundreds of thousands
        of strings) travels as one string, which loads far faster than a pickled dict."""
        state = dict(self.__dict__)
        del state["_correct_cached"]  # a per-process cache, rebuilt on load
        state["_vocab"] = "\n".join(self._vocab)  # insertion order is id order
        bm25 = dict(self._bm25.__dict__)
        bm25["vocab_dict"] = None  # the same mapping as _vocab; re-linked on load
        state["_bm25"] = bm25
        return state

    def __setstate__(self, state: dict[str, object]) -> None:
        joined = state.pop("_vocab")
        assert isinstance(joined, str)
        vocab = (
            {feature: index for index, feature in enumerate(joined.split("\n"))} if joined else {}
        )
        bm25 = bm25s.BM25.__new__(bm25s.BM25)
        bm25.__dict__.update(state.pop("_bm25"))
        bm25.vocab_dict = vocab
        self.__dict__.update(state)
        self._vocab = vocab
        self._bm25 = bm25
        self._correct_cached = lru_cache(maxsize=20_000)(self._correct_uncached)

    # ------------------------------------------------------------------ typo correction

    def _correct(self, token: str) -> Phrase:
        if token in self._known or token.isdigit() or len(token) < 3:
            return (token,)
        return self._correct_cached(token)

    def _correct_uncached(self, token: str) -> Phrase:
        # Telex leftovers ("dduowcj", "keets", "cuar"): the letters that only mark accents
        # are dropped (folding drops accents anyway).
        plain = _detelex(token)
        if plain != token and (plain in self._known or _SYLLABLE_RE.fullmatch(plain)):
            return (plain,)
        # A real Vietnamese syllable the knowledge base does not use ("chúng", "tụi") is a
        # word, not a typo: left alone rather than turned into a known look-alike.
        if _SYLLABLE_RE.fullmatch(token):
            return (token,)
        limit = 1 if len(token) < 7 else 2
        best: tuple[int, int, str] | None = None  # (distance, -frequency, word)
        for length in range(len(token) - limit, len(token) + limit + 1):
            choices = self._by_length.get(length)
            if not choices:
                continue
            found = process.extractOne(token, choices, scorer=OSA.distance, score_cutoff=limit)
            if found is None:
                continue
            word, distance, _ = found
            key = (int(distance), -self._frequency[word], word)
            if best is None or key < best:
                best = key
        if best is not None:
            return (best[2],)
        # Two words typed without a space ("daihoi").
        splits = [
            (min(self._frequency[token[:i]], self._frequency[token[i:]]), token[:i], token[i:])
            for i in range(2, len(token) - 1)
            if token[:i] in self._known and token[i:] in self._known
        ]
        if splits:
            _, left, right = max(splits)
            return (left, right)
        return (token,)

    def _facts(
        self, text: str, tokens: Sequence[str], intents: frozenset[str], *, skip_dates: bool
    ) -> _Facts:
        dates = self.analyzer.dates(text)
        skip = (
            frozenset(str(part) for date in dates for part in date if part is not None)
            if skip_dates
            else frozenset()
        )
        numbers = self.analyzer.numbers_with_heads(tokens, skip)
        return _Facts(
            numbers={n: frozenset(h) for n, h in numbers.items()},
            dates=frozenset((d, m) for d, m, _ in dates),
            intents=intents,
            document_dates=_document_dates(text),
        )

    # ------------------------------------------------------------------ search

    def _covered(self, candidates: list[int], known: np.ndarray) -> np.ndarray:
        """For each candidate entry, the IDF mass of the question's features it holds."""
        indptr, indices = self._indptr, self._indices
        slices = [indices[indptr[i] : indptr[i + 1]] for i in candidates]
        held = np.concatenate(slices)
        owner = np.repeat(np.arange(len(candidates)), [len(piece) for piece in slices])
        order = np.sort(known)
        position = np.searchsorted(order, held)
        hit = position < len(order)
        hit[hit] = order[position[hit]] == held[hit]
        return np.bincount(owner[hit], weights=self._idf[held[hit]], minlength=len(candidates))

    def _rank(
        self, tokens: list[str]
    ) -> tuple[list[tuple[float, float, float, int]], float, np.ndarray] | None:
        """Lexical candidates for ``tokens``: (rank, confidence, coverage, entry index), best
        first; also the question's information mass and its known feature ids."""
        every = [self._vocab.get(f) for f in features(tokens)]
        query_features = list(dict.fromkeys(features(tokens)))
        feature_ids = [self._vocab.get(f) for f in query_features]
        ids = [i for i in feature_ids if i is not None]
        if not ids:
            return None
        # A word said again counts again ("pháo hoa", "sân khấu", "hoành tráng": three
        # ways of the one thing the sources call "phô trương").
        scores = self._bm25.get_scores([i for i in every if i is not None])
        k = min(self.lexicon.candidates, len(scores))
        top = [int(i) for i in np.argpartition(-scores, k - 1)[:k] if scores[i] > 0]
        if not top:
            return None
        known = np.asarray(ids, dtype=np.int32)  # distinct: features were deduplicated
        total = float(self._idf[known].sum()) + self._idf_unknown * (len(feature_ids) - len(ids))
        return self._score(top, tokens, known, total, scores), total, known

    def _score(
        self,
        candidates: list[int],
        tokens: list[str],
        known: np.ndarray,
        total: float,
        bm25: np.ndarray | None,
    ) -> list[tuple[float, float, float, int]]:
        covered = self._covered(candidates, known)
        best_bm25 = float(max(bm25[i] for i in candidates)) if bm25 is not None else 0.0
        query_text = " ".join(tokens)
        ranked: list[tuple[float, float, float, int]] = []
        for position, i in enumerate(candidates):
            doc = self._docs[i]
            coverage = float(covered[position]) / total if total else 0.0
            fuzzy = (
                max(fuzz.token_sort_ratio(query_text, p, processor=None) for p in doc.phrasings)
                / 100.0
            )
            confidence = (1 - self.FUZZY_WEIGHT) * coverage + self.FUZZY_WEIGHT * fuzzy
            lexical = float(bm25[i]) / best_bm25 if bm25 is not None and best_bm25 else 0.0
            rank = confidence + self.BM25_RANK_WEIGHT * lexical
            ranked.append((rank, confidence, coverage, i))
        ranked.sort(reverse=True)
        return ranked

    def search(
        self, query: str, previous: Turn | None = None, *, asker_level: str | None = None
    ) -> SearchResult:
        """Answer ``query`` (a whole message); ``previous``: the conversation's last turn,
        for a follow-up such as «Còn cấp tỉnh thì sao?»; ``asker_level``: the level of the
        official's own unit, for "xã tôi phải đại hội xong khi nào?". A message asking
        several questions is answered for the first; the answers to the others are offered
        (``related``)."""
        asked = focus(query)
        result = self._search(query, asked, previous, asker_level)
        if not asked.others:
            return result
        related: list[Entry] = []
        turn = result.turn
        for other in asked.others:
            extra = self._search(other, focus(other), turn, asker_level)
            turn = extra.turn or turn
            entry = extra.entry
            if extra.matched and entry is not None and entry not in (result.entry, *related):
                related.append(entry)
        return replace(result, related=tuple(related[:3]))

    def _search(
        self, query: str, asked: Focus, previous: Turn | None, asker_level: str | None
    ) -> SearchResult:
        if asked.no_question:
            return SearchResult(query, False, None, 0.0, (), "no_question")
        text = _without(asked.query, asked.negated)
        tokens = self.analyzer.canonical(text, correct=self._correct)[:_MAX_QUERY_TOKENS]
        if not tokens:
            return SearchResult(query, False, None, 0.0, (), "empty")
        mentions = self.vocabulary.find(tokens)
        content = sum(1 for t in tokens if t not in _FUNCTION_WORDS)
        foreign = any(
            t not in self._known and not t.isdigit() for t in tokens if t not in _FUNCTION_WORDS
        )
        follow = previous is not None and looks_like_followup(
            asked.query, mentions, content, foreign=foreign
        )
        search_tokens = tokens
        about = mentions
        if follow and previous is not None:
            earlier = self.analyzer.canonical(previous.query, correct=self._correct)
            # «Còn kết luận 29/8 thì sao?» after a question about Kết luận 185: the earlier
            # question without what this one names instead (its document, level, body…).
            replaced = {kind for kind in ENTITY_KINDS if getattr(mentions, kind)}
            dropped = {
                i
                for start, size, kind, _ in self.vocabulary.locate(earlier)
                if kind in replaced
                for i in range(start, start + size)
            }
            earlier = [t for i, t in enumerate(earlier) if i not in dropped]
            search_tokens = (_unframed(tokens) + earlier)[:_MAX_QUERY_TOKENS]
            about = mentions.merged(previous.mentions)
        elif (
            previous is None
            and not asked.background
            and (
                # (when the message has no sentence before the question to point back to)
                (asked.query == asked.question and _bare_followup(asked.query))
                # "Ký ngày nào?", "Phối hợp với ai?": a short question about nothing named
                or (len(tokens) <= 5 and not mentions and is_question(asked.query))
            )
        ):
            return SearchResult(query, False, None, 0.0, (), "followup")
        context = (
            self.vocabulary.find(self.analyzer.canonical(asked.background))
            if asked.background
            else Mentions()
        )
        # (The Centre's own officials ask about the levels below: no level of theirs.)
        if not context.levels and asker_level is not None and asker_level != "trung_uong":
            context = replace(context, levels=(asker_level,))
        turn_query = " ".join(search_tokens)
        composed = self._deadline_answer(
            query, asked, text, search_tokens, about, context, own=mentions, followup=follow
        )
        if composed is not None:
            return replace(
                composed,
                turn=Turn(turn_query, composed.entry.id if composed.entry else None, about),
            )
        result = self._claim_checked(query, asked, text, search_tokens, about, tokens)
        if result is None:
            result = self._retrieve(query, asked, text, search_tokens, about, own=tokens)
        result = self._with_verdict(result, asked, text, tokens)
        if not (about.levels or context.levels or about.places):
            result = self._every_level(result, asked, search_tokens, mentions)
        entry_id = result.entry.id if result.entry is not None else None
        return replace(result, turn=Turn(turn_query, entry_id, about))

    def _claim_checked(
        self,
        query: str,
        asked: Focus,
        text: str,
        tokens: list[str],
        about: Mentions,
        own: list[str],
    ) -> SearchResult | None:
        """A yes/no question that names a person or a post as its claim («Kết luận 185 có
        phải do Tổng Bí thư Tô Lâm ký không?»): the question is searched without the claim
        (which would pull in whatever that person did), then the claim is checked against
        the answer found: named there or not."""
        if not asked.yesno:
            return None
        claims = [
            (start, size, kind, entity)
            for start, size, kind, entity in self.vocabulary.locate(own)
            if kind in {"persons", "posts"}
            or (kind == "bodies" and entity not in self._generic_bodies)
        ]
        if not claims:
            return None
        # The claim becomes the question it stands for: "… do Tổng Bí thư Tô Lâm ký" ->
        # "… do ai ký".
        dropped = {i for start, size, _, _ in claims for i in range(start, start + size)}
        stripped: list[str] = []
        for i, token in enumerate(own):
            if i not in dropped:
                stripped.append(token)
            elif not stripped or stripped[-1] != "ai":
                stripped.append("ai")
        rest = tokens[len(own) :]  # a follow-up's earlier question stays as it was
        result = self._retrieve(
            query,
            asked,
            text,
            stripped + rest,
            replace(about, persons=frozenset(), posts=frozenset(), bodies=frozenset()),
            own=stripped,
        )
        if not result.matched or result.entry is None:
            return None
        doc = self._doc(result.entry.id)
        named = all(entity in doc.mentions.of(kind) for _, _, kind, entity in claims)
        return replace(result, verdict=named)

    def _scope(self, tokens: Sequence[str]) -> frozenset[int]:
        """The out-of-scope subjects ``tokens`` name (indexes in the lexicon's list)."""
        return frozenset(
            index
            for index, phrase in enumerate(self.analyzer.out_of_scope)
            if _contains(tokens, phrase)
        )

    def _doc(self, entry_id: str) -> _Doc:
        return next(d for d in self._docs if d.entry.id == entry_id)

    def _with_verdict(
        self, result: SearchResult, asked: Focus, text: str, own: list[str]
    ) -> SearchResult:
        """A yes/no question answered by an entry: «Đúng.» or «Không đúng.» first when its
        claims (who, which body, which number, which date) can be checked against it."""
        if not asked.yesno or not result.matched or result.entry is None:
            return result
        facts = self._facts(text, own, frozenset(), skip_dates=True)
        verdict = result.verdict
        checked = _numbers_verdict(self._doc(result.entry.id), facts)
        if checked is not None:
            verdict = checked if verdict is None else verdict and checked
        if verdict is None:
            return result
        said = "Đúng." if verdict else "Không đúng."
        return replace(result, text=f"{said} {result.text or result.entry.answer}", verdict=verdict)

    def _retrieve(
        self,
        query: str,
        asked: Focus,
        text: str,
        tokens: list[str],
        about: Mentions,
        *,
        own: list[str],
    ) -> SearchResult:
        """Lexical search over ``tokens`` (with a follow-up's earlier question), semantic
        fusion when that is not enough; the guards compare the facts of this message
        (``own`` tokens) and the entities it is about."""
        lexical = self._rank(tokens)
        if lexical is None:
            return SearchResult(query, False, None, 0.0, (), "low_confidence")
        on_topic = any(_contains(tokens, phrase) for phrase in self._domain)
        # "Hà Nội hôm nay bao nhiêu độ?": a place and nothing of the matter is not a
        # question about it, however well "Hà Nội" matches the 21/8 working session.
        named = {kind for kind in ENTITY_KINDS if getattr(about, kind)}
        if not on_topic and named == {"places"}:
            return SearchResult(query, False, None, 0.0, (), "off_topic")
        ranked, total, known = lexical
        # What kind of answer is wanted comes from the question sentence, not from the story
        # searched with it ("… chưa rõ ai làm, khi nào xong. Dự thảo như vậy đã đạt chưa?").
        asked_own = own
        if asked.question and asked.question != asked.query:
            asked_own = self.analyzer.canonical(asked.question, correct=self._correct)
        facts = self._facts(text, own, self.analyzer.intents(asked_own), skip_dates=True)
        query_scope = self._scope(tokens)
        best: tuple[float, int] | None = None
        reason = "low_confidence"
        for _, confidence, _, i in ranked:
            doc = self._docs[i]
            problem = _guard(doc, facts, query_scope, yesno=asked.yesno) or self._conflict(
                about, doc, yesno=asked.yesno
            )
            if problem is None:
                best = (confidence, i)
                break
            if reason == "low_confidence":
                reason = problem
        threshold = self.lexicon.threshold
        # A question must carry at least as much information as one word that only a single
        # entry has; "kết luận" or "đại hội" alone would match half the knowledge base.
        vague = total < self.lexicon.min_information * self._idf_unknown
        if vague:
            reason = "vague"
        elif best is not None and best[0] >= threshold:
            doc = self._docs[best[1]]
            return self._found(query, doc, best[0])
        elif self.semantic is not None:
            fused = self._fused(
                text, tokens, known, total, ranked, facts, query_scope, about, asked
            )
            if fused is not None:
                return self._found(query, self._docs[fused[1]], fused[0])
        # Suggestions only for a question about the matter at all: "thời tiết Hà Nội ngày mai"
        # shares "Hà Nội" with an entry but is not a question about congresses.
        suggestions = tuple(
            self._docs[i].entry
            for _, conf, _, i in ranked
            if on_topic and conf >= self.lexicon.suggest_floor and not self._docs[i].not_stated
        )[:3]
        score = best[0] if best is not None else 0.0
        return SearchResult(query, False, None, round(score, 4), suggestions, reason)

    # Semantic acceptance (calibrated on the public samples and the team's held-out sets;
    # `make bench` prints the figures): the closest entry by meaning is taken when it
    # stands out among the entries (z-score of its similarity), the words still agree with
    # it (it is first or second by lexical rank among the admissible entries) and it covers
    # a fair share of the question's words. Chit-chat has no word in common; a near-domain
    # question stands out less, or is stopped by the guards.
    SEMANTIC_MIN_Z = 2.0
    SEMANTIC_MIN_LEXICAL = 0.29
    SEMANTIC_MIN_COVERAGE = 0.12
    SEMANTIC_MAX_LEXICAL_RANK = 1
    SEMANTIC_CANDIDATES = 8  # the closest entries in meaning looked at
    AGREED_MIN_Z = 1.6  # when the closest in meaning is also the first by BM25
    AGREED_MIN_COVERAGE = 0.06
    AGREED_MIN_LEXICAL = 0.2

    def _fused(
        self,
        text: str,
        tokens: list[str],
        known: np.ndarray,
        total: float,
        ranked: list[tuple[float, float, float, int]],
        facts: _Facts,
        query_scope: frozenset[int],
        about: Mentions,
        asked: Focus,
    ) -> tuple[float, int] | None:
        """The entry closest in meaning, when the lexical evidence alone was not enough
        (paraphrases, chat, long messages) and the checks above hold."""
        similarity = self.semantic.scores(text)
        if similarity is None:
            return None

        def admissible(i: int) -> bool:
            doc = self._docs[i]
            return not (
                _guard(doc, facts, query_scope, yesno=asked.yesno)
                or self._conflict(about, doc, yesno=asked.yesno)
            )

        lexical_order = [i for _, _, _, i in ranked if admissible(i)]
        lexical_top = lexical_order[: self.SEMANTIC_MAX_LEXICAL_RANK + 1]
        semantic_order = [int(i) for i in np.argsort(-similarity)[: self.SEMANTIC_CANDIDATES]]
        semantic_top = [i for i in semantic_order if admissible(i)][:2]
        spread = float(similarity.std()) or 1.0
        mean = float(similarity.mean())
        chosen: tuple[float, int] | None = None
        # The entries both signals put near the top; of those that stand out in meaning and
        # share enough words, the one with the best combined evidence.
        # The entry the word statistics (BM25) rank first among the admissible ones: when
        # the closest in meaning is that same entry, two independent signals agree.
        by_bm25 = max(
            ((rank - confidence, i) for rank, confidence, _, i in ranked if admissible(i)),
            default=(0.0, -1),
        )[1]
        for i in semantic_top:
            agreed = i == by_bm25 and i == semantic_order[0]
            if i not in lexical_top and not agreed:
                continue
            z = (float(similarity[i]) - mean) / spread
            [(_, confidence, coverage, _)] = self._score([i], tokens, known, total, None)
            if (
                agreed
                and z >= self.AGREED_MIN_Z
                and coverage >= self.AGREED_MIN_COVERAGE
                and confidence >= self.AGREED_MIN_LEXICAL
            ) or (
                z >= self.SEMANTIC_MIN_Z
                and confidence >= self.SEMANTIC_MIN_LEXICAL
                and coverage >= self.SEMANTIC_MIN_COVERAGE
            ):
                fused = min(1.0, confidence + 0.03 * z)
                if chosen is None or fused > chosen[0]:
                    chosen = (fused, i)
        return chosen

    def _found(self, query: str, doc: _Doc, confidence: float) -> SearchResult:
        if doc.not_stated:
            return SearchResult(
                query,
                False,
                doc.entry,
                round(confidence, 4),
                (),
                "not_stated",
                text=doc.entry.answer,
            )
        return SearchResult(query, True, doc.entry, round(confidence, 4), (), "ok")

    def _conflict(self, about: Mentions, doc: _Doc, *, yesno: bool) -> str | None:
        """Why the entities of the question rule ``doc`` out, or ``None``."""
        held = doc.mentions
        if about.levels:
            # The first level named is the subject ("chi bộ trực thuộc đảng ủy xã", "đảng bộ
            # phường … cùng đợt với thành phố").
            subject = about.levels[0]
            if doc.levels and subject not in doc.levels:
                return "level"
            if subject == "huyen" and "huyen" not in doc.levels:
                return "level"  # districts are never mentioned by the sources
        if about.documents and not about.documents & held.documents:
            return "document"
        bodies = about.bodies - self._generic_bodies
        if bodies and not any(_same_body(b, h) for b in bodies for h in held.bodies):
            return "body"
        # A rule about levels holds for every province; an event (a working session) only
        # for its own place.
        if about.places and not about.places & held.places and (held.places or not doc.levels):
            return "place"
        if not yesno:  # in a yes/no question a post or a person may be the claim checked
            if about.posts and not about.posts & held.posts:
                return "post"
            if about.persons and not about.persons & held.persons:
                return "person"
        return None

    # ------------------------------------------------------------------ deadlines

    def _deadline_answer(
        self,
        query: str,
        asked: Focus,
        text: str,
        tokens: list[str],
        about: Mentions,
        context: Mentions,
        *,
        own: Mentions,
        followup: bool,
    ) -> SearchResult | None:
        """A question about when something is due (or a plan to check against it), for a
        task whose deadline is structured: answered from ``deadlines.yaml``."""
        topics = about.topics
        if not topics or not self._deadlines:
            return None
        # What the question sentence itself asks ("… khi nào xong" in the story told before a
        # question about content is not a deadline question).
        question = asked.question or asked.query
        asked_tokens = tokens if followup else self.analyzer.canonical(question)
        asks_time = "time" in self.analyzer.intents(asked_tokens) or bool(
            _TIME_CHOICE.search(" ".join(asked_tokens))
        )
        if not (asks_time or asked.yesno or asked.plan):
            return None
        # A province or a city named alone ("Thành ủy Hà Nội", "Quảng Ninh") is a party
        # organisation directly under the Centre.
        levels = about.levels or context.levels or (("truc_thuoc_tw",) if about.places else ())
        chosen: Deadline | None = None
        for topic in _TOPIC_ORDER:
            if topic not in topics:
                continue
            found = [d for d, t in self._deadlines if topic in t]
            if topic == "dai_hoi":
                if not levels:
                    # A congress deadline depends on the level: with none named (nor the
                    # asker's), every level's, each with its own words and citation.
                    return None  # retrieval decides (see _every_level)
                level = levels[0]
                found = [d for d in found if level in d.levels]
                if not found:
                    # No deadline for that level (chi bộ, huyện): the sources say nothing,
                    # and the entry that says so answers, whoever named the level.
                    silent = next(
                        (
                            d
                            for d in self._docs
                            if d.not_stated and level in d.levels and topic in d.mentions.topics
                        ),
                        None,
                    )
                    return None if silent is None else self._found(query, silent, 1.0)
            if found:
                chosen = found[0]
                break
        if chosen is None or chosen.entry is None:
            return None
        doc = next((d for d in self._docs if d.entry.id == chosen.entry), None)
        if doc is None:
            return None
        scope = self._scope(tokens)
        # The entities of this message only: a follow-up's earlier document («theo kết luận
        # 29/8 …» then «phải ban hành xong trong tháng nào?») does not rule a deadline out.
        if not scope <= doc.scope or self._conflict(own, doc, yesno=True):
            return None  # "Đại hội Mặt trận Tổ quốc cấp xã…": not a party deadline
        period = claimed_period(text, year=chosen.due.year) if (asked.yesno or asked.plan) else None
        if period is None and not asks_time:
            return None  # a plan about something else than timing ("pháo hoa, sân khấu")
        if about.places and _EXACT_DATE.search(fold(question)):
            # "Đà Nẵng đại hội vào ngày nào?": the sources give one deadline for every
            # province, never a place's own date.
            return SearchResult(
                query,
                False,
                doc.entry,
                1.0,
                (),
                "not_stated",
                text=(
                    "Các văn bản không nêu ngày cụ thể của từng địa phương; chỉ nêu hạn chung "
                    f"như sau.\n\n{doc.entry.answer}"
                ),
            )
        if period is None:
            return SearchResult(query, True, doc.entry, 1.0, (), "ok")
        verdict, sentence = deadline_verdict(chosen, period)
        return SearchResult(
            query,
            True,
            doc.entry,
            1.0,
            (),
            "ok",
            text=f"{sentence}\n\n{doc.entry.answer}",
            verdict=verdict,
        )

    def _every_level(
        self, result: SearchResult, asked: Focus, tokens: list[str], own: Mentions
    ) -> SearchResult:
        """A congress deadline depends on the level: a question answered with one level's
        deadline that names no level (nor does the asker's unit) gets every level's, each
        in its own words and with its citation ("Đại hội phải xong khi nào?")."""
        if not result.matched or result.entry is None or result.text is not None:
            return result
        found = [d for d, t in self._deadlines if "dai_hoi" in t and d.levels]
        if result.entry.id not in {d.entry for d in found} or asked.yesno or asked.plan:
            return result
        question = asked.question or asked.query
        docs = []
        for deadline in sorted(found, key=lambda d: d.due):
            doc = next((d for d in self._docs if d.entry.id == deadline.entry), None)
            if doc is not None and doc not in docs:
                docs.append(doc)
        scope = self._scope(tokens)
        asked_tokens = self.analyzer.canonical(question, correct=self._correct)
        facts = self._facts(question, asked_tokens, frozenset(), skip_dates=True)
        docs = [
            d
            for d in docs
            if scope <= d.scope  # "Đại hội XIV khai mạc khi nào?" is not about these
            and not _guard(d, facts, scope)
            and not self._conflict(own, d, yesno=True)
        ]
        if len(docs) < 2:
            return result
        parts = "\n\n".join(f"• {doc.entry.title}: {doc.entry.answer}" for doc in docs)
        text = f"Thời hạn đại hội tùy theo cấp:\n\n{parts}"
        return replace(result, entry=docs[0].entry, text=text)


# Which deadline a question is about when it names several topics: the specific ones first
# ("ban hành văn kiện đại hội" is about the documents, not the congress).
_TOPIC_ORDER = ("van_kien", "kien_toan", "tap_huan", "dai_hoi")
_STRICT_INTENTS = frozenset({"quantity", "days", "years", "now"})
_TIME_CHOICE = re.compile(r"\bthang \d+ (hay|hoac|hoac la|hay la) thang \d+\b")
_EXACT_DATE = re.compile(r"\b(ngay nao|ngay may|ngay bao nhieu|hom nao)\b")
_FUNCTION_WORDS = frozenset(
    [
        "la",
        "cua",
        "va",
        "thi",
        "co",
        "khong",
        "duoc",
        "nao",
        "gi",
        "ai",
        "the",
        "vay",
        "sao",
        "con",
        "nhung",
        "cac",
        "mot",
        "nay",
        "do",
        "ay",
        "a",
        "oi",
        "nhe",
        "ha",
        "voi",
        "cho",
        "ve",
        "trong",
        "tu",
        "den",
        "nua",
        "ra",
        "len",
        "di",
        "khi",
        "em",
        "toi",
        "minh",
        "anh",
        "chi",
        "ban",
    ]
)
_BARE_START = re.compile(r"^(con|the con|vay con|con ve|con ben|ngoai ra|the thi|vay thi)\b")
_BARE_END = re.compile(r"\b(thi sao|the nao|ra sao|thi the nao)\s*$")
_BARE_POINTER = re.compile(
    r"\b(van ban|bao cao|ket luan|chuong trinh|cuoc lam viec|buoi|dong chi|viec|co quan|ban)"
    r"\s+(do|ay|nay)\b|\b(dong chi ay|ong ay|no)\b"
)


def _same_body(asked: str, held: str) -> bool:
    """A body named without its level matches each level's ("ubkt" and "ubkt_tw")."""
    return asked == held or held.startswith(f"{asked}_") or asked.startswith(f"{held}_")


_FRAME_START: tuple[tuple[str, ...], ...] = (("the", "con"), ("vay", "con"), ("con",))
_FRAME_END: tuple[tuple[str, ...], ...] = (
    ("thi", "the", "nao"),
    ("thi", "ra", "sao"),
    ("thi", "sao"),
    ("nua",),
    ("sao",),
)


def _unframed(tokens: list[str]) -> list[str]:
    """A follow-up's words without its frame («còn … thì sao?»), which no entry has."""
    for frame in _FRAME_START:
        if tuple(tokens[: len(frame)]) == frame and len(tokens) > len(frame):
            tokens = tokens[len(frame) :]
            break
    for frame in _FRAME_END:
        if tuple(tokens[-len(frame) :]) == frame and len(tokens) > len(frame):
            tokens = tokens[: -len(frame)]
            break
    return tokens


def _bare_followup(text: str) -> bool:
    """«Còn cấp tỉnh thì sao?», «Văn bản đó ký ngày nào?» with nothing before them: only
    the words of a follow-up, not a short question of its own ("giá vàng hôm nay")."""
    folded = " ".join(re.sub(r"[^\w\s]", " ", fold(text)).split())
    if len(folded.split()) > 12:
        return False
    starts = bool(_BARE_START.match(folded))
    return (starts and bool(_BARE_END.search(folded))) or bool(_BARE_POINTER.search(folded))


def _without(text: str, negated: Sequence[str]) -> str:
    """``text`` (folded) without the parts the asker excludes («không phải Kết luận 185»)."""
    if not negated:
        return text
    folded = fold(text)
    for part in negated:
        folded = folded.replace(part, " ")
    return re.sub(r"\b(chu\s+)?khong\s+phai(\s+la)?\b", " ", folded)


def _guard(
    doc: _Doc, facts: _Facts, query_scope: frozenset[int], *, yesno: bool = False
) -> str | None:
    """Why ``doc`` cannot answer the question, or ``None`` if it may. In a yes/no question a
    number under a head the entry also has ("Hội nghị Trung ương 12, đúng không?") is the
    claim being checked, not a different subject."""
    held_numbers = doc.facts.numbers
    loose: list[str] = []
    for number, heads in facts.numbers.items():
        named = heads - {None}
        if not named:
            loose.append(number)
            continue
        held = held_numbers.get(number)
        claim = yesno and any(named & h for h in held_numbers.values())
        if held is None:
            if claim:
                continue
            return "number"
        if None not in held and not named <= held and not claim:
            return "number"  # "Hội nghị Trung ương 12" is not "Đại hội XII"
    # Numbers without a head ("tháng 8 hay tháng 10"): one of them must be there.
    if loose and not yesno and not any(number in held_numbers for number in loose):
        return "number"
    if not facts.dates <= doc.facts.dates and not yesno:
        return "number"
    # An entry about what the sources do not state answers only the kind of question it
    # is about: "Hội nghị Trung ương 13 họp khi nào?" (not stated) is not "trình hội nghị
    # nào?" (stated).
    # One about a level the sources never mention (huyện) also answers a question of no
    # particular kind about that level ("Cấp huyện có phải tổ chức đại hội không?"); the
    # entity check makes sure the level is the one asked about.
    if (
        doc.not_stated
        and doc.facts.intents
        and not doc.facts.intents & facts.intents
        and (facts.intents or not doc.levels)
    ):
        return "intent"
    missing = facts.intents - doc.facts.intents
    # "Ai ký … ký ngày nào?" asks two things: an entry answering one of them will do; but
    # a count, a duration or "today" must be what the entry is about.
    strict = missing & _STRICT_INTENTS
    if strict or (missing and missing == facts.intents):
        return "intent"
    if not query_scope <= doc.scope:
        return "out_of_scope"
    return None
