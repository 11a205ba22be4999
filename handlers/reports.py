"""Files made from a roll-up: the completion chart (PNG) and the Excel workbook."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlmodel.ext.asyncio.session import AsyncSession

from handlers.formatting import channel_name, vn_date
from handlers.progress import STATUS_LABELS
from handlers.rollup import Rollup, unit_rows
from handlers.units import LEVEL_NAMES

__all__ = ["chart_png", "write_workbook"]

MAX_BARS = 40
DATE_FORMAT = "DD/MM/YYYY"
DATETIME_FORMAT = "DD/MM/YYYY HH:MM"
PERCENT_FORMAT = "0%"


def chart_png(rollup: Rollup) -> bytes | None:
    """Completion per child unit (all tasks together), as a horizontal bar chart, the
    lowest first (at most ``MAX_BARS`` of them).

    Uses matplotlib's object API (no pyplot global state), so it may run in a worker thread.
    """
    children = [c for c in rollup.children if c.applicable]
    if not children:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    children.sort(key=lambda c: c.share)
    shown = children[:MAX_BARS]
    names = [_short(c.unit.name) for c in shown]
    values = [100 * c.share for c in shown]
    height = 1.3 + 0.3 * len(shown)
    figure = Figure(figsize=(8, height), dpi=100)
    FigureCanvasAgg(figure)
    # Room for the longest name on the left (about 0.075 inch per character at 8 pt).
    left = min(0.5, (0.3 + 0.075 * max(len(n) for n in names)) / 8)
    figure.subplots_adjust(left=left, right=0.97, top=1 - 0.55 / height, bottom=0.55 / height)
    axes = figure.add_subplot()
    positions = range(len(shown))
    axes.barh(positions, values, color="#c62828")
    axes.set_xlim(0, 112)
    axes.set_ylim(len(shown) - 0.4, -0.6)  # the lowest completion on top
    axes.set_xticks(range(0, 101, 20))
    axes.tick_params(axis="x", labelsize=8)
    axes.set_xlabel("Tỷ lệ hoàn thành (%)", fontsize=9)
    # Names and values as plain texts rather than 40 tick labels and annotations, and the
    # title on the figure rather than the axes (whose placement measures every label): the
    # same picture in a third of the time (make bench).
    axes.set_yticks([])
    for y, (name, value) in enumerate(zip(names, values, strict=True)):
        axes.text(-1.5, y, name, ha="right", va="center", fontsize=8, clip_on=False)
        axes.text(value + 1, y, f"{value:.0f}%", va="center", fontsize=8)
    title = f"Tiến độ hoàn thành — {_short(rollup.root.name, 60)}"
    if len(children) > MAX_BARS:
        title += f"\n({MAX_BARS} đơn vị thấp nhất trên {len(children)})"
    figure.text(0.5, 1 - 0.1 / height, title, ha="center", va="top", fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _short(name: str, limit: int = 38) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def _sheet_title(number: int, text: str) -> str:
    clean = re.sub(r"[\[\]:*?/\\]", " ", text)
    return f"{number}. {clean}"[:31]


class _Sheet:
    """A write-only sheet whose text always stays text.

    openpyxl takes a string starting with ``=`` for a formula (and ``#N/A`` and the like for
    an error value): such text goes in a cell forced to the string type, so the reader sees
    exactly what was typed and no formula is stored (CSV/Excel injection). Text starting
    with ``+``, ``-`` or ``@`` is already a plain text cell in XLSX.
    """

    def __init__(self, sheet: Any, widths: Sequence[float], header_row: int) -> None:
        from openpyxl.cell import WriteOnlyCell
        from openpyxl.cell.cell import ERROR_CODES, ILLEGAL_CHARACTERS_RE
        from openpyxl.utils import get_column_letter

        self.sheet = sheet
        self._cell, self._errors, self._illegal = WriteOnlyCell, ERROR_CODES, ILLEGAL_CHARACTERS_RE
        for index, width in enumerate(widths, start=1):
            sheet.column_dimensions[get_column_letter(index)].width = width
        sheet.freeze_panes = f"A{header_row + 1}"  # the titles and the header stay in view

    def text(self, value: str | None) -> Any:
        if not value:
            return None
        value = self._illegal.sub("", value)  # control characters openpyxl refuses
        if not value.startswith("=") and value not in self._errors:
            return value
        cell = self._cell(self.sheet, value)
        cell.data_type = "s"
        return cell

    def formatted(self, value: object, number_format: str) -> Any:
        if value is None:
            return None
        cell = self._cell(self.sheet, value)
        cell.number_format = number_format
        return cell

    def header(self, titles: Sequence[str]) -> None:
        from openpyxl.styles import Font

        bold = Font(bold=True)
        cells = []
        for title in titles:
            cell = self._cell(self.sheet, title)
            cell.font = bold
            cells.append(cell)
        self.sheet.append(cells)


SUMMARY_HEADER = (
    "Nhiệm vụ",
    "Hạn",
    "Cấp",
    "Số đơn vị",
    "Đã hoàn thành",
    "Đang thực hiện",
    "Gặp vướng mắc",
    "Chưa báo cáo",
    "Quá hạn",
    "Tỷ lệ hoàn thành",
)
SUMMARY_WIDTHS = (60, 12, 24, 11, 14, 15, 15, 14, 10, 16)
TASK_HEADER = (
    "Mã đơn vị",
    "Tên đơn vị",
    "Cấp",
    "Tình trạng",
    "Ngày hoàn thành",
    "Ghi chú",
    "Người báo cáo",
    "Kênh",
    "Cập nhật lúc",
    "Quá hạn",
)
TASK_WIDTHS = (16, 40, 24, 16, 16, 40, 24, 10, 17, 9)
HEADER_ROW = 4  # title, subtitle, a blank row, then the header


async def write_workbook(
    session: AsyncSession, rollup: Rollup, path: Path, zone: ZoneInfo, as_of: datetime
) -> None:
    """A summary sheet, then one sheet per task listing every unit with its status.

    Dates are real dates (shown dd/mm/yyyy), completion rates numbers shown as percentages,
    and every text a text cell, never a formula.
    """
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    summary = _Sheet(workbook.create_sheet("Tổng hợp"), SUMMARY_WIDTHS, HEADER_ROW)
    summary.sheet.append([summary.text(f"Tiến độ: {rollup.root.name} ({rollup.root.code})")])
    local = as_of.astimezone(zone).replace(tzinfo=None)
    summary.sheet.append(["Cập nhật lúc", summary.formatted(local, DATETIME_FORMAT)])
    summary.sheet.append([])
    summary.header(SUMMARY_HEADER)
    for item in rollup.tasks:
        for level, counts in item.levels.items():
            share = round(counts.done / counts.applicable, 4) if counts.applicable else None
            summary.sheet.append(
                [
                    summary.text(item.task.title),
                    summary.formatted(item.task.due, DATE_FORMAT),
                    LEVEL_NAMES.get(level, level),
                    counts.applicable,
                    counts.done,
                    counts.doing,
                    counts.stuck,
                    counts.none,
                    counts.late,
                    summary.formatted(share, PERCENT_FORMAT),
                ]
            )
    for number, item in enumerate(rollup.tasks, start=1):
        title = _sheet_title(number, item.task.title)
        sheet = _Sheet(workbook.create_sheet(title), TASK_WIDTHS, HEADER_ROW)
        sheet.sheet.append([sheet.text(item.task.title)])
        sheet.sheet.append(
            [sheet.text(f"Hạn {vn_date(item.task.due)}. Căn cứ: {item.task.citation}")]
        )
        sheet.sheet.append([])
        sheet.header(TASK_HEADER)
        for row in await unit_rows(session, rollup.root, item.task):
            state = STATUS_LABELS.get(row.status, row.status) if row.status else "Chưa báo cáo"
            updated = (
                row.updated_at.astimezone(zone).replace(tzinfo=None) if row.updated_at else None
            )
            sheet.sheet.append(
                [
                    sheet.text(row.code),
                    sheet.text(row.name),
                    LEVEL_NAMES.get(row.level, row.level),
                    state,
                    sheet.formatted(row.done_on, DATE_FORMAT),
                    sheet.text(row.note),
                    sheet.text(row.reporter),
                    channel_name(row.channel, capitalised=True) if row.channel else None,
                    sheet.formatted(updated, DATETIME_FORMAT),
                    "Có" if item.overdue and row.status != "done" else None,
                ]
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(path)
