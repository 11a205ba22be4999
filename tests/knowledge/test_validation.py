"""`troly kb check`: every problem is reported as file:line: message."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from knowledge import KnowledgeError, check_directory, default_knowledge_dir, load_knowledge_base

SOURCE = """\
sources:
  - id: kl-test
    title: Kết luận thử
    cite_as: Kết luận thử nghiệm
"""

ENTRY = """\
entries:
  - id: mot
    title: Một
    questions: [Câu hỏi một?]
    answer: Trả lời một.
    source: kl-test
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def messages(directory: Path) -> list[str]:
    return [str(p) for p in check_directory(directory)]


def test_the_shipped_knowledge_base_is_valid() -> None:
    assert check_directory(default_knowledge_dir()) == []


def test_a_valid_minimal_directory(tmp_path: Path) -> None:
    write(tmp_path, "sources.yaml", SOURCE)
    write(tmp_path, "entries.yaml", ENTRY)
    base = load_knowledge_base(tmp_path)
    assert base.entries["mot"].citation == "Kết luận thử nghiệm"


def test_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "sources.yaml", SOURCE)
    bad = write(tmp_path, "entries.yaml", ENTRY + "  - id: [unclosed\n")
    problems = messages(tmp_path)
    assert len(problems) == 1
    assert problems[0].startswith(f"{bad}:7:") or problems[0].startswith(f"{bad}:8:")
    assert "YAML không hợp lệ" in problems[0]


def test_missing_field_unknown_field_and_bad_reference(tmp_path: Path) -> None:
    write(tmp_path, "sources.yaml", SOURCE)
    path = write(
        tmp_path,
        "entries.yaml",
        """\
        entries:
          - id: mot
            title: Một
            questions: [Câu hỏi?]
            answer: Trả lời.
            source: khong-co
          - id: hai
            title: Hai
            questions: [Câu hỏi hai?]
            anwser: lỗi chính tả
            source: kl-test
        """,
    )
    problems = messages(tmp_path)
    assert f"{path}:2: mục 'mot': không có nguồn 'khong-co'" in problems
    assert any(p.startswith(f"{path}:10: mục: không có trường 'anwser'") for p in problems)
    assert f"{path}:7: mục: thiếu trường bắt buộc 'answer'" in problems


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    write(tmp_path, "sources.yaml", SOURCE)
    first = write(tmp_path, "a.yaml", ENTRY)
    second = write(tmp_path, "b.yaml", ENTRY)
    problems = messages(tmp_path)
    assert problems == [f"{second}:2: trùng mã mục 'mot' (đã có tại {first}:2)"]


def test_deadline_checks(tmp_path: Path) -> None:
    write(tmp_path, "sources.yaml", SOURCE)
    write(tmp_path, "entries.yaml", ENTRY)
    path = write(
        tmp_path,
        "deadlines.yaml",
        """\
        deadlines:
          - id: dl
            what: Việc gì đó
            levels: [xa, tinh]
            due: 2025-13-01
            due_text: trong tháng 13
            source: kl-test
            entry: khong-co
        """,
    )
    problems = messages(tmp_path)
    assert any(p.startswith(f"{path}:4: hạn: không có cấp 'tinh'") for p in problems)
    assert any(p.startswith(f"{path}:5: hạn: 'due' phải là ngày dạng YYYY-MM-DD") for p in problems)


def test_deadline_with_unknown_entry(tmp_path: Path) -> None:
    write(tmp_path, "sources.yaml", SOURCE)
    write(tmp_path, "entries.yaml", ENTRY)
    path = write(
        tmp_path,
        "deadlines.yaml",
        """\
        deadlines:
          - id: dl
            what: Việc gì đó
            levels: [xa]
            due: 2025-08-31
            due_text: trong tháng 8
            source: kl-test
            entry: khong-co
        """,
    )
    assert messages(tmp_path) == [f"{path}:2: hạn 'dl': không có mục 'khong-co'"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "tệp trống"),
        ("- a\n- b\n", "tệp phải là một bảng gồm các phần"),
        ("entries: nope\n", "'entries' phải là một danh sách"),
        ("questions: []\n", "không có phần 'questions'"),
    ],
)
def test_malformed_files(tmp_path: Path, text: str, expected: str) -> None:
    write(tmp_path, "sources.yaml", SOURCE)
    write(tmp_path, "entries.yaml", ENTRY)
    path = write(tmp_path, "broken.yaml", text)
    problems = messages(tmp_path)
    assert any(p.startswith(f"{path}:") and expected in p for p in problems), problems


