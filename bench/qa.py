"""Question answering: accuracy on the evaluation sets, latency and load time at the real
knowledge base and at a synthetic 5,000-entry one."""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import yaml

from bot.render import numbered, plain_text
from handlers.qa import result_reply
from knowledge import Knowledge, load_knowledge
from knowledge.evaluation import evaluate, load_items

ROOT = Path(__file__).resolve().parents[1]
_SHARED_EVAL = ROOT.parent / "shared" / "eval"
_EVAL_DIR = _SHARED_EVAL if _SHARED_EVAL.is_dir() else ROOT / "tests" / "data" / "shared-eval"
EVAL_SETS = {
    "dev (../shared/eval)": (_EVAL_DIR / "dev_qa.jsonl", _EVAL_DIR / "dev_oos.jsonl"),
    "holdout (tests/data)": (
        ROOT / "tests" / "data" / "holdout_qa.jsonl",
        ROOT / "tests" / "data" / "holdout_oos.jsonl",
    ),
}
SYNTHETIC_ENTRIES = 5000


def _percentiles(samples_ms: list[float]) -> tuple[float, float]:
    ordered = sorted(samples_ms)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return p50, p99


def _latency(knowledge: Knowledge, questions: list[str], rounds: int) -> tuple[float, float]:
    for question in questions:  # warm-up (caches fill as in a running bot)
        knowledge.search(question)
    samples = []
    for _ in range(rounds):
        for question in questions:
            start = time.perf_counter()
            knowledge.search(question)
            samples.append((time.perf_counter() - start) * 1000)
    return _percentiles(samples)


def _accuracy(knowledge: Knowledge) -> list[str]:
    lines = []
    for name, paths in EVAL_SETS.items():
        if not all(p.exists() for p in paths):
            lines.append(f"  {name}: not found, skipped")
            continue
        items = [item for p in paths for item in load_items(p)]

        def answer(question: str) -> tuple[bool, str]:
            result = knowledge.search(question)
            return result.matched, plain_text(numbered(result_reply(result)))

        report = evaluate(items, answer)
        lines.append(
            f"  {name}: in-scope {report.in_scope_right}/{report.in_scope_total} "
            f"({report.in_scope_accuracy:.1%}), out-of-scope rejected "
            f"{report.out_of_scope_right}/{report.out_of_scope_total} "
            f"({report.out_of_scope_accuracy:.1%})"
        )
        lines.extend(f"    wrong: {failure}" for failure in report.failures)
    return lines


def _margins(knowledge: Knowledge) -> str:
    """Confidence of the best admissible entry, threshold disabled: the calibration band."""
    engine = knowledge.engine
    original = engine.lexicon
    engine.lexicon = replace(original, threshold=0.0)
    try:
        inside: list[float] = []
        outside: list[float] = []
        for paths in EVAL_SETS.values():
            for path in paths:
                if not path.exists():
                    continue
                for item in load_items(path):
                    score = engine.search(item.question).score
                    (inside if item.in_scope else outside).append(score)
    finally:
        engine.lexicon = original
    return (
        f"  calibration: highest out-of-scope confidence {max(outside):.3f}, lowest in-scope "
        f"{min(inside):.3f}, threshold {original.threshold:.2f}"
    )


def _synthetic_kb(directory: Path, real: Knowledge, count: int, seed: int = 7) -> list[str]:
    """Write a knowledge base of ``count`` entries built from the real one's vocabulary plus
    invented words; return questions to ask it (perturbed phrasings and unknown ones)."""
    rng = random.Random(seed)
    real_words = sorted(
        {
            word
            for entry in real.base.entries.values()
            for text in (entry.title, *entry.questions, entry.answer)
            for word in text.split()
        }
    )
    syllables = [
        a + b
        for a in "bcdghklmnpqrstvx"
        for b in ("a", "ă", "â", "e", "ê", "i", "o", "ô", "ơ", "u", "ư", "y", "anh", "ong")
    ]
    invented = [f"{rng.choice(syllables)}{rng.choice(syllables)}" for _ in range(8000)]
    vocabulary = real_words + invented

    def sentence(low: int, high: int) -> str:
        return " ".join(rng.choice(vocabulary) for _ in range(rng.randint(low, high)))

    (directory / "sources.yaml").write_text(
        yaml.safe_dump(
            {"sources": [{"id": "tong-hop", "title": "Nguồn tổng hợp", "cite_as": "Nguồn thử"}]},
            allow_unicode=True,
        ),
        encoding="utf-8",
    )
    per_file = 500
    questions: list[str] = []
    for start in range(0, count, per_file):
        entries = []
        for number in range(start, min(count, start + per_file)):
            phrasings = [sentence(5, 12) + "?" for _ in range(6)]
            entries.append(
                {
                    "id": f"muc-{number}",
                    "title": sentence(4, 9),
                    "questions": phrasings,
                    "answer": sentence(40, 90) + ".",
                    "source": "tong-hop",
                    "clause": f"mục {number}",
                }
            )
            if rng.random() < 0.05:
                words = rng.choice(phrasings).split()
                rng.shuffle(words)
                questions.append(" ".join(words[: max(3, len(words) - 2)]))
        (directory / f"entries-{start:05d}.yaml").write_text(
            yaml.safe_dump({"entries": entries}, allow_unicode=True), encoding="utf-8"
        )
    questions.extend(sentence(3, 10) for _ in range(100))
    return questions


def main() -> None:
    start = time.perf_counter()
    real = load_knowledge()
    load_ms = (time.perf_counter() - start) * 1000
    print(
        f"real knowledge base: {len(real.base.entries)} entries, loaded and indexed in "
        f"{load_ms:.0f} ms"
    )
    for line in _accuracy(real):
        print(line)
    print(_margins(real))
    questions = [
        item.question
        for paths in EVAL_SETS.values()
        for p in paths
        if p.exists()
        for item in load_items(p)
    ]
    p50, p99 = _latency(real, questions, rounds=30)
    print(f"  latency over {len(questions)} questions x 30: p50 {p50:.3f} ms, p99 {p99:.3f} ms")

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        kb_dir = directory / "kb"
        kb_dir.mkdir()
        synthetic_questions = _synthetic_kb(kb_dir, real, SYNTHETIC_ENTRIES)
        cache = directory / "cache"
        start = time.perf_counter()
        synthetic = load_knowledge(kb_dir, cache_dir=cache)
        cold_s = time.perf_counter() - start
        warm = []
        for _ in range(3):
            start = time.perf_counter()
            load_knowledge(kb_dir, cache_dir=cache)
            warm.append(time.perf_counter() - start)
        print(f"synthetic knowledge base: {len(synthetic.base.entries)} entries")
        print(f"  first load after a change (parse, validate, index, write cache): {cold_s:.2f} s")
        print(
            f"  start-up load (files fingerprinted, index from cache): {min(warm):.2f} s "
            f"(target <= 1 s)"
        )
        asked = synthetic_questions + questions
        p50, p99 = _latency(synthetic, asked, rounds=5)
        print(
            f"  latency over {len(asked)} questions x 5: p50 {p50:.3f} ms, p99 {p99:.3f} ms "
            f"(target p99 <= 5 ms)"
        )
