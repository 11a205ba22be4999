"""Normalisation: accent folding, tone placement, digits, Roman numerals."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from knowledge.normalize import fold, nfc, roman_to_int, words

VIETNAMESE = st.text(
    alphabet=st.sampled_from(
        list("aăâbcdđeêghiklmnoôơpqrstuưvxyAĂÂĐÊÔƠƯ0123456789 ,.?/-")
        + list("àáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ")
        + ["\u0300", "\u0301", "\u0303", "\u0309", "\u0323"]  # combining tone marks
    ),
    max_size=60,
)


@given(VIETNAMESE)
def test_fold_is_idempotent(text: str) -> None:
    assert fold(fold(text)) == fold(text)


@given(VIETNAMESE)
def test_fold_ignores_composition(text: str) -> None:
    nfd = unicodedata.normalize("NFD", text)
    assert fold(nfd) == fold(nfc(text))


@given(VIETNAMESE)
def test_accent_stripped_text_matches_accented(text: str) -> None:
    stripped = fold(text)
    assert stripped.isascii()
    assert words(stripped) == words(text)


@given(VIETNAMESE)
def test_words_are_ascii_letters_or_digits(text: str) -> None:
    for token in words(text):
        assert token.isascii()
        assert token.isdigit() or token.isalpha()


def test_vietnamese_letters_fold() -> None:
    assert fold("Đại hội Đảng bộ") == "dai hoi dang bo"
    assert fold("ỦY BAN KIỂM TRA") == "uy ban kiem tra"


def test_both_tone_placements_are_equal() -> None:
    assert fold("hoà") == fold("hòa") == "hoa"
    assert fold("thuỷ") == fold("thủy") == "thuy"
    assert fold("uỷ ban") == fold("ủy ban")


def test_letters_split_from_digits() -> None:
    assert words("kl185") == ["kl", "185"]
    assert words("CT45-CT/TW") == ["ct", "45", "ct", "tw"]
    assert words("29/8/2025") == ["29", "8", "2025"]


def test_roman_numerals() -> None:
    assert roman_to_int("XIV") == 14
    assert roman_to_int("xiii") == 13
    assert roman_to_int("ii") == 2
    assert roman_to_int("i") is None  # a single letter is a word, not a number
    assert roman_to_int("xa") is None
    assert roman_to_int("iiii") is None
