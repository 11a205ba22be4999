"""«Cán bộ»: the people of a unit (optionally with those of its direct children), with their
role, channels, when they last wrote and whether they blocked the assistant; the direct
children with how many people each has, for drilling down. And the unit search of
«Tổng quan».

The rules are the chat's and the command line's: the people come from
``handlers.accounts.list_people`` (as ``/canbo`` and ``troly people`` list them), the counts
from ``handlers.accounts.people_counts``, the search from ``handlers.units.search_units``.
This module checks the scope (``Console._unit_in_scope``) and renders.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from aiohttp import web
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage.models import Unit
from handlers.accounts import list_people, people_counts
from handlers.formatting import vn_datetime
from handlers.people import Identity
from handlers.units import children, search_units
from web.auth import COOKIE

if TYPE_CHECKING:
    from web.app import Console

__all__ = ["SEARCH_SHOWN", "SHOWN", "PeoplePages", "UnitFound", "register", "search"]

SHOWN = 500  # people listed on one page
SEARCH_SHOWN = 20  # units listed for a search


def _scope(identity: Identity) -> Unit | None:
    return None if identity.role == "admin" else identity.unit


@dataclass(frozen=True, slots=True)
class UnitFound:
    unit: Unit
    parent_name: str | None


async def search(db: AsyncSession, identity: Identity, query: str) -> tuple[list[UnitFound], bool]:
    """The units of the signed-in scope matching ``query`` (at most SEARCH_SHOWN), each with
    its parent's name (names repeat: «Chi bộ khu phố 1»), and whether there were more."""
    found = await search_units(db, query, scope=_scope(identity), limit=SEARCH_SHOWN + 1)
    parent_ids = sorted({u.parent_id for u in found if u.parent_id is not None})
    names: dict[int | None, str] = {}
    if parent_ids:
        rows = await db.exec(select(Unit.id, Unit.name).where(col(Unit.id).in_(parent_ids)))
        names = dict(rows.all())
    shown = [UnitFound(u, names.get(u.parent_id)) for u in found[:SEARCH_SHOWN]]
    return shown, len(found) > SEARCH_SHOWN


@dataclass
class PeoplePages:
    console: Console

    async def show(self, request: web.Request) -> web.StreamResponse:
        """``GET /can-bo[?unit=ID][&kem=1]``: the people of the unit (``kem=1``: and of its
        direct children) and its direct children to drill down."""
        with_children = request.query.get("kem") == "1"
        async with self.console.services.sessions() as db:
            signed_in = await self.console._signed_in(db, request)
            identity = signed_in.identity
            unit = await self.console._unit_in_scope(db, identity, request.query.get("unit"))
            found = await list_people(
                db,
                scope=_scope(identity),
                unit=unit,
                inactive=True,
                levels=1 if with_children else 0,
                limit=SHOWN + 1,
            )
            kids = await children(db, unit)
            counts = await people_counts(db, unit=unit)
            trail = await self.console._trail(db, identity, unit)
        zone = self.console.services.settings.zone

        def when(moment: datetime | None) -> str:
            return vn_datetime(moment.astimezone(zone)) if moment is not None else "chưa nhắn"

        return self.console.page(
            "people.html",
            signed_in=signed_in,
            raw=request.cookies.get(COOKIE),
            title=f"Cán bộ — {unit.name}",
            unit=unit,
            trail=trail,
            people=found[:SHOWN],
            more=len(found) > SHOWN,
            shown=SHOWN,
            with_children=with_children,
            kids=kids,
            counts=counts,
            when=when,
        )


def register(app: web.Application, console: Console) -> None:
    pages = PeoplePages(console)
    app.router.add_get("/can-bo", pages.show)
