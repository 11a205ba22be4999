"""Numbered choices on channels without buttons: what was offered, and what a typed reply
picks — "2", "số 2", "hai", or the words of a choice ("đã hoàn thành", "tất cả")."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bot.core import Button
from knowledge.normalize import fold

__all__ = ["Choice", "Pick", "bare_number", "from_stored", "pick", "to_stored"]

# Only one or two digits are a choice: "185" is a question about Kết luận 185.
_NUMBER_RE = re.compile(r"^\s*(?:(?:so|chon|chon so)\s*)?(\d{1,2})\s*[.)]?\s*$")
_NUMBER_WORDS = {
    "mot": 1,
    "hai": 2,
    "ba": 3,
    "bon": 4,
    "tu": 4,
    "nam": 5,
    "sau": 6,
    "bay": 7,
    "tam": 8,
    "chin": 9,
    "muoi": 10,
}
_WORD_RE = re.compile(r"^\s*(?:(?:so|chon|chon so)\s+)?([a-z]+)\s*[.!]?\s*$")
_PUNCT_RE = re.compile(r"[^\w\s]")


@dataclass(frozen=True, slots=True)
class Choice:
    payload: str
    label: str


@dataclass(frozen=True, slots=True)
class Pick:
    kind: Literal["choice", "out_of_range", "none"]
    choice: Choice | None = None


def to_stored(buttons: Sequence[Button]) -> list[list[str]]:
    return [[b.payload, b.label] for b in buttons]


def from_stored(stored: Sequence[Any]) -> list[Choice]:
    """Stored choices (``[payload, label]``; a bare payload from before labels were kept)."""
    choices: list[Choice] = []
    for item in stored or ():
        if isinstance(item, str):
            choices.append(Choice(item, item))
        elif isinstance(item, list | tuple) and len(item) == 2:
            choices.append(Choice(str(item[0]), str(item[1])))
    return choices


def bare_number(text: str | None) -> int | None:
    """The number of a reply that is only a (one- or two-digit) number, else ``None``."""
    if not text:
        return None
    folded = fold(text)
    match = _NUMBER_RE.match(folded)
    if match is not None:
        return int(match.group(1))
    word = _WORD_RE.match(folded)
    if word is not None and word.group(1) in _NUMBER_WORDS and len(folded.split()) <= 3:
        return _NUMBER_WORDS[word.group(1)]
    return None


def _simple(text: str) -> str:
    return " ".join(_PUNCT_RE.sub(" ", fold(text)).split())


def pick(text: str | None, choices: Sequence[Choice]) -> Pick:
    """What a typed reply chooses among ``choices``."""
    if not text or not choices:
        return Pick("none")
    number = bare_number(text)
    if number is not None:
        if 1 <= number <= len(choices):
            return Pick("choice", choices[number - 1])
        return Pick("out_of_range")
    typed = _simple(text)
    if len(typed) < 3:
        return Pick("none")
    labels = [(_simple(c.label), c) for c in choices]
    exact = [c for label, c in labels if label == typed]
    if len(exact) == 1:
        return Pick("choice", exact[0])
    # "tất cả" picks «Tất cả cán bộ (12 người)»; "hoàn thành" is not enough when two
    # choices contain it.
    close = [
        c
        for label, c in labels
        if label.startswith(typed) or (len(typed) >= 4 and f" {typed} " in f" {label} ")
    ]
    if len(close) == 1:
        return Pick("choice", close[0])
    return Pick("none")
