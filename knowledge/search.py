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
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import bm25s
import numpy as np
from rapidfuzz import fuzz, process
from rapidfuzz.distance import OSA

from knowledge.base import Entry, KnowledgeError, Problem
from knowledge.normalize import nfc, roman_to_int, words
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

    @property
    def max_phrase(self) -> int:
        return max((len(p) for p in self.synonyms), default=1)

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
        raise KnowledgeError([Problem(path, 1, "the lexicon must be a mapping")])

    def text_list(key: str) -> list[tuple[int, str]]:
        value = doc.get(key)
        if value is None:
            return []
        if not isinstance(value, LineList):
            problems.append(Problem(path, doc.line_of(key), f"{key!r} must be a list"))
            return []
        items = []
        for index, item in enumerate(value):
            if not isinstance(item, str) or not words(item):
                problems.append(Problem(path, value.line_of(index), f"{key!r}: empty item"))
                continue
            items.append((value.line_of(index), item))
        return items

    abbreviations: dict[str, Phrase] = {}
    raw_abbr = doc.get("abbreviations") or LineDict()
    if not isinstance(raw_abbr, LineDict):
        problems.append(Problem(path, doc.line_of("abbreviations"), "must be a mapping"))
        raw_abbr = LineDict()
    for key, value in raw_abbr.items():
        short = words(key)
        expansion = _phrase(str(value)) if value is not None else ()
        if len(short) != 1 or not expansion:
            problems.append(
                Problem(path, raw_abbr.line_of(key), f"abbreviation {key!r}: need one word -> text")
            )
            continue
        abbreviations[short[0]] = expansion

    synonyms: dict[Phrase, Phrase] = {}
    raw_groups = doc.get("synonyms") or LineList()
    if not isinstance(raw_groups, LineList):
        problems.append(Problem(path, doc.line_of("synonyms"), "'synonyms' must be a list"))
        raw_groups = LineList()
    for index, group in enumerate(raw_groups):
        line = raw_groups.line_of(index)
        if not isinstance(group, list) or len(group) < 2:
            problems.append(Problem(path, line, "a synonym group lists at least two phrases"))
            continue
        phrases = [_phrase(str(item)) for item in group]
        if not all(phrases):
            problems.append(Problem(path, line, "a synonym group has an empty phrase"))
            continue
        canonical = phrases[0]
        for variant in phrases[1:]:
            if variant in synonyms and synonyms[variant] != canonical:
                problems.append(Problem(path, line, f"{' '.join(variant)!r} is in two groups"))
            synonyms[variant] = canonical

    intents: dict[str, tuple[Phrase, ...]] = {}
    raw_intents = doc.get("intents") or LineDict()
    if not isinstance(raw_intents, LineDict):
        problems.append(Problem(path, doc.line_of("intents"), "'intents' must be a mapping"))
        raw_intents = LineDict()
    for name, texts in raw_intents.items():
        if not isinstance(texts, list) or not all(isinstance(item, str) for item in texts):
            problems.append(Problem(path, raw_intents.line_of(name), f"intent {name!r}: a list"))
            continue
        intents[name] = tuple(phrase for phrase in map(_phrase, texts) if phrase)

    settings = doc.get("search")
    if not isinstance(settings, LineDict):
        problems.append(Problem(path, doc.line, "missing 'search' settings"))
        settings = LineDict()

    def number(key: str, default: float) -> float:
        value = settings.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(Problem(path, settings.line_of(key), f"search.{key} must be a number"))
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
    )
    if problems:
        raise KnowledgeError(problems)
    return lexicon


class Analyzer:
    """Turns text into canonical words; the same steps for documents and questions."""

    def __init__(self, lexicon: Lexicon) -> None:
        self.lexicon = lexicon
        self._max_phrase = lexicon.max_phrase
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
                continue
            if token not in exceptions:
                value = roman_to_int(token)
                if value is not None:
                    result.append(str(value))
                    continue
            result.append(token)
        return result

    def canonical(self, text: str, correct: Callable[[str], Phrase] | None = None) -> list[str]:
        """Canonical words of ``text``; ``correct`` maps an unknown word to known ones."""
        raw = self.raw_words(text)
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
        if not synonyms:
            return tokens
        out: list[str] = []
        i = 0
        n = len(tokens)
        while i < n:
            for size in range(min(self._max_phrase, n - i), 0, -1):
                canonical = synonyms.get(tuple(tokens[i : i + size]))
                if canonical is not None:
                    out.extend(canonical)
                    i += size
                    break
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


def _roman_sub(match: re.Match[str]) -> str:
    value = roman_to_int(match.group(0))
    return str(value) if value is not None else match.group(0)


def features(tokens: Sequence[str]) -> list[str]:
    """Words and adjacent word pairs."""
    return [*tokens, *(f"{a}_{b}" for a, b in itertools.pairwise(tokens))]


def _contains(haystack: Sequence[str], needle: Phrase) -> bool:
    size = len(needle)
    first = needle[0]
    return any(
        haystack[i] == first and tuple(haystack[i : i + size]) == needle
        for i in range(len(haystack) - size + 1)
    )


@dataclass(frozen=True, slots=True)
class SearchResult:
    """The outcome of one question; ``score`` is the confidence in ``entry`` (0..1)."""

    query: str
    matched: bool
    entry: Entry | None
    score: float
    suggestions: tuple[Entry, ...]
    reason: str  # "ok", "empty", "vague", "low_confidence", "number", "intent", "out_of_scope"


@dataclass(frozen=True, slots=True)
class _Facts:
    """What the guards compare between a question and an entry."""

    numbers: Mapping[str, frozenset[Phrase | None]]  # number -> the heads it follows
    dates: frozenset[tuple[int, int]]  # (day, month)
    intents: frozenset[str]


