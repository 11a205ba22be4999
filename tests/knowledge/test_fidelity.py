"""Fidelity of the knowledge base to its two sources.

Nothing that is not in the seed documents may be stated as fact. This test reads every entry
and deadline with the seed file of the source it cites and fails when:

* a quotation «…» is not verbatim in the cited source (compared after NFC and whitespace
  normalisation; an ellipsis «…» inside a quotation stands for omitted text, and the first
  letter may change case where a quotation starts mid-sentence); when the clause names
  paragraphs of the article («đoạn 3») or items of the conclusion («mục 2»), the quotation must
  come from those;
* a title, answer, deadline ``what`` or ``note`` states a date (``d/m``, ``d/m/yyyy``, or a
  month ``m/yyyy``) or a document number (``447-BC/VPTW``, «Chỉ thị số 45», «Hội nghị Trung
  ương 13») that is not in the cited source and is not marked as derived;
* a clause cites a paragraph or item the source does not have;
* any text of the knowledge base (comments included) names the conclusion with the «-KL/TW»
  suffix, which neither source uses.

The derived-value convention (also described at the top of ``deadlines.yaml``): a value the
sources do not state but that is computed from them — the year 2025 taken from the article's
date, the last day of a month — is written inside a parenthesis that contains «suy từ» or
«tính là», e.g. «trong tháng 8 (tháng 8/2025: năm suy từ ngày đăng bản tin; hạn cuối tính là
ngày 31/8/2025)». Dates and numbers inside such a parenthesis are not checked against the
source (quotations still are). A document's name (see ``DOCUMENT_NAMES``) may appear in any
entry; each name must itself be supported by a seed.

The seeds are read from ``../shared/seeds`` when it exists, else from the copy kept in
``tests/data/seeds`` (a test checks that the two agree).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from knowledge.base import KnowledgeBase, default_knowledge_dir, load_knowledge_base
from knowledge.normalize import nfc

ROOT = Path(__file__).resolve().parents[2]
SHARED_SEEDS = ROOT.parent / "shared" / "seeds"
COPIED_SEEDS = ROOT / "tests" / "data" / "seeds"

# How the documents are named in running text. A name is not a statement of fact, so its
# dates and numbers are allowed in entries citing either source; the names themselves are
# checked against the seeds (test_document_names_are_supported).
DOCUMENT_NAMES = (
    "bản tin VTC News ngày 22/8/2025",
    "Kết luận phiên họp ngày 29/8/2025",
    "phiên họp ngày 29/8/2025",
    "Kết luận số 185",
    "Kết luận 185",
)
FORBIDDEN = ("185-KL/TW", "KL/TW")

QUOTE_RE = re.compile(r"«([^«»]*)»")
DERIVED_RE = re.compile(r"\(([^()]*)\)")
DERIVED_MARKERS = ("suy từ", "tính là")
DATE_RE = re.compile(r"(?<![\d/])(\d{1,2})/(\d{1,2})(?:/(\d{4}))?(?![\d/])")
MONTH_YEAR_RE = re.compile(r"(?<![\d/])(\d{1,2})/(\d{4})(?![\d/])")
ISO_RE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
SYMBOL_RE = re.compile(r"\b\d+-[A-ZĐ]+(?:/[A-ZĐ]+)+")
NUMBERED_RE = re.compile(
    r"\b(Kết luận|Chỉ thị|Báo cáo|Nghị quyết|Quyết định|Quy định|Thông báo|Hướng dẫn"
    r"|Công văn|Hội nghị Trung ương)(?: số)? (\d+)(?![\d/])",
    re.IGNORECASE,
)


def seeds_dir() -> Path:
    for candidate in (SHARED_SEEDS, COPIED_SEEDS):
        if candidate.is_dir():
            return candidate
    raise AssertionError(f"no seed documents in {SHARED_SEEDS} nor {COPIED_SEEDS}")


def normalise(text: str) -> str:
    """NFC, markdown bold removed, whitespace collapsed."""
    return " ".join(nfc(text).replace("**", "").split())


@dataclass(frozen=True)
class Seed:
    """A source document: its whole text and its paragraphs (blocks between blank lines)."""

    text: str
    paragraphs: tuple[str, ...]
    dated_line: bool  # the first block is a date line («date 2025-08-22 (VTC News) -»)

    @classmethod
    def read(cls, path: Path) -> Seed:
        raw = nfc(path.read_text(encoding="utf-8"))
        blocks = [normalise(b) for b in re.split(r"\n\s*\n", raw)]
        blocks = [b for b in blocks if b]
        dated = bool(blocks) and blocks[0].startswith("date ")
        return cls(normalise(raw), tuple(blocks), dated)

    def article_paragraph(self, number: int) -> str | None:
        """Paragraph ``number`` of an article, counted after its date line."""
        body = self.paragraphs[1:] if self.dated_line else self.paragraphs
        return body[number - 1] if 1 <= number <= len(body) else None

    def item(self, number: int) -> str | None:
        """Numbered item ``number`` («2. Giao …») of a conclusion."""
        for block in self.paragraphs:
            if block.startswith(f"{number}. "):
                return block
        return None

    def dates(self) -> set[tuple[int, int, int | None]]:
        found: set[tuple[int, int, int | None]] = set()
        for d, m, y in DATE_RE.findall(self.text):
            found.add((int(d), int(m), int(y) if y else None))
            found.add((int(d), int(m), None))
        return found


def load_seeds(base: KnowledgeBase) -> dict[str, Seed]:
    directory = seeds_dir()
    seeds: dict[str, Seed] = {}
    for source in base.sources.values():
        assert source.seed_file, f"source {source.id!r} names no seed_file"
        seeds[source.id] = Seed.read(directory / source.seed_file)
    return seeds


# --------------------------------------------------------------------------- the checks


def cited_text(seed: Seed, clause: str | None) -> tuple[str, list[str]]:
    """The text a clause points at (whole document when it names no paragraph or item),
    and problems with the clause itself."""
    if not clause:
        return seed.text, []
    head = clause.split("(", 1)[0]
    problems: list[str] = []
    parts: list[str] = []
    if head.startswith("đoạn"):
        numbers: list[int] = []
        for low, high in re.findall(r"(\d+)\s*[–-]\s*(\d+)", head):
            numbers.extend(range(int(low), int(high) + 1))
        numbers.extend(int(n) for n in re.findall(r"(?<![\d–-])(\d+)(?!\s*[–-]\s*\d)", head))
        for number in sorted(set(numbers)):
            paragraph = seed.article_paragraph(number)
            if paragraph is None:
                problems.append(f"clause {clause!r}: the source has no paragraph {number}")
            else:
                parts.append(paragraph)
    elif head.startswith("mục"):
        for number in sorted({int(n) for n in re.findall(r"\d+", head.split("(", 1)[0])}):
            item = seed.item(number)
            if item is None:
                problems.append(f"clause {clause!r}: the source has no item {number}")
            else:
                parts.append(item)
    else:
        return seed.text, []
    return " ".join(parts) if parts else seed.text, problems


def quote_in(quote: str, text: str) -> bool:
    """``quote`` (with «…» for omitted text) is verbatim in ``text``, in order."""
    position = 0
    for piece in normalise(quote).split("…"):
        piece = piece.strip()
        if not piece:
            continue
        variants = {piece, piece[0].swapcase() + piece[1:]}
        found = [i for i in (text.find(v, position) for v in variants) if i >= 0]
        if not found:
            return False
        position = min(found) + len(piece)
    return True


def without_names_and_derived(text: str) -> str:
    for name in sorted(DOCUMENT_NAMES, key=len, reverse=True):
        text = re.sub(re.escape(name) + r"(?![\w/-])", " ", text, flags=re.IGNORECASE)
    return DERIVED_RE.sub(
        lambda m: " " if any(k in m.group(1) for k in DERIVED_MARKERS) else m.group(0), text
    )


def stated_problems(text: str, seed: Seed) -> list[str]:
    """Dates and document numbers in ``text`` that the source does not state."""
    problems: list[str] = []
    plain = without_names_and_derived(normalise(text))
    known = seed.dates()
    for d, m, y in DATE_RE.findall(plain):
        if (int(d), int(m), int(y) if y else None) not in known:
            shown = f"{d}/{m}" + (f"/{y}" if y else "")
            problems.append(f"date {shown} is not in the source and not marked as derived")
    for m, y in MONTH_YEAR_RE.findall(plain):
        if f"{m}/{y}" not in seed.text:
            problems.append(f"month {m}/{y} is not in the source and not marked as derived")
    for symbol in SYMBOL_RE.findall(plain):
        if symbol not in seed.text:
            problems.append(f"document number {symbol} is not in the source")
    for head, number in NUMBERED_RE.findall(plain):
        pattern = rf"{re.escape(head)}(?: số)? {number}(?![\d])"
        if not re.search(pattern, seed.text, re.IGNORECASE):
            problems.append(f"«{head} {number}» is not in the source")
    return problems


def quote_problems(text: str, cited: str) -> list[str]:
    return [
        f"quotation «{q}» is not verbatim in the cited source"
        for q in QUOTE_RE.findall(text)
        if not quote_in(q, cited)
    ]


def forbidden_problems(where: str, text: str) -> list[str]:
    """The first forbidden form found (the longer one first), once."""
    for form in FORBIDDEN:
        if form in nfc(text):
            return [f"{where}: contains «{form}»"]
    return []


def fidelity_problems(base: KnowledgeBase, seeds: dict[str, Seed]) -> list[str]:
    problems: list[str] = []

    def check(
        what: str, source: str, clause: str | None, fields: Iterable[tuple[str, str]]
    ) -> None:
        seed = seeds[source]
        cited, clause_problems = cited_text(seed, clause)
        problems.extend(f"{what}: {p}" for p in clause_problems)
        for name, text in fields:
            problems.extend(f"{what} {name}: {p}" for p in quote_problems(text, cited))
            problems.extend(f"{what} {name}: {p}" for p in stated_problems(text, seed))

    for entry in base.entries.values():
        check(
            f"entry {entry.id}",
            entry.source,
            entry.clause,
            [("title", entry.title), ("answer", entry.answer)],
        )
    for deadline in base.deadlines.values():
        check(
            f"deadline {deadline.id}",
            deadline.source,
            deadline.clause,
            [("what", deadline.what), ("note", deadline.note or "")],
        )
    for path in base.files:
        problems.extend(forbidden_problems(str(path), path.read_text(encoding="utf-8")))
    return problems


# --------------------------------------------------------------------------- the tests


@pytest.fixture(scope="module")
def base() -> KnowledgeBase:
    return load_knowledge_base(default_knowledge_dir())


def test_the_knowledge_base_is_faithful_to_its_sources(base: KnowledgeBase) -> None:
    problems = fidelity_problems(base, load_seeds(base))
    assert problems == [], "\n".join(problems)


def test_document_names_are_supported() -> None:
    texts = [Seed.read(p) for p in sorted(seeds_dir().glob("*.txt"))]
    for name in DOCUMENT_NAMES:
        supported = False
        for seed in texts:
            iso = {(int(d), int(m), int(y)) for y, m, d in ISO_RE.findall(seed.text)}
            dates_ok = all(
                (int(d), int(m), int(y) if y else None) in seed.dates()
                or (y and (int(d), int(m), int(y)) in iso)
                for d, m, y in DATE_RE.findall(name)
            )
            numbers_ok = all(
                re.search(rf"{re.escape(h)}(?: số)? {n}(?!\d)", seed.text, re.IGNORECASE)
                for h, n in NUMBERED_RE.findall(name)
            )
            supported = supported or (dates_ok and numbers_ok)
        assert supported, f"document name {name!r} is not supported by any seed"


def test_the_seed_copy_matches_the_shared_seeds() -> None:
    copies = sorted(p.name for p in COPIED_SEEDS.glob("*.txt"))
    assert copies, f"no copy of the seeds in {COPIED_SEEDS}"
    if not SHARED_SEEDS.is_dir():
        pytest.skip("../shared/seeds is not here; the copy is used")
    assert copies == sorted(p.name for p in SHARED_SEEDS.glob("*.txt"))
    for name in copies:
        assert (COPIED_SEEDS / name).read_bytes() == (SHARED_SEEDS / name).read_bytes(), name


def test_the_article_paragraphs_are_counted_after_the_date_line(base: KnowledgeBase) -> None:
    seed = load_seeds(base)["kl-185"]
    starts = {
        1: "Ngày 22/8, Thường trực Ban Bí thư",
        2: "Tổng Bí thư Tô Lâm chủ trì",  # the photo caption
        3: "Theo đó, Bộ Chính trị, Ban Bí thư yêu cầu",
        7: '"Khẩn trương kiện toàn',
        12: "Bộ Chính trị, Ban Bí thư giao Ủy ban Kiểm tra Trung ương",
    }
    for number, start in starts.items():
        assert (seed.article_paragraph(number) or "").startswith(start), number
    assert seed.article_paragraph(13) is None


def test_the_photo_caption_is_never_presented_as_the_conclusion(base: KnowledgeBase) -> None:
    """Paragraph 2 of the article is a photo caption: whatever cites it says so."""
    for entry in base.entries.values():
        if entry.source == "kl-185" and entry.clause and re.match(r"đoạn 2\b", entry.clause):
            assert "chú thích ảnh" in entry.clause, entry.id
            assert "chú thích ảnh" in entry.answer, entry.id


def test_the_checks_catch_a_broken_copy(tmp_path: Path) -> None:
    """The checks above can fail: a copy with a made-up quotation, an underived date, the
    wrong document number and a paragraph the article does not have is refused."""
    directory = tmp_path / "kb"
    shutil.copytree(default_knowledge_dir(), directory)
    (directory / "entries" / "zz-broken.yaml").write_text(
        """\
