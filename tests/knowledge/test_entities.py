"""What a text is about: the entity vocabulary (knowledge/entities.yaml) read through the
search analyzer, as EntityVocabulary.find() and locate() see it.

The entities decide which entry may answer a question (a commune's deadline is not a
province's; Kết luận 185 is not the 29/8 conclusion; Hà Nội is not Thành phố Hồ Chí Minh), so
a level found in "xã hội" or a province missed in "tỉnh Quảng Ninh" changes the answer an
official gets.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from knowledge.base import KnowledgeError
from knowledge.search import Analyzer, load_lexicon
from knowledge.understand import ENTITY_KINDS, EntityVocabulary, Mentions, load_entities


@cache
def analyzer() -> Analyzer:
    return Analyzer(load_lexicon())


@cache
def vocabulary() -> EntityVocabulary:
    return load_entities(analyzer().canonical)


def find(text: str) -> Mentions:
    return vocabulary().find(analyzer().canonical(text))


@cache
def known_ids() -> dict[str, frozenset[str]]:
    return {kind: frozenset(vocabulary().phrases[kind].values()) for kind in ENTITY_KINDS}


# --------------------------------------------------------------------------- levels


@pytest.mark.parametrize(
    ("text", "level"),
    [
        ("Đảng bộ xã Tân Lập phải đại hội xong khi nào?", "xa"),
        ("đại hội phường", "xa"),
        ("Đặc khu Phú Quốc", "xa"),
        ("dang bo xa", "xa"),
        ("Tỉnh ủy Nghệ An", "truc_thuoc_tw"),
        ("tinh uy", "truc_thuoc_tw"),
        ("thành ủy", "truc_thuoc_tw"),
        ("đảng bộ tỉnh", "truc_thuoc_tw"),
        ("cấp tỉnh", "truc_thuoc_tw"),
        ("tỉnh mình", "truc_thuoc_tw"),
        ("Đảng ủy thành phố Đà Nẵng", "truc_thuoc_tw"),
        ("đảng bộ trực thuộc Trung ương", "truc_thuoc_tw"),
        ("cấp trên trực tiếp của tổ chức cơ sở đảng", "cap_tren_co_so"),
        ("đảng bộ cấp trên cơ sở", "cap_tren_co_so"),
        ("chi bộ thôn", "co_so"),
        ("đảng bộ cơ sở", "co_so"),
        ("huyện", "huyen"),
        ("huyện đảo Lý Sơn", "huyen"),
        ("Huyện ủy", "huyen"),
        ("quận ủy", "huyen"),
    ],
)
def test_levels_are_found(text: str, level: str) -> None:
    assert find(text).levels == (level,)


@pytest.mark.parametrize(
    "text",
    [
        "xã hội",
        "tạo đồng thuận trong xã hội",
        "tổ chức chính trị - xã hội",
        "địa phương",
        "phương án nhân sự",
        "phương pháp làm việc",
        "tính lùi đại hội",
        "Ban Thường vụ tính tổ chức đại hội",
        "tính toán",
        "tỉnh táo",
        "xa xôi",
        "ở xa",
        "họp trực tuyến từ xa",
    ],
)
def test_words_that_fold_like_a_level_are_not_levels(text: str) -> None:
    assert find(text).levels == ()


def test_phuong_cham_is_not_a_ward() -> None:
    assert find("phương châm tiết kiệm").levels == ()


def test_remote_areas_are_not_communes() -> None:
    assert find("đảng bộ ở vùng sâu, vùng xa").levels == ()


def test_a_town_is_a_district_not_a_commune() -> None:
    assert find("Đảng bộ thị xã").levels == ("huyen",)


@pytest.mark.parametrize("text", ["Tỉnh Quảng Ninh", "tỉnh Nghệ An"])
def test_a_province_named_with_tinh_is_the_provincial_level(text: str) -> None:
    assert find(text).levels == ("truc_thuoc_tw",)


def test_dai_hoi_tinh_names_both_the_level_and_the_congress() -> None:
    mentions = find("đại hội tỉnh")
    assert mentions.levels == ("truc_thuoc_tw",)
    assert mentions.topics == {"dai_hoi"}


def test_levels_keep_the_order_of_mention() -> None:
    assert find("chi bộ trực thuộc đảng ủy xã").levels == ("co_so", "xa")
    assert find("đảng bộ phường có được đại hội cùng đợt với tỉnh ủy không").levels == (
        "xa",
        "truc_thuoc_tw",
    )


# --------------------------------------------------------------------------- bodies


@pytest.mark.parametrize(
    ("text", "body"),
    [
        ("Ủy ban Kiểm tra Trung ương", "ubkt_tw"),
        ("ubkt tw", "ubkt_tw"),
        ("UBKTW", "ubkt_tw"),
        ("Ủy ban Kiểm tra", "ubkt"),
        ("ủy ban kiểm tra đảng ủy", "ubkt_dang_uy"),
        ("Ban Tổ chức Trung ương", "ban_to_chuc_tw"),
        ("btc tw", "ban_to_chuc_tw"),
        ("Ban Tổ chức", "ban_to_chuc"),
        ("Ban Tuyên giáo và Dân vận Trung ương", "ban_tuyen_giao_dan_van_tw"),
        ("Ban Tuyên giáo Trung ương", "ban_tuyen_giao_tw_cu"),
        ("Học viện Chính trị quốc gia Hồ Chí Minh", "hoc_vien_ctqg"),
        ("Văn phòng Trung ương Đảng", "van_phong_tw"),
        ("các tiểu ban chuẩn bị đại hội", "tieu_ban_dai_hoi"),
    ],
)
def test_bodies_are_found_with_their_level(text: str, body: str) -> None:
    assert find(text).bodies == {body}


def test_the_central_inspection_commission_is_not_a_committees_own() -> None:
    central = find("Ủy ban Kiểm tra Trung ương").bodies
    own = find("ủy ban kiểm tra đảng ủy").bodies
    bare = find("Ủy ban Kiểm tra").bodies
    assert central.isdisjoint(own)
    assert central.isdisjoint(bare)
    assert own.isdisjoint(bare)


def test_the_politburo_and_the_secretariat_are_generic_bodies() -> None:
    generic = vocabulary().generic_bodies
    assert {"bo_chinh_tri", "ban_bi_thu"} <= generic
    assert find("Bộ Chính trị, Ban Bí thư").bodies == {"bo_chinh_tri", "ban_bi_thu"}
    assert "ubkt_tw" not in generic


# --------------------------------------------------------------------------- documents


@pytest.mark.parametrize(
    ("text", "document"),
    [
        ("Kết luận 185", "kl_185"),
        ("kl 185", "kl_185"),
        ("KL185", "kl_185"),
        ("Kết luận số 185", "kl_185"),
        ("văn bản số 185", "kl_185"),
        ("kết luận phiên họp 29/8", "kl_29_8"),
        ("Kết luận phiên họp ngày 29/8/2025", "kl_29_8"),
        ("kl 29/8", "kl_29_8"),
        ("Chỉ thị 45", "ct_45"),
        ("ct 45", "ct_45"),
        ("Báo cáo số 447", "bc_447"),
        ("bc 447", "bc_447"),
    ],
)
def test_documents_are_found(text: str, document: str) -> None:
    assert find(text).documents == {document}


def test_two_conclusions_named_together_are_both_found() -> None:
    assert find("Kết luận 185 và kết luận phiên họp 29/8").documents == {"kl_185", "kl_29_8"}


def test_a_conclusion_with_another_number_is_not_conclusion_185() -> None:
    assert find("Kết luận 186").documents == frozenset()


# --------------------------------------------------------------------------- places


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("Hà Nội", "ha_noi"),
        ("Thủ đô", "ha_noi"),
        ("Thành ủy Hà Nội", "ha_noi"),
        ("TP.HCM", "ho_chi_minh"),
        ("TP. Hồ Chí Minh", "ho_chi_minh"),
        ("Thành phố Hồ Chí Minh", "ho_chi_minh"),
        ("Sài Gòn", "ho_chi_minh"),
        ("Đà Nẵng", "da_nang"),
        ("Nghệ An", "nghe_an"),
        ("Quảng Ninh", "quang_ninh"),
    ],
)
def test_places_are_found(text: str, place: str) -> None:
    assert find(text).places == {place}


def test_ha_noi_is_not_ho_chi_minh_city() -> None:
    assert find("Hà Nội").places.isdisjoint(find("TP.HCM").places)


def test_a_city_party_committee_names_the_place_and_the_level() -> None:
    mentions = find("Đảng ủy thành phố Đà Nẵng")
    assert mentions.places == {"da_nang"}
    assert mentions.levels == ("truc_thuoc_tw",)


# --------------------------------------------------------------------------- posts, persons


@pytest.mark.parametrize(
    ("text", "post"),
    [
        ("Tổng Bí thư", "tong_bi_thu"),
        ("tbt", "tong_bi_thu"),
        ("Thường trực Ban Bí thư", "thuong_truc_ban_bi_thu"),
        ("Bí thư Tỉnh ủy", "bi_thu_tinh_thanh"),
        ("Chủ nhiệm Ủy ban Kiểm tra", "chu_nhiem_ubkt"),
        ("Chủ tịch nước", "chu_tich_nuoc"),
    ],
)
def test_posts_are_found(text: str, post: str) -> None:
    assert find(text).posts == {post}


def test_the_standing_member_is_a_post_not_the_secretariat() -> None:
    mentions = find("Thường trực Ban Bí thư Trần Cẩm Tú")
    assert mentions.posts == {"thuong_truc_ban_bi_thu"}
    assert mentions.persons == {"tran_cam_tu"}
    assert mentions.bodies == frozenset()


@pytest.mark.parametrize(
    ("text", "person"),
    [("Trần Cẩm Tú", "tran_cam_tu"), ("đồng chí Cẩm Tú", "tran_cam_tu"), ("Tô Lâm", "to_lam")],
)
def test_persons_are_found(text: str, person: str) -> None:
    assert find(text).persons == {person}


# --------------------------------------------------------------------------- topics


@pytest.mark.parametrize(
    ("text", "topic"),
    [
        ("đại hội đảng bộ", "dai_hoi"),
        ("quy chế làm việc", "van_kien"),
        ("chương trình hành động", "van_kien"),
        ("kế hoạch hành động", "van_kien"),
        ("ban hành văn kiện", "van_kien"),
        ("tập huấn", "tap_huan"),
        ("bồi dưỡng nghiệp vụ", "tap_huan"),
        ("kiện toàn cấp ủy", "kien_toan"),
        ("chỉ định bí thư", "kien_toan"),
    ],
)
def test_topics_are_found(text: str, topic: str) -> None:
    assert find(text).topics == {topic}


# --------------------------------------------------------------------------- locate, merge


def test_locate_gives_each_phrase_with_its_span() -> None:
    tokens = analyzer().canonical("Kết luận 185 do Tổng Bí thư ký")
    found = vocabulary().locate(tokens)
    assert found == [(0, 3, "documents", "kl_185"), (4, 3, "posts", "tong_bi_thu")]
    for start, size, _, _ in found:
        assert start >= 0 and start + size <= len(tokens)


def test_merged_completes_only_the_missing_kinds() -> None:
    follow = find("Còn cấp tỉnh thì sao?")
    earlier = find("Đảng bộ phường ở Hà Nội phải đại hội xong khi nào?")
    merged = follow.merged(earlier)
    assert merged.levels == ("truc_thuoc_tw",)
    assert merged.places == {"ha_noi"}
    assert merged.topics == {"dai_hoi"}


def test_no_entity_is_found_in_chit_chat() -> None:
    assert not find("chúc mọi người buổi sáng vui vẻ")


# --------------------------------------------------------------------------- loading


def test_a_phrase_given_to_two_entities_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "entities.yaml"
    path.write_text("levels:\n  xa: [xã]\n  co_so: [xã]\n", encoding="utf-8")
    with pytest.raises(KnowledgeError, match="vừa là xa vừa là co_so"):
        load_entities(analyzer().canonical, path)


def test_a_vocabulary_that_is_not_a_mapping_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "entities.yaml"
    path.write_text("- xã\n- phường\n", encoding="utf-8")
    with pytest.raises(KnowledgeError):
        load_entities(analyzer().canonical, path)


# --------------------------------------------------------------------------- properties


def _check(text: str) -> None:
    tokens = analyzer().canonical(text)
    mentions = vocabulary().find(tokens)
    known = known_ids()
    for kind in ENTITY_KINDS:
        assert mentions.of(kind) <= known[kind], kind
    assert len(set(mentions.levels)) == len(mentions.levels)
    for start, size, kind, entity in vocabulary().locate(tokens):
        assert start >= 0 and size >= 1 and start + size <= len(tokens)
        assert entity in known[kind]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_find_never_raises_and_returns_only_known_ids(text: str) -> None:
    _check(text)


@cache
def _vocabulary_words() -> list[str]:
    words = sorted({w for table in vocabulary().phrases.values() for p in table for w in p})
    return [*words, "khong", "phai", "con", "thi", "sao", "hoi", "an"]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_find_on_texts_made_of_entity_words(data: st.DataObject) -> None:
    words = data.draw(st.lists(st.sampled_from(_vocabulary_words()), max_size=30))
    _check(" ".join(words))
