"""Composed answers: the period a plan names, the verdict against a deadline, what a
conversation remembers (Turn) and which short messages lean on the previous answer."""

from __future__ import annotations

import json
from datetime import date

import pytest

from knowledge.base import Deadline
from knowledge.reasoning import (
    Period,
    Turn,
    claimed_period,
    deadline_verdict,
    looks_like_followup,
)
from knowledge.understand import Mentions

PROVINCES = Deadline(
    id="dai-hoi-truc-thuoc-tw-thang-10",
    what="Hoàn thành đại hội các đảng bộ trực thuộc Trung ương",
    levels=("truc_thuoc_tw",),
    due=date(2025, 10, 31),
    due_text="trong tháng 10/2025",
    source="kl-185",
    clause="đoạn 3",
    citation="Kết luận số 185, đoạn 3",
)
COMMUNES = Deadline(
    id="dai-hoi-thang-8",
    what="Hoàn thành đại hội đảng bộ xã, phường, đặc khu",
    levels=("cap_tren_co_so", "xa"),
    due=date(2025, 8, 31),
    due_text="trong tháng 8/2025",
    source="kl-185",
    clause="đoạn 3",
    citation="Kết luận số 185, đoạn 3",
)


def period(text: str, year: int = 2025) -> Period:
    found = claimed_period(text, year=year)
    assert found is not None, text
    return found


# --------------------------------------------------------------------------- claimed_period


@pytest.mark.parametrize(
    ("text", "start", "end"),
    [
        ("Tỉnh dự kiến đại hội vào giữa tháng 11/2025", date(2025, 11, 11), date(2025, 11, 20)),
        ("giữa tháng 11 năm 2025", date(2025, 11, 11), date(2025, 11, 20)),
        ("Xã định tổ chức đầu tháng 9", date(2025, 9, 1), date(2025, 9, 10)),
        ("cuối tháng 10", date(2025, 10, 21), date(2025, 10, 31)),
        ("hết tháng 8", date(2025, 8, 21), date(2025, 8, 31)),
        ("trong tháng 9", date(2025, 9, 1), date(2025, 9, 30)),
        ("lùi chương trình hành động sang quý IV", date(2025, 10, 1), date(2025, 12, 31)),
        ("quý 3", date(2025, 7, 1), date(2025, 9, 30)),
        ("để hè năm sau mới tập huấn", date(2026, 5, 1), date(2026, 8, 31)),
        ("đại hội ngày 25/8", date(2025, 8, 25), date(2025, 8, 25)),
        ("ngày 5/9/2026", date(2026, 9, 5), date(2026, 9, 5)),
        ("dời sang cuối năm", date(2025, 11, 1), date(2025, 12, 31)),
        ("sang năm mới làm", date(2026, 1, 1), date(2026, 12, 31)),
    ],
)
def test_the_period_a_plan_names(text: str, start: date, end: date) -> None:
    found = period(text)
    assert (found.start, found.end) == (start, end)


def test_a_two_day_congress_ends_on_its_second_day() -> None:
    found = period("Đại hội tổ chức hai ngày 14 và 15/10")
    assert found.end == date(2025, 10, 15)
    assert date(2025, 10, 14) <= found.start <= found.end


def test_the_latest_period_named_is_the_plan() -> None:
    found = period("Đã họp tháng 8, định ban hành quy chế tháng 11")
    assert (found.start, found.end) == (date(2025, 11, 1), date(2025, 11, 30))


def test_a_month_without_a_year_takes_the_deadlines_year() -> None:
    assert period("tháng 9", year=2026).start == date(2026, 9, 1)


@pytest.mark.parametrize(
    "text",
    [
        "Kết luận 185 là do đồng chí nào ký?",
        "Kết luận 29/8 do ai ký?",
        "Phiên họp 29/8 bàn việc gì?",
        "Đại hội XIV có ý nghĩa gì?",
        "trong tháng 13",
        "ngày 31/2",
        "",
    ],
)
def test_no_period_in_a_text_without_a_time(text: str) -> None:
    assert claimed_period(text, year=2025) is None


@pytest.mark.parametrize(
    ("text", "written"),
    [("Ban Thường vụ dự kiến ngày 25/8", "ngày 25/8"), ("để hè năm sau", "hè năm sau")],
)
def test_the_period_is_quoted_as_written(text: str, written: str) -> None:
    assert period(text).text == written


@pytest.mark.parametrize(
    "written", ["giữa tháng 11/2025", "đầu tháng 9", "sang tháng 11", "quý IV"]
)
def test_month_and_quarter_periods_are_quoted_as_written(written: str) -> None:
    assert period(f"Ban Thường vụ dự kiến {written}").text == written


@pytest.mark.parametrize(("text", "month"), [("đại hội vào t9", 9), ("xong trong th10", 10)])
def test_month_shorthand_is_a_period(text: str, month: int) -> None:
    found = claimed_period(text, year=2025)
    assert found is not None
    assert found.start == date(2025, month, 1)


# --------------------------------------------------------------------------- deadline_verdict


def test_a_plan_within_the_deadline_is_in_time() -> None:
    verdict, sentence = deadline_verdict(PROVINCES, period("cuối tháng 10"))
    assert verdict is True
    assert sentence.startswith("Đúng tiến độ")
    assert "trong tháng 10/2025" in sentence
    assert "31/10/2025" in sentence
    assert "vẫn trong hạn" in sentence


