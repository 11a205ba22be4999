"""The curated knowledge base and its Vietnamese search engine (no platform imports)."""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import platform
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import bm25s
import numpy as np

from knowledge.base import (
    LEVELS,
    Deadline,
    Entry,
    KnowledgeBase,
    KnowledgeError,
    Problem,
    Source,
    check_directory,
    default_knowledge_dir,
    load_knowledge_base,
)
from knowledge.reasoning import Turn
from knowledge.search import (
    Lexicon,
    SearchEngine,
    SearchResult,
    default_lexicon_path,
    load_lexicon,
)
from knowledge.semantic import DEFAULT_VARIANT, SemanticIndex, model_fingerprint

__all__ = [
    "LEVELS",
    "AnswerCache",
    "Deadline",
    "Entry",
    "Knowledge",
    "KnowledgeBase",
    "KnowledgeError",
    "Lexicon",
    "Problem",
    "SearchEngine",
    "SearchResult",
    "Source",
    "Turn",
    "check_directory",
    "default_knowledge_dir",
    "load_knowledge",
]


_AnswerKey = tuple[str, Turn | None, str | None]


class AnswerCache:
    """The results of the last ``size`` different searches (message, previous turn, asker's
    level). Search is a pure function of those and of the knowledge base, which does not
    change while loaded, and its results are immutable: after a reminder round many
    officials send the same words. Not kept in the knowledge cache file."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.hits = self.misses = 0
        self._items: OrderedDict[_AnswerKey, SearchResult] = OrderedDict()
        self._lock = threading.Lock()  # searches may run in worker threads (evaluation)

    def __reduce__(self) -> tuple[type[AnswerCache], tuple[int]]:
        return (AnswerCache, (self.size,))

    def get(self, key: _AnswerKey) -> SearchResult | None:
        with self._lock:
            result = self._items.get(key)
            if result is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return result

    def put(self, key: _AnswerKey, result: SearchResult) -> None:
        with self._lock:
            self._items[key] = result
            if len(self._items) > self.size:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.hits = self.misses = 0


@dataclass(frozen=True)
class Knowledge:
    """A validated knowledge base with its search index, built once at start-up."""

    base: KnowledgeBase
    engine: SearchEngine
    answers: AnswerCache = field(default_factory=AnswerCache, compare=False, repr=False)

    def search(
        self, question: str, previous: Turn | None = None, *, asker_level: str | None = None
    ) -> SearchResult:
        """Answer a message; ``previous``: the conversation's last turn (follow-ups);
        ``asker_level``: the level of the asking official's unit, when known. The same
        message in the same situation is answered from :class:`AnswerCache`."""
        key = (question, previous, asker_level)
        cached = self.answers.get(key)
        if cached is not None:
            return cached
        result = self.engine.search(question, previous, asker_level=asker_level)
        self.answers.put(key, result)
        return result


log = logging.getLogger(__name__)
_CACHE_FORMAT = 1


def load_knowledge(
    directory: Path | None = None,
    lexicon_path: Path | None = None,
    *,
    cache_dir: Path | None = None,
    semantic: bool = True,
) -> Knowledge:
    """Load, validate and index; raise :class:`KnowledgeError` on any problem.

    With ``cache_dir``, the validated and indexed result is kept there under a fingerprint
    of every knowledge file, the lexicon and this package's code: an unchanged fingerprint
    means the very same content was validated before, so it is loaded without re-parsing.
    Any change (or a damaged cache file) means a full load, validation and index build.

    ``semantic``: also embed the entries' texts for the semantic signal (when the model is
    available). Embedding takes seconds per hundred texts, once: the embeddings are kept in
    ``cache_dir`` too, and a later build embeds only the texts that changed.
    """
    directory = directory or default_knowledge_dir()
    lexicon_path = lexicon_path or default_lexicon_path()
    cache_file = None
    if cache_dir is not None:
        fingerprint = _fingerprint(directory, lexicon_path, semantic)
        cache_file = cache_dir / f"knowledge-{fingerprint}.pickle"
        cached = _read_cache(cache_file)
        if cached is not None:
            return cached
    base = load_knowledge_base(directory)
    lexicon = load_lexicon(lexicon_path)
    engine = SearchEngine(base.entries.values(), lexicon, deadlines=base.deadlines.values())
    if semantic:
        engine.semantic = _semantic_index(engine, cache_dir)
    knowledge = Knowledge(base=base, engine=engine)
    if cache_file is not None:
        _write_cache(cache_file, knowledge)
    return knowledge


def _semantic_index(engine: SearchEngine, cache_dir: Path | None) -> SemanticIndex | None:
    """The entries' embeddings, reusing those of the last build kept in ``cache_dir``."""
    store = cache_dir / f"embeddings-{DEFAULT_VARIANT}.pickle" if cache_dir is not None else None
    previous = None
    if store is not None and store.is_file():
        try:
            with store.open("rb") as handle:
                loaded = pickle.load(handle)  # noqa: S301 - our own file, like the cache
            previous = loaded if isinstance(loaded, SemanticIndex) else None
        except Exception as exc:
            log.warning("ignoring the embeddings %s (%s)", store, exc)
    index = SemanticIndex.build(
        [(e.title, *e.questions, e.answer) for e in engine.entries],
        threads=max(1, os.cpu_count() or 1),
        previous=previous,
    )
    if not index.available:
        return None
    if store is not None:
        _write_pickle(store, index, prefix=".embeddings-")
    return index


def _fingerprint(directory: Path, lexicon_path: Path, semantic: bool = True) -> str:
    digest = hashlib.sha256()
    versions = (_CACHE_FORMAT, platform.python_version(), bm25s.__version__, np.__version__)
    digest.update(repr(versions).encode())
    if semantic:
        digest.update(model_fingerprint().encode())
    package = Path(__file__).resolve().parent
    code = sorted([*package.glob("*.py"), *package.glob("*.yaml")])
    for path in [*code, lexicon_path.resolve()]:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    digest.update(str(directory.resolve()).encode() + b"\0")
    for path in sorted(directory.rglob("*.yaml")):
        digest.update(str(path.relative_to(directory)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:40]


def _read_cache(path: Path) -> Knowledge | None:
    if not path.is_file():
        return None
    try:
        with path.open("rb") as handle:
            # Written by this process family into its own data folder (never downloaded).
            knowledge = pickle.load(handle)  # noqa: S301
    except Exception as exc:  # damaged or from an incompatible version: rebuild
        log.warning("ignoring the knowledge cache %s (%s)", path, exc)
        return None
    return knowledge if isinstance(knowledge, Knowledge) else None


def _write_pickle(path: Path, value: object, *, prefix: str) -> bool:
    """Write ``value`` to ``path`` atomically; False when the folder is not writable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=prefix)
        with os.fdopen(handle, "wb") as out:
            pickle.dump(value, out, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, path)
    except OSError as exc:  # a read-only folder only costs start-up time
        log.warning("could not write %s (%s)", path, exc)
        return False
    return True


def _write_cache(path: Path, knowledge: Knowledge) -> None:
    if _write_pickle(path, knowledge, prefix=".knowledge-"):
        for old in path.parent.glob("knowledge-*.pickle"):
            if old != path:
                old.unlink(missing_ok=True)
