"""Question answering: accuracy on the evaluation sets, latency and load time at the real
knowledge base and at a synthetic 5,000-entry one."""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import yaml

from bot.render import numbered, plain_text
from handlers.qa import result_reply
from knowledge import Knowledge, SearchResult, load_knowledge
from knowledge.evaluation import (
    EvalReport,
    evaluate,
    evaluate_dialogues,
    load_dialogues,
    load_items,
)
from knowledge.semantic import SemanticIndex, get_model

ROOT = Path(__file__).resolve().parents[1]
_SHARED_EVAL = ROOT.parent / "shared" / "eval"
_EVAL_DIR = _SHARED_EVAL if _SHARED_EVAL.is_dir() else ROOT / "tests" / "data" / "shared-eval"
_DATA = ROOT / "tests" / "data"


@dataclass(frozen=True)
class EvalSet:
    name: str
    questions: Path
    out_of_scope: Path
    dialogues: Path | None = None
    first_sample: bool = False  # short, clean questions: the >= 97 % target
    targets: bool = True  # issue 10's targets apply (dev2; holdout2 is the team's own sample)


EVAL_SETS = (
    EvalSet("dev", _EVAL_DIR / "dev_qa.jsonl", _EVAL_DIR / "dev_oos.jsonl", first_sample=True),
    EvalSet("holdout", _DATA / "holdout_qa.jsonl", _DATA / "holdout_oos.jsonl", first_sample=True),
    EvalSet(
        "dev2",
        _EVAL_DIR / "dev2_qa.jsonl",
        _EVAL_DIR / "dev2_oos.jsonl",
        _EVAL_DIR / "dev2_dialogues.jsonl",
    ),
    EvalSet(
        "holdout2",
        _DATA / "holdout2_qa.jsonl",
        _DATA / "holdout2_oos.jsonl",
        _DATA / "holdout2_dialogues.jsonl",
        targets=False,
    ),
)
# Targets of issue 10.
FIRST_SAMPLE_MIN = 0.97
IN_SCOPE_MIN, WRONG_CONFIDENT_MAX, OUT_OF_SCOPE_MIN, DIALOGUES_MIN = 0.90, 0.02, 0.95, 0.85
P50_MAX_MS, P99_MAX_MS, SYNTHETIC_P99_MAX_MS = 5.0, 60.0, 100.0
SYNTHETIC_ENTRIES = 5000


