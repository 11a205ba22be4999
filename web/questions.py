"""«Câu hỏi chưa trả lời»: the questions the knowledge base could not answer in the last 7,
30 or 90 days, near-duplicates grouped, with the suggestions offered; downloadable as CSV
and XLSX for the curators. Grouping and reading are :mod:`handlers.questions` (also
``troly kb unanswered``); this module checks who asks and renders."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from aiohttp import web
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font

from bot.storage.models import Unit
from handlers import questions as rules
from handlers.formatting import vn_datetime
from handlers.questions import (
    PERIODS,
    QuestionGroup,
    group_questions,
    unanswered_questions,
)
from web.auth import COOKIE, SECURITY_HEADERS, SignedIn

if TYPE_CHECKING:
    from web.app import Console

__all__ = ["register"]

DEFAULT_DAYS = 30
SHOWN = 100  # groups listed on the page (the downloads have them all)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
COLUMNS = (
    "Câu hỏi",
    "Số lần hỏi",
    "Số người hỏi",
    "Lần hỏi gần nhất",
    "Cách hỏi khác",
    "Gợi ý đã đưa ra (số lần)",
)


@dataclass
class QuestionPages:
    console: Console

    async def _groups(
        self, request: web.Request
    ) -> tuple[SignedIn, Unit | None, int, list[QuestionGroup]]:
        value = request.query.get("ngay", "")
        days = int(value) if value.isdigit() and int(value) in PERIODS else DEFAULT_DAYS
        services = self.console.services
        async with services.sessions() as db:
            signed_in = await self.console._signed_in(db, request)
            identity = signed_in.identity
            scope = None if identity.role == "admin" else identity.unit
            found = await unanswered_questions(
                db,
                since=self.console.now() - timedelta(days=days),
                scope=scope,
                knowledge=services.knowledge,
            )
        return signed_in, scope, days, group_questions(found)

    def _when(self, group: QuestionGroup) -> str:
        assert group.last_asked is not None
        return vn_datetime(group.last_asked.astimezone(self.console.services.settings.zone))

    def _rows(self, groups: list[QuestionGroup]) -> list[list[str | int]]:
        return [
            [
                group.text,
                group.count,
                group.people,
                self._when(group),
                "\n".join(group.variants),
                "\n".join(f"{title} ({times})" for title, times in group.offered),
            ]
            for group in groups
        ]

    async def show(self, request: web.Request) -> web.StreamResponse:
        """``GET /cau-hoi[?ngay=7|30|90]``."""
        signed_in, scope, days, groups = await self._groups(request)
        return self.console.page(
            "questions.html",
            signed_in=signed_in,
            raw=request.cookies.get(COOKIE),
            title="Câu hỏi chưa trả lời",
            scope=scope,
            days=days,
            periods=PERIODS,
            groups=groups[:SHOWN],
            more=max(0, len(groups) - SHOWN),
            asked=sum(g.count for g in groups),
            uncompared=sum(1 for g in groups if not g.compared),
            compared_limit=rules.COMPARED,
            when=self._when,
        )

    def _download(self, body: bytes, kind: str, days: int, extension: str) -> web.Response:
        stamp = self.console.now().astimezone(self.console.services.settings.zone)
        name = f"cau-hoi-chua-tra-loi-{days}-ngay-{stamp:%Y%m%d}.{extension}"
        return web.Response(
            body=body,
            content_type=kind,
            headers={**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{name}"'},
        )

    async def csv_file(self, request: web.Request) -> web.StreamResponse:
        """``GET /cau-hoi.csv``: UTF-8 with a byte-order mark (Excel reads the accents)."""
        _, _, days, groups = await self._groups(request)
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(COLUMNS)
        for row in self._rows(groups):
            writer.writerow([_safe(value) for value in row])
        body = ("\ufeff" + text.getvalue()).encode()
        return self._download(body, "text/csv", days, "csv")

    async def xlsx_file(self, request: web.Request) -> web.StreamResponse:
        """``GET /cau-hoi.xlsx``."""
        _, _, days, groups = await self._groups(request)
        book = Workbook(write_only=True)
        sheet = book.create_sheet("Câu hỏi chưa trả lời")
        sheet.freeze_panes = "A2"
        for letter, width in zip("ABCDEF", (60, 12, 12, 20, 60, 60), strict=True):
            sheet.column_dimensions[letter].width = width
        bold, wrap = Font(bold=True), Alignment(wrap_text=True, vertical="top")
        header = []
        for name in COLUMNS:
            cell = WriteOnlyCell(sheet, value=name)
            cell.font = bold
            header.append(cell)
        sheet.append(header)
        for row in self._rows(groups):
            cells = []
            for value in row:
                cell = WriteOnlyCell(sheet, value=_safe(value))
                cell.alignment = wrap
                cells.append(cell)
            sheet.append(cells)
        body = io.BytesIO()
        book.save(body)
        return self._download(body.getvalue(), XLSX, days, "xlsx")


def _safe(value: str | int) -> str | int:
    """A question typed as ``=HYPERLINK(...)`` stays text in a spreadsheet (no formula)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        return "'" + value
    return value


def register(app: web.Application, console: Console) -> None:
    pages = QuestionPages(console)
    router = app.router
    router.add_get("/cau-hoi", pages.show)
    router.add_get("/cau-hoi.csv", pages.csv_file)
    router.add_get("/cau-hoi.xlsx", pages.xlsx_file)
