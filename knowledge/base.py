"""The curated knowledge base: sources, entries and structured deadlines, loaded from YAML.

A knowledge directory holds any number of ``*.yaml`` files (searched recursively). Each file
has one or more top-level sections:

``sources``   the documents everything is cited from;
``entries``   question/answer entries, each citing a source and a point in it. An entry's
              ``kind`` is ``answer`` (the default: the sources answer the question) or
              ``not_stated`` (officials ask it but the sources do not answer it; the answer
              says so, and what the sources do state nearby); its optional ``levels`` are the
              party levels the entry is about (its subject), so that search can refuse an
              entry about one level for a question about another;
``deadlines`` structured deadlines (what, which levels, due date) that tasks and reminders
              are derived from.

:func:`check_directory` returns every problem as ``file:line: message``;
:func:`load_knowledge_base` refuses to return a partially valid base.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from knowledge.normalize import nfc
from knowledge.yamlfile import LineDict, LineList, YamlError, load_yaml

__all__ = [
    "ENTRY_KINDS",
    "LEVELS",
    "Deadline",
    "Entry",
    "KnowledgeBase",
    "KnowledgeError",
    "Problem",
    "Source",
    "check_directory",
    "default_knowledge_dir",
    "load_knowledge_base",
    "parse_deadlines",
]

# Party levels, from the top. Shared by the knowledge base and the unit hierarchy.
LEVELS: tuple[str, ...] = ("trung_uong", "truc_thuoc_tw", "cap_tren_co_so", "xa", "co_so")

# What an entry is: ``answer`` (the sources answer the question it records) or ``not_stated``
# (officials ask it, the sources do not answer it; shown as not matched, with what the
# sources do state nearby).
ENTRY_KINDS: tuple[str, ...] = ("answer", "not_stated")

ID_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MAX_ANSWER_CHARS = 3000


def default_knowledge_dir() -> Path:
    return Path(__file__).resolve().parent / "data"


@dataclass(frozen=True, slots=True)
class Problem:
    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class KnowledgeError(Exception):
    """The knowledge base is invalid; ``problems`` lists every reason."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        shown = "\n".join(str(p) for p in problems[:20])
        more = f"\n… và {len(problems) - 20} lỗi khác" if len(problems) > 20 else ""
        super().__init__(f"kho kiến thức không hợp lệ ({len(problems)} lỗi):\n{shown}{more}")


@dataclass(frozen=True, slots=True)
class Source:
    id: str
    title: str
    cite_as: str
    date: date | None = None
    signer: str | None = None
    seed_file: str | None = None


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    title: str
    questions: tuple[str, ...]
    answer: str
    source: str
    clause: str | None
    citation: str
    # Kept last, with defaults, so that code building entries by hand keeps working.
    kind: str = "answer"  # one of ENTRY_KINDS
    levels: tuple[str, ...] = ()  # the LEVELS the entry is about; empty: no level is its subject


@dataclass(frozen=True, slots=True)
class Deadline:
    id: str
    what: str
    levels: tuple[str, ...]
    due: date
    due_text: str
    source: str
    clause: str | None
    citation: str
    entry: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class KnowledgeBase:
    directory: Path
    sources: dict[str, Source]
    entries: dict[str, Entry]
    deadlines: dict[str, Deadline]
    files: tuple[Path, ...] = field(default=())


# --------------------------------------------------------------------------- validation


