"""What a message asks: knowledge.understand.focus() and is_question().

Officials wrap their question in greetings, thanks and their own story, number their
questions, refer back to a plan they just described, or ask several things at once. These
tests pin what focus() keeps as the text to search (``query``), what it sets aside
(``background``) and the flags the search relies on (``plan``, ``yesno``, ``negated``,
``others``, ``no_question``).
"""

from __future__ import annotations

import pytest

from knowledge.normalize import fold
from knowledge.understand import focus, is_question


def folded(text: str) -> str:
    return " ".join(fold(text).split())


# --------------------------------------------------------------------------- greetings, thanks


@pytest.mark.parametrize(
    ("message", "question"),
    [
        (
            "Chào bot, em là chuyên viên Ban Tổ chức Đảng ủy xã Tân Lập. Cho em hỏi hạn tập "
            "huấn cấp ủy viên là khi nào? Em cảm ơn.",
            "Cho em hỏi hạn tập huấn cấp ủy viên là khi nào?",
        ),
        (
            "Dạ chào anh chị ạ. Hạn đại hội đảng bộ phường là khi nào ạ? Em xin cảm ơn.",
            "Hạn đại hội đảng bộ phường là khi nào ạ?",
        ),
        ("Alo bot ơi. Ai ký Kết luận 185 vậy?", "Ai ký Kết luận 185 vậy?"),
        (
            "Kính gửi trợ lý, tôi là Phó Bí thư Đảng ủy phường Ba Đình. Đảng bộ phường phải "
            "đại hội xong trước tháng mấy? Trân trọng cảm ơn.",
            "Đảng bộ phường phải đại hội xong trước tháng mấy?",
        ),
    ],
)
def test_greeting_and_thanks_are_not_searched(message: str, question: str) -> None:
    asked = focus(message)
    assert asked.query == question
    assert asked.question == question
    assert not asked.no_question
    assert "chao" not in folded(asked.query)
    assert "cam on" not in folded(asked.query)


def test_the_askers_story_is_kept_as_background() -> None:
    asked = focus(
        "Xin chào trợ lý. Tôi là bí thư chi bộ, mới được phân công phụ trách công tác tổ "
        "chức ở phường. Đại hội đảng bộ phường phải hoàn thành khi nào?"
    )
    assert asked.query == "Đại hội đảng bộ phường phải hoàn thành khi nào?"
    assert "phụ trách công tác tổ chức ở phường" in asked.background
    assert "bí thư chi bộ" in asked.background
    assert "xin chao" not in folded(asked.background)


def test_a_story_unrelated_to_a_full_question_stays_out_of_the_query() -> None:
    asked = focus(
        "Xã tôi vừa họp chi bộ xong. Học viện Chính trị quốc gia Hồ Chí Minh được giao nhiệm vụ gì?"
    )
    assert asked.query == "Học viện Chính trị quốc gia Hồ Chí Minh được giao nhiệm vụ gì?"
    assert asked.background == "Xã tôi vừa họp chi bộ xong."


# --------------------------------------------------------------------------- plans and pointers


@pytest.mark.parametrize(
    ("plan", "question"),
    [
        (
            "Ban Thường vụ dự kiến lùi đại hội đảng bộ tỉnh sang tháng 11.",
            "Làm vậy có được không?",
        ),
        (
            "Đảng ủy phường đang tính lùi đại hội sang đầu tháng 9.",
            "Như vậy có được không?",
        ),
        ("Ban Thường vụ dự kiến đại hội giữa tháng 11.", "Có kịp không?"),
    ],
)
def test_a_plan_stated_before_the_question_is_searched_with_it(plan: str, question: str) -> None:
    asked = focus(f"{plan} {question}")
    assert asked.query == f"{plan} {question}"
    assert asked.question == question
    assert asked.plan is True
    assert asked.yesno is True


def test_a_plan_inside_the_question_sets_plan() -> None:
    asked = focus("Chúng tôi định tổ chức đại hội xã vào cuối tháng 9, được không?")
    assert asked.plan is True
    assert asked.yesno is True


def test_a_plain_question_is_not_a_plan() -> None:
    asked = focus("Đảng bộ tỉnh phải xong đại hội trước thời điểm nào?")
    assert asked.plan is False