def _met(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def _percentiles(samples_ms: list[float]) -> tuple[float, float]:
    ordered = sorted(samples_ms)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return p50, p99


def _latency(knowledge: Knowledge, questions: list[str], rounds: int) -> tuple[float, float]:
    """Per question, as a running bot meets a new one: the search itself (not the answers
    kept by ``Knowledge.search`` for a message seen before), the model's cache of query
    embeddings emptied before each (the search's own small caches stay warm)."""
    model = get_model()
    search = knowledge.engine.search
    for question in questions:  # warm-up: code paths, the model loaded
        search(question)
    samples = []
    for _ in range(rounds):
        for question in questions:
            if model is not None:
                model.clear_cache()
            start = time.perf_counter()
            search(question)
            samples.append((time.perf_counter() - start) * 1000)
    return _percentiles(samples)


def _reply(result: SearchResult) -> tuple[bool, str]:
    """What `troly ask --json` prints: matched, and the reply the official reads."""
    return result.matched, plain_text(numbered(result_reply(result)))


def _report_lines(name: str, report: EvalReport, first_sample: bool, targets: bool) -> list[str]:
    right, total = report.in_scope_right, report.in_scope_total
    oos = report.out_of_scope_accuracy
    if first_sample:
        target = f"target >= {FIRST_SAMPLE_MIN:.0%}"
        ok = report.in_scope_accuracy >= FIRST_SAMPLE_MIN and oos >= FIRST_SAMPLE_MIN
        return [
            f"  {name}: in scope {right}/{total} ({report.in_scope_accuracy:.1%}), out of "
            f"scope rejected {report.out_of_scope_right}/{report.out_of_scope_total} "
            f"({oos:.1%}); {target}: {_met(ok)}"
        ]

    def target(text: str, ok: bool) -> str:
        return f"; target {text}: {_met(ok)}" if targets else ""

    wrong = report.wrong_confident_rate
    lines = [
        f"  {name}: in scope {right}/{total} ({report.in_scope_accuracy:.1%}"
        f"{target(f'>= {IN_SCOPE_MIN:.0%}', report.in_scope_accuracy >= IN_SCOPE_MIN)})",
        f"    wrong but confident {report.wrong_confident}/{total} "
        f"({wrong:.1%}{target(f'<= {WRONG_CONFIDENT_MAX:.0%}', wrong <= WRONG_CONFIDENT_MAX)})",
        f"    out of scope rejected {report.out_of_scope_right}/{report.out_of_scope_total} "
        f"({oos:.1%}{target(f'>= {OUT_OF_SCOPE_MIN:.0%}', oos >= OUT_OF_SCOPE_MIN)})",
        "    per variant: "
        + ", ".join(
            f"{variant} {tally[0]}/{tally[1]}" for variant, tally in sorted(report.variants.items())
        ),
    ]
    return lines


def _accuracy(knowledge: Knowledge) -> list[str]:
    lines = []
    for chosen in EVAL_SETS:
        if not (chosen.questions.exists() and chosen.out_of_scope.exists()):
            lines.append(f"  {chosen.name}: not found, skipped")
            continue
        items = load_items(chosen.questions) + load_items(chosen.out_of_scope)
        report = evaluate(items, lambda question: _reply(knowledge.search(question)))
        lines.extend(_report_lines(chosen.name, report, chosen.first_sample, chosen.targets))
        failures = list(report.failures)
        if chosen.dialogues is not None and chosen.dialogues.exists():

            def conversation(turns: Sequence[str]) -> tuple[bool, str]:
                previous = None
                for turn in turns:  # as `troly ask --json --conversation`
                    result = knowledge.search(turn, previous)
                    previous = result.turn
                return _reply(result)

            dialogues = evaluate_dialogues(load_dialogues(chosen.dialogues), conversation)
            goal = (
                f"; target >= {DIALOGUES_MIN:.0%}: {_met(dialogues.accuracy >= DIALOGUES_MIN)}"
                if chosen.targets
                else ""
            )
            lines.append(
                f"    follow-ups {dialogues.right}/{dialogues.total} "
                f"({dialogues.accuracy:.1%}{goal})"
            )
            failures += dialogues.failures
        lines.extend(f"    wrong: {failure}" for failure in failures)
    return lines


def _margins(knowledge: Knowledge) -> str:
    """Confidence of the best admissible entry, threshold disabled: the calibration band."""
    engine = knowledge.engine
    original, semantic = engine.lexicon, engine.semantic
    engine.lexicon = replace(original, threshold=0.0)
    engine.semantic = None
    try:
        inside: list[float] = []
        outside: list[float] = []
        for chosen in EVAL_SETS:
            for path in (chosen.questions, chosen.out_of_scope):
                if not path.exists():
                    continue
                for item in load_items(path):
                    score = engine.search(item.question).score
                    (inside if item.in_scope else outside).append(score)
    finally:
        engine.lexicon, engine.semantic = original, semantic
    above = sum(score >= original.threshold for score in outside)
    below = sum(score < original.threshold for score in inside)
    return (
        f"  lexical calibration (threshold {original.threshold:.2f}): {below}/{len(inside)} in "
        f"scope below it (the semantic signal, follow-ups and reasoning take over), "
        f"{above}/{len(outside)} out of scope above it (the guards stop them)"
    )


def _synthetic_semantic(real: Knowledge, synthetic: Knowledge, seed: int = 11) -> None:
    """Attach to ``synthetic`` an index of random unit vectors shaped like the real one (same
    model, rows per entry as the real base's): embedding 35,000 invented texts would take
    minutes and measure nothing the latency depends on."""
    index = real.engine.semantic
    if index is None or index.vectors is None:
        return
    rng = np.random.default_rng(seed)
    rows_per_entry = max(1, round(index.rows / len(index)))
    entries = len(synthetic.engine)
    vectors = rng.standard_normal((entries * rows_per_entry, index.vectors.shape[1]))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    fake = SemanticIndex.__new__(SemanticIndex)
    fake.__setstate__(
        {
            **index.__getstate__(),
            "vectors": vectors.astype(np.float16),
            "counts": np.full(entries, rows_per_entry, dtype=np.int32),
            "positions": np.tile(np.arange(rows_per_entry, dtype=np.int32), entries),
            "digests": bytes(8 * entries * rows_per_entry),
        }
    )
    synthetic.engine.semantic = fake


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
    real = load_knowledge(cache_dir=ROOT / "var" / "cache")
    load_ms = (time.perf_counter() - start) * 1000
    index = real.engine.semantic
    print(
        f"real knowledge base: {len(real.base.entries)} entries, loaded in {load_ms:.0f} ms "
        f"(var/cache); semantic index: "
        + (f"{index.rows} texts embedded" if index is not None else "none (no model)")
    )
    for line in _accuracy(real):
        print(line)
    print(_margins(real))
    questions = [
        item.question
        for chosen in EVAL_SETS
        for path in (chosen.questions, chosen.out_of_scope)
        if path.exists()
        for item in load_items(path)
    ]
    p50, p99 = _latency(real, questions, rounds=3)
    print(
        f"  latency over {len(questions)} questions x 3, one core, model included (its cache "
        f"emptied before each): p50 {p50:.2f} ms (target <= {P50_MAX_MS:.0f} ms: "
        f"{_met(p50 <= P50_MAX_MS)}), p99 {p99:.1f} ms (target <= {P99_MAX_MS:.0f} ms: "
        f"{_met(p99 <= P99_MAX_MS)})"
    )

    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        kb_dir = directory / "kb"
        kb_dir.mkdir()
        synthetic_questions = _synthetic_kb(kb_dir, real, SYNTHETIC_ENTRIES)
        cache = directory / "cache"
        start = time.perf_counter()
        synthetic = load_knowledge(kb_dir, cache_dir=cache, semantic=False)
        cold_s = time.perf_counter() - start
        warm = []
        for _ in range(3):
            start = time.perf_counter()
            load_knowledge(kb_dir, cache_dir=cache, semantic=False)
            warm.append(time.perf_counter() - start)
        _synthetic_semantic(real, synthetic)
        rows = synthetic.engine.semantic.rows if synthetic.engine.semantic else 0
        print(
            f"synthetic knowledge base: {len(synthetic.base.entries)} entries, "
            f"{rows} semantic rows (random vectors)"
        )
        print(f"  first load after a change (parse, validate, index, write cache): {cold_s:.2f} s")
        print(f"  start-up load (files fingerprinted, index from cache): {min(warm):.2f} s")
        asked = synthetic_questions + questions
        p50, p99 = _latency(synthetic, asked, rounds=2)
        print(
            f"  latency over {len(asked)} questions x 2, model included: p50 {p50:.2f} ms, "
            f"p99 {p99:.1f} ms (target <= {SYNTHETIC_P99_MAX_MS:.0f} ms: "
            f"{_met(p99 <= SYNTHETIC_P99_MAX_MS)})"
        )
