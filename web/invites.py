"""«Cán bộ và mã mời»: invitations created from the console, one unit or one per unit of a
subtree, downloaded as a sheet and as a printable page with a QR code per unit; revoking.

The rules are the chat's and the command line's: codes are made by
``handlers.accounts.create_invites`` (``handlers.people.create_invite`` for each unit), the
roles one may hand out by ``handlers.people.invitable_roles``, the Telegram link and the Zalo
instruction by ``handlers.accounts``, revoking by ``handlers.accounts.revoke_invite``.

Where the plain codes of a batch live: **only in the browser that created them.** The
database keeps hashes, so a batch cannot be read back from it; and the server keeps nothing
either (no in-memory store): behind Caddy the console runs on several workers in round robin
(deploy/Caddyfile), so a download served by another worker — or after a restart — would find
no batch in memory. Instead the result page of the POST that creates the batch carries the
codes (it shows them anyway), and its two buttons POST them back, with the CSRF token, to
``/moi/bang-ma.xlsx`` and ``/moi/in``. Those two accept a code only when its hash is an
invitation within the signed-in person's scope (any other: 403, the same answer for unknown
and outside, so the forms tell nothing about codes elsewhere), and build the sheet or the
page from the database — nothing the browser sends is printed unchecked. Codes travel only in
POST bodies (never in an address, so never in an access log or a Referer), pages are
``Cache-Control: no-store``, and nothing here logs a code.
"""

from __future__ import annotations

import inspect
import io
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import segno
from aiohttp import web
from markupsafe import Markup
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.redaction import find_code
from bot.storage.models import Invite, Unit
from handlers.accounts import (
    USABLE,
    create_invites,
    invite_state,
    list_invites,
    revoke_invite,
    telegram_link,
    zalo_instruction,
)
from handlers.admin import DEFAULT_INVITE_DAYS
from handlers.audit import Actor
from handlers.context import UserError
from handlers.formatting import vn_datetime, vn_number
from handlers.people import (
    MAX_DAYS,
    MAX_USES,
    ROLE_NAMES,
    Identity,
    can_manage,
    find_invites,
    format_code,
    invitable_roles,
)
from handlers.units import require_unit
from web.auth import COOKIE, SECURITY_HEADERS, SignedIn, csrf_ok

if TYPE_CHECKING:
    from web.app import Console

__all__ = ["MAX_BATCH", "InvitePages"]

MAX_BATCH = 2_000  # units per batch: a page and a sheet a browser and a printer can take
# A batch posted back is one field per code: above aiohttp's default limit of form fields.
FIELDS_LIMITED = "client_max_fields" in inspect.signature(web.BaseRequest.clone).parameters
SHOWN = 200  # invitations listed on the page
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
COLUMNS = (
    "Đơn vị",
    "Mã đơn vị",
    "Mã mời",
    "Vai trò",
    "Liên kết Telegram",
    "Hướng dẫn Zalo",
    "Hết hạn",
)
NOT_IN_SCOPE = (
    "Có mã mời không tồn tại hoặc không thuộc phạm vi đồng chí quản lý. Đồng chí vui lòng tạo "
    "lại bộ mã từ trang «Cán bộ và mã mời»."
)


@dataclass
class InviteForm:
    """What the creation form holds (as typed, shown again with a problem)."""

    unit: str = ""
    subtree: bool = False
    role: str = "official"
    uses: str = "1"
    days: str = str(DEFAULT_INVITE_DAYS)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class BatchRow:
    unit_name: str
    unit_code: str
    code: str
    role_name: str
    telegram: str | None  # the t.me deep link, when the bot's username is known
    zalo: str | None  # the instruction, when Zalo is served (or no messenger is configured)
    expires: str  # local time, Vietnamese
    state: str  # còn hiệu lực, hết hạn, …

    @property
    def qr(self) -> Markup:
        """The QR code as inline SVG: the Telegram link (scanning opens the chat with the code
        filled in), otherwise the code itself. Only ASCII from our own alphabet goes in."""
        svg = segno.make(self.telegram or self.code, error="m").svg_inline(scale=4, border=2)
        return Markup(svg)  # noqa: S704 - generated from the code or link, nothing from users


