"""«Cán bộ»: the people of a unit (optionally with those of its direct children), with their
role, channels, when they last wrote and whether they blocked the assistant; the direct
children with how many people each has, for drilling down. Per person: lock («Khóa»),
reopen («Mở lại») and move to another unit or role («Chuyển»), each after a confirmation
page. And the unit search of «Tổng quan».

The rules are the chat's and the command line's: the people come from
``handlers.accounts.list_people`` (as ``/canbo`` and ``troly people`` list them), the counts
from ``handlers.accounts.people_counts``, the search from ``handlers.units.search_units``;
locking, reopening and moving are ``deactivate_person``, ``activate_person`` and
``move_person`` (as ``/khoa``, ``/molai``, ``/chuyen`` and ``troly people …``), which refuse
acting on oneself, outside the scope, or handing out the system administrator's role without
being one, and write the audit log (as ``web``). This module checks the scope
(``Console._unit_in_scope``, ``can_manage``) and renders.

The confirmation pages are GETs that change nothing; only their forms POST (with the CSRF
token). After an action the browser is sent back (303) to the list it came from (``ve``, a
unit id checked against the scope again, and ``kem``), which says what was done.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage.models import Person, Unit
from handlers.accounts import (
    ADMIN_ROLE_ONLY,
    SELF_DEACTIVATE,
    SELF_MOVE,
    PersonChange,
    activate_person,
    deactivate_person,
    deactivate_question,
    get_unit,
    list_people,
    move_person,
    move_question,
    people_counts,
)
from handlers.audit import Actor
from handlers.context import UserError
from handlers.formatting import vn_datetime, vn_number
from handlers.people import ROLE_NAMES, Identity, can_manage, invitable_roles
from handlers.units import children, search_units
from web.auth import COOKIE, SECURITY_HEADERS, SignedIn, csrf_ok

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


def _role(role: str) -> str:
    return ROLE_NAMES.get(role, role)


def _digits(value: object) -> int | None:
    return int(value) if isinstance(value, str) and value.isdigit() and len(value) < 12 else None


@dataclass
class Target:
    """The person acted on, their unit, and the list to go back to."""

    person: Person
    unit: Unit
    back: str  # /can-bo?unit=…[&kem=1]
    ve: int  # the unit id of that list
    kem: bool


@dataclass
class PeoplePages:
    console: Console

    # ------------------------------------------------------------------ helpers

    def _refused(self, text: str, status: int = 403) -> web.HTTPException:
        kind = web.HTTPForbidden if status == 403 else web.HTTPNotFound
        title = "Không có quyền thực hiện" if status == 403 else "Không tìm thấy cán bộ"
        return kind(
            text=self.console._render_message(title, text),
            content_type="text/html",
            headers=SECURITY_HEADERS,
        )

    async def _target(
        self, db: AsyncSession, identity: Identity, request: web.Request, values: Any
    ) -> Target:
        """The person of the address, in the signed-in scope (404 unknown, 403 outside), and
        the list to return to (``ve``, ``kem`` from ``values``; default: the person's unit)."""
        person_id = _digits(request.match_info["id"])
        person = await db.get(Person, person_id) if person_id is not None else None
        unit = await db.get(Unit, person.unit_id) if person is not None else None
        if person is None or unit is None:
            raise self._refused("Không có cán bộ này.", status=404)
        if not can_manage(identity, unit):
            raise self._refused(
                f"Cán bộ số {person.id} không thuộc phạm vi đồng chí quản lý: đồng chí chỉ "
                "khóa, mở lại hoặc chuyển được cán bộ của các đơn vị mình quản lý."
            )
        ve = _digits(values.get("ve"))
        back_unit = await db.get(Unit, ve) if ve is not None else None
        if back_unit is None or not can_manage(identity, back_unit):
            back_unit = unit
        assert back_unit.id is not None
        kem = values.get("kem") == "1"
        back = f"/can-bo?unit={back_unit.id}" + ("&kem=1" if kem else "")
        return Target(person, unit, back, back_unit.id, kem)

    def _done(self, target: Target, action: str, change: PersonChange) -> web.HTTPSeeOther:
        """Back to the list, which then says what was done (see :meth:`_notice`)."""
        location = f"{target.back}&da={action}&nguoi={change.person.id}"
        if not change.changed:
            location += "&doi=0"
        elif change.cancelled_pushes:
            location += f"&huy={change.cancelled_pushes}"
        return web.HTTPSeeOther(location, headers=SECURITY_HEADERS)

    async def _notice(self, db: AsyncSession, identity: Identity, query: Any) -> str | None:
        """What the list says after an action (from the redirect's address)."""
        action, person_id = query.get("da"), _digits(query.get("nguoi"))
        person = await db.get(Person, person_id) if person_id is not None else None
        unit = await db.get(Unit, person.unit_id) if person is not None else None
        if person is None or unit is None or not can_manage(identity, unit):
            return None
        changed = query.get("doi") != "0"
        if action == "khoa":
            if not changed:
                return f"Tài khoản của {person.name} đã khóa từ trước."
            cancelled = _digits(query.get("huy")) or 0
            return f"Đã khóa tài khoản của {person.name} ({unit.name})." + (
                f" {vn_number(cancelled)} tin đang chờ gửi cho người này đã được hủy."
                if cancelled
                else ""
            )
        if action == "mo-lai":
            if not changed:
                return f"Tài khoản của {person.name} đang hoạt động, không cần mở lại."
            return f"Đã mở lại tài khoản của {person.name} ({unit.name})."
        if action == "chuyen":
            now_is = f"{_role(person.role)} của {unit.name}"
            if not changed:
                return f"{person.name} đã là {now_is}; không có gì thay đổi."
            return f"Đã chuyển {person.name}: nay là {now_is}."
        return None

    def _confirm(
        self,
        request: web.Request,
        signed_in: SignedIn,
        target: Target,
        *,
        title: str,
        question: str,
        action: str,
        button: str,
        fields: dict[str, str] | None = None,
        note: str | None = None,
    ) -> web.Response:
        return self.console.page(
            "person_confirm.html",
            signed_in=signed_in,
            raw=request.cookies.get(COOKIE),
            title=title,
            target=target,
            question=question,
            action=action,
            button=button,
            fields=fields or {},
            note=note,
        )

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
            notice = await self._notice(db, identity, request.query)
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
            notice=notice,
            me=identity.person.id,
        )

    # ------------------------------------------------------------------ lock, reopen

    async def lock_form(self, request: web.Request) -> web.StreamResponse:
        """``GET /can-bo/{id}/khoa``: what locking does, «Xác nhận khóa» or «Quay lại»."""
        async with self.console.services.sessions() as db:
            signed_in = await self.console._signed_in(db, request)
            target = await self._target(db, signed_in.identity, request, request.query)
        if target.person.id == signed_in.identity.person.id:
            raise self._refused(SELF_DEACTIVATE)
        if not target.person.active:
            return self._confirm(
                request,
                signed_in,
                target,
                title="Khóa tài khoản",
                question=f"Tài khoản của {target.person.name} đã khóa từ trước.",
                action="",
                button="",
            )
        return self._confirm(
            request,
            signed_in,
            target,
            title="Khóa tài khoản",
            question=deactivate_question(target.person, target.unit),
            action=f"/can-bo/{target.person.id}/khoa",
            button="Xác nhận khóa",
            note="Lịch sử báo cáo và tin nhắn của người này vẫn được giữ; đồng chí có thể mở "
            "lại tài khoản bất cứ lúc nào.",
        )

    async def lock(self, request: web.Request) -> web.StreamResponse:
        """``POST /can-bo/{id}/khoa``: lock, cancel what was queued for them, back to the list."""
        return await self._switch(request, deactivate_person, "khoa")

    async def _switch(
        self, request: web.Request, change_person: Callable[..., Awaitable[PersonChange]], done: str
    ) -> web.StreamResponse:
        """Lock or reopen (``change_person``) the person of a confirmed POST, back to the list."""
        data = await request.post()
        if not csrf_ok(request.cookies.get(COOKIE), data.get("csrf")):
            return self.console._forbidden_form()
        async with self.console.services.sessions() as db:
            signed_in = await self.console._signed_in(db, request)
            identity = signed_in.identity
            target = await self._target(db, identity, request, data)
            try:
                change = await change_person(
                    db,
                    person_id=target.person.id or 0,
                    scope=_scope(identity),
                    now=self.console.now(),
                    actor=Actor("web", identity.person.id),
                )
            except UserError as problem:
                raise self._refused(str(problem)) from None
            await db.commit()
        raise self._done(target, done, change)

    async def reopen_form(self, request: web.Request) -> web.StreamResponse:
        """``GET /can-bo/{id}/mo-lai``: what reopening does, «Xác nhận mở lại» or «Quay lại»."""
        async with self.console.services.sessions() as db:
            signed_in = await self.console._signed_in(db, request)
            target = await self._target(db, signed_in.identity, request, request.query)
        person = target.person
        if person.active:
            question = f"Tài khoản của {person.name} đang hoạt động, không cần mở lại."
            return self._confirm(
                request,
                signed_in,
                target,
                title="Mở lại tài khoản",
                question=question,
                action="",
                button="",
            )
        return self._confirm(
            request,
            signed_in,
            target,
            title="Mở lại tài khoản",
            question=f"Mở lại tài khoản của {person.name} ({_role(person.role)}, "
            f"{target.unit.name})? Người này sẽ báo cáo được và nhận nhắc việc, thông báo "
            "như trước.",
            action=f"/can-bo/{person.id}/mo-lai",
            button="Xác nhận mở lại",
        )

    async def reopen(self, request: web.Request) -> web.StreamResponse:
        """``POST /can-bo/{id}/mo-lai``: reopen, back to the list."""
        return await self._switch(request, activate_person, "mo-lai")

    # ------------------------------------------------------------------ move

    def _move_page(
        self,
        request: web.Request,
        signed_in: SignedIn,
        target: Target,
        *,
        code: str,
        role: str,
        problem: str | None = None,
    ) -> web.Response:
        return self.console.page(
            "person_move.html",
            status=400 if problem else 200,
            signed_in=signed_in,
            raw=request.cookies.get(COOKIE),
            title="Chuyển đơn vị, vai trò",
            target=target,
            code=code,
            role=role,
            roles=[(r, _role(r)) for r in invitable_roles(signed_in.identity)],
            current_role=_role(target.person.role),
            problem=problem,
        )

    async def move_form(self, request: web.Request) -> web.StreamResponse:
        """``GET /can-bo/{id}/chuyen``: the new unit's code and the role."""
        async with self.console.services.sessions() as db:
            signed_in = await self.console._signed_in(db, request)
            target = await self._target(db, signed_in.identity, request, request.query)
        if target.person.id == signed_in.identity.person.id:
            raise self._refused(SELF_MOVE)
        return self._move_page(
            request, signed_in, target, code=target.unit.code, role=target.person.role
        )

    async def move(self, request: web.Request) -> web.StreamResponse:
        """``POST /can-bo/{id}/chuyen``: without ``xac_nhan`` the form is checked and the
        confirmation shown; with it, the move is made and the browser sent back to the list."""
        data = await request.post()
        if not csrf_ok(request.cookies.get(COOKIE), data.get("csrf")):
            return self.console._forbidden_form()
        code = str(data.get("don_vi", "")).strip()[:64]
        role = str(data.get("vai_tro", ""))
        async with self.console.services.sessions() as db:
            signed_in = await self.console._signed_in(db, request)
            identity = signed_in.identity
            target = await self._target(db, identity, request, data)
            if target.person.id == identity.person.id:
                raise self._refused(SELF_MOVE)
            if role not in ROLE_NAMES:
                return self._move_page(
                    request,
                    signed_in,
                    target,
                    code=code,
                    role=target.person.role,
                    problem="Đồng chí vui lòng chọn vai trò mới.",
                )
            if role not in invitable_roles(identity):
                raise self._refused(ADMIN_ROLE_ONLY)
            try:
                unit = await get_unit(db, code, scope=_scope(identity))
            except UserError as problem:
                return self._move_page(
                    request, signed_in, target, code=code, role=role, problem=str(problem)
                )
            if data.get("xac_nhan") != "1":
                return self._confirm(
                    request,
                    signed_in,
                    target,
                    title="Chuyển đơn vị, vai trò",
                    question=move_question(target.person, target.unit, unit, role),
                    action=f"/can-bo/{target.person.id}/chuyen",
                    button="Xác nhận chuyển",
                    fields={"don_vi": unit.code, "vai_tro": role, "xac_nhan": "1"},
                    note="Người này sẽ báo cáo và nhận nhắc việc theo đơn vị mới.",
                )
            try:
                change = await move_person(
                    db,
                    person_id=target.person.id or 0,
                    unit=unit,
                    role=role,
                    scope=_scope(identity),
                    now=self.console.now(),
                    actor=Actor("web", identity.person.id),
                )
            except UserError as problem:
                raise self._refused(str(problem)) from None
            await db.commit()
        raise self._done(target, "chuyen", change)


def register(app: web.Application, console: Console) -> None:
    pages = PeoplePages(console)
    router = app.router
    router.add_get("/can-bo", pages.show)
    router.add_get("/can-bo/{id}/khoa", pages.lock_form)
    router.add_post("/can-bo/{id}/khoa", pages.lock)
    router.add_get("/can-bo/{id}/mo-lai", pages.reopen_form)
    router.add_post("/can-bo/{id}/mo-lai", pages.reopen)
    router.add_get("/can-bo/{id}/chuyen", pages.move_form)
    router.add_post("/can-bo/{id}/chuyen", pages.move)