def test_a_plan_after_the_deadline_is_late() -> None:
    verdict, sentence = deadline_verdict(PROVINCES, period("giữa tháng 11/2025"))
    assert verdict is False
    assert sentence.startswith("Chưa đúng tiến độ")
    assert "trong tháng 10/2025" in sentence
    assert "muộn hơn hạn" in sentence


def test_a_plan_straddling_the_deadline_is_only_in_time_if_finished_before_it() -> None:
    verdict, sentence = deadline_verdict(PROVINCES, period("quý IV"))
    assert verdict is None
    assert sentence.startswith("Chỉ kịp nếu")
    assert "31/10/2025" in sentence


def test_the_commune_deadline_is_august() -> None:
    verdict, sentence = deadline_verdict(COMMUNES, period("đầu tháng 9"))
    assert verdict is False
    assert sentence.startswith("Chưa đúng tiến độ")
    assert "trong tháng 8/2025" in sentence
    assert deadline_verdict(COMMUNES, period("giữa tháng 8"))[0] is True


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (date(2025, 10, 31), date(2025, 10, 31), True),  # the last day itself
        (date(2025, 11, 1), date(2025, 11, 1), False),  # the day after
        (date(2025, 10, 30), date(2025, 11, 2), None),  # across it
    ],
)
def test_the_verdict_compares_with_the_last_day(start: date, end: date, expected: bool) -> None:
    verdict, _ = deadline_verdict(PROVINCES, Period(start, end, "kế hoạch"))
    assert verdict is expected


# --------------------------------------------------------------------------- Turn


def test_a_turn_survives_a_json_round_trip() -> None:
    turn = Turn(
        "dai hoi dang bo phuong phai hoan thanh khi nao",
        "han-dai-hoi-cap-xa",
        Mentions(
            levels=("xa", "truc_thuoc_tw"),
            documents=frozenset({"kl_185"}),
            places=frozenset({"ha_noi"}),
            topics=frozenset({"dai_hoi"}),
        ),
    )
    stored = json.loads(json.dumps(turn.to_json()))
    assert Turn.from_json(stored) == turn


def test_a_turn_without_an_entry_or_entities_survives_a_round_trip() -> None:
    turn = Turn("gia vang hom nay", None, Mentions())
    assert Turn.from_json(json.loads(json.dumps(turn.to_json()))) == turn


def test_levels_keep_their_order_in_json() -> None:
    turn = Turn("q", "e", Mentions(levels=("co_so", "xa")))
    assert turn.to_json()["mentions"]["levels"] == ["co_so", "xa"]


@pytest.mark.parametrize("stored", [None, "text", 3, [], {}, {"query": 5}, {"entry": "x"}])
def test_a_damaged_turn_is_forgotten(stored: object) -> None:
    assert Turn.from_json(stored) is None


def test_unknown_or_malformed_mentions_are_ignored() -> None:
    turn = Turn.from_json(
        {"query": "q", "entry": "e", "mentions": {"levels": "xa", "places": ["ha_noi"]}}
    )
    assert turn is not None
    assert turn.mentions.levels == ()
    assert turn.mentions.places == {"ha_noi"}


# --------------------------------------------------------------------------- follow-ups


@pytest.mark.parametrize(
    ("text", "mentions", "content_words"),
    [
        ("Còn cấp tỉnh thì sao?", Mentions(levels=("truc_thuoc_tw",)), 4),
        ("Thế còn xã?", Mentions(levels=("xa",)), 1),
        ("Ký ngày nào?", Mentions(), 2),
        ("Phối hợp với ai?", Mentions(), 3),
        ("Chương trình đó ưu tiên đối tượng nào?", Mentions(), 6),
        ("Văn bản đó của cơ quan nào?", Mentions(), 5),
        ("Đồng chí ấy giữ chức gì?", Mentions(), 4),
        ("còn huyện thì thế nào", Mentions(levels=("huyen",)), 2),
    ],
)
def test_short_messages_leaning_on_the_previous_answer(
    text: str, mentions: Mentions, content_words: int
) -> None:
    assert looks_like_followup(text, mentions, content_words) is True


@pytest.mark.parametrize(
    ("text", "mentions", "content_words"),
    [
        (
            "Đại hội đảng bộ xã phải hoàn thành trong tháng mấy theo Kết luận 185?",
            Mentions(levels=("xa",), documents=frozenset({"kl_185"})),
            11,
        ),
        (
            "Học viện Chính trị quốc gia Hồ Chí Minh được giao nhiệm vụ gì?",
            Mentions(bodies=frozenset({"hoc_vien_ctqg"})),
            11,
        ),
        ("Kết luận 185 là do đồng chí nào ký?", Mentions(documents=frozenset({"kl_185"})), 4),
        ("", Mentions(), 0),
    ],
)
def test_full_questions_are_not_follow_ups(
    text: str, mentions: Mentions, content_words: int
) -> None:
    assert looks_like_followup(text, mentions, content_words) is False


def test_a_full_question_ending_with_nhi_is_not_a_follow_up() -> None:
    assert (
        looks_like_followup(
            "Học viện Chính trị quốc gia Hồ Chí Minh được giao nhiệm vụ gì nhỉ?",
            Mentions(bodies=frozenset({"hoc_vien_ctqg"})),
            11,
        )
        is False
    )


def test_a_long_message_is_never_a_follow_up() -> None:
    text = "Còn " + " ".join(["đại hội đảng bộ các cấp"] * 4) + " thì sao?"
    assert looks_like_followup(text, Mentions(), 15) is False
