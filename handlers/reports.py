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
    """Completion per child unit (all tasks together), as a horizontal bar chart.

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
    axes = figure.add_subplot()
    bars = axes.barh(names, values, color="#c62828")
    axes.bar_label(bars, labels=[f"{v:.0f}%" for v in values], padding=3, fontsize=8)
    axes.set_xlim(0, 112)
    axes.set_xlabel("Tỷ lệ hoàn thành (%)")
    title = f"Tiến độ hoàn thành — {_short(rollup.root.name, 60)}"
    if len(children) > MAX_BARS:
        title += f"\n({MAX_BARS} đơn vị thấp nhất trên {len(children)})"
    axes.set_title(title, fontsize=10)
    axes.tick_params(axis="y", labelsize=8)
    # Room for the longest name on the left (about 0.075 inch per character at 8 pt).
    left = min(0.5, (0.3 + 0.075 * max(len(n) for n in names)) / 8)
    figure.subplots_adjust(left=left, right=0.97, top=1 - 0.55 / height, bottom=0.55 / height)
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
        for unit, status, reporter in await unit_rows(session, rollup.root, item.task):
            done = status is not None and status.status == "done"
            sheet.append(
                [
                    neutralise(unit.code),
                    neutralise(unit.name),
                    LEVEL_NAMES.get(unit.level, unit.level),
                    STATUS_LABELS.get(status.status, status.status) if status else "Chưa báo cáo",
                    status.done_on if status else None,
                    neutralise(status.note) if status and status.note else None,
                    neutralise(reporter) if reporter else None,
                    status.channel if status else None,
                    status.updated_at.astimezone(zone).replace(tzinfo=None) if status else None,
                    "Có" if item.overdue and not done else "",
                ]
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(path)
