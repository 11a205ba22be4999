"""Accuracy on a labelled question set (the public sample in ../shared/eval, or another).

In-scope items have ``expect_any``: the answer is right when, accent-stripped and
lower-cased, it contains one of them. Out-of-scope items are right when nothing matched.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from knowledge.normalize import fold

__all__ = ["EvalItem", "EvalReport", "evaluate", "is_right", "load_items"]


@dataclass(frozen=True, slots=True)
class EvalItem:
    question: str
    expect_any: tuple[str, ...] = ()  # empty: out of scope

    @property
    def in_scope(self) -> bool:
        return bool(self.expect_any)


@dataclass
class EvalReport:
    in_scope_total: int = 0
    in_scope_right: int = 0
    out_of_scope_total: int = 0
    out_of_scope_right: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def in_scope_accuracy(self) -> float:
        return self.in_scope_right / self.in_scope_total if self.in_scope_total else 1.0

    @property
    def out_of_scope_accuracy(self) -> float:
        return self.out_of_scope_right / self.out_of_scope_total if self.out_of_scope_total else 1.0


def load_items(path: Path) -> list[EvalItem]:
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            items.append(EvalItem(record["q"], tuple(record.get("expect_any") or ())))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not an evaluation record ({exc})") from None
    return items


def is_right(item: EvalItem, matched: bool, answer: str) -> bool:
    if not item.in_scope:
        return not matched
    folded = " ".join(fold(answer).split())
    return matched and any(" ".join(fold(e).split()) in folded for e in item.expect_any)


def evaluate(items: Iterable[EvalItem], answer: Callable[[str], tuple[bool, str]]) -> EvalReport:
    """``answer(question) -> (matched, text the official sees)``."""
    report = EvalReport()
    for item in items:
        matched, text = answer(item.question)
        right = is_right(item, matched, text)
        if item.in_scope:
            report.in_scope_total += 1
            report.in_scope_right += right
        else:
            report.out_of_scope_total += 1
            report.out_of_scope_right += right
        if not right:
            report.failures.append(f"{'IN ' if item.in_scope else 'OOS'} {item.question!r}")
    return report
