"""«Đơn vị»: the party tree within the signed-in person's scope, one level at a time, and the
import of a CSV/XLSX list of units: preview first (every ``dòng N: …`` problem, or what
would be created and updated, nothing written), then apply.

The rules are the command line's (``troly units import``): the file is read by
``handlers.units.read_data`` and checked by ``handlers.units.plan_rows``; applying runs
``handlers.units.apply_rows``, which plans again against what is stored at that moment. A
unit admin imports only below their own unit (``scope``), a root admin anywhere.

Where the previewed file lives between the two steps: **in the preview page.** The server
keeps nothing (the console runs on several workers in round robin, see web/invites.py), so
the page carries the file's bytes, base64 in a hidden field, and «Áp dụng» posts them back
with the CSRF token. Nothing the browser sends back is trusted: the file is read and checked
again, with the scope, before anything is written.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage.models import Person, Unit
from handlers.audit import Actor
from handlers.context import UserError
from handlers.formatting import vn_number
from handlers.people import Identity, can_manage
from handlers.units import (
    COLUMNS,
    LEVEL_NAMES,
    ImportPlan,
    UnitImportError,
    apply_rows,
    child_counts,
    import_summary,
    plan_rows,
    read_data,
    require_unit,
    subtree_counts,
)
from web.auth import COOKIE, SECURITY_HEADERS, SignedIn, csrf_ok
from web.uploads import carried, carry, read_upload

if TYPE_CHECKING:
    from web.app import Console

__all__ = ["MAX_FILE", "UnitPages", "register"]

log = logging.getLogger(__name__)

# Bytes of an uploaded list. bench/progress.py's 44,041 units are 0.8 MB as XLSX, 1.8 MB as
# CSV; with long real names a national CSV can pass it (XLSX, or `troly units import`).
MAX_FILE = 2 * 1024 * 1024
# The apply form carries the file in base64 (4/3 of its size) beside a few short fields.
MAX_BODY = MAX_FILE * 4 // 3 + 64 * 1024
SHOWN = 500  # units of one level listed on the page
PREVIEW_SHOWN = 1_000  # created and updated rows listed in a preview (each)
ALL = "tat-ca"  # ?unit=tat-ca: a root admin's view of every root unit


def _scope(identity: Identity) -> Unit | None:
    """Where the person may import: below their unit, or anywhere for a root admin."""
    return None if identity.role == "admin" else identity.unit


def _filename(value: object) -> str:
    """The uploaded file's own name (no folders), short, for messages and the suffix."""
    name = PurePath(str(value or "").replace("\\", "/")).name.strip()
    return name[-120:] or "tep"


