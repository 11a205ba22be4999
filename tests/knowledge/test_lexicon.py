"""The lexicon must not rewrite words it was not meant for.

Folding accents merges distinct words ("đủ" and the abbreviation "đu" are both "du"; "bộ
nhiệm(kỳ)" contains "bo nhiem" like "bổ nhiệm"). A phrase the lexicon rewrites (an
abbreviation, a synonym other than its group's first) is safe when it occurs in the folded
knowledge base exactly as often as its accented form does.
"""

from __future__ import annotations

import re

import pytest
import yaml

from knowledge import Knowledge
from knowledge.normalize import fold, nfc, words
from knowledge.search import default_lexicon_path


def _accented_words(text: str) -> list[str]:
    return re.findall(r"\w+", nfc(text).lower().replace("òa", "oà").replace("ủy", "uỷ"))


def _count(haystack: list[str], needle: list[str]) -> int:
    size = len(needle)
    return sum(1 for i in range(len(haystack) - size + 1) if haystack[i : i + size] == needle)


@pytest.fixture(scope="module")
def corpus(knowledge: Knowledge) -> tuple[list[list[str]], list[list[str]]]:
    texts = [
        text
        for entry in knowledge.base.entries.values()
        for text in (entry.title, *entry.questions, entry.answer)
    ]
    return [words(t) for t in texts], [_accented_words(t) for t in texts]


def _lexicon_phrases() -> list[str]:
    raw = yaml.safe_load(default_lexicon_path().read_text(encoding="utf-8"))
    phrases = list(raw["abbreviations"])
    for group in raw["synonyms"]:
        phrases.extend(group[1:])  # the first of a group is only ever written, never rewritten
    return phrases


@pytest.mark.parametrize("phrase", _lexicon_phrases())
def test_phrase_does_not_collide_once_folded(
    phrase: str, corpus: tuple[list[list[str]], list[list[str]]]
) -> None:
    folded_texts, accented_texts = corpus
    folded = sum(_count(t, words(phrase)) for t in folded_texts)
    accented = sum(_count(t, _accented_words(phrase)) for t in accented_texts)
    if phrase.isascii() and fold(phrase) == phrase:
        # Written without accents in the lexicon (tw, ct, kl…): the two counts mean the same.
        accented = sum(_count(t, words(phrase)) for t in accented_texts)
    assert folded == accented, (
        f"{phrase!r} matches {folded - accented} other word(s) once accents are removed"
    )
