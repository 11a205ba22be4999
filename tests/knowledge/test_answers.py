"""What an official is told, through Knowledge.search and the reply built from it.

Each test asks the real knowledge base (with its semantic index) a question in its own
words and checks what the official sees: whether it is answered, which entry answers, the
words of the answer or the verdict sentence before it, and why nothing is answered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from bot.core import Reply
from handlers.qa import FOLLOWUP_ALONE, RELATED_HEADER, SUGGESTION_PREFIX, THANKS, result_reply
from knowledge import Knowledge, SearchResult, Turn
from knowledge.normalize import fold

PROVINCE_ENTRY = "han-dai-hoi-truc-thuoc-tw"
COMMUNE_ENTRY = "han-dai-hoi-cap-xa"
PROGRAMME_ENTRY = "han-ban-hanh-van-kien-quy-che"
TRAINING_ENTRY = "han-tap-huan-boi-duong"
GRASSROOTS_NOT_STATED = "khong-neu-han-dai-hoi-chi-bo"
DISTRICT_NOT_STATED = "khong-neu-cap-huyen"
KL_29_8_NUMBER_NOT_STATED = "khong-neu-so-hieu-ngay-ban-hanh-kl-29-8"
PLENUM_13_NOT_STATED = "khong-neu-thoi-gian-hoi-nghi-trung-uong-13"
CONGRESS_14_NOT_STATED = "khong-neu-khai-mac-dai-hoi-xiv"


@dataclass(frozen=True)
class Seen:
    """A search result with the reply the official reads."""

    result: SearchResult
    reply: Reply

    @property
    def text(self) -> str:
        return self.reply.text

    @property
    def folded(self) -> str:
        return " ".join(fold(self.reply.text).split())

    @property
    def entry_id(self) -> str | None:
        return self.result.entry.id if self.result.entry is not None else None


def ask(
    knowledge: Knowledge,
    message: str,
    previous: Turn | None = None,
    *,
    level: str | None = None,
) -> Seen:
    result = knowledge.search(message, previous, asker_level=level)
    return Seen(result, result_reply(result))


def converse(knowledge: Knowledge, first: str, second: str) -> Seen:
    """Two messages in one conversation; the first turn kept as the app keeps it (JSON)."""
    earlier = ask(knowledge, first)
    assert earlier.result.turn is not None
    stored = json.loads(json.dumps(earlier.result.turn.to_json()))
    return ask(knowledge, second, Turn.from_json(stored))


def says_not_stated(seen: Seen) -> bool:
    return any(phrase in seen.folded for phrase in ("khong neu", "khong nhac den", "khong ghi"))


def assert_answered(seen: Seen, entry_id: str) -> None:
    assert seen.result.matched, (seen.result.reason, seen.entry_id)
    assert seen.result.reason == "ok"
    assert seen.entry_id == entry_id


def assert_not_stated(seen: Seen, entry_id: str) -> None:
    assert not seen.result.matched
    assert seen.result.reason == "not_stated", (seen.result.reason, seen.entry_id)
    assert seen.entry_id == entry_id
    assert says_not_stated(seen), seen.text
    assert seen.reply.footer is not None and seen.reply.footer.startswith("Đã đối chiếu")


# --------------------------------------------------------------------------- deadlines by level


@pytest.mark.parametrize(
    "message",
    [
        "Tỉnh ủy phải đại hội xong khi nào?",
        "tinh uy phai dai hoi xong truoc thang may",
        "Đảng ủy thành phố Đà Nẵng phải hoàn thành đại hội trước thời điểm nào?",
        "Thành ủy Hà Nội phải tổ chức xong đại hội trước tháng mấy?",
        "Đại hội Đảng bộ TP.HCM hạn chót là tháng mấy?",
        "Đại hội đảng bộ tỉnh Nghệ An hạn chót khi nào?",
        "Đại hội tỉnh phải xong khi nào?",
        pytest.param(
            "Tỉnh Quảng Ninh phải đại hội xong khi nào?",
        ),
        pytest.param(
            "Theo phương châm tiết kiệm, đại hội đảng bộ tỉnh phải xong khi nào?",
        ),
    ],
)
def test_a_provincial_congress_is_due_in_october(knowledge: Knowledge, message: str) -> None:
    seen = ask(knowledge, message)
    assert_answered(seen, PROVINCE_ENTRY)
    assert "thang 10" in seen.folded
    assert "thang 8" not in seen.folded


@pytest.mark.parametrize(
    "message",
    [
        "Phường chúng tôi phải tổ chức đại hội xong trước khi nào?",
        "Hạn đại hội của đảng bộ xã là bao giờ vậy?",
        "dang bo phuong phai dai hoi xong truoc thang may",
        "Đại hội đảng bộ đặc khu Phú Quốc phải xong trước tháng mấy?",
        "Đảng ủy phường Bến Nghé phải hoàn thành đại hội trước khi nào?",
        "Đảng bộ cấp trên trực tiếp của tổ chức cơ sở đảng phải xong đại hội trong tháng nào?",
    ],
)
def test_a_commune_ward_or_special_zone_congress_is_due_in_august(
    knowledge: Knowledge, message: str
) -> None:
    seen = ask(knowledge, message)
    assert_answered(seen, COMMUNE_ENTRY)
    assert "thang 8" in seen.folded
    assert "thang 10" not in seen.folded


@pytest.mark.parametrize(
    "message",
    [
        "Chi bộ khu phố phải xong đại hội trước ngày nào?",
        "Chi bộ thôn tổ chức đại hội hạn chót khi nào vậy?",
        "Đảng bộ cơ sở trong doanh nghiệp phải đại hội xong trước tháng mấy?",
    ],
)
def test_the_grassroots_deadline_is_not_stated(knowledge: Knowledge, message: str) -> None:
    assert_not_stated(ask(knowledge, message), GRASSROOTS_NOT_STATED)


@pytest.mark.parametrize(
    "message",
    [
        "Huyện ủy phải xong đại hội khi nào?",
        "Đảng bộ huyện đảo Cô Tô đại hội hạn khi nào?",
        "Huyện đảo Lý Sơn phải xong đại hội tháng mấy?",
        "Quận ủy phải đại hội trước tháng nào?",
        pytest.param(
            "Đảng bộ thị xã phải đại hội xong khi nào?",
        ),
        pytest.param(
            "Cấp huyện có phải tổ chức đại hội không?",
        ),
    ],
)
def test_the_district_deadline_is_not_stated(knowledge: Knowledge, message: str) -> None:
    assert_not_stated(ask(knowledge, message), DISTRICT_NOT_STATED)


def test_a_congress_deadline_without_any_level_gives_both_deadlines(
    knowledge: Knowledge,
) -> None:
    seen = ask(knowledge, "Đại hội phải xong khi nào?")
    assert "thang 8" in seen.folded
    assert "thang 10" in seen.folded


# --------------------------------------------------------------------------- the asker's level


@pytest.mark.parametrize(
    ("level", "entry_id", "month", "other"),
    [
        ("xa", COMMUNE_ENTRY, "thang 8", "thang 10"),
        ("truc_thuoc_tw", PROVINCE_ENTRY, "thang 10", "thang 8"),
    ],
)
@pytest.mark.parametrize(
    "message",
    ["đại hội phải xong khi nào?", "Đại hội của đơn vị tôi phải hoàn thành trước tháng mấy?"],
)
def test_the_askers_level_decides_the_deadline(
    knowledge: Knowledge, message: str, level: str, entry_id: str, month: str, other: str
) -> None:
    seen = ask(knowledge, message, level=level)
    assert_answered(seen, entry_id)
    assert month in seen.folded
    assert other not in seen.folded


@pytest.mark.parametrize(
    ("message", "level", "entry_id"),
    [
        ("Đại hội đảng bộ tỉnh phải xong khi nào?", "xa", PROVINCE_ENTRY),
        ("Đảng bộ phường phải xong đại hội khi nào?", "truc_thuoc_tw", COMMUNE_ENTRY),
    ],
)
def test_a_level_named_in_the_question_wins_over_the_askers(
    knowledge: Knowledge, message: str, level: str, entry_id: str
) -> None:
    assert_answered(ask(knowledge, message, level=level), entry_id)


# --------------------------------------------------------------------------- what is not given


@pytest.mark.parametrize(
    "message",
    [
        "Bộ Chính trị làm việc với Thành ủy TP.HCM ngày nào?",
        "Bộ Chính trị làm việc với Thành ủy Thành phố Hồ Chí Minh để cho ý kiến văn kiện "
        "vào ngày nào?",
        "Tổng Bí thư làm việc với Đà Nẵng ngày nào?",
        "Bộ Chính trị làm việc với Thành ủy Hải Phòng vào hôm nào?",
    ],
)
def test_a_working_session_with_another_city_is_not_hanois(
    knowledge: Knowledge, message: str
) -> None:
    seen = ask(knowledge, message)
    assert not seen.result.matched
    assert "21/8" not in seen.text


def test_the_working_session_with_hanoi_is_answered(knowledge: Knowledge) -> None:
    seen = ask(knowledge, "Bộ Chính trị làm việc với Thành ủy Hà Nội hôm nào?")
    assert_answered(seen, "lam-viec-thanh-uy-ha-noi-21-8")
    assert "21/8" in seen.text


def test_a_citys_own_congress_date_is_not_stated(knowledge: Knowledge) -> None:
    seen = ask(knowledge, "Đảng bộ thành phố Đà Nẵng đại hội vào ngày nào?")
    assert not seen.result.matched
    assert seen.result.reason == "not_stated"
    assert "khong neu ngay cu the" in seen.folded
    assert "thang 10" in seen.folded


@pytest.mark.parametrize(
    "message",
    [
        "Hiện nay ai đang giữ chức Thường trực Ban Bí thư?",
        "Ai là Tổng Bí thư bây giờ?",
        "Trưởng ban Tổ chức Trung ương hiện tại là ai?",
        "Đồng chí Trần Cẩm Tú hiện nay giữ chức gì?",
        "Ai là Chủ nhiệm Ủy ban Kiểm tra Trung ương hiện nay?",
    ],
)
def test_who_holds_a_post_today_is_not_answered(knowledge: Knowledge, message: str) -> None:
    seen = ask(knowledge, message)
    assert not seen.result.matched
    assert seen.result.reason != "ok"


@pytest.mark.parametrize(
    ("message", "entry_id"),
    [
        ("Hội nghị Trung ương 13 bao giờ diễn ra?", PLENUM_13_NOT_STATED),
        ("Hội nghị Trung ương 13 họp mấy ngày?", PLENUM_13_NOT_STATED),
        ("Đại hội XIV của Đảng khai mạc ngày nào?", CONGRESS_14_NOT_STATED),
        ("Đại hội 14 tổ chức vào tháng mấy?", CONGRESS_14_NOT_STATED),
        ("Kết luận phiên họp 29/8 được ban hành ngày nào?", KL_29_8_NUMBER_NOT_STATED),
        ("Kết luận ngày 29/8 là kết luận số bao nhiêu?", KL_29_8_NUMBER_NOT_STATED),
        pytest.param(
            "Số hiệu kết luận 29/8 là gì?",
            KL_29_8_NUMBER_NOT_STATED,
        ),
        pytest.param(
            "Kết luận phiên họp 29/8 ký ngày nào?",
            KL_29_8_NUMBER_NOT_STATED,
        ),
    ],
)
def test_a_date_or_number_the_sources_do_not_give(
    knowledge: Knowledge, message: str, entry_id: str
) -> None:
    assert_not_stated(ask(knowledge, message), entry_id)


# --------------------------------------------------------------------------- entity agreement


@pytest.mark.parametrize(
    "message",
    [
        "Đồng chí nào đã ký Kết luận 185?",
        "Kết luận 185 do đồng chí nào ký, chức vụ gì?",
        "Kết luận 185 do ai ký và ký với tư cách gì?",
        pytest.param(
            "Tôi đang xem Kết luận 185. Văn bản đó ai ký?",
        ),
    ],
)
def test_the_signer_of_conclusion_185(knowledge: Knowledge, message: str) -> None:
    seen = ask(knowledge, message)
    assert_answered(seen, "kl-185-nguoi-ky")
    assert "Trần Cẩm Tú" in seen.text
    assert "Thường trực Ban Bí thư" in seen.text
    assert "T/M" not in seen.text


@pytest.mark.parametrize(
    "message",
    [
        "Ai ký kết luận phiên họp 29/8?",
        "Kết luận phiên họp 29/8 do ai ký và thay mặt cơ quan nào?",
        "Kết luận ngày 29/8 ký thay mặt cơ quan nào?",
        "Kết luận ngày 29/8 (không phải Kết luận 185) do ai ký?",
        pytest.param(
            "Ai ký kết luận, không phải Kết luận 185 mà là kết luận phiên họp 29/8?",
        ),
    ],
)
def test_the_signer_of_the_29_8_conclusion(knowledge: Knowledge, message: str) -> None:
    seen = ask(knowledge, message)
    assert_answered(seen, "nguoi-ky-kl-29-8")
    assert "Trần Cẩm Tú" in seen.text
    assert "T/M BỘ CHÍNH TRỊ" in seen.text
    assert "Thường trực" not in seen.text


@pytest.mark.parametrize(
    "message", ["Chỉ thị 45 được ban hành ngày bao nhiêu?", "Ngày ký Chỉ thị 45?"]
)
def test_the_date_of_directive_45(knowledge: Knowledge, message: str) -> None:
    seen = ask(knowledge, message)
    assert_answered(seen, "quan-triet-chi-thi-45")
    assert "14/4/2025" in seen.text
    assert "28/8" not in seen.text


@pytest.mark.parametrize(
    "message",
    [
        "Báo cáo 447 của Văn phòng Trung ương đề ngày bao nhiêu?",
        "Báo cáo số 447 được lập ngày mấy?",
    ],
)
def test_the_date_of_report_447(knowledge: Knowledge, message: str) -> None:
    seen = ask(knowledge, message)
    assert_answered(seen, "bao-cao-447-bc-vptw")
    assert "28/8/2025" in seen.text
    assert "14/4" not in seen.text


@pytest.mark.parametrize(
    "message",
    [
        "Hội nghị Trung ương 12 họp khi nào?",
        "Hội nghị Trung ương 12 bàn những nội dung gì?",
        "Nội dung trình Hội nghị Trung ương 12 do ai chuẩn bị?",
    ],
)
def test_a_question_about_plenum_12_is_not_answered_with_plenum_13(
    knowledge: Knowledge, message: str
) -> None:
    seen = ask(knowledge, message)
    assert not seen.result.matched
    assert "Hội nghị Trung ương 13" not in seen.text


def test_plenum_13_is_answered(knowledge: Knowledge) -> None:
    seen = ask(knowledge, "Các tiểu ban phải chuẩn bị nội dung gì trình Hội nghị Trung ương 13?")
    assert_answered(seen, "tieu-ban-chuan-bi-dai-hoi-xiv")
    assert "Hội nghị Trung ương 13" in seen.text


@pytest.mark.parametrize(
    "message",
    [
        "Các tiểu ban phải chuẩn bị nội dung trình Hội nghị Trung ương 12 phải không?",
        "Kết luận 185 yêu cầu các tiểu ban chuẩn bị nội dung trình Hội nghị Trung ương 12, "
        "đúng không?",
    ],
)
def test_a_yes_no_claim_about_plenum_12_is_corrected_with_13(
    knowledge: Knowledge, message: str
) -> None:
    seen = ask(knowledge, message)
    assert seen.text.startswith("Không đúng")
    assert "13" in seen.text


def test_congress_14_is_answered(knowledge: Knowledge) -> None:
    seen = ask(knowledge, "Đại hội XIV là đại hội nào?")
    assert_answered(seen, "dai-hoi-xiv")
    assert "lần thứ XIV" in seen.text


@pytest.mark.parametrize(
    "message",
    [
        "Đại hội XIII có tên đầy đủ là gì?",
        "Đại hội lần thứ XIII là đại hội nào?",
        "Đại hội 13 là đại hội gì?",
        "Đại hội XIII khai mạc khi nào?",
    ],
)
def test_a_question_about_congress_13_is_not_answered_with_14(
    knowledge: Knowledge, message: str
) -> None:
    seen = ask(knowledge, message)
    assert not seen.result.matched
    assert "XIV" not in seen.text


def test_a_yes_no_claim_about_congress_13_is_corrected(knowledge: Knowledge) -> None:
    seen = ask(knowledge, "Đại hội đảng bộ các cấp lần này tiến tới Đại hội XIII phải không?")
    assert seen.text.startswith("Không đúng")
    assert "XIV" in seen.text


# --------------------------------------------------------------------------- plans


@pytest.mark.parametrize(
    "message",
    [
        "Tỉnh tôi dự kiến tổ chức đại hội vào giữa tháng 11/2025. Như vậy có đúng tiến độ không?",
        "Thường vụ tỉnh ủy đang tính lùi đại hội sang tháng 11 cho kịp chuẩn bị nhân sự. "
        "Như thế có được không?",
        "tỉnh mình đh giữa tháng 11 có kịp ko",
        "Tỉnh ủy dự kiến tổ chức đại hội từ 28/10 đến 2/11 có đúng hạn không?",
        pytest.param(
            "Đại hội tỉnh dự kiến giữa tháng 11 có được không?",
        ),
    ],
)
def test_a_province_planning_its_congress_after_october_is_late(
    knowledge: Knowledge, message: str
) -> None:
    seen = ask(knowledge, message)
    assert_answered(seen, PROVINCE_ENTRY)
    assert seen.result.verdict is False
    assert seen.text.startswith("Chưa đúng tiến độ")
    assert "thang 10" in seen.folded


def test_a_province_planning_the_end_of_october_is_in_time(knowledge: Knowledge) -> None:
    seen = ask(knowledge, "Tỉnh ủy tính tổ chức đại hội vào cuối tháng 10, có kịp không?")
    assert_answered(seen, PROVINCE_ENTRY)
    assert seen.result.verdict is True
    assert seen.text.startswith("Đúng tiến độ")


def test_a_province_planning_the_fourth_quarter_is_only_in_time_if_early(
    knowledge: Knowledge,
) -> None:
    seen = ask(knowledge, "Tỉnh tôi dự kiến đại hội quý IV có được không?")
    assert_answered(seen, PROVINCE_ENTRY)
    assert seen.result.verdict is None
    assert seen.text.startswith("Chỉ kịp nếu")
    assert "31/10/2025" in seen.text


@pytest.mark.parametrize(
    "message",
    [
        "Xã em định tổ chức đại hội vào giữa tháng 8. Làm vậy có được không?",
        "Đảng bộ phường dự kiến đại hội hai ngày 30 và 31/8 có kịp không?",
    ],
)
def test_a_commune_planning_august_is_in_time(knowledge: Knowledge, message: str) -> None:
    seen = ask(knowledge, message)
    assert_answered(seen, COMMUNE_ENTRY)
    assert seen.result.verdict is True
    assert seen.text.startswith("Đúng tiến độ")
    assert "thang 8" in seen.folded


@pytest.mark.parametrize(
    "message",
    [
        "Ban Thường vụ Đảng ủy phường dự kiến tổ chức đại hội vào đầu tháng 9 để kịp chuẩn bị "
        "văn kiện. Làm vậy có được không?",
        "Ban Thường vụ tính lùi đại hội đảng bộ xã sang tháng 9 có được không?",
        pytest.param(
            "xã em đại hội tháng 9 đc ko",
        ),
        pytest.param(
            "Xã em định đại hội vào t9 được không?",
        ),
    ],
)
def test_a_commune_planning_september_is_late(knowledge: Knowledge, message: str) -> None:
    seen = ask(knowledge, message)
    assert_answered(seen, COMMUNE_ENTRY)
    assert seen.result.verdict is False
    assert seen.text.startswith("Chưa đúng tiến độ")
    assert "thang 8" in seen.folded


@pytest.mark.parametrize(
    "message",
    [
        "Đảng ủy xã dự định lùi chương trình hành động thực hiện nghị quyết sang quý IV. "
        "Như vậy có được không?",
        "Xã chúng tôi dự kiến ban hành quy chế làm việc vào tháng 9 có được không?",
    ],
)
def test_the_action_programme_after_august_is_late(knowledge: Knowledge, message: str) -> None:
    seen = ask(knowledge, message)
    assert_answered(seen, PROGRAMME_ENTRY)
    assert seen.result.verdict is False
    assert seen.text.startswith("Chưa đúng tiến độ")
    assert "thang 8" in seen.folded


@pytest.mark.parametrize(
    ("message", "verdict", "start"),
    [
        ("Xã dự định tập huấn cấp ủy viên vào đầu tháng 9, có được không?", True, "Đúng tiến độ"),
        (
            "Đảng ủy xã định hè năm sau mới tổ chức tập huấn bồi dưỡng cấp ủy viên, được không?",
            False,
            "Chưa đúng tiến độ",
        ),
    ],
)
def test_training_is_due_in_september(
    knowledge: Knowledge, message: str, verdict: bool, start: str
) -> None:
    seen = ask(knowledge, message)
    assert_answered(seen, TRAINING_ENTRY)
    assert seen.result.verdict is verdict
    assert seen.text.startswith(start)
    assert "thang 9" in seen.folded


def test_the_verdict_quotes_the_plan_as_written(knowledge: Knowledge) -> None:
    seen = ask(
        knowledge,
        "Tỉnh tôi dự kiến tổ chức đại hội vào giữa tháng 11/2025. Như vậy có đúng tiến độ không?",
    )
    assert "«giữa tháng 11/2025»" in seen.text


# --------------------------------------------------------------------------- yes/no claims


@pytest.mark.parametrize(
    "message",
    [
        "Kết luận 185 có phải do Tổng Bí thư ký không?",
        "Kết luận 185 là do Tổng Bí thư Tô Lâm ký, đúng không?",
        "Kết luận 185 do Chủ tịch nước ký đúng không?",
    ],
)
def test_a_wrong_claim_about_the_signer_of_185(knowledge: Knowledge, message: str) -> None:
    seen = ask(knowledge, message)
    assert seen.result.matched
    assert seen.result.verdict is False
    assert seen.text.startswith("Không đúng.")
    assert "Trần Cẩm Tú" in seen.text


@pytest.mark.parametrize(
    "message",
    [
        "Kết luận 185 có phải do Thường trực Ban Bí thư Trần Cẩm Tú ký không?",
        "Kết luận 185 do Thường trực Ban Bí thư ký đúng không?",
        "Kết luận 185 có phải do đồng chí Trần Cẩm Tú ký không?",
    ],
)
def test_a_right_claim_about_the_signer_of_185(knowledge: Knowledge, message: str) -> None:
    seen = ask(knowledge, message)
    assert seen.result.matched
    assert seen.result.verdict is True
    assert seen.text.startswith("Đúng.")
    assert "Trần Cẩm Tú" in seen.text


@pytest.mark.parametrize(
    ("message", "verdict", "start"),
    [
        ("Kết luận phiên họp 29/8 có phải do Tổng Bí thư Tô Lâm ký không?", False, "Không đúng."),
        ("Kết luận 29/8 do đồng chí Trần Cẩm Tú ký phải không?", True, "Đúng."),
    ],
)
def test_claims_about_the_signer_of_the_29_8_conclusion(
    knowledge: Knowledge, message: str, verdict: bool, start: str
) -> None:
    seen = ask(knowledge, message)
    assert seen.entry_id == "nguoi-ky-kl-29-8"
    assert seen.result.verdict is verdict
    assert seen.text.startswith(start)


@pytest.mark.parametrize(
    ("body", "verdict", "start"),
    [
        ("Ban Tổ chức Trung ương", True, "Đúng."),
        ("Ban Tuyên giáo và Dân vận Trung ương", False, "Không đúng."),
    ],
)
def test_claims_about_which_body_follows_up_the_congresses(
    knowledge: Knowledge, body: str, verdict: bool, start: str
) -> None:
    seen = ask(knowledge, f"Có phải {body} được giao theo dõi, đôn đốc tiến độ đại hội không?")
    assert seen.entry_id == "ban-to-chuc-ubkt-theo-doi-don-doc"
    assert seen.result.verdict is verdict
    assert seen.text.startswith(start)


def test_a_wrong_date_claim_is_corrected(knowledge: Knowledge) -> None:
    seen = ask(knowledge, "Báo cáo 447 đề ngày 29/8 phải không?")
    assert seen.text.startswith("Không đúng")
    assert "28/8/2025" in seen.text


# --------------------------------------------------------------------------- follow-ups


@pytest.mark.parametrize(
    ("first", "second", "entry_id", "words"),
    [
        (
            "Đảng bộ phường phải hoàn thành đại hội khi nào?",
            "Còn cấp tỉnh thì sao?",
            PROVINCE_ENTRY,
            "thang 10",
        ),
        (
            "Đại hội đảng bộ tỉnh phải xong khi nào?",
            "Thế còn cấp xã?",
            COMMUNE_ENTRY,
            "thang 8",
        ),
        ("Đồng chí nào đã ký Kết luận 185?", "Ký ngày nào?", "kl-185-ngay-ban-hanh", "22/8"),
        (
            "Ủy ban Kiểm tra Trung ương được giao giám sát việc gì theo Kết luận 185?",
            "Phối hợp với ai?",
            "ubkt-giam-sat-dai-hoi",
            "ban thuong vu tinh uy",
        ),
        (
            "Học viện Chính trị quốc gia Hồ Chí Minh được giao việc gì?",
            "Chương trình đó ưu tiên đối tượng nào?",
            "hoc-vien-chinh-tri-quoc-gia",
            "can bo chu chot",
        ),
        ("Kết luận 29/8 do ai ký?", "Ký với tư cách gì?", "nguoi-ky-kl-29-8", "t/m bo chinh tri"),
        ("Chỉ thị 45 ban hành ngày nào?", "Còn báo cáo 447?", "bao-cao-447-bc-vptw", "28/8"),
        pytest.param(
            "Đồng chí nào đã ký Kết luận 185?",
            "Còn kết luận 29/8 thì sao?",
            "nguoi-ky-kl-29-8",
            "t/m bo chinh tri",
        ),
    ],
)
def test_a_follow_up_is_answered_from_the_previous_turn(
    knowledge: Knowledge, first: str, second: str, entry_id: str, words: str
) -> None:
    seen = converse(knowledge, first, second)
    assert_answered(seen, entry_id)
    assert words in seen.folded


def test_the_issue_date_of_the_29_8_conclusion_as_a_follow_up(knowledge: Knowledge) -> None:
    seen = converse(knowledge, "Ai ký kết luận phiên họp 29/8?", "Ký ngày nào?")
    assert_not_stated(seen, KL_29_8_NUMBER_NOT_STATED)


@pytest.mark.parametrize(
    ("second", "entry_id"),
    [("Còn chi bộ thì sao?", GRASSROOTS_NOT_STATED), ("Còn huyện thì sao?", DISTRICT_NOT_STATED)],
)
def test_a_follow_up_about_a_level_without_a_deadline(
    knowledge: Knowledge, second: str, entry_id: str
) -> None:
    seen = converse(knowledge, "Đại hội đảng bộ tỉnh phải xong khi nào?", second)
    assert_not_stated(seen, entry_id)


@pytest.mark.parametrize(
    ("first", "second", "entry_id"),
    [
        (
            "Đồng chí nào đã ký Kết luận 185?",
            "Báo cáo 447 do cơ quan nào trình?",
            "bao-cao-447-bc-vptw",
        ),
        (
            "Ai ký kết luận phiên họp 29/8?",
            "Học viện Chính trị quốc gia Hồ Chí Minh được giao nhiệm vụ gì?",
            "hoc-vien-chinh-tri-quoc-gia",
        ),
        pytest.param(
            "Ai ký kết luận phiên họp 29/8?",
            "Học viện Chính trị quốc gia Hồ Chí Minh được giao nhiệm vụ gì nhỉ?",
            "hoc-vien-chinh-tri-quoc-gia",
        ),
    ],
)
def test_a_new_full_question_is_answered_on_its_own(
    knowledge: Knowledge, first: str, second: str, entry_id: str
) -> None:
    assert_answered(converse(knowledge, first, second), entry_id)


def test_a_new_question_after_a_turn_can_be_not_stated(knowledge: Knowledge) -> None:
    seen = converse(
        knowledge, "Đồng chí nào đã ký Kết luận 185?", "Hội nghị Trung ương 13 sẽ họp vào lúc nào?"
    )
    assert_not_stated(seen, PLENUM_13_NOT_STATED)


@pytest.mark.parametrize(
    "message",
    [
        "Còn cấp tỉnh thì sao?",
        "Ký ngày nào?",
        "Phối hợp với ai?",
        "Chương trình đó ưu tiên đối tượng nào?",
    ],
)
def test_a_follow_up_with_nothing_before_it_asks_for_more(
    knowledge: Knowledge, message: str
) -> None:
    seen = ask(knowledge, message)
    assert not seen.result.matched
    assert seen.result.reason == "followup"
    assert seen.text == FOLLOWUP_ALONE


def test_every_search_remembers_its_turn(knowledge: Knowledge) -> None:
    seen = ask(knowledge, "Đồng chí nào đã ký Kết luận 185?")
    turn = seen.result.turn
    assert turn is not None
    assert turn.entry_id == "kl-185-nguoi-ky"
    assert turn.mentions.documents == {"kl_185"}


# --------------------------------------------------------------------------- several questions


@pytest.mark.parametrize(
    ("message", "first", "second"),
    [
        (
            "Kết luận 185 do đồng chí nào ký? Chỉ thị 45 được ban hành hôm nào?",
            "kl-185-nguoi-ky",
            "quan-triet-chi-thi-45",
        ),
        (
            "Cho tôi hỏi hai việc: đại hội đảng bộ xã phải xong khi nào? Và Học viện Chính trị "
            "quốc gia được giao nhiệm vụ gì?",
            COMMUNE_ENTRY,
            "hoc-vien-chinh-tri-quoc-gia",
        ),
        (
            "Kết luận 185 do ai ký? Kết luận 29/8 gửi những nơi nào?",
            "kl-185-nguoi-ky",
            "noi-nhan-kl-29-8",
        ),
    ],
)
def test_a_second_question_is_offered_as_related(
    knowledge: Knowledge, message: str, first: str, second: str
) -> None:
    seen = ask(knowledge, message)
    assert_answered(seen, first)
    assert [entry.id for entry in seen.result.related] == [second]
    assert RELATED_HEADER in seen.text
    assert [b.payload for row in seen.reply.buttons for b in row] == [
        f"{SUGGESTION_PREFIX}{second}"
    ]


def test_a_single_question_has_nothing_related(knowledge: Knowledge) -> None:
    seen = ask(knowledge, "Chào bot. Đồng chí nào đã ký Kết luận 185 vậy? Cảm ơn nhiều.")
    assert_answered(seen, "kl-185-nguoi-ky")
    assert seen.result.related == ()
    assert seen.reply.buttons == ()


# --------------------------------------------------------------------------- wrapped questions


@pytest.mark.parametrize(
    ("message", "entry_id"),
    [
        (
            "Chào bot, em là chuyên viên Ban Tổ chức Đảng ủy xã Tân Lập. Cho em hỏi hạn tập "
            "huấn cấp ủy viên là khi nào? Em cảm ơn.",
            TRAINING_ENTRY,
        ),
        (
            "Xin chào trợ lý. Tôi là chuyên viên Văn phòng Tỉnh ủy, mới nhận việc. Đại hội phải "
            "hoàn thành khi nào ạ? Cảm ơn.",
            PROVINCE_ENTRY,
        ),
        (
            "Xin chào. Em công tác ở Đảng ủy phường. Cho em hỏi đại hội phải hoàn thành khi nào ạ?",
            COMMUNE_ENTRY,
        ),
        (
            "Tuần trước Bộ Chính trị có cuộc làm việc với Thành ủy Hà Nội. Cuộc làm việc ấy do ai "
            "chủ trì?",
            "lam-viec-thanh-uy-ha-noi-21-8",
        ),
        (
            "Đại hội cấp xã xong trong tháng 8; còn cấp tỉnh thì hạn cuối là bao giờ?",
            PROVINCE_ENTRY,
        ),
        ("Câu 2: Chỉ thị 45 ban hành ngày nào?", "quan-triet-chi-thi-45"),
    ],
)
def test_a_question_wrapped_in_a_message_is_answered(
    knowledge: Knowledge, message: str, entry_id: str
) -> None:
    assert_answered(ask(knowledge, message), entry_id)


# --------------------------------------------------------------------------- not questions


@pytest.mark.parametrize(
    "message",
    [
        "chúc mọi người buổi sáng vui vẻ",
        "Chúc các đồng chí một tuần làm việc hiệu quả!",
        "Chúc mừng năm mới cả nhà",
        "cảm ơn nhé",
        "Cảm ơn trợ lý nhiều nhé",
        "qwertyuiop asdf",
        "sdfgh jklzx",
        "giá vàng hôm nay",
        "Giá xăng hôm nay bao nhiêu?",
        "Tối nay ăn gì cho ngon?",
        "kết quả bóng đá tối qua",
        "Ngày mai Hà Nội có mưa không?",
        pytest.param(
            "Hà Nội hôm nay bao nhiêu độ?",
        ),
        pytest.param(
            "Thời tiết Hà Nội chiều mai thế nào?",
        ),
        pytest.param(
            "Em chào anh chị ạ.",
        ),
    ],
)
def test_chit_chat_and_gibberish_get_no_answer_and_no_suggestions(
    knowledge: Knowledge, message: str
) -> None:
    seen = ask(knowledge, message)
    assert not seen.result.matched
    assert seen.result.entry is None
    assert seen.result.suggestions == ()
    assert seen.reply.buttons == ()


@pytest.mark.parametrize("message", ["cảm ơn nhé", "Em cảm ơn anh chị nhiều ạ."])
def test_thanks_are_acknowledged(knowledge: Knowledge, message: str) -> None:
    seen = ask(knowledge, message)
    assert seen.result.reason == "no_question"
    assert seen.text == THANKS


def test_a_greeting_is_answered_with_a_greeting(knowledge: Knowledge) -> None:
    seen = ask(knowledge, "Chào bot!")
    assert seen.result.reason == "no_question"
    assert seen.text.startswith("Xin chào đồng chí")
