"""The curated knowledge base and its Vietnamese search engine (no platform imports)."""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import platform
import tempfile
from dataclasses import dataclass
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

__all__ = [
    "LEVELS",
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


@dataclass(frozen=True)
class Knowledge:
    """A validated knowledge base with its search index, built once at start-up."""

    base: KnowledgeBase
    engine: SearchEngine

    def search(
        self, question: str, previous: Turn | None = None, *, asker_level: str | None = None
    ) -> SearchResult:
        """Answer a message; ``previous``: the conversation's last turn (follow-ups);
        ``asker_level``: the level of the asking official's unit, when known."""
        return self.engine.search(question, previous, asker_level=asker_level)


log = logging.getLogger(__name__)
_CACHE_FORMAT = 1


def load_knowledge(
    directory: Path | None = None,
    lexicon_path: Path | None = None,
    *,
    cache_dir: Path | None = None,
) -> Knowledge:
    """Load, validate and index; raise :class:`KnowledgeError` on any problem.

    With ``cache_dir``, the validated and indexed result is kept there under a fingerprint
    of every knowledge file, the lexicon and this package's code: an unchanged fingerprint
    means the very same content was validated before, so it is loaded without re-parsing.
    Any change (or a damaged cache file) means a full load, validation and index build.
    """
    directory = directory or default_knowledge_dir()
    lexicon_path = lexicon_path or default_lexicon_path()
    cache_file = None
    if cache_dir is not None:
        cache_file = cache_dir / f"knowledge-{_fingerprint(directory, lexicon_path)}.pickle"
        cached = _read_cache(cache_file)
        if cached is not None:
            return cached
    base = load_knowledge_base(directory)
    lexicon = load_lexicon(lexicon_path)
    engine = SearchEngine(base.entries.values(), lexicon, deadlines=base.deadlines.values())
    knowledge = Knowledge(base=base, engine=engine)
    if cache_file is not None:
        _write_cache(cache_file, knowledge)
    return knowledge


def _fingerprint(directory: Path, lexicon_path: Path) -> str:
    digest = hashlib.sha256()
    versions = (_CACHE_FORMAT, platform.python_version(), bm25s.__version__, np.__version__)
    digest.update(repr(versions).encode())
    code = sorted(Path(__file__).resolve().parent.glob("*.py"))
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


def _write_cache(path: Path, knowledge: Knowledge) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".knowledge-")
        with os.fdopen(handle, "wb") as out:
            pickle.dump(knowledge, out, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, path)
        for old in path.parent.glob("knowledge-*.pickle"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError as exc:  # a read-only folder only costs start-up time
        log.warning("could not write the knowledge cache in %s (%s)", path.parent, exc)
