"""Accuracy on a labelled question set (the public samples in ../shared/eval, or another).

In-scope items have ``expect_any``: the answer is right when it was given as an answer
(``matched``) and, accent-stripped, lower-cased and with dashes unified, it contains one of
them. Out-of-scope items are right when nothing matched. A dialogue is two turns of one
conversation; it is right when the reply to the second is not the "no information"
fallback and contains one of ``expect_any_2``. ``variant`` (dev2 and later samples: long,
indirect, paraphrase, colloquial, abbrev, typo, entity, yesno) groups the figures.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from knowledge.normalize import fold

__all__ = [
    "Dialogue",
    "DialogueReport",
    "EvalItem",
    "EvalReport",
    "evaluate",
    "evaluate_dialogues",
    "is_right",
    "load_dialogues",
    "load_items",
    "scored",
]


@dataclass(frozen=True, slots=True)
class EvalItem:
    question: str
    expect_any: tuple[str, ...] = ()  # empty: out of scope
    variant: str = ""

    @property
    def in_scope(self) -> bool:
        return bool(self.expect_any)


@dataclass(frozen=True, slots=True)
class Dialogue:
    turns: tuple[str, ...]
    expect_any: tuple[str, ...]  # for the reply to the last turn


@dataclass
class EvalReport:
    in_scope_total: int = 0
    in_scope_right: int = 0
    out_of_scope_total: int = 0
    out_of_scope_right: int = 0
    wrong_confident: int = 0  # in scope, answered, but not with the expected fact
    variants: dict[str, list[int]] = field(default_factory=dict)  # variant -> [right, total]
    failures: list[str] = field(default_factory=list)

    @property
    def in_scope_accuracy(self) -> float:
        return self.in_scope_right / self.in_scope_total if self.in_scope_total else 1.0

    @property
    def out_of_scope_accuracy(self) -> float:
        return self.out_of_scope_right / self.out_of_scope_total if self.out_of_scope_total else 1.0

    @property
    def wrong_confident_rate(self) -> float:
        return self.wrong_confident / self.in_scope_total if self.in_scope_total else 0.0


@dataclass
class DialogueReport:
    total: int = 0
    right: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.right / self.total if self.total else 1.0


def scored(text: str) -> str:
    """What the expected phrases are compared with: folded, dashes unified, one space."""
    return " ".join(fold(text).replace("–", "-").replace("—", "-").split())


def _records(path: Path) -> Iterable[tuple[int, dict[str, object]]]:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{path}:{number}: not JSON ({exc})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}:{number}: not an evaluation record")
        yield number, record


def load_items(path: Path) -> list[EvalItem]:
    items = []
    for number, record in _records(path):
        try:
            items.append(
                EvalItem(
                    str(record["q"]),
                    tuple(str(e) for e in record.get("expect_any") or ()),  # type: ignore[attr-defined]
                    str(record.get("variant") or ""),
                )
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not an evaluation record ({exc})") from None
    return items


def load_dialogues(path: Path) -> list[Dialogue]:
    dialogues = []
    for number, record in _records(path):
        turns, expected = record.get("turns"), record.get("expect_any_2")
        if not isinstance(turns, list) or len(turns) < 2 or not isinstance(expected, list):
            raise ValueError(f"{path}:{number}: not a dialogue record")
        dialogues.append(Dialogue(tuple(map(str, turns)), tuple(map(str, expected))))
    return dialogues


def is_right(item: EvalItem, matched: bool, answer: str) -> bool:
    if not item.in_scope:
        return not matched
    folded = scored(answer)
    return matched and any(scored(e) in folded for e in item.expect_any)


def evaluate(items: Iterable[EvalItem], answer: Callable[[str], tuple[bool, str]]) -> EvalReport:
    """``answer(question) -> (matched, text the official sees)``."""
    report = EvalReport()
    for item in items:
        matched, text = answer(item.question)
        right = is_right(item, matched, text)
        if item.in_scope:
            report.in_scope_total += 1
            report.in_scope_right += right
            report.wrong_confident += matched and not right
            tally = report.variants.setdefault(item.variant or "-", [0, 0])
            tally[0] += right
            tally[1] += 1
        else:
            report.out_of_scope_total += 1
            report.out_of_scope_right += right
        if not right:
            report.failures.append(f"{'IN ' if item.in_scope else 'OOS'} {item.question!r}")
    return report


def evaluate_dialogues(
    dialogues: Iterable[Dialogue], answer: Callable[[Sequence[str]], tuple[bool, str]]
) -> DialogueReport:
    """``answer(turns) -> (matched, text)`` of the reply to the last turn, the turns sent in
    one conversation."""
    report = DialogueReport()
    for dialogue in dialogues:
        matched, text = answer(dialogue.turns)
        folded = scored(text)
        right = matched and any(scored(e) in folded for e in dialogue.expect_any)
        report.total += 1
        report.right += right
        if not right:
            report.failures.append(f"DLG {list(dialogue.turns)!r}")
    return report
