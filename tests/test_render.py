"""Reply rendering: numbered choices, splitting long texts on natural boundaries."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bot.core import Button, Reply
from bot.render import numbered, plain_text, split_text


def test_numbered_choices() -> None:
    reply = Reply(text="Chọn một:", buttons=((Button("Một", "a:1"),), (Button("Hai", "a:2"),)))
    text = plain_text(numbered(reply))
    assert "1. Một\n2. Hai" in text
    assert "(1–2)" in text
    assert numbered(reply).buttons == ()


def test_short_text_is_one_chunk() -> None:
    assert split_text("Xin chào.", 2000) == ["Xin chào."]


def test_split_prefers_paragraphs_then_sentences() -> None:
    paragraph = "Câu thứ nhất khá dài. " * 40
    text = "\n\n".join([paragraph.strip()] * 6)
    chunks = split_text(text, 2000)
    assert all(len(c) <= 2000 for c in chunks)
    assert all(c.endswith(".") for c in chunks)  # never cut mid-sentence
    assert "".join(chunks).replace(" ", "").replace("\n", "") == text.replace(" ", "").replace(
        "\n", ""
    )


def test_split_measures_escaped_length() -> None:
    text = "<b>&amp;</b> " * 500
    chunks = split_text(text, 1000, measure=lambda s: len(s.replace("&", "&amp;")))
    assert all(len(c.replace("&", "&amp;")) <= 1000 for c in chunks)


def test_button_payload_limit_is_bytes() -> None:
    Button("x", "a" * 64)
    try:
        Button("x", "đ" * 33)  # 66 bytes, 33 characters
    except ValueError:
        pass
    else:
        raise AssertionError("a 66-byte payload was accepted")


@given(st.text(min_size=0, max_size=3000), st.integers(min_value=20, max_value=500))
def test_split_never_exceeds_and_keeps_every_word(text: str, limit: int) -> None:
    chunks = split_text(text, limit)
    assert all(0 < len(c) <= limit for c in chunks)
    assert "".join("".join(chunks).split()) == "".join(text.split())


def test_a_heading_is_not_sent_alone_and_lists_are_not_cut_at_semicolons() -> None:
    body = " ".join(f"Nhiệm vụ số {n}: chuẩn bị văn kiện; rà soát nhân sự." for n in range(60))
    text = f"Xem trước thông báo:\n———\nTHÔNG BÁO của Tỉnh ủy:\n\n{body}\n———\nGửi cho 3 người."
    chunks = split_text(text, 2000)
    assert len(chunks) >= 2
    assert chunks[0].startswith("Xem trước thông báo:") and len(chunks[0]) > 1000
    assert all(c.endswith((".", "người.")) for c in chunks)  # never after a ";" or ":"
    assert "".join("".join(chunks).split()) == "".join(text.split())


def test_parts_are_numbered() -> None:
    from bot.channels.zalo import render as zalo_render

    reply = Reply(text="Câu rất dài của câu trả lời. " * 200)
    parts = zalo_render(reply)
    assert [p.split(" ")[0] for p in parts] == [
        f"({i}/{len(parts)})" for i in range(1, len(parts) + 1)
    ]
    assert all(len(p) <= 2000 for p in parts)