entries:
  - id: hong
    title: Mục hỏng
    questions: [Câu hỏi hỏng?]
    answer: >-
      Theo Kết luận số 185-KL/TW, các đảng bộ «hoàn thành trong tháng 9» và chậm nhất
      ngày 15/9/2025; tháng 8/2025 (ghi chú không đánh dấu). Ngày 22/8 «hoàn thành trong
      tháng 8» (tháng 8/2025: năm suy từ ngày đăng bản tin; hạn cuối tính là ngày 31/8/2025).
      «Khẩn trương … trong tháng 8», Chỉ thị số 35.
    source: kl-185
    clause: đoạn 3, 7 và 13
""",
        encoding="utf-8",
    )
    broken = load_knowledge_base(directory)
    found = fidelity_problems(broken, load_seeds(broken))
    problems = [p for p in found if p.startswith("entry hong") or "zz-broken" in p]
    assert len([p for p in problems if "zz-broken.yaml" in p]) == 1  # the forbidden suffix
    joined = "\n".join(problems)
    assert "«hoàn thành trong tháng 9» is not verbatim" in joined
    assert "date 15/9/2025 is not in the source" in joined
    assert "month 8/2025 is not in the source" in joined
    assert "document number 185-KL/TW is not in the source" in joined
    assert "«Chỉ thị 35» is not in the source" in joined
    assert "the source has no paragraph 13" in joined
    # What is right in it is not reported: a quotation from paragraph 3, an ellipsis, a
    # derived parenthesis, a date the article states.
    assert "«hoàn thành trong tháng 8»" not in joined
    assert "Khẩn trương" not in joined
    assert "31/8/2025" not in joined
    assert "22/8" not in joined
    assert len(problems) == 7, joined


def test_a_quotation_must_come_from_the_cited_paragraph(base: KnowledgeBase) -> None:
    seed = load_seeds(base)["kl-185"]
    cited, problems = cited_text(seed, "đoạn 8")
    assert problems == []
    assert quote_in("ngay trong tháng 9", cited)
    assert not quote_in("hoàn thành trong tháng 8", cited)  # paragraph 3, not 8
    assert quote_in("Khẩn trương … cấp uỷ viên", cited_text(seed, "đoạn 7")[0])
    assert quote_in("khẩn trương kiện toàn", cited_text(seed, "đoạn 7")[0])  # first letter
    assert not quote_in("phân công cấp ủy viên", cited_text(seed, "đoạn 7")[0])  # «uỷ»