def test_load_refuses_a_partially_valid_base(tmp_path: Path) -> None:
    shutil.copytree(default_knowledge_dir(), tmp_path / "kb")
    write(tmp_path / "kb", "zz-broken.yaml", "entries:\n  - id: Bad Id\n")
    with pytest.raises(KnowledgeError) as caught:
        load_knowledge_base(tmp_path / "kb")
    assert "zz-broken.yaml:2" in str(caught.value)


def test_not_utf8(tmp_path: Path) -> None:
    write(tmp_path, "sources.yaml", SOURCE)
    path = tmp_path / "entries.yaml"
    path.write_bytes(b"entries:\n  - id: mot\n    title: \xd0\xe0i h\xf4i\n")
    assert any("không phải văn bản UTF-8" in p for p in messages(tmp_path))


# --------------------------------------------------------------------------- kind and levels


def test_kind_and_levels_default_and_load(tmp_path: Path) -> None:
    write(tmp_path, "sources.yaml", SOURCE)
    write(
        tmp_path,
        "entries.yaml",
        ENTRY
        + """\
  - id: hai
    title: Hai
    questions: [Câu hỏi hai?]
    answer: Văn bản không nêu.
    source: kl-test
    clause: mục 1
    kind: not_stated
    levels: [xa, cap_tren_co_so]
  - id: ba
    title: Ba
    questions: [Câu hỏi ba?]
    answer: Trả lời ba.
    source: kl-test
    kind: answer
    levels: []
""",
    )
    base = load_knowledge_base(tmp_path)
    assert (base.entries["mot"].kind, base.entries["mot"].levels) == ("answer", ())
    assert (base.entries["hai"].kind, base.entries["hai"].levels) == (
        "not_stated",
        ("xa", "cap_tren_co_so"),
    )
    assert (base.entries["ba"].kind, base.entries["ba"].levels) == ("answer", ())


def test_entry_can_still_be_built_without_kind_and_levels() -> None:
    from knowledge import Entry

    entry = Entry("x", "X", ("X?",), "X.", "kl-test", None, "Kết luận thử nghiệm")
    assert (entry.kind, entry.levels) == ("answer", ())


def test_bad_kind_and_levels_name_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "sources.yaml", SOURCE)
    path = write(
        tmp_path,
        "entries.yaml",
        """\
        entries:
          - id: mot
            title: Một
            questions: [Câu hỏi?]
            answer: Trả lời.
            source: kl-test
            kind: unknown
          - id: hai
            title: Hai
            questions: [Câu hỏi hai?]
            answer: Trả lời hai.
            source: kl-test
            levels: [xa, huyen]
          - id: ba
            title: Ba
            questions: [Câu hỏi ba?]
            answer: Trả lời ba.
            source: kl-test
            levels: [xa, xa]
          - id: bon
            title: Bốn
            questions: [Câu hỏi bốn?]
            answer: Trả lời bốn.
            source: kl-test
            levels: xa
        """,
    )
    problems = messages(tmp_path)
    assert (
        f"{path}:7: mục: 'kind' phải là một trong answer, not_stated, đang là 'unknown'" in problems
    ), problems
    assert any(p.startswith(f"{path}:13: mục: không có cấp 'huyen'") for p in problems)
    assert f"{path}:19: mục: 'levels' lặp lại 'xa'" in problems
    assert f"{path}:25: mục: 'levels' phải là một danh sách" in problems


def test_not_stated_needs_a_clause_and_cannot_back_a_deadline(tmp_path: Path) -> None:
    write(tmp_path, "sources.yaml", SOURCE)
    entries = write(
        tmp_path,
        "entries.yaml",
        """\
        entries:
          - id: mot
            title: Một
            questions: [Câu hỏi?]
            answer: Văn bản không nêu.
            source: kl-test
            kind: not_stated
          - id: hai
            title: Hai
            questions: [Câu hỏi hai?]
            answer: Văn bản không nêu.
            source: kl-test
            clause: mục 1
            kind: not_stated
        """,
    )
    deadlines = write(
        tmp_path,
        "deadlines.yaml",
        """\
        deadlines:
          - id: dl
            what: Việc gì đó
            levels: [xa]
            due: 2025-08-31
            due_text: trong tháng 8
            source: kl-test
            entry: hai
        """,
    )
    assert messages(tmp_path) == [
        f"{entries}:2: mục 'mot': mục not_stated phải dẫn điều khoản gần nhất ('clause')",
        f"{deadlines}:2: hạn 'dl': mục 'hai' là not_stated, "
        "hạn phải trỏ tới một mục trả lời (kind: answer)",
    ]
