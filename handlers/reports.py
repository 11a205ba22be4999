"""Files made from a roll-up: the completion chart (PNG) and the Excel workbook."""

from __future__ import annotations

import io
import re
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlmodel.ext.asyncio.session import AsyncSession

from handlers.formatting import vn_date, vn_datetime
from handlers.progress import STATUS_LABELS
from handlers.rollup import Rollup, unit_rows
from handlers.units import LEVEL_NAMES

__all__ = ["chart_png", "neutralise", "write_workbook"]

MAX_BARS = 40
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: object) -> object:
    """A text cell must never be taken for a formula (CSV/Excel injection): text starting
    with = + - @ (or a tab/CR) gets a leading apostrophe."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


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


async def write_workbook(
    session: AsyncSession, rollup: Rollup, path: Path, zone: ZoneInfo, as_of: datetime
) -> None:
    """A summary sheet, then one sheet per task listing every unit with its status."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    summary = workbook.create_sheet("Tổng hợp")
    summary.append([neutralise(f"Tiến độ: {rollup.root.name} ({rollup.root.code})")])
    summary.append([f"Cập nhật lúc {vn_datetime(as_of)}"])
    summary.append([])
    header = [
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
    ]
    summary.append(header)
    for item in rollup.tasks:
        for level, counts in item.levels.items():
            summary.append(
                [
                    neutralise(item.task.title),
                    item.task.due,
                    LEVEL_NAMES.get(level, level),
                    counts.applicable,
                    counts.done,
                    counts.doing,
                    counts.stuck,
                    counts.none,
                    counts.late,
                    round(counts.done / counts.applicable, 4) if counts.applicable else 0,
                ]
            )
    for number, item in enumerate(rollup.tasks, start=1):
        sheet = workbook.create_sheet(_sheet_title(number, item.task.title))
        sheet.append([neutralise(item.task.title)])
        sheet.append([neutralise(f"Hạn {vn_date(item.task.due)}. Căn cứ: {item.task.citation}")])
        sheet.append([])
        sheet.append(
            [
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
            ]
        )
        for row in await unit_rows(session, rollup.root, item.task):
            state = STATUS_LABELS.get(row.status, row.status) if row.status else "Chưa báo cáo"
            sheet.append(
                [
                    neutralise(row.code),
                    neutralise(row.name),
                    LEVEL_NAMES.get(row.level, row.level),
                    state,
                    row.done_on,
                    neutralise(row.note) if row.note else None,
                    neutralise(row.reporter) if row.reporter else None,
                    row.channel,
                    row.updated_at.astimezone(zone).replace(tzinfo=None)
                    if row.updated_at
                    else None,
                    "Có" if item.overdue and row.status != "done" else "",
                ]
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(path)