@dataclass(frozen=True, slots=True)
class _Doc:
    entry: Entry
    tokens: tuple[str, ...]
    features: frozenset[str]
    phrasings: tuple[str, ...]
    facts: _Facts


class SearchEngine:
    """Search over a fixed list of entries. Build once; ``search`` is read-only and fast."""

    FUZZY_WEIGHT = 0.4
    BM25_RANK_WEIGHT = 0.1

    def __init__(self, entries: Iterable[Entry], lexicon: Lexicon) -> None:
        self.lexicon = lexicon
        self.analyzer = Analyzer(lexicon)
        docs: list[_Doc] = []
        vocabulary: Counter[str] = Counter()
        for entry in entries:
            texts = (entry.title, *entry.questions, entry.answer)
            for text in texts:
                vocabulary.update(self.analyzer.raw_words(text))
            text = "\n".join(texts)
            tokens = tuple(self.analyzer.canonical(text))
            phrasing_tokens = [self.analyzer.canonical(t) for t in (entry.title, *entry.questions)]
            intents = frozenset().union(*(self.analyzer.intents(t) for t in phrasing_tokens))
            docs.append(
                _Doc(
                    entry=entry,
                    tokens=tokens,
                    features=frozenset(features(tokens)),
                    phrasings=tuple(" ".join(t) for t in phrasing_tokens),
                    facts=self._facts(text, tokens, intents, skip_dates=False),
                )
            )
        self._docs = docs
        count = len(docs)
        df: Counter[str] = Counter()
        for doc in docs:
            df.update(doc.features)
        self._idf = {f: math.log((count - n + 0.5) / (n + 0.5) + 1.0) for f, n in df.items()}
        self._idf_unknown = math.log((count + 0.5) / 0.5 + 1.0)
        self._bm25 = bm25s.BM25()
        self._bm25.index([features(doc.tokens) or [""] for doc in docs], show_progress=False)
        self._bm25_vocab: dict[str, int] = self._bm25.vocab_dict
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

    # ------------------------------------------------------------------ typo correction

    def _correct(self, token: str) -> Phrase:
        if token in self._known or token.isdigit() or len(token) < 4:
            return (token,)
        return self._correct_cached(token)

    def _correct_uncached(self, token: str) -> Phrase:
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
        )

    # ------------------------------------------------------------------ search

    def search(self, query: str) -> SearchResult:
        tokens = self.analyzer.canonical(query, correct=self._correct)[:_MAX_QUERY_TOKENS]
        if not tokens:
            return SearchResult(query, False, None, 0.0, (), "empty")
        query_features = list(dict.fromkeys(features(tokens)))
        ids = [self._bm25_vocab[f] for f in query_features if f in self._bm25_vocab]
        if not ids:
            return SearchResult(query, False, None, 0.0, (), "low_confidence")
        scores = self._bm25.get_scores(ids)
        k = min(self.lexicon.candidates, len(scores))
        top = [int(i) for i in np.argpartition(-scores, k - 1)[:k] if scores[i] > 0]
        if not top:
            return SearchResult(query, False, None, 0.0, (), "low_confidence")
        best_bm25 = float(max(scores[i] for i in top))

        weights = {f: self._idf.get(f, self._idf_unknown) for f in query_features}
        total = sum(weights.values())
        query_text = " ".join(tokens)
        ranked: list[tuple[float, float, int]] = []
        for i in top:
            doc = self._docs[i]
            covered = sum(w for f, w in weights.items() if f in doc.features)
            coverage = covered / total if total else 0.0
            fuzzy = (
                max(fuzz.token_sort_ratio(query_text, p, processor=None) for p in doc.phrasings)
                / 100.0
            )
            confidence = (1 - self.FUZZY_WEIGHT) * coverage + self.FUZZY_WEIGHT * fuzzy
            rank = confidence + self.BM25_RANK_WEIGHT * float(scores[i]) / best_bm25
            ranked.append((rank, confidence, i))
        ranked.sort(reverse=True)

        facts = self._facts(query, tokens, self.analyzer.intents(tokens), skip_dates=True)
        query_scope = [p for p in self.analyzer.out_of_scope if _contains(tokens, p)]
        best: tuple[float, int] | None = None
        reason = "low_confidence"
        for _, confidence, i in ranked:
            doc = self._docs[i]
            problem = _guard(doc, facts, query_scope)
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
            entry = self._docs[best[1]].entry
            return SearchResult(query, True, entry, round(best[0], 4), (), "ok")
        suggestions = tuple(
            self._docs[i].entry for _, conf, i in ranked if conf >= self.lexicon.suggest_floor
        )[:3]
        score = best[0] if best is not None else 0.0
        return SearchResult(query, False, None, round(score, 4), suggestions, reason)


def _guard(doc: _Doc, facts: _Facts, query_scope: Sequence[Phrase]) -> str | None:
    """Why ``doc`` cannot answer the question, or ``None`` if it may."""
    held_numbers = doc.facts.numbers
    loose: list[str] = []
    for number, heads in facts.numbers.items():
        named = heads - {None}
        if not named:
            loose.append(number)
            continue
        held = held_numbers.get(number)
        if held is None:
            return "number"
        if None not in held and not named <= held:
            return "number"  # "Hội nghị Trung ương 12" is not "Đại hội XII"
    # Numbers without a head ("tháng 8 hay tháng 10"): one of them must be there.
    if loose and not any(number in held_numbers for number in loose):
        return "number"
    if not facts.dates <= doc.facts.dates:
        return "number"
    if not facts.intents <= doc.facts.intents:
        return "intent"
    for phrase in query_scope:
        if not _contains(doc.tokens, phrase):
            return "out_of_scope"
    return None