@dataclass
class UnitPages:
    console: Console

    # ------------------------------------------------------------------ the tree

    async def show(self, request: web.Request) -> web.StreamResponse:
        """``GET /don-vi[?unit=ID|tat-ca][&ma=CODE]``: one level of the tree with counts."""
        raw = request.cookies.get(COOKIE)
        async with self.console.services.sessions() as db:
            signed_in = await self.console._signed_in(db, request)
            identity = signed_in.identity
            code = request.query.get("ma", "").strip()[:64]
            if code:
                return await self._find(db, request, signed_in, code)
            value = request.query.get("unit")
            unit: Unit | None
            if value == ALL and identity.role == "admin":
                unit = None
            else:
                unit = await self.console._unit_in_scope(db, identity, value)
            return await self._tree(db, raw, signed_in, unit)

    async def _tree(
        self,
        db: AsyncSession,
        raw: str | None,
        signed_in: SignedIn,
        unit: Unit | None,
        *,
        status: int = 200,
        problem: str | None = None,
        code: str = "",
    ) -> web.Response:
        identity = signed_in.identity
        rows, total = await child_counts(db, unit, limit=SHOWN)
        if unit is not None:
            trail = await self.console._trail(db, identity, unit)
            below, people = await subtree_counts(db, unit)
        else:
            trail = []
            below = (await db.exec(select(func.count()).select_from(Unit))).one()
            active = select(func.count()).select_from(Person).where(col(Person.active))
            people = (await db.exec(active)).one()
        roots = 0
        if identity.role == "admin":
            where = col(Unit.parent_id).is_(None)
            roots = (await db.exec(select(func.count()).select_from(Unit).where(where))).one()
        return self.console.page(
            "units.html",
            status=status,
            signed_in=signed_in,
            raw=raw,
            title=f"Đơn vị — {unit.name}" if unit is not None else "Đơn vị — toàn hệ thống",
            unit=unit,
            trail=trail,
            rows=rows,
            total=total,
            more=max(0, total - len(rows)),
            below=below,
            people=people,
            show_all=identity.role == "admin" and roots > 1,
            scope=_scope(identity),
            problem=problem,
            code=code,
            **self._import_help(),
        )

    async def _find(
        self, db: AsyncSession, request: web.Request, signed_in: SignedIn, code: str
    ) -> web.Response:
        """``?ma=CODE``: to that unit's page, if it is in the person's scope."""
        identity = signed_in.identity
        try:
            found = await require_unit(db, code, _scope(identity))
        except UserError as problem:
            return await self._tree(
                db,
                request.cookies.get(COOKIE),
                signed_in,
                identity.unit,
                status=404,
                problem=str(problem),
                code=code,
            )
        if not can_manage(identity, found):
            raise self._forbidden(
                f"Đơn vị {found.name} ({found.code}) không thuộc phạm vi đồng chí quản lý."
            )
        raise web.HTTPSeeOther(f"/don-vi?unit={found.id}", headers=SECURITY_HEADERS)

    def _import_help(self) -> dict[str, Any]:
        return {"columns": ",".join(COLUMNS), "levels": LEVEL_NAMES, "max_file": MAX_FILE}

    def _forbidden(self, text: str) -> web.HTTPForbidden:
        return web.HTTPForbidden(
            text=self.console._render_message("Không có quyền truy cập", text),
            content_type="text/html",
            headers=SECURITY_HEADERS,
        )

    # ------------------------------------------------------------------ import

    async def _form(self, request: web.Request) -> dict[str, str | bytes | None]:
        return await read_upload(
            request, max_body=MAX_BODY, max_file=MAX_FILE, too_large=self._too_large
        )

    def _too_large(self) -> web.HTTPRequestEntityTooLarge:
        return web.HTTPRequestEntityTooLarge(
            max_size=MAX_BODY,
            actual_size=MAX_BODY + 1,
            text=self.console._render_message(
                "Tệp quá lớn",
                f"Tệp danh sách đơn vị tối đa {vn_number(MAX_FILE // 1024 // 1024)} MB. Đồng chí "
                "chia tệp thành nhiều phần (mỗi phần gồm đơn vị cấp trên trước, cấp dưới sau) "
                "rồi nhập lần lượt, hoặc dùng lệnh troly units import trên máy chủ.",
            ),
            content_type="text/html",
            headers=SECURITY_HEADERS,
        )

    def _preview_page(
        self,
        raw: str | None,
        signed_in: SignedIn,
        *,
        filename: str,
        data: bytes,
        plan: ImportPlan | None,
        problems: list[str],
    ) -> web.Response:
        changes = len(plan.created) + len(plan.updated) if plan is not None else 0
        return self.console.page(
            "units_preview.html",
            status=400 if problems else 200,
            signed_in=signed_in,
            raw=raw,
            title="Xem trước danh sách đơn vị",
            filename=filename,
            problems=problems,
            plan=plan,
            summary=(
                import_summary(len(plan.rows), len(plan.created), len(plan.updated), planned=True)
                if plan is not None and not problems
                else None
            ),
            changes=changes,
            created=plan.created[:PREVIEW_SHOWN] if plan is not None else [],
            updated=plan.updated[:PREVIEW_SHOWN] if plan is not None else [],
            shown=PREVIEW_SHOWN,
            content=carry(data) if changes and not problems else "",
            scope=_scope(signed_in.identity),
            **self._import_help(),
        )

    async def preview(self, request: web.Request) -> web.StreamResponse:
        """``POST /don-vi/xem-truoc``: the uploaded file checked, nothing written."""
        raw = request.cookies.get(COOKIE)
        form = await self._form(request)
        if not csrf_ok(raw, form.get("csrf")):
            return self.console._forbidden_form()
        upload = form.get("tep")
        async with self.console.services.sessions() as db:
            signed_in = await self.console._signed_in(db, request)
            if not isinstance(upload, bytes) or not upload:
                return self._preview_page(
                    raw,
                    signed_in,
                    filename="",
                    data=b"",
                    plan=None,
                    problems=["Đồng chí chưa chọn tệp danh sách đơn vị (.csv hoặc .xlsx)."],
                )
            if len(upload) > MAX_FILE:
                raise self._too_large()
            return await self._check(db, raw, signed_in, _filename(form.get("ten")), upload)

    async def _check(
        self, db: AsyncSession, raw: str | None, signed_in: SignedIn, filename: str, data: bytes
    ) -> web.Response:
        try:
            rows = await asyncio.to_thread(read_data, data, filename)  # XLSX: seconds
        except UnitImportError as rejected:
            problems = rejected.problems
            return self._preview_page(
                raw, signed_in, filename=filename, data=data, plan=None, problems=problems
            )
        plan = await plan_rows(db, rows, scope=_scope(signed_in.identity))
        problems = plan.problems or (
            [] if rows else ["dòng 2: tệp không có dòng đơn vị nào (chỉ có dòng tiêu đề)"]
        )
        return self._preview_page(
            raw, signed_in, filename=filename, data=data, plan=plan, problems=problems
        )

    async def apply(self, request: web.Request) -> web.StreamResponse:
        """``POST /don-vi/ap-dung``: the previewed file, read and checked again, stored."""
        raw = request.cookies.get(COOKIE)
        form = await self._form(request)
        if not csrf_ok(raw, form.get("csrf")):
            return self.console._forbidden_form()
        filename = _filename(form.get("ten"))
        async with self.console.services.sessions() as db:
            signed_in = await self.console._signed_in(db, request)
            data = carried(form.get("tep"))
            if not data:
                return self.console.message(
                    "Không đọc được tệp",
                    "Biểu mẫu không mang theo tệp đã xem trước. Đồng chí vui lòng tải tệp lên "
                    "lại ở trang «Đơn vị».",
                    status=400,
                    signed_in=signed_in,
                )
            if len(data) > MAX_FILE:
                raise self._too_large()
            identity = signed_in.identity
            try:
                rows = await asyncio.to_thread(read_data, data, filename)  # XLSX: seconds
                created, updated = await apply_rows(
                    db,
                    rows,
                    self.console.now(),
                    scope=_scope(identity),
                    actor=Actor("web", identity.person.id),
                )
            except UnitImportError as rejected:
                # Something changed since the preview (or the form was altered): the problems
                # as a preview shows them. Nothing was written (rows are planned before any
                # statement) and the session closes uncommitted.
                return self._preview_page(
                    raw,
                    signed_in,
                    filename=filename,
                    data=data,
                    plan=None,
                    problems=rejected.problems,
                )
            await db.commit()
            log.info(
                "units imported from the console by person %s: %d rows, %d created, %d updated",
                identity.person.id,
                len(rows),
                created,
                updated,
            )
            home = identity.unit
        return self.console.page(
            "units_done.html",
            signed_in=signed_in,
            raw=raw,
            title="Đã nhập danh sách đơn vị",
            filename=filename,
            summary=import_summary(len(rows), created, updated),
            home=home,
        )


def register(app: web.Application, console: Console) -> None:
    pages = UnitPages(console)
    router = app.router
    router.add_get("/don-vi", pages.show)
    router.add_post("/don-vi/xem-truoc", pages.preview)
    router.add_post("/don-vi/ap-dung", pages.apply)