def _scope(identity: Identity) -> Unit | None:
    return None if identity.role == "admin" else identity.unit


def _post_codes(form: Any) -> list[str]:
    """The codes a download form sent back (normalised), at most MAX_BATCH."""
    codes = []
    for value in form.getall("ma", [])[: MAX_BATCH + 1]:
        found = find_code(value) if isinstance(value, str) else None
        if found is None:
            raise ValueError(value)
        codes.append(format_code(found))
    if not codes or len(codes) > MAX_BATCH:
        raise ValueError("count")
    return codes


@dataclass
class InvitePages:
    console: Console

    # ------------------------------------------------------------------ helpers

    def _ways(self, code: str) -> tuple[str | None, str | None]:
        """(Telegram link, Zalo instruction) as the chat's invitation text gives them."""
        app = self.console.services.app
        telegram = "telegram" in app.channels or app.bot_username is not None
        zalo = "zalo" in app.channels
        generic = not telegram and not zalo
        link = telegram_link(code, app.bot_username) if telegram else None
        instruction = zalo_instruction(code) if zalo or generic else None
        return link, (instruction[0].upper() + instruction[1:]) if instruction else None

    def _row(self, unit: Unit, code: str, role: str, expires_at: datetime, state: str) -> BatchRow:
        link, zalo = self._ways(code)
        return BatchRow(
            unit_name=unit.name,
            unit_code=unit.code,
            code=code,
            role_name=ROLE_NAMES.get(role, role),
            telegram=link,
            zalo=zalo,
            expires=vn_datetime(expires_at.astimezone(self.console.services.settings.zone)),
            state=state,
        )

    async def _page(
        self,
        db: AsyncSession,
        request: web.Request,
        signed_in: SignedIn,
        form: InviteForm,
        *,
        status: int = 200,
        notice: str | None = None,
    ) -> web.Response:
        identity = signed_in.identity
        found = await list_invites(db, scope=_scope(identity), now=self.console.now())
        zone = self.console.services.settings.zone
        return self.console.page(
            "invites.html",
            status=status,
            signed_in=signed_in,
            raw=request.cookies.get(COOKIE),
            title="Cán bộ và mã mời",
            scope=_scope(identity),
            form=form,
            roles=[(role, ROLE_NAMES[role]) for role in invitable_roles(identity)],
            invites=found[:SHOWN],
            more=max(0, len(found) - SHOWN),
            total=len(found),
            expiry=lambda value: vn_datetime(value.astimezone(zone)),
            notice=notice,
            max_uses=MAX_USES,
            max_days=MAX_DAYS,
            max_batch=MAX_BATCH,
        )

    def _forbidden(self, text: str) -> web.HTTPForbidden:
        return web.HTTPForbidden(
            text=self.console._render_message("Không có quyền truy cập", text),
            content_type="text/html",
            headers=SECURITY_HEADERS,
        )

    # ------------------------------------------------------------------ pages

    async def show(self, request: web.Request) -> web.StreamResponse:
        """``GET /moi[?unit=ID]``: the form (the unit preselected) and the scope's invitations."""
        async with self.console.services.sessions() as db:
            signed_in = await self.console._signed_in(db, request)
            unit = await self.console._unit_in_scope(
                db, signed_in.identity, request.query.get("unit")
            )
            revoked = request.query.get("thu_hoi", "")
            notice = (
                f"Đã thu hồi mã mời số {int(revoked)}: mã này không dùng được nữa."
                if revoked.isdigit() and len(revoked) < 12
                else None
            )
            return await self._page(
                db, request, signed_in, InviteForm(unit=unit.code), notice=notice
            )

    async def create(self, request: web.Request) -> web.StreamResponse:
        """``POST /moi``: one invitation, or one per unit of a subtree, in one transaction."""
        raw = request.cookies.get(COOKIE)
        data = await request.post()
        if not csrf_ok(raw, data.get("csrf")):
            return self.console._forbidden_form()
        form = InviteForm(
            unit=str(data.get("unit", "")).strip()[:64],
            subtree=data.get("pham_vi") == "cay",
            role=str(data.get("role", "")),
            uses=str(data.get("uses", "")).strip()[:12],
            days=str(data.get("days", "")).strip()[:12],
        )
        async with self.console.services.sessions() as db:
            signed_in = await self.console._signed_in(db, request)
            identity = signed_in.identity
            try:
                unit = await require_unit(db, form.unit or identity.unit.code, _scope(identity))
            except UserError as problem:
                form.problems.append(str(problem))
                return await self._page(db, request, signed_in, form, status=400)
            if not can_manage(identity, unit):
                raise self._forbidden(
                    f"Đơn vị {unit.name} ({unit.code}) không thuộc phạm vi đồng chí quản lý: "
                    "đồng chí chỉ tạo được mã mời cho các đơn vị mình quản lý."
                )
            if form.role not in ROLE_NAMES:
                form.problems.append("Đồng chí vui lòng chọn vai trò của người được mời.")
            elif form.role not in invitable_roles(identity):
                raise self._forbidden("Chỉ quản trị hệ thống mới tạo được mã quản trị hệ thống.")
            if not (form.uses.isdigit() and form.days.isdigit()):
                form.problems.append(
                    "Số người dùng và số ngày hiệu lực phải là số nguyên dương, ví dụ 1 và 14."
                )
            if form.problems:
                return await self._page(db, request, signed_in, form, status=400)
            now = self.console.now()
            try:
                made = await create_invites(
                    db,
                    root=unit,
                    subtree=form.subtree,
                    role=form.role,
                    uses=int(form.uses),
                    days=int(form.days),
                    created_by=f"person:{identity.person.id}",
                    now=now,
                    limit=MAX_BATCH,
                    actor=Actor("web", identity.person.id),
                )
            except UserError as problem:
                # Refused before anything was added (the limit, or create_invite's checks on
                # the first unit); the session closes uncommitted, so nothing is stored.
                form.problems.append(str(problem))
                return await self._page(db, request, signed_in, form, status=400)
            await db.commit()
            expires = now + timedelta(days=int(form.days))
            rows = [self._row(u, code, form.role, expires, USABLE) for u, code in made]
        return self.console.page(
            "invite_batch.html",
            signed_in=signed_in,
            raw=raw,
            title="Đã tạo mã mời",
            root=unit,
            subtree=form.subtree,
            rows=rows,
            uses=vn_number(int(form.uses)),
            days=vn_number(int(form.days)),
        )

    async def _batch(self, request: web.Request) -> tuple[SignedIn, str | None, list[BatchRow]]:
        """The batch a download form sent back, checked against the database and the scope."""
        raw = request.cookies.get(COOKIE)
        if FIELDS_LIMITED:  # aiohttp >= 3.14 refuses forms of more than 1,000 fields (413)
            request = request.clone(client_max_fields=MAX_BATCH + 8)
        data = await request.post()
        if not csrf_ok(raw, data.get("csrf")):
            raise web.HTTPForbidden(
                text=self.console._render_message(
                    "Yêu cầu không hợp lệ",
                    "Biểu mẫu đã cũ hoặc không gửi từ trang quản trị (thiếu mã bảo vệ). Đồng "
                    "chí vui lòng tải lại trang rồi thử lại.",
                ),
                content_type="text/html",
                headers=SECURITY_HEADERS,
            )
        async with self.console.services.sessions() as db:
            signed_in = await self.console._signed_in(db, request)
            try:
                codes = _post_codes(data)
            except ValueError:
                raise self._forbidden(NOT_IN_SCOPE) from None
            found = await find_invites(db, codes)
            if len(found) != len(set(codes)):
                raise self._forbidden(NOT_IN_SCOPE)
            units = {
                u.id: u
                for u in (
                    await db.exec(
                        select(Unit).where(
                            col(Unit.id).in_(sorted({i.unit_id for i in found.values()}))
                        )
                    )
                ).all()
            }
        rows = []
        for code in dict.fromkeys(codes):
            invite = found[code]
            unit = units[invite.unit_id]
            if not can_manage(signed_in.identity, unit):
                raise self._forbidden(NOT_IN_SCOPE)
            state = invite_state(invite, self.console.now())
            rows.append(self._row(unit, code, invite.role, invite.expires_at, state))
        return signed_in, raw, rows

    async def sheet(self, request: web.Request) -> web.StreamResponse:
        """``POST /moi/bang-ma.xlsx``: the batch as a sheet, one row per unit."""
        _, _, rows = await self._batch(request)
        book = Workbook(write_only=True)
        sheet = book.create_sheet("Mã mời")
        sheet.freeze_panes = "A2"
        for letter, width in zip("ABCDEFG", (40, 16, 18, 18, 46, 46, 20), strict=True):
            sheet.column_dimensions[letter].width = width
        bold = Font(bold=True)
        header = []
        for name in COLUMNS:
            cell = WriteOnlyCell(sheet, value=name)
            cell.font = bold
            header.append(cell)
        sheet.append(header)
        for row in rows:
            sheet.append(
                [
                    row.unit_name,
                    row.unit_code,
                    row.code,
                    row.role_name,
                    row.telegram or "",
                    row.zalo or "",
                    row.expires,
                ]
            )
        body = io.BytesIO()
        book.save(body)
        name = re.sub(r"[^A-Za-z0-9._-]", "-", rows[0].unit_code)
        stamp = self.console.now().astimezone(self.console.services.settings.zone)
        return web.Response(
            body=body.getvalue(),
            content_type=XLSX,
            headers={
                **SECURITY_HEADERS,
                "Content-Disposition": f'attachment; filename="ma-moi-{name}-{stamp:%Y%m%d}.xlsx"',
            },
        )

    async def printable(self, request: web.Request) -> web.StreamResponse:
        """``POST /moi/in``: a page to print, one card with a QR code per unit."""
        signed_in, raw, rows = await self._batch(request)
        return self.console.page(
            "invite_print.html",
            signed_in=signed_in,
            raw=raw,
            title="In mã mời",
            rows=rows,
        )

    async def revoke(self, request: web.Request) -> web.StreamResponse:
        """``POST /moi/thu-hoi``: the code no longer enrols anyone."""
        raw = request.cookies.get(COOKIE)
        data = await request.post()
        if not csrf_ok(raw, data.get("csrf")):
            return self.console._forbidden_form()
        value = str(data.get("id", ""))
        async with self.console.services.sessions() as db:
            signed_in = await self.console._signed_in(db, request)
            invite = (
                await db.get(Invite, int(value)) if value.isdigit() and len(value) < 12 else None
            )
            if invite is None:
                return self.console.message(
                    "Không tìm thấy mã mời", "Không có mã mời này.", status=404, signed_in=signed_in
                )
            try:
                info, _ = await revoke_invite(
                    db,
                    invite_id=int(value),
                    scope=_scope(signed_in.identity),
                    now=self.console.now(),
                    actor=Actor("web", signed_in.identity.person.id),
                )
            except UserError as problem:
                raise self._forbidden(str(problem)) from None
            await db.commit()
        raise web.HTTPSeeOther(f"/moi?thu_hoi={info.id}", headers=SECURITY_HEADERS)


def register(app: web.Application, console: Console) -> None:
    pages = InvitePages(console)
    router = app.router
    router.add_get("/moi", pages.show)
    router.add_post("/moi", pages.create)
    router.add_post("/moi/bang-ma.xlsx", pages.sheet)
    router.add_post("/moi/in", pages.printable)
    router.add_post("/moi/thu-hoi", pages.revoke)