@pytest.mark.parametrize(
    ("context", "question", "named"),
    [
        (
            "Văn phòng Trung ương vừa gửi Báo cáo 447.",
            "Báo cáo đó đề ngày nào?",
            "bao cao 447",
        ),
        (
            "Tuần trước Bộ Chính trị có cuộc làm việc với Thành ủy Hà Nội.",
            "Cuộc làm việc ấy do ai chủ trì?",
            "thanh uy ha noi",
        ),
    ],
)
def test_a_pointer_pulls_in_the_sentence_it_refers_to(
    context: str, question: str, named: str
) -> None:
    asked = focus(f"{context} {question}")
    assert asked.question == question
    assert asked.query == f"{context} {question}"
    assert named in folded(asked.query)
    assert asked.plan is False


@pytest.mark.parametrize(
    ("context", "question"),
    [
        ("Tôi đang xem Kết luận 185.", "Văn bản đó ai ký?"),
        ("Mình vừa đọc xong Kết luận 185.", "Kết luận đó do ai ký?"),
    ],
)
def test_a_pointer_to_a_document_the_asker_is_reading(context: str, question: str) -> None:
    asked = focus(f"{context} {question}")
    assert "ket luan 185" in folded(asked.query)


def test_a_pointer_does_not_pull_in_the_askers_introduction() -> None:
    asked = focus("Tôi là chuyên viên văn phòng. Văn bản đó ký ngày nào?")
    assert asked.query == "Văn bản đó ký ngày nào?"
    assert asked.background == "Tôi là chuyên viên văn phòng."


# --------------------------------------------------------------------------- contrast "còn Y"


@pytest.mark.parametrize(
    ("message", "about", "known"),
    [
        (
            "Đại hội cấp xã xong trong tháng 8; còn cấp tỉnh thì hạn cuối là bao giờ?",
            "cap tinh",
            "cap xa",
        ),
        (
            "Xã thì tôi biết rồi, còn đảng bộ tỉnh thì phải đại hội xong khi nào?",
            "dang bo tinh",
            "xa thi",
        ),
    ],
)
def test_a_contrast_asks_about_its_second_part(message: str, about: str, known: str) -> None:
    asked = focus(message)
    query = folded(asked.query)
    assert about in query
    assert known not in query
    assert known in folded(asked.background)


# --------------------------------------------------------------------------- list numbering


@pytest.mark.parametrize(
    ("message", "question"),
    [
        ("1. Kết luận 185 là do đồng chí nào ký?", "Kết luận 185 là do đồng chí nào ký?"),
        ("Câu 2: Chỉ thị 45 ban hành ngày nào?", "Chỉ thị 45 ban hành ngày nào?"),
        (
            "Hỏi 3 - Học viện Chính trị được giao nhiệm vụ gì?",
            "Học viện Chính trị được giao nhiệm vụ gì?",
        ),
        (
            "2) Ủy ban Kiểm tra Trung ương được giao gì?",
            "Ủy ban Kiểm tra Trung ương được giao gì?",
        ),
        ("Q4. Kết luận 185 mang chữ ký ai?", "Kết luận 185 mang chữ ký ai?"),
    ],
)
def test_list_numbering_is_removed(message: str, question: str) -> None:
    assert focus(message).query == question


def test_a_number_that_starts_the_question_is_not_numbering() -> None:
    message = "2025 - 2030 là nhiệm kỳ của cấp nào?"
    assert focus(message).query == message


# --------------------------------------------------------------------------- nothing asked


@pytest.mark.parametrize(
    "message",
    [
        "Chào bot!",
        "Em cảm ơn anh chị nhiều ạ.",
        "Xin chào, tôi là cán bộ Văn phòng Tỉnh ủy.",
        "Chào bot. Em là chuyên viên ban tổ chức. Em cảm ơn.",
        "Xin chào! Tôi là cán bộ mới của Ban Tổ chức Tỉnh ủy.",
        "Cảm ơn trợ lý nhiều nhé",
    ],
)
def test_a_message_that_only_greets_thanks_or_introduces_asks_nothing(message: str) -> None:
    assert focus(message).no_question is True


def test_a_greeting_starting_with_the_speaker_asks_nothing() -> None:
    assert focus("Em chào anh chị ạ.").no_question is True


def test_thanks_with_an_acknowledgement_asks_nothing() -> None:
    assert focus("Dạ em cảm ơn, em hiểu rồi ạ.").no_question is True


def test_a_question_is_never_taken_for_thanks() -> None:
    asked = focus("Cảm ơn bot. Còn tập huấn cấp ủy viên phải làm trong tháng nào?")
    assert not asked.no_question
    assert "tap huan" in folded(asked.query)


# --------------------------------------------------------------------------- yes/no