class _Collector:
    """Collects problems while reading records; each check names the file and line."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, path: Path, line: int, message: str) -> None:
        self.problems.append(Problem(path, line, message))


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    kind: str  # "str", "text", "id", "date", "str_list", "level_list", "choice"
    required: bool = True
    empty_ok: bool = False  # lists: an explicit empty list is allowed (same as leaving it out)
    choices: tuple[str, ...] = ()  # "choice": the allowed values


def _read_record(
    path: Path,
    record: Any,
    line: int,
    fields: Iterable[_Field],
    what: str,
    out: _Collector,
) -> dict[str, Any] | None:
    """Validate one mapping against ``fields``; return clean values or ``None``."""
    if not isinstance(record, LineDict):
        out.add(path, line, f"mỗi {what} phải là một bảng các trường (tên: giá trị)")
        return None
    specs = {f.name: f for f in fields}
    values: dict[str, Any] = {}
    ok = True
    for key in record:
        if key not in specs:
            known = ", ".join(specs)
            out.add(
                path, record.line_of(key), f"{what}: không có trường {key!r} (các trường: {known})"
            )
            ok = False
    for spec in specs.values():
        raw = record.get(spec.name)
        at = record.line_of(spec.name)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            if spec.required:
                out.add(path, record.line, f"{what}: thiếu trường bắt buộc {spec.name!r}")
                ok = False
            continue
        value = _convert(spec, raw, path, at, what, out)
        if value is None:
            ok = False
            continue
        values[spec.name] = value
    return values if ok else None


def _convert(spec: _Field, raw: Any, path: Path, at: int, what: str, out: _Collector) -> Any:
    name = spec.name
    if spec.kind in ("str", "text", "id", "choice"):
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            out.add(path, at, f"{what}: {name!r} phải là văn bản")
            return None
        text = nfc(str(raw)).strip()
        if spec.kind == "id" and not ID_RE.match(text):
            out.add(path, at, f"{what}: {name!r} phải gồm các từ chữ thường không dấu nối bằng '-'")
            return None
        if spec.kind == "str" and "\n" in text:
            out.add(path, at, f"{what}: {name!r} phải viết trên một dòng")
            return None
        if spec.kind == "choice" and text not in spec.choices:
            allowed = ", ".join(spec.choices)
            out.add(path, at, f"{what}: {name!r} phải là một trong {allowed}, đang là {text!r}")
            return None
        if spec.kind == "text" and len(text) > MAX_ANSWER_CHARS:
            out.add(path, at, f"{what}: {name!r} dài quá {MAX_ANSWER_CHARS} ký tự")
            return None
        return text
    if spec.kind == "date":
        if isinstance(raw, date):
            return raw
        if isinstance(raw, str):
            try:
                return date.fromisoformat(raw.strip())
            except ValueError:
                pass
        out.add(path, at, f"{what}: {name!r} phải là ngày dạng YYYY-MM-DD, đang là {raw!r}")
        return None
    if spec.kind in ("str_list", "level_list"):
        if isinstance(raw, LineList) and not raw and spec.empty_ok:
            return ()
        if not isinstance(raw, LineList) or not raw:
            needed = "một danh sách" if spec.empty_ok else "một danh sách không trống"
            out.add(path, at, f"{what}: {name!r} phải là {needed}")
            return None
        items: list[str] = []
        for index, item in enumerate(raw):
            item_line = raw.line_of(index)
            if not isinstance(item, str) or not item.strip():
                out.add(
                    path, item_line, f"{what}: {name!r}, phần tử thứ {index + 1} phải là văn bản"
                )
                return None
            text = nfc(item).strip()
            if spec.kind == "level_list" and text not in LEVELS:
                out.add(
                    path,
                    item_line,
                    f"{what}: không có cấp {text!r} (các cấp: {', '.join(LEVELS)})",
                )
                return None
            if text in items:
                out.add(path, item_line, f"{what}: {name!r} lặp lại {text!r}")
                return None
            items.append(text)
        return tuple(items)
    raise AssertionError(spec.kind)  # pragma: no cover


_SOURCE_FIELDS = (
    _Field("id", "id"),
    _Field("title", "str"),
    _Field("cite_as", "str"),
    _Field("date", "date", required=False),
    _Field("signer", "str", required=False),
    _Field("seed_file", "str", required=False),
)
_ENTRY_FIELDS = (
    _Field("id", "id"),
    _Field("title", "str"),
    _Field("questions", "str_list"),
    _Field("answer", "text"),
    _Field("source", "id"),
    _Field("clause", "str", required=False),
    _Field("kind", "choice", required=False, choices=ENTRY_KINDS),
    _Field("levels", "level_list", required=False, empty_ok=True),
)
_DEADLINE_FIELDS = (
    _Field("id", "id"),
    _Field("what", "str"),
    _Field("levels", "level_list"),
    _Field("due", "date"),
    _Field("due_text", "str"),
    _Field("source", "id"),
    _Field("clause", "str", required=False),
    _Field("entry", "id", required=False),
    _Field("note", "text", required=False),
)
_SECTIONS = ("sources", "entries", "deadlines")


@dataclass
class _Raw:
    """Records read from files, with where they came from, before cross-checks."""

    sources: list[tuple[Path, int, dict[str, Any]]] = field(default_factory=list)
    entries: list[tuple[Path, int, dict[str, Any]]] = field(default_factory=list)
    deadlines: list[tuple[Path, int, dict[str, Any]]] = field(default_factory=list)


def _read_file(path: Path, raw: _Raw, out: _Collector) -> None:
    try:
        document = load_yaml(path)
    except YamlError as exc:
        out.add(path, exc.line, exc.message)
        return
    if document is None:
        out.add(path, 1, "tệp trống")
        return
    if not isinstance(document, LineDict):
        out.add(path, 1, f"tệp phải là một bảng gồm các phần {', '.join(_SECTIONS)}")
        return
    for key in document:
        if key not in _SECTIONS:
            out.add(
                path,
                document.line_of(key),
                f"không có phần {key!r} (các phần: {', '.join(_SECTIONS)})",
            )
    specs: dict[str, tuple[tuple[_Field, ...], str, list[tuple[Path, int, dict[str, Any]]]]] = {
        "sources": (_SOURCE_FIELDS, "nguồn", raw.sources),
        "entries": (_ENTRY_FIELDS, "mục", raw.entries),
        "deadlines": (_DEADLINE_FIELDS, "hạn", raw.deadlines),
    }
    for section, (fields, what, sink) in specs.items():
        if section not in document:
            continue
        items = document[section]
        if not isinstance(items, LineList):
            out.add(path, document.line_of(section), f"{section!r} phải là một danh sách")
            continue
        for index, record in enumerate(items):
            line = items.line_of(index)
            values = _read_record(path, record, line, fields, what, out)
            if values is not None:
                sink.append((path, line, values))


def _unique(
    records: list[tuple[Path, int, dict[str, Any]]], what: str, out: _Collector
) -> dict[str, tuple[Path, int, dict[str, Any]]]:
    seen: dict[str, tuple[Path, int, dict[str, Any]]] = {}
    for path, line, values in records:
        key = values["id"]
        if key in seen:
            first_path, first_line, _ = seen[key]
            out.add(path, line, f"trùng mã {what} {key!r} (đã có tại {first_path}:{first_line})")
            continue
        seen[key] = (path, line, values)
    return seen


def _citation(source: Source, clause: str | None) -> str:
    return f"{source.cite_as}, {clause}" if clause else source.cite_as


def _yaml_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*.yaml") if p.is_file())


def _build(
    directory: Path,
    out: _Collector,
    extra_checks: Callable[[_Raw, _Collector], None] | None = None,
) -> KnowledgeBase | None:
    if not directory.is_dir():
        out.add(directory, 0, "không tìm thấy thư mục kho kiến thức")
        return None
    files = _yaml_files(directory)
    if not files:
        out.add(directory, 0, "thư mục kho kiến thức không có tệp *.yaml nào")
        return None
    raw = _Raw()
    for path in files:
        _read_file(path, raw, out)
    if extra_checks is not None:
        extra_checks(raw, out)

    sources = {
        key: Source(**values) for key, (_, _, values) in _unique(raw.sources, "nguồn", out).items()
    }
    entries: dict[str, Entry] = {}
    for key, (path, line, values) in _unique(raw.entries, "mục", out).items():
        source = sources.get(values["source"])
        if source is None:
            out.add(path, line, f"mục {key!r}: không có nguồn {values['source']!r}")
            continue
        entries[key] = Entry(
            id=key,
            title=values["title"],
            questions=values["questions"],
            answer=values["answer"],
            source=source.id,
            clause=values.get("clause"),
            citation=_citation(source, values.get("clause")),
            kind=values.get("kind", "answer"),
            levels=values.get("levels", ()),
        )
        if entries[key].kind == "not_stated" and not entries[key].clause:
            out.add(
                path,
                line,
                f"mục {key!r}: mục not_stated phải dẫn điều khoản gần nhất ('clause')",
            )
    deadlines: dict[str, Deadline] = {}
    for key, (path, line, values) in _unique(raw.deadlines, "hạn", out).items():
        source = sources.get(values["source"])
        if source is None:
            out.add(path, line, f"hạn {key!r}: không có nguồn {values['source']!r}")
            continue
        entry_id = values.get("entry")
        if entry_id is not None and entry_id not in entries:
            out.add(path, line, f"hạn {key!r}: không có mục {entry_id!r}")
            continue
        if entry_id is not None and entries[entry_id].kind != "answer":
            out.add(
                path,
                line,
                f"hạn {key!r}: mục {entry_id!r} là {entries[entry_id].kind}, "
                "hạn phải trỏ tới một mục trả lời (kind: answer)",
            )
            continue
        deadlines[key] = Deadline(
            id=key,
            what=values["what"],
            levels=values["levels"],
            due=values["due"],
            due_text=values["due_text"],
            source=source.id,
            clause=values.get("clause"),
            citation=_citation(source, values.get("clause")),
            entry=entry_id,
            note=values.get("note"),
        )
    if not entries and not out.problems:
        out.add(directory, 0, "kho kiến thức chưa có mục nào")
    return KnowledgeBase(
        directory=directory,
        sources=sources,
        entries=entries,
        deadlines=deadlines,
        files=tuple(files),
    )


def check_directory(directory: Path) -> list[Problem]:
    """Every problem in the knowledge directory; an empty list means it is valid."""
    out = _Collector()
    _build(directory, out)
    return out.problems


def load_knowledge_base(directory: Path | None = None) -> KnowledgeBase:
    """Load and validate; raise :class:`KnowledgeError` listing every problem."""
    out = _Collector()
    kb = _build(directory or default_knowledge_dir(), out)
    if out.problems or kb is None:
        raise KnowledgeError(out.problems)
    return kb


def parse_deadlines(path: Path, sources: dict[str, Source]) -> tuple[list[Deadline], list[Problem]]:
    """Read a stand-alone ``deadlines`` file (e.g. tasks of a later directive).

    Its deadlines may cite the knowledge base's sources or sources declared in the same file.
    """
    out = _Collector()
    raw = _Raw()
    _read_file(path, raw, out)
    known = dict(sources)
    for key, (_, _, values) in _unique(raw.sources, "nguồn", out).items():
        known[key] = Source(**values)
    result: list[Deadline] = []
    for key, (rpath, line, values) in _unique(raw.deadlines, "hạn", out).items():
        source = known.get(values["source"])
        if source is None:
            out.add(rpath, line, f"hạn {key!r}: không có nguồn {values['source']!r}")
            continue
        result.append(
            Deadline(
                id=key,
                what=values["what"],
                levels=values["levels"],
                due=values["due"],
                due_text=values["due_text"],
                source=source.id,
                clause=values.get("clause"),
                citation=_citation(source, values.get("clause")),
                entry=None,
                note=values.get("note"),
            )
        )
    if raw.entries:
        out.add(path, 1, "tệp nhiệm vụ chỉ chứa 'deadlines' (và có thể thêm 'sources')")
    return result, out.problems
