"""Knowledge.search keeps the results of the last messages searched (AnswerCache): the same
message in the same situation gets the very same result, a different situation its own."""

from __future__ import annotations

import pickle
from dataclasses import replace

from knowledge import AnswerCache, Knowledge


def _fresh(knowledge: Knowledge, size: int = 4096) -> Knowledge:
    return replace(knowledge, answers=AnswerCache(size))


def test_the_same_message_is_searched_once(knowledge: Knowledge) -> None:
    own = _fresh(knowledge)
    first = own.search("dai hoi dang bo xa xong khi nao")
    again = own.search("dai hoi dang bo xa xong khi nao")
    assert again is first
    assert (own.answers.hits, own.answers.misses) == (1, 1)
    assert first == knowledge.engine.search("dai hoi dang bo xa xong khi nao")


def test_the_situation_is_part_of_the_key(knowledge: Knowledge) -> None:
    own = _fresh(knowledge)
    asked = own.search("Đại hội đảng bộ cấp tỉnh xong khi nào?")
    assert asked.turn is not None
    alone = own.search("Còn cấp xã thì sao?")
    followed = own.search("Còn cấp xã thì sao?", asked.turn)
    assert followed is not alone
    assert followed == knowledge.engine.search("Còn cấp xã thì sao?", asked.turn)
    assert alone == knowledge.engine.search("Còn cấp xã thì sao?")
    mine = own.search("xã tôi phải đại hội xong khi nào?", asker_level="xa")
    assert mine == knowledge.engine.search("xã tôi phải đại hội xong khi nào?", asker_level="xa")
    assert mine is not own.search("xã tôi phải đại hội xong khi nào?")
    assert own.answers.hits == 0


def test_it_keeps_only_the_last_ones_and_is_not_saved(knowledge: Knowledge) -> None:
    own = _fresh(knowledge, size=2)
    for question in ("kết luận 185", "Ai ký Kết luận 185?", "kết luận 185", "hạn đại hội xã"):
        own.search(question)
    own.search("Ai ký Kết luận 185?")  # evicted by the last one: searched again
    assert own.answers.misses == 4 and own.answers.hits == 1
    copied = pickle.loads(pickle.dumps(own.answers))
    assert isinstance(copied, AnswerCache) and copied.size == 2
    assert copied.get(("kết luận 185", None, None)) is None