@pytest.mark.parametrize(
    "message",
    [
        "Kết luận 185 có phải do Tổng Bí thư ký không?",
        "Có phải Kết luận 185 do Tổng Bí thư ký không?",
        "Đại hội xã xong trong tháng 8, đúng không?",
        "Phường đại hội tháng 9 được không?",
        "Chi bộ có cần đại hội không?",
        "Kết luận 29/8 có được gửi cho các tỉnh ủy không?",
        "Kết luận 185 do đồng chí Trần Cẩm Tú ký phải không?",
        "xa minh dai hoi thang 9 duoc khong",
    ],
)
def test_yes_no_questions_are_detected(message: str) -> None:
    assert focus(message).yesno is True


@pytest.mark.parametrize(
    "message",
    [
        "Đồng chí nào ký Kết luận 185?",
        "Kết luận 29/8 do ai ký?",
        "Học viện Chính trị được giao nhiệm vụ gì?",
        "Đảng bộ tỉnh phải xong đại hội trước thời điểm nào?",
        "Kết luận 185 có những yêu cầu gì?",
        "Ai được tập huấn nghiệp vụ?",
    ],
)
def test_plain_questions_are_not_yes_no(message: str) -> None:
    assert focus(message).yesno is False


def test_chat_form_dc_ko_is_yes_no() -> None:
    assert focus("xã em đại hội tháng 9 đc ko").yesno is True


def test_a_which_question_with_khong_inside_is_not_yes_no() -> None:
    assert focus("Việc nào được giao mà không có thời hạn riêng?").yesno is False


# --------------------------------------------------------------------------- negation


@pytest.mark.parametrize(
    "message",
    [
        "Kết luận ngày 29/8 (không phải Kết luận 185) do ai ký?",
        "Kết luận nào (chứ không phải Kết luận 185) yêu cầu quán triệt Chỉ thị 45?",
        "Tôi hỏi về kết luận phiên họp, không phải kết luận 185. Ai ký?",
    ],
)
def test_what_the_asker_excludes_is_captured(message: str) -> None:
    assert focus(message).negated == ("ket luan 185",)


def test_nothing_is_negated_in_a_plain_question() -> None:
    assert focus("Kết luận 185 do ai ký?").negated == ()


def test_the_negation_stops_before_ma_la() -> None:
    asked = focus("Ai ký kết luận, không phải Kết luận 185 mà là kết luận phiên họp 29/8?")
    assert asked.negated == ("ket luan 185",)


# --------------------------------------------------------------------------- several questions


def test_several_questions_keep_the_first_and_list_the_others() -> None:
    asked = focus(
        "Kết luận 185 là do đồng chí nào ký? Chỉ thị 45 có từ ngày nào? Báo cáo 447 do ai trình?"
    )
    assert asked.query == "Kết luận 185 là do đồng chí nào ký?"
    assert asked.others == ("Chỉ thị 45 có từ ngày nào?", "Báo cáo 447 do ai trình?")


def test_a_single_question_has_no_others() -> None:
    assert focus("Chào bot. Kết luận 185 là do đồng chí nào ký? Cảm ơn.").others == ()


# --------------------------------------------------------------------------- is_question


@pytest.mark.parametrize(
    "text",
    [
        "Đồng chí nào ký Kết luận 185?",
        "ai la nguoi ky ket luan 185",
        "xã phải xong khi nào ạ",
        "xa phai xong khi nao a",
        "hạn đại hội tỉnh là bao giờ",
        "han dai hoi tinh la bao gio",
        "Kết luận 185 do ai ký nhỉ",
        "hạn đh tỉnh tháng mấy vậy",
        "xã em đại hội tháng 8 đc ko",
        "dc ko",
        "cho em hỏi hạn đại hội",
        "Ủy ban Kiểm tra Trung ương làm j",
        "đh xã xong chưa",
    ],
)
def test_questions_with_and_without_diacritics_and_in_chat_form(text: str) -> None:
    assert is_question(text) is True


@pytest.mark.parametrize(
    "text",
    [
        "",
        None,
        "Đại hội xã xong trong tháng 8.",
        "Em là chuyên viên văn phòng.",
        "Cảm ơn bot.",
        "tháng 8 hạn đại hội xã",
        "Xã tôi đã đại hội xong rồi.",
        "Đã nhận được thông báo.",
        "Tôi sẽ báo cáo sau",
        "Vâng ạ",
        "ok",
    ],
)
def test_statements_and_notes_are_not_questions(text: str | None) -> None:
    assert is_question(text) is False


@pytest.mark.parametrize("text", ["kl 185 ai ky z", "ct 45 ngay bn"])
def test_chat_questions_with_the_question_word_inside(text: str) -> None:
    assert is_question(text) is True
