"""«Nhật ký»: the audit log, newest first — who imported units, invited, broadcast,
corrected a report or signed in, when, and from which channel.

The entries are written by the actions themselves (``handlers.audit.record``, in the action's
transaction); this page only reads them, through ``handlers.audit.list_entries``. Scope: a
system administrator sees everything; a unit administrator the entries whose unit is in their
subtree (an entry without a unit concerns the whole system and is the administrator's); an
official has no console (403). ``GET /nhat-ky[?action=…&unit=CODE&before=ID]``: filters by
action and by unit (its subtree), and pages back with ``before`` (the oldest id shown).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from bot.storage.models import Unit
from handlers.audit import ACTION_NAMES, EntryView, list_entries
from handlers.context import UserError
from handlers.formatting import vn_date
from handlers.people import Identity, can_manage
from handlers.units import require_unit
from web.auth import COOKIE, SECURITY_HEADERS

if TYPE_CHECKING:
    from datetime import datetime

    from web.app import Console

__all__ = ["PAGE", "AuditPage", "register"]

PAGE = 50  # entries per page


def _scope(identity: Identity) -> Unit | None:
    return None if identity.role == "admin" else identity.unit


@dataclass
class AuditPage:
    console: Console

    async def show(self, request: web.Request) -> web.StreamResponse:
        """``GET /nhat-ky``: one page of entries in the signed-in person's scope."""
        query = request.query
        action = query.get("action", "")
        if action not in ACTION_NAMES:
            action = ""
        code = query.get("unit", "").strip()[:64]
        value = query.get("before", "")
        before = int(value) if value.isdigit() and len(value) < 12 else None
        problem = None
        async with self.console.services.sessions() as db:
            signed_in = await self.console._signed_in(db, request)
            identity = signed_in.identity
            scope = _scope(identity)
            unit = None
            if code:
                try:
                    unit = await require_unit(db, code, scope)
                except UserError as refused:
                    problem = refused.message
                if unit is not None and not can_manage(identity, unit):
                    raise web.HTTPForbidden(
                        text=self.console._render_message(
                            "Không có quyền truy cập",
                            f"Đơn vị {unit.name} ({unit.code}) không thuộc phạm vi đồng chí quản "
                            "lý: đồng chí chỉ xem được nhật ký của các đơn vị mình quản lý.",
                        ),
                        content_type="text/html",
                        headers=SECURITY_HEADERS,
                    )
            entries: list[EntryView] = []
            if problem is None:
                entries = await list_entries(
                    db,
                    scope=scope,
                    unit=unit,
                    action=action or None,
                    before=before,
                    limit=PAGE + 1,
                )
        more = len(entries) > PAGE
        entries = entries[:PAGE]
        zone = self.console.services.settings.zone

        def when(value: datetime) -> str:
            local = value.astimezone(zone)
            return f"{local:%H:%M:%S} ngày {vn_date(local)}"

        older = None
        if more:
            older = {"before": str(entries[-1].id)}
            if action:
                older["action"] = action
            if unit is not None:
                older["unit"] = unit.code
        return self.console.page(
            "audit.html",
            status=400 if problem else 200,
            signed_in=signed_in,
            raw=request.cookies.get(COOKIE),
            title="Nhật ký",
            scope=scope,
            actions=list(ACTION_NAMES.items()),
            action=action,
            code=code,
            unit=unit,
            problem=problem,
            entries=entries,
            when=when,
            paged=before is not None,
            older=older,
        )


def register(app: web.Application, console: Console) -> None:
    page = AuditPage(console)
    app.router.add_get("/nhat-ky", page.show)
