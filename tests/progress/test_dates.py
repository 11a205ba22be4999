"""Completion dates and notes typed after «Đã hoàn thành» (handlers/dates.py)."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from datetime import date

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from handlers.dates import (
    MAX_AGE_YEARS,
    Completion,
    DateError,
    describe,
    find_dates,
    parse_completion,
)

TODAY = date(2026, 12, 2)
YESTERDAY = date(2026, 12, 1)


def parse(text: str, *, today: date = TODAY, due: date | None = None) -> Completion:
    return parse_completion(text, today=today, due=due)


def refused(text: str, *, today: date = TODAY, due: date | None = None) -> str:
    with pytest.raises(DateError) as info:
        parse(text, today=today, due=due)
    assert str(info.value) == info.value.message
    return info.value.message


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


# --------------------------------------------------------------------------- rule 1: forms


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("hôm nay", TODAY),
        ("hom nay", TODAY),
        ("Hôm Nay", TODAY),
        ("HÔM NAY", TODAY),
        ("hôm qua", YESTERDAY),
        ("hom qua", YESTERDAY),
        ("Hôm  qua", YESTERDAY),
        ("hômqua", YESTERDAY),
        ("hôm kia", date(2026, 11, 30)),
        ("hom kia", date(2026, 11, 30)),
        ("hôm kìa", date(2026, 11, 29)),
        ("ngày hôm qua", YESTERDAY),
        ("20/8", date(2026, 8, 20)),
        ("20-8", date(2026, 8, 20)),
        ("20.8", date(2026, 8, 20)),
        ("20 / 8", date(2026, 8, 20)),
        ("20 - 8", date(2026, 8, 20)),
        ("20/08", date(2026, 8, 20)),
        ("02/12", TODAY),
        ("3/12", date(2025, 12, 3)),  # the most recent 3/12 not after today
        ("20/8/2025", date(2025, 8, 20)),
        ("20-8-2025", date(2025, 8, 20)),
        ("20.8.2025", date(2025, 8, 20)),
        ("20 / 8 / 2025", date(2025, 8, 20)),
        ("20/08/25", date(2025, 8, 20)),
        ("20-08-25", date(2025, 8, 20)),
        ("1.1.24", date(2024, 1, 1)),
        ("2025-08-20", date(2025, 8, 20)),
        ("2025-8-20", date(2025, 8, 20)),
        ("2025/08/20", date(2025, 8, 20)),
        ("ngày 15 tháng 8", date(2026, 8, 15)),
        ("Ngày 15 Tháng 8", date(2026, 8, 15)),
        ("15 tháng 8", date(2026, 8, 15)),
        ("15 tháng 08", date(2026, 8, 15)),
        ("15tháng8", date(2026, 8, 15)),
        ("15 tháng 8 năm 2025", date(2025, 8, 15)),
        ("ngày 15 tháng 8 năm 2025", date(2025, 8, 15)),
        ("NGÀY 15 THÁNG 8 NĂM 2025", date(2025, 8, 15)),
        ("ngay 15 thang 8 nam 2025", date(2025, 8, 15)),
        ("ngay 15 thang 8", date(2026, 8, 15)),
        ("ngày 15 tháng 8, 2025", date(2025, 8, 15)),
        ("15 thg 8", date(2026, 8, 15)),
        ("15 thg. 8", date(2026, 8, 15)),
        ("15 thg 8 năm 25", date(2025, 8, 15)),
        ("ngày 15/8", date(2026, 8, 15)),
        ("ngay 15/8", date(2026, 8, 15)),
        ("ngày15/8", date(2026, 8, 15)),
        ("20/8 năm 2025", date(2025, 8, 20)),
        ("20/8 năm nay", date(2026, 8, 20)),
        ("20/8 nam ngoai", date(2025, 8, 20)),
        ("20/8 năm trước", date(2025, 8, 20)),
        ("15 tháng 8 năm ngoái", date(2025, 8, 15)),
    ],
)
def test_understood_forms(typed: str, expected: date) -> None:
    result = parse(typed)
    assert (result.done_on, result.note, result.choices) == (expected, "", ())
    assert result.source == typed.removeprefix("ngày").removeprefix("ngay").strip() or (
        typed.lower().startswith("ngày") and typed.endswith(result.source)
    )
    assert parse(nfd(typed)).done_on == expected


# --------------------------------------------------------------------------- rule 2: where


@pytest.mark.parametrize(
    ("text", "expected", "note"),
    [
        ("18/8 Đã tổ chức xong", date(2026, 8, 18), "Đã tổ chức xong"),
        ("hôm qua, xong rồi", YESTERDAY, "xong rồi"),
        ("Hôm qua đã tổ chức xong", YESTERDAY, "đã tổ chức xong"),
        ("20/8 Đã tổ chức xong đại hội", date(2026, 8, 20), "Đã tổ chức xong đại hội"),
        ("20/8, Đã xong", date(2026, 8, 20), "Đã xong"),
        ("20/8; Đã xong", date(2026, 8, 20), "Đã xong"),
        ("20/8: Đã xong", date(2026, 8, 20), "Đã xong"),
        ("20/8. Đã xong", date(2026, 8, 20), "Đã xong"),
        ("20/8 - Đã xong", date(2026, 8, 20), "Đã xong"),
        ("20/8 – Đã xong", date(2026, 8, 20), "Đã xong"),
        ("20/8,Đã xong", date(2026, 8, 20), "Đã xong"),
        ("20/8Đã xong", date(2026, 8, 20), "Đã xong"),
        ("20/8/2025. Đã xong.", date(2025, 8, 20), "Đã xong."),
        ("20.8.2025 - đã xong", date(2025, 8, 20), "đã xong"),
        ("  20/8   Đã xong  ", date(2026, 8, 20), "Đã xong"),
        ("ngày 20/8 đã họp", date(2026, 8, 20), "đã họp"),
        ("Ngày 15 tháng 8 năm 2025, đã tổ chức", date(2025, 8, 15), "đã tổ chức"),
        ("xong 20/8", date(2026, 8, 20), ""),
        ("Xong ngày 20/8, đã gửi báo cáo", date(2026, 8, 20), "đã gửi báo cáo"),
        ("xong ngay 20/8 da gui bao cao", date(2026, 8, 20), "da gui bao cao"),
        ("Hoàn thành 20/8", date(2026, 8, 20), ""),
        ("hoàn thành ngày 20/8: đủ 120 đại biểu", date(2026, 8, 20), "đủ 120 đại biểu"),
        ("HOAN THANH NGAY 20/8", date(2026, 8, 20), ""),
        ("Đã xong 20/8/2025.", date(2025, 8, 20), ""),
        ("đã xong hôm qua", YESTERDAY, ""),
        ("da xong hom qua", YESTERDAY, ""),
        ("Đã hoàn thành ngày 15/8", date(2026, 8, 15), ""),
        ("từ 20/8", date(2026, 8, 20), ""),
        ("Từ ngày 20/8 đã triển khai", date(2026, 8, 20), "đã triển khai"),
        ("vào ngày 20/8, đã họp", date(2026, 8, 20), "đã họp"),
        ("- 20/8 đã họp", date(2026, 8, 20), "đã họp"),
        ("Hôm nay 5/5 chi bộ đã xong", TODAY, "5/5 chi bộ đã xong"),
    ],
)
def test_leading_date_is_cut_from_the_note(text: str, expected: date, note: str) -> None:
    result = parse(text)
    assert (result.done_on, result.note, result.choices) == (expected, note, ())


def test_source_is_the_date_as_typed() -> None:
    assert parse("Hôm qua, xong rồi").source == "Hôm qua"
    assert parse("Xong ngày 20/8, đã gửi").source == "20/8"
    assert parse("ngày 15 tháng 8 năm 2025").source == "15 tháng 8 năm 2025"
    assert parse("Đã họp ngày 18/8, tốt").source == "18/8"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Đã tổ chức đại hội ngày 18/8, 120 đại biểu", date(2026, 8, 18)),
        ("Da to chuc dai hoi ngay 18/8, 120 dai bieu", date(2026, 8, 18)),
        ("Đã tổ chức đại hội NGÀY 18-8", date(2026, 8, 18)),
        ("Đã tổ chức đại hội ngày 15 tháng 8 năm 2025", date(2025, 8, 15)),
        ("Đã tổ chức đại hội vào 18/8", date(2026, 8, 18)),
        ("Đã tổ chức đại hội vào ngày 18/8/2025.", date(2025, 8, 18)),
        ("Đã họp hôm 18/8", date(2026, 8, 18)),
        ("Đại hội đã xong hôm qua", YESTERDAY),
        ("Dai hoi da xong hom kia", date(2026, 11, 30)),
        ("Chi bộ đã họp xong hôm nay.", TODAY),
        ("Đã họp ngày 1/12, tức hôm qua", YESTERDAY),  # two ways to write one day
        ("Họp ngày 20/8 và báo cáo ngày 20/8/2025", date(2025, 8, 20)),
    ],
)
def test_marked_date_elsewhere_keeps_the_whole_note(text: str, expected: date) -> None:
    assert parse(text) == Completion(expected, text, (), parse(text).source)
    assert parse(text).source


@pytest.mark.parametrize(
    "text",
    [
        "Đã tổ chức đại hội 18/8, 120 đại biểu",
        "Đã họp 2 - 3 lần",
        "Kết luận 18/8 đã quán triệt",
        "Đã quán triệt 15 tháng 8",  # words need «ngày» too when not leading
        "Đã xong 5/5 chi bộ",
        # The date of a document named before «ngày» is not the completion date.
        "Thực hiện Hướng dẫn số 12-HD/TW ngày 15/7/2025, đã tổ chức xong",
        "Theo Kết luận 18-KL/TW ngày 20/8/2025 đã triển khai",
        "Theo công văn số 123 ngày 20/8 đã triển khai",
        "Chỉ thị 35-CT/TW, ngày 14/6/2024 đã quán triệt",
    ],
)
def test_unmarked_date_elsewhere_is_no_date(text: str) -> None:
    assert parse(text) == Completion(None, text)


def test_period_gives_its_end_and_keeps_the_note() -> None:
    for text in (
        "Từ 18/8 đến 20/8 đã tổ chức đại hội các chi bộ",
        "tu 18/8 den 20/8 da to chuc dai hoi",
        "18/8 - 20/8: đại hội các chi bộ",
        "18/8–20/8 đại hội",
        "Đại hội các chi bộ từ ngày 18/8 đến ngày 20/8",
    ):
        result = parse(text)
        assert (result.done_on, result.note) == (date(2026, 8, 20), text)
    assert parse("18/8 - 5/5 chi bộ xong") == Completion(
        date(2026, 8, 18), "5/5 chi bộ xong", (), "18/8"
    )


# --------------------------------------------------------------------------- rule 3: counts

COUNT_NOUNS = [
    "chi bộ",
    "đảng bộ",
    "đơn vị",
    "xã",
    "phường",
    "đặc khu",
    "cơ sở",
    "đảng viên",
    "đồng chí",
    "người",
    "đại biểu",
    "cấp ủy",
    "cấp uỷ",
    "ủy viên",
    "thôn",
    "tổ",
    "bản",
    "ấp",
    "khu phố",
    "tổ dân phố",
    "tổ chức đảng",
    "tổ chức cơ sở đảng",
    "văn bản",
    "nhiệm vụ",
    "%",
]


def unaccented(text: str) -> str:
    stripped = "".join(c for c in nfd(text) if not unicodedata.combining(c))
    return stripped.replace("đ", "d").replace("Đ", "D")


@pytest.mark.parametrize("noun", COUNT_NOUNS)
@pytest.mark.parametrize("ratio", ["5/5", "15/20", "3/4", "12-12", "7.9", "0/5", "5 / 5"])
def test_ratio_before_counting_noun_is_no_date(ratio: str, noun: str) -> None:
    for spelt in (noun, unaccented(noun), noun.upper(), noun.capitalize()):
        for text in (
            f"{ratio} {spelt} đã kiện toàn xong",
            f"{ratio}{spelt}" if spelt == "%" else f"{ratio}  {spelt}",
            f"Đã xong {ratio} {spelt}, còn lại đang làm",
            f"Hoàn thành {ratio} {spelt}",
            f"Hôm qua {ratio} {spelt} đã xong",  # the leading date is «hôm qua»
        ):
            result = parse(text)
            assert ratio in result.note, text
            assert result.done_on in (None, YESTERDAY), text
            assert result.source in ("", "Hôm qua"), text


def test_counts_in_the_brief() -> None:
    assert parse("5/5 chi bộ đã kiện toàn xong") == Completion(None, "5/5 chi bộ đã kiện toàn xong")
    assert parse("15/20 đơn vị") == Completion(None, "15/20 đơn vị")
    assert parse("12/12 xã, phường đã tổ chức") == Completion(None, "12/12 xã, phường đã tổ chức")
    assert parse("2/3 số đảng viên đã học tập") == Completion(None, "2/3 số đảng viên đã học tập")
    assert parse("Đã có 45/50 chi bo") == Completion(None, "Đã có 45/50 chi bo")
    assert parse("5/5 chi bộ xong, hôm qua") == Completion(
        YESTERDAY, "5/5 chi bộ xong, hôm qua", (), "hôm qua"
    )


@pytest.mark.parametrize(
    ("text", "note"),
    [
        ("20/8 tổ chức đại hội", "tổ chức đại hội"),  # «tổ chức» (organise) is no count
        ("20/8 to chuc dai hoi", "to chuc dai hoi"),
        ("20/8 Ban Thường vụ đã họp", "Ban Thường vụ đã họp"),  # «Ban» is not «bản»
        ("20/8 ban thuong vu da hop", "ban thuong vu da hop"),
        ("20/8 bàn giao xong", "bàn giao xong"),
        ("20/8 xả lũ xong", "xả lũ xong"),
        ("20/8 phương án đã duyệt", "phương án đã duyệt"),
        ("20/8 áp dụng", "áp dụng"),
        ("20/8 ngay sau hội nghị", "ngay sau hội nghị"),
        ("20/8 tờ trình đã gửi", "tờ trình đã gửi"),
        ("20/8/2025 chi bộ đã họp", "chi bộ đã họp"),  # a typed year makes it a date
        ("20/8 năm 2025 chi bộ đã họp", "chi bộ đã họp"),
        ("Ngày 5/5 chi bộ đã họp", "chi bộ đã họp"),  # «ngày» makes it a date
        ("hôm 5/5 chi bộ đã họp", "chi bộ đã họp"),
    ],
)
def test_words_that_only_look_like_counting_nouns(text: str, note: str) -> None:
    result = parse(text)
    assert result.done_on is not None
    assert result.note == note


def test_count_after_a_duration_with_ngay_is_still_a_count() -> None:
    text = "Trong 2 ngày 5/5 chi bộ đã họp xong"
    assert parse(text) == Completion(None, text)


# --------------------------------------------------------------------------- rule 4: invalid


@pytest.mark.parametrize(
    "typed",
    [
        "31/2",
        "29/2/2025",
        "32/8",
        "20/13",
        "0/8",
        "20/0",
        "31/4/2026",
        "2025-02-30",
        "31 tháng 11",
        "30 thang 2 nam 2024",
        "ngày 31/6",
        "15/20",
    ],
)
def test_day_that_does_not_exist_is_refused(typed: str) -> None:
    for text in (typed, f"{typed} Đã tổ chức xong", f"Đã tổ chức ngày {typed.upper()}, tốt"):
        message = refused(text)
        assert message.startswith("Ngày «")
        assert "không có thật" in message
        assert "ngày/tháng/năm" in message
    assert f"«{typed.removeprefix('ngày ')}»" in refused(typed)


def test_messages_in_the_brief() -> None:
    assert refused("31/2") == (
        "Ngày «31/2» không có thật. Đồng chí gõ lại theo dạng ngày/tháng/năm, ví dụ 2/12/2026."
    )
    assert refused("25/12/2026 xong").startswith("Ngày hoàn thành 25/12/2026 còn ở tương lai")


@pytest.mark.parametrize("typed", ["25/12/2026", "3/12/2026", "2026-12-03", "1/1/27", "20/8/2030"])
def test_future_date_is_refused(typed: str) -> None:
    message = refused(f"{typed} Đã xong")
    assert "còn ở tương lai" in message
    assert "hôm nay là 2/12/2026" in message


def test_future_message_shows_what_was_typed_when_it_differs() -> None:
    assert "(đồng chí gõ «1/1/27»)" in refused("1/1/27")
    assert "«25/12/2026»" not in refused("25/12/2026")


@pytest.mark.parametrize("typed", ["1/12/2023", "20/8/2020", "1/1/1990", "2020-01-01", "5/5/05"])
def test_date_more_than_three_years_old_is_refused(typed: str) -> None:
    message = refused(typed)
    assert f"hơn {MAX_AGE_YEARS} năm" in message
    assert "kiểm tra lại" in message


def test_three_years_exactly_is_accepted() -> None:
    assert parse("2/12/2023").done_on == date(2023, 12, 2)
    assert parse("29/2/2024", today=date(2027, 2, 28)).done_on == date(2024, 2, 29)
    assert "hơn 3 năm" in refused("28/2/2024", today=date(2027, 3, 1))


@pytest.mark.parametrize(
    ("text", "typed"),
    [
        ("8/2025 Đã tổ chức xong", "8/2025"),
        ("Hoàn thành tháng 8/2025", "tháng 8/2025"),
        ("xong thang 8 nam 2025", "thang 8 nam 2025"),
        ("Tháng 08-2025", "Tháng 08-2025"),
        ("20/8/202 Đã xong", "20/8/202"),
        ("ngày 20.8.20255", "20.8.20255"),
        ("20/8/5", "20/8/5"),
    ],
)
def test_leading_date_without_a_clear_day_is_refused(text: str, typed: str) -> None:
    message = refused(text)
    assert message == (
        f"Chưa rõ ngày hoàn thành trong «{typed}». Đồng chí vui lòng gõ đủ ngày/tháng/năm, "
        "ví dụ 2/12/2026."
    )


def test_month_and_year_elsewhere_is_only_a_note() -> None:
    for text in (
        "Đã triển khai trong tháng 8/2025",
        "Kế hoạch 8/2025 đã xong",
        "2.500.000 đồng",
        "1. 2025",
    ):
        assert parse(text) == Completion(None, text)


def test_year_zero_does_not_exist() -> None:
    assert "không có thật" in refused("20/8/0000")


# --------------------------------------------------------------------------- rule 5: several


def test_several_marked_dates_without_a_leading_one_are_refused() -> None:
    message = refused("Đã họp ngày 18/8, báo cáo ngày 20/8")
    assert "«18/8», «20/8»" in message
    assert "ở đầu tin nhắn" in message
    assert "«hôm qua»" in refused("Họp hôm qua, báo cáo ngày 20/8")
    assert "«hom kia», «hom qua»" in refused("hop hom kia, bao cao hom qua")


def test_leading_date_wins_over_later_ones() -> None:
    text = "18/8 Đã họp, báo cáo ngày 20/8, hôm qua gửi lên"
    assert parse(text) == Completion(
        date(2026, 8, 18), "Đã họp, báo cáo ngày 20/8, hôm qua gửi lên", (), "18/8"
    )
    assert parse("ngày 18/8 họp, ngày 20/8 xong").note == "họp, ngày 20/8 xong"
    # A later date is not even checked: the official's note may mention anything.
    assert parse("hôm qua xong; dự kiến ngày 31/2").done_on == YESTERDAY


# --------------------------------------------------------------------------- rule 6: the year


def test_year_is_the_most_recent_such_day() -> None:
    assert parse("2/12").done_on == TODAY
    assert parse("3/12").done_on == date(2025, 12, 3)
    assert parse("1/1", today=date(2027, 1, 1)).done_on == date(2027, 1, 1)
    assert parse("31/12", today=date(2027, 1, 1)).done_on == date(2026, 12, 31)
    assert parse("29/2", today=date(2026, 12, 2)).done_on == date(2024, 2, 29)


def test_due_in_an_earlier_year_makes_the_official_choose() -> None:
    result = parse("20/8 Đã tổ chức xong", due=date(2025, 8, 31))
    assert result == Completion(
        None, "Đã tổ chức xong", (date(2025, 8, 20), date(2026, 8, 20)), "20/8"
    )
    marked = parse("Đã tổ chức ngày 20/8", due=date(2025, 8, 31))
    assert marked.choices == (date(2025, 8, 20), date(2026, 8, 20))
    assert parse("15 tháng 8", due=date(2024, 9, 30)).choices == (
        date(2024, 8, 15),
        date(2026, 8, 15),
    )


def test_no_choice_when_the_year_is_clear() -> None:
    due = date(2025, 8, 31)
    assert parse("20/8", due=date(2026, 8, 31)).done_on == date(2026, 8, 20)  # same year
    assert parse("20/8", due=date(2027, 3, 31)).done_on == date(2026, 8, 20)  # due later
    assert parse("20/8/2026", due=due).done_on == date(2026, 8, 20)  # typed year
    assert parse("20/8 năm nay", due=due).done_on == date(2026, 8, 20)
    assert parse("hôm qua", due=due).done_on == YESTERDAY
    assert parse("3/12", due=due).done_on == date(2025, 12, 3)  # most recent is in due's year
    # The day does not exist in due's year: only one candidate.
    assert parse("29/2", today=date(2028, 3, 1), due=date(2027, 3, 1)).done_on == date(2028, 2, 29)
    # The day of due's year is more than three years old: only one candidate.
    assert parse("20/8", due=date(2023, 8, 31)).done_on == date(2026, 8, 20)


# --------------------------------------------------------------------------- rules 7-9: notes


def test_no_date_keeps_the_text() -> None:
    assert parse("  Đã tổ chức xong đại hội  ") == Completion(None, "Đã tổ chức xong đại hội")
    assert parse("Hoàn thành 100%") == Completion(None, "Hoàn thành 100%")
    assert parse("Xong rồi") == Completion(None, "Xong rồi")
    assert parse("1. Đã họp\n2. Đã báo cáo") == Completion(None, "1. Đã họp\n2. Đã báo cáo")
    assert parse("Số hiệu 1/2/3") == Completion(None, "Số hiệu 1/2/3")
    assert parse("SĐT 0912.345.678") == Completion(None, "SĐT 0912.345.678")


@pytest.mark.parametrize("text", ["", " ", "\n\t ", "\u00a0"])
def test_empty_text(text: str) -> None:
    assert parse(text) == Completion(None, "")


def test_multi_line_notes_keep_their_lines() -> None:
    text = "20/8\n- Đã tổ chức đại hội\n- 120 đại biểu\n\nĐủ điều kiện"
    result = parse(text)
    assert result.done_on == date(2026, 8, 20)
    assert result.note == "- Đã tổ chức đại hội\n- 120 đại biểu\n\nĐủ điều kiện"
    text = "Đã tổ chức đại hội\nngày 18/8\n  120 đại biểu"
    assert parse(text) == Completion(date(2026, 8, 18), text, (), "18/8")


def test_note_keeps_the_diacritics_as_typed() -> None:
    text = nfd("Hôm qua, Đảng ủy đã tổ chức hội nghị")
    result = parse(text)
    assert result.done_on == YESTERDAY
    assert result.note == nfd("Đảng ủy đã tổ chức hội nghị")
    assert result.source == nfd("Hôm qua")
    marked = nfd("Đảng ủy đã họp ngày 18/8, thuỷ lợi")
    assert parse(marked).note == marked


# --------------------------------------------------------------------------- describe, find_dates


def test_describe() -> None:
    assert describe(TODAY, TODAY) == "hôm nay (2/12/2026)"
    assert describe(YESTERDAY, TODAY) == "hôm qua (1/12/2026)"
    assert describe(date(2025, 8, 20), TODAY) == "20/8/2025"
    assert describe(date(2026, 11, 30), TODAY) == "30/11/2026"


def test_find_dates_spans_index_the_text_as_given() -> None:
    text = nfd("  Đảng ủy họp hôm qua; Ngày 5/5 chi bộ; 7/9 chi bộ; 31/2")
    mentions = find_dates(text, today=TODAY)
    assert [text[m.start : m.end] for m in mentions] == [m.source for m in mentions]
    assert [m.source for m in mentions] == [nfd("hôm qua"), "5/5", "31/2"]
    assert [(m.day, m.month, m.year) for m in mentions] == [
        (1, 12, 2026),
        (5, 5, None),
        (31, 2, None),
    ]
    assert [(m.leading, m.marked) for m in mentions] == [
        (False, True),
        (False, True),
        (False, False),
    ]
    (period,) = find_dates("từ 18/8 đến 20/8/2025", today=TODAY)
    assert (period.day, period.month, period.year, period.is_range) == (20, 8, 2025, True)
    assert period.leading


def test_date_error_is_a_value_error() -> None:
    assert issubclass(DateError, ValueError)
    assert DateError("x").message == "x"


# --------------------------------------------------------------------------- properties


def three_years_before(today: date) -> date:
    try:
        return today.replace(year=today.year - 3)
    except ValueError:
        return date(today.year - 3, 2, 28)


def most_recent(day: int, month: int, today: date) -> date:
    for year in range(today.year, today.year - 9, -1):
        try:
            candidate = date(year, month, day)
        except ValueError:
            continue
        if candidate <= today:
            return candidate
    raise AssertionError


def spellings(d: date, today: date) -> list[str]:
    """Every supported way to write ``d`` (without a year only when it is the most recent)."""
    days = sorted({str(d.day), f"{d.day:02d}"})
    months = sorted({str(d.month), f"{d.month:02d}"})
    years = [str(d.year), *([f"{d.year % 100:02d}"] if 2000 <= d.year <= 2099 else [])]
    day_months = [
        f"{day}{gap}{sep}{gap}{month}"
        for day in days
        for month in months
        for sep in "/-."
        for gap in (["", " "] if sep != "." else [""])
    ]
    forms = [
        f"{day}{gap}{sep}{gap}{month}{gap}{sep}{gap}{year}"
        for day in days
        for month in months
        for year in years
        for sep in "/-."
        for gap in (["", " "] if sep != "." else [""])
    ]
    forms += [f"{d.year}-{d.month:02d}-{d.day:02d}", f"{d.year}-{d.month}-{d.day}"]
    forms += [f"{d.day}/{d.month} năm {d.year}", f"{d.day}.{d.month} nam {d.year}"]
    words = [
        f"{day} {month_word} {month}"
        for day in days
        for month in months
        for month_word in ("tháng", "thang", "Tháng", "THÁNG", "thg", "thg.")
    ]
    forms += [f"{w} {year_word} {d.year}" for w in words for year_word in ("năm", "nam", "NĂM")]
    forms += [f"{w}, {d.year}" for w in words]
    if d == most_recent(d.day, d.month, today):
        forms += day_months + words
    relative = {0: "nay", 1: "qua", 2: "kia"}.get((today - d).days)
    if relative is not None:
        forms += [
            f"hôm {relative}",
            f"hom {relative}",
            f"Hôm {relative}",
            f"HÔM {relative.upper()}",
        ]
    return forms


LEADS = [
    "",
    "ngày ",
    "Ngày ",
    "ngay ",
    "xong ",
    "Xong ngày ",
    "hoàn thành ",
    "Hoàn thành ngày ",
    "HOAN THANH NGAY ",
    "đã xong ",
    "Đã xong ",
    "da xong ngay ",
    "từ ",
    "vào ngày ",
    "- ",
]
SEPARATORS = [" ", "  ", ", ", ",", "; ", ": ", ". ", " - ", " – ", "\n", " \n"]
NOTES = [
    "",
    "Đã tổ chức xong đại hội",
    "đã hoàn thành, 120 đại biểu",
    "Xong rồi",
    "Tổ chức hội nghị quán triệt ngày 20/8",
    "Đảng ủy đã họp\nkèm danh sách 5/5 chi bộ",
    "da to chuc xong",
]


@st.composite
def written_dates(draw: st.DrawFn) -> tuple[date, date, str, str]:
    today = draw(st.dates(date(2004, 1, 1), date(2095, 12, 31)))
    d = draw(st.dates(three_years_before(today), today))
    form = draw(st.sampled_from(spellings(d, today)))
    note = draw(
        st.sampled_from(NOTES)
        | st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), max_size=30).map(
            lambda tail: f"Đã {tail}".strip()
        )
    )
    lead = draw(st.sampled_from(LEADS))
    separator = draw(st.sampled_from(SEPARATORS)) if note else ""
    return today, d, f"{lead}{form}{separator}{note}", note


@given(written_dates())
@example((TODAY, date(2025, 8, 20), "20/08/25 Đã xong", "Đã xong"))
@example((TODAY, YESTERDAY, "hôm qua, xong rồi", "xong rồi"))
def test_any_date_in_any_form_round_trips(case: tuple[date, date, str, str]) -> None:
    today, d, text, note = case
    result = parse_completion(text, today=today)
    assert (result.done_on, result.note, result.choices) == (d, note, ())
    assert result.source and result.source in text
    decomposed = parse_completion(nfd(text), today=today)
    assert (decomposed.done_on, decomposed.note) == (d, nfd(note))


TOKENS = [
    "20/8",
    "31/2",
    "29/2",
    "5/5",
    "15/20",
    "2/12",
    "3/12",
    "/",
    "-",
    ".",
    ",",
    ":",
    " ",
    "  ",
    "\n",
    "0",
    "1",
    "9",
    "12",
    "25",
    "99",
    "2025",
    "2030",
    "1999",
    "ngày",
    "ngay ",
    "hôm",
    "qua",
    "nay",
    "kia",
    "hôm qua",
    "tháng",
    "thg",
    "năm",
    "nam",
    "ngoái",
    "chi bộ",
    "xã",
    "tổ chức",
    "đảng",
    "%",
    "đến",
    "từ",
    "vào",
    "xong",
    "hoàn thành",
    "Đã",
    "12-HD/TW",
    "số",
    "\u0301",
    "Ð",
    "İ",
]
soups = st.lists(st.sampled_from(TOKENS), max_size=14).map("".join)


@given(
    st.one_of(soups, st.text(max_size=60)),
    st.dates(date(2004, 1, 1), date(2095, 12, 31)),
    st.none() | st.dates(date(2000, 1, 1), date(2099, 12, 31)),
)
@example("20/8", date(2026, 12, 2), date(2025, 8, 31))
@example("hôm qua 31/2", date(2026, 12, 2), None)
def test_never_a_future_date_and_never_another_error(
    text: str, today: date, due: date | None
) -> None:
    try:
        result = parse_completion(text, today=today, due=due)
    except DateError as error:
        assert error.message
        return
    oldest = three_years_before(today)
    for when in (result.done_on, *result.choices):
        assert when is None or oldest <= when <= today
    if result.choices:
        assert result.done_on is None
        assert len(result.choices) == 2
        assert result.choices[0] < result.choices[1]
        assert due is not None and result.choices[0].year == due.year
    stripped = text.strip()
    assert stripped.endswith(result.note)
    assert result.note == result.note.strip()
    if result.done_on is None and not result.choices:
        assert result.note == stripped
        assert result.source == ""
    else:
        assert result.source in stripped


@given(soups, st.dates(date(2004, 1, 1), date(2095, 12, 31)))
def test_decomposed_text_reads_the_same(text: str, today: date) -> None:
    def outcome(typed: str) -> object:
        try:
            result = parse_completion(typed, today=today)
        except DateError:
            return "error"
        return (result.done_on, result.choices, unicodedata.normalize("NFC", result.note))

    composed = unicodedata.normalize("NFC", text)
    assert outcome(nfd(composed)) == outcome(composed)


@given(
    st.integers(0, 99),
    st.integers(0, 99),
    st.sampled_from(["/", "-", ".", " / "]),
    st.sampled_from(COUNT_NOUNS),
    st.sampled_from([str, str.upper, unaccented]),
    st.dates(date(2004, 1, 1), date(2095, 12, 31)),
)
def test_any_ratio_before_a_counting_noun_stays_in_the_note(
    a: int, b: int, sep: str, noun: str, spell: Callable[[str], str], today: date
) -> None:
    text = f"{a}{sep}{b} {spell(noun)} đã xong"
    assert parse_completion(text, today=today) == Completion(None, text)
