"""The index cache never serves content that was not validated."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from knowledge import KnowledgeError, default_knowledge_dir, load_knowledge


@pytest.fixture
def kb(tmp_path: Path) -> Path:
    target = tmp_path / "kb"
    shutil.copytree(default_knowledge_dir(), target)
    return target


def test_second_load_comes_from_the_cache(kb: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = load_knowledge(kb, cache_dir=cache)
    [cached] = list(cache.glob("knowledge-*.pickle"))
    second = load_knowledge(kb, cache_dir=cache)
    assert second is not first
    question = "dai hoi dang bo xa xong khi nao"
    assert second.search(question) == first.search(question)
    assert list(cache.glob("knowledge-*.pickle")) == [cached]


def test_a_changed_file_is_validated_again(kb: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    load_knowledge(kb, cache_dir=cache)
    (kb / "zz.yaml").write_text("entries:\n  - id: Sai\n", encoding="utf-8")
    with pytest.raises(KnowledgeError):
        load_knowledge(kb, cache_dir=cache)


def test_an_edited_answer_is_served(kb: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    load_knowledge(kb, cache_dir=cache)
    path = kb / "entries" / "van-ban.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace(
            "Thường trực Ban Bí thư Trần Cẩm Tú\n      ký",
            "Thường trực Ban Bí thư Trần Cẩm Tú (đã sửa)\n      ký",
        ),
        encoding="utf-8",
    )
    fresh = load_knowledge(kb, cache_dir=cache)
    result = fresh.search("Ai ký Kết luận 185?")
    assert result.entry is not None and "(đã sửa)" in result.entry.answer
    assert len(list(cache.glob("knowledge-*.pickle"))) == 1  # the stale one was removed


def test_a_damaged_cache_is_rebuilt(
    kb: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = tmp_path / "cache"
    load_knowledge(kb, cache_dir=cache)
    [cached] = list(cache.glob("knowledge-*.pickle"))
    cached.write_bytes(b"not a pickle")
    knowledge = load_knowledge(kb, cache_dir=cache)
    assert knowledge.search("Ai ký Kết luận 185?").matched
    assert "ignoring the knowledge cache" in caplog.text
