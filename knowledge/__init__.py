"""The curated knowledge base and its Vietnamese search engine (no platform imports)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
from knowledge.search import Lexicon, SearchEngine, SearchResult, load_lexicon

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
    "check_directory",
    "default_knowledge_dir",
    "load_knowledge",
]


@dataclass(frozen=True)
class Knowledge:
    """A validated knowledge base with its search index, built once at start-up."""

    base: KnowledgeBase
    engine: SearchEngine

    def search(self, question: str) -> SearchResult:
        return self.engine.search(question)


def load_knowledge(directory: Path | None = None, lexicon_path: Path | None = None) -> Knowledge:
    """Load, validate and index; raise :class:`KnowledgeError` on any problem."""
    base = load_knowledge_base(directory)
    lexicon = load_lexicon(lexicon_path)
    return Knowledge(base=base, engine=SearchEngine(base.entries.values(), lexicon))
