"""Sanity checks for the second held-out set (holdout2_*.jsonl).

Run with plain python from anywhere:

    python tests/data/check_holdout2.py [--seeds DIR]

DIR holds the two source documents (default: ../shared/seeds beside the checkout, or
$TROLY_SEEDS). Exits 1 on any problem, 0 otherwise.

Checks: JSON shape and counts (96 in-scope items, 12 per variant; 36 out-of-scope; 16
two-turn dialogues); 1-4 expected phrases per item, each already folded; at least one
expected phrase found verbatim in the folded sources; no expected phrase inside the question
(or either dialogue turn); `typo` questions carry no diacritics, other in-scope questions and
dialogue turns do; no duplicate questions. Phrases that are not in the sources (alternative
spellings) are listed so a person can confirm they spell the same fact.
"""

from __future__ import annotations

import json
import os
import re
import sys
import unicodedata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SOURCES = ("vtc-news-ket-luan-185.txt", "ket-luan-bo-chinh-tri-29-8-2025.txt")
VARIANTS = ("long", "indirect", "paraphrase", "colloquial", "abbrev", "typo", "entity", "yesno")
PER_VARIANT = 12
OOS_COUNT = 36
DIALOGUE_COUNT = 16


def fold(text: str) -> str:
    text = text.replace("đ", "d").replace("Đ", "D").replace("\u2013", "-").replace("\u2014", "-")
    text = unicodedata.normalize("NFD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"\s+", " ", text.lower()).strip()


def has_diacritics(text: str) -> bool:
    if "đ" in text or "Đ" in text:
        return True
    return any(unicodedata.combining(c) for c in unicodedata.normalize("NFD", text))


def seeds_dir(argv: list[str]) -> Path:
    if "--seeds" in argv:
        return Path(argv[argv.index("--seeds") + 1])
    if os.environ.get("TROLY_SEEDS"):
        return Path(os.environ["TROLY_SEEDS"])
    return ROOT.parent / "shared" / "seeds"


def load(path: Path, problems: list[str]) -> list[dict]:
    rows = []
    if not path.exists():
        problems.append(f"{path.name}: missing")
        return rows
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            problems.append(f"{path.name}:{n}: blank line")
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            problems.append(f"{path.name}:{n}: bad JSON ({err})")
    return rows


def check_phrases(
    where: str,
    phrases,
    texts: list[str],
    source: str,
    problems: list[str],
    alternatives: dict[str, int],
) -> None:
    if not isinstance(phrases, list) or not 1 <= len(phrases) <= 4:
        problems.append(f"{where}: needs 1-4 expected phrases, got {phrases!r}")
        return
    folded_texts = [fold(t) for t in texts]
    found = False
    for p in phrases:
        if not isinstance(p, str) or not p.strip():
            problems.append(f"{where}: empty or non-string phrase {p!r}")
            continue
        if fold(p) != p:
            problems.append(f"{where}: phrase {p!r} is not folded (fold gives {fold(p)!r})")
        for t in folded_texts:
            if p in t:
                problems.append(f"{where}: phrase {p!r} appears in the question {t!r}")
        if p in source:
            found = True
        else:
            alternatives[p] = alternatives.get(p, 0) + 1
    if not found:
        problems.append(f"{where}: no expected phrase found in the folded sources: {phrases!r}")


def main(argv: list[str]) -> int:
    problems: list[str] = []
    seeds = seeds_dir(argv)
    texts = []
    for name in SOURCES:
        path = seeds / name
        if not path.exists():
            print(f"source not found: {path} (pass --seeds DIR)")
            return 1
        texts.append(fold(path.read_text(encoding="utf-8")))
    source = "\n".join(texts)
    alternatives: dict[str, int] = {}
    seen: set[str] = set()

    def unique(where: str, q: str) -> None:
        key = fold(q)
        if key in seen:
            problems.append(f"{where}: duplicate question {q!r}")
        seen.add(key)

    # in-scope items
    qa = load(HERE / "holdout2_qa.jsonl", problems)
    counts = {v: 0 for v in VARIANTS}
    for n, row in enumerate(qa, 1):
        where = f"holdout2_qa.jsonl:{n}"
        if set(row) != {"q", "expect_any", "variant", "fact"}:
            problems.append(f"{where}: keys {sorted(row)}")
            continue
        q, variant = row["q"], row["variant"]
        if variant not in counts:
            problems.append(f"{where}: unknown variant {variant!r}")
        else:
            counts[variant] += 1
        if not isinstance(q, str) or not q.strip() or not str(row["fact"]).strip():
            problems.append(f"{where}: empty question or fact")
            continue
        if variant == "typo" and has_diacritics(q):
            problems.append(f"{where}: typo question has diacritics")
        if variant != "typo" and not has_diacritics(q):
            problems.append(f"{where}: {variant} question has no diacritics")
        unique(where, q)
        check_phrases(where, row["expect_any"], [q], source, problems, alternatives)
    if len(qa) != PER_VARIANT * len(VARIANTS):
        expected = PER_VARIANT * len(VARIANTS)
        problems.append(f"holdout2_qa.jsonl: {len(qa)} items, expected {expected}")
    for v, c in counts.items():
        if c != PER_VARIANT:
            problems.append(f"holdout2_qa.jsonl: variant {v} has {c} items, expected {PER_VARIANT}")

    # out-of-scope items
    oos = load(HERE / "holdout2_oos.jsonl", problems)
    for n, row in enumerate(oos, 1):
        where = f"holdout2_oos.jsonl:{n}"
        if set(row) != {"q"} or not isinstance(row.get("q"), str) or not row["q"].strip():
            problems.append(f'{where}: shape must be {{"q": text}}, got {row!r}')
            continue
        unique(where, row["q"])
    if len(oos) != OOS_COUNT:
        problems.append(f"holdout2_oos.jsonl: {len(oos)} items, expected {OOS_COUNT}")

    # dialogues
    dialogues = load(HERE / "holdout2_dialogues.jsonl", problems)
    for n, row in enumerate(dialogues, 1):
        where = f"holdout2_dialogues.jsonl:{n}"
        if set(row) != {"turns", "expect_any_2", "fact"}:
            problems.append(f"{where}: keys {sorted(row)}")
            continue
        turns = row["turns"]
        if not (
            isinstance(turns, list)
            and len(turns) == 2
            and all(isinstance(t, str) and t.strip() for t in turns)
        ):
            problems.append(f"{where}: needs exactly two non-empty turns")
            continue
        for t in turns:
            if not has_diacritics(t):
                problems.append(f"{where}: turn without diacritics {t!r}")
        check_phrases(where, row["expect_any_2"], turns, source, problems, alternatives)
    if len(dialogues) != DIALOGUE_COUNT:
        problems.append(
            f"holdout2_dialogues.jsonl: {len(dialogues)} items, expected {DIALOGUE_COUNT}"
        )

    print(f"in-scope: {len(qa)} ({', '.join(f'{v} {c}' for v, c in counts.items())})")
    print(f"out-of-scope: {len(oos)}; dialogues: {len(dialogues)}")
    if alternatives:
        print(
            "alternative spellings (not verbatim in the sources;"
            " each item also has a verbatim one):"
        )
        for p in sorted(alternatives):
            print(f"  {p!r} x{alternatives[p]}")
    if problems:
        print(f"{len(problems)} problem(s):")
        for p in problems:
            print("  " + p)
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
