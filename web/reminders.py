"""«Nhắc việc»: per task, the next reminder rounds and the rounds already fired (pushes
delivered, failed, still waiting), and the outbox backlog. The figures come from
:func:`scheduler.overview.reminder_overview` (also ``troly reminders status``); this module
only checks who asks and renders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from handlers.formatting import channel_name
from scheduler.overview import age_text, reminder_overview, vn_moment
from web.auth import COOKIE

if TYPE_CHECKING:
    from web.app import Console

__all__ = ["register"]


@dataclass
class ReminderPage:
    console: Console

    async def show(self, request: web.Request) -> web.StreamResponse:
        """``GET /nhac-viec``: the root admin sees everything; a unit admin, the pushes to
        people of their subtree."""
        services = self.console.services
        async with services.sessions() as db:
            signed_in = await self.console._signed_in(db, request)
            identity = signed_in.identity
            scope = None if identity.role == "admin" else identity.unit
            now = self.console.now()
            overview = await reminder_overview(db, policy=services.policy, now=now, scope=scope)
        policy = overview.policy
        quiet = (
            f"{policy.quiet_start:%H:%M}–{policy.quiet_end:%H:%M}"
            if policy.quiet_start is not None and policy.quiet_end is not None
            else None
        )
        return self.console.page(
            "reminders.html",
            signed_in=signed_in,
            raw=request.cookies.get(COOKIE),
            title="Nhắc việc",
            overview=overview,
            scope=scope,
            moment=vn_moment,
            age=lambda since: age_text(since, overview.now),
            channel=lambda name: channel_name(name, capitalised=True),
            quiet=quiet,
            reminder_time=f"{policy.at:%H:%M}",
            offsets=", ".join(str(d) for d in policy.offsets_days),
        )


def register(app: web.Application, console: Console) -> None:
    app.router.add_get("/nhac-viec", ReminderPage(console).show)
