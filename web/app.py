"""The web console: an aiohttp application, server-rendered with Jinja2 (autoescaped).

``create_web_app(services)`` builds a stand-alone application (polling mode, on WEB_PORT);
``register_console(app, services)`` adds the same routes to an existing one (the webhook
server). Every page reads the signed-in person again and checks the unit asked for against
their scope; every POST checks a CSRF token. Everything shown is Vietnamese.
"""

from __future__ import annotations

import re
import secrets
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import Services
from bot.storage.models import Unit
from handlers.formatting import vn_date, vn_datetime, vn_number
from handlers.people import Identity, can_manage
from handlers.reports import write_workbook
from handlers.rollup import STATES, compute
from handlers.units import LEVEL_NAMES, PATH_DIGITS
from handlers.weblogin import LINK_MINUTES, LOGIN_PATH, login_state, use_login
from web import audit, broadcasts, invites, people, questions, reminders, tasks
from web import units as unit_pages
from web.auth import (
    COOKIE,
    IDLE,
    LOGIN_COOKIE,
    SECURITY_HEADERS,
    SignedIn,
    csrf_ok,
    csrf_token,
    end_session,
    find_session,
    open_session,
)

__all__ = ["COOKIE", "LOGIN_COOKIE", "create_web_app", "register_console"]

HERE = Path(__file__).resolve().parent
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
STATE_NAMES = {
    "done": "Đã hoàn thành",
    "doing": "Đang thực hiện",
    "stuck": "Gặp vướng mắc",
    "none": "Chưa báo cáo",
}
SIGN_IN_HINT = (
    "Để đăng nhập, đồng chí gõ /web (hoặc /dangnhap) trong cuộc trò chuyện với trợ lý trên "
    f"Telegram hoặc Zalo và mở liên kết nhận được trong vòng {LINK_MINUTES} phút."
)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["number"] = vn_number
    env.filters["date"] = vn_date
    env.filters["level"] = lambda level: LEVEL_NAMES.get(level, level)
    env.filters["percent"] = lambda part, whole: f"{round(100 * part / whole)}%" if whole else "—"
    return env


@dataclass
class Console:
    services: Services
    clock: Callable[[], datetime]
    templates: jinja2.Environment
    secure: bool  # cookies only over HTTPS (WEB_BASE_URL is https)

    # ------------------------------------------------------------------ rendering

    def page(
        self,
        template: str,
        *,
        status: int = 200,
        signed_in: SignedIn | None = None,
        raw: str | None = None,
        **values: Any,
    ) -> web.Response:
        html = self.templates.get_template(template).render(
            signed_in=signed_in,
            csrf=csrf_token(raw) if raw and signed_in else None,
            role_names={"admin": "quản trị hệ thống", "unit_admin": "quản trị đơn vị"},
            **values,
        )
        return web.Response(
            text=html, status=status, content_type="text/html", headers=SECURITY_HEADERS
        )

    def message(
        self, title: str, text: str, *, status: int, signed_in: SignedIn | None = None
    ) -> web.Response:
        return self.page("message.html", status=status, signed_in=signed_in, title=title, text=text)

    def now(self) -> datetime:
        return self.clock()

    # ------------------------------------------------------------------ sign-in

    async def home(self, request: web.Request) -> web.StreamResponse:
        raw = request.cookies.get(COOKIE)
        async with self.services.sessions() as db:
            signed_in = await find_session(db, raw, self.now())
            await db.commit()
        if signed_in is not None and signed_in.allowed:
            raise web.HTTPSeeOther("/tien-do")
        return self.message("Trang quản trị Trợ lý Kết luận", SIGN_IN_HINT, status=200)

    async def login_form(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        async with self.services.sessions() as db:
            state = await login_state(db, token, self.now())
        if state != "ok":
            return self._link_problem(state)
        form_token = secrets.token_urlsafe(24)
        response = self.page("login.html", title="Đăng nhập", token=token, form_token=form_token)
        response.set_cookie(
            LOGIN_COOKIE,
            form_token,
            max_age=LINK_MINUTES * 60,
            path=LOGIN_PATH,
            httponly=True,
            samesite="Strict",
            secure=self.secure,
        )
        return response

    async def login(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        form = await request.post()
        expected = request.cookies.get(LOGIN_COOKIE)
        given = form.get("csrf")
        if (
            not expected
            or not isinstance(given, str)
            or not secrets.compare_digest(expected, given)
        ):
            return self._forbidden_form()
        now = self.now()
        async with self.services.sessions() as db:
            outcome = await use_login(db, token, now)
            raw = None
            if outcome.state == "ok" and outcome.identity is not None:
                assert outcome.identity.person.id is not None
                raw = await open_session(db, outcome.identity.person.id, now)
            await db.commit()
        if outcome.state == "forbidden":
            return self._official()
        if raw is None:
            return self._link_problem(outcome.state)
        response = web.HTTPSeeOther("/tien-do", headers=SECURITY_HEADERS)
        response.set_cookie(
            COOKIE,
            raw,
            path="/",
            httponly=True,
            samesite="Strict",
            secure=self.secure,
            max_age=None,  # a browser-session cookie; the server ends it after inactivity
        )
        response.del_cookie(LOGIN_COOKIE, path=LOGIN_PATH)
        raise response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        raw = request.cookies.get(COOKIE)
        form = await request.post()
        if not csrf_ok(raw, form.get("csrf")):
            return self._forbidden_form()
        assert raw is not None
        async with self.services.sessions() as db:
            await end_session(db, raw, self.now())
            await db.commit()
        response = self.message(
            "Đã đăng xuất", "Đồng chí đã đăng xuất khỏi trang quản trị. " + SIGN_IN_HINT, status=200
        )
        response.del_cookie(COOKIE, path="/")
        return response

    def _link_problem(self, state: str) -> web.Response:
        if state == "used":
            return self.message(
                "Liên kết đã được sử dụng",
                "Liên kết đăng nhập này đã được dùng và không dùng lại được. " + SIGN_IN_HINT,
                status=410,
            )
        if state == "expired":
            return self.message(
                "Liên kết đã hết hạn",
                f"Liên kết đăng nhập chỉ có hiệu lực {LINK_MINUTES} phút. " + SIGN_IN_HINT,
                status=410,
            )
        return self.message(
            "Liên kết không hợp lệ",
            "Không tìm thấy liên kết đăng nhập này; có thể địa chỉ bị chép thiếu. " + SIGN_IN_HINT,
            status=404,
        )

    def _official(self) -> web.Response:
        return self.message(
            "Không có quyền truy cập",
            "Trang quản trị dành cho quản trị đơn vị và quản trị hệ thống. Các chức năng của "
            "đồng chí đều dùng được trong cuộc trò chuyện với trợ lý trên Telegram hoặc Zalo.",
            status=403,
        )

    def _forbidden_form(self) -> web.Response:
        return self.message(
            "Yêu cầu không hợp lệ",
            "Biểu mẫu đã cũ hoặc không gửi từ trang quản trị (thiếu mã bảo vệ). Đồng chí vui "
            "lòng tải lại trang rồi thử lại.",
            status=403,
        )

    async def _signed_in(self, db: AsyncSession, request: web.Request) -> SignedIn:
        """The signed-in manager, or the response that says why not (raised)."""
        signed_in = await find_session(db, request.cookies.get(COOKIE), self.now())
        await db.commit()
        if signed_in is None:
            raise web.HTTPUnauthorized(
                text=self._render_message(
                    "Cần đăng nhập",
                    f"Phiên làm việc đã kết thúc (sau {IDLE.seconds // 60} phút không thao tác) "
                    "hoặc đồng chí chưa đăng nhập. " + SIGN_IN_HINT,
                ),
                content_type="text/html",
                headers=SECURITY_HEADERS,
            )
        if not signed_in.allowed:
            raise web.HTTPForbidden(
                text=self._render_message(
                    "Không có quyền truy cập",
                    "Tài khoản của đồng chí không còn quyền dùng trang quản trị.",
                ),
                content_type="text/html",
                headers=SECURITY_HEADERS,
            )
        return signed_in

    def _render_message(self, title: str, text: str) -> str:
        return self.templates.get_template("message.html").render(
            signed_in=None, csrf=None, role_names={}, title=title, text=text
        )

    async def _unit_in_scope(self, db: AsyncSession, identity: Identity, value: str | None) -> Unit:
        """The unit asked for (default: the person's own), refused outside their scope."""
        if not value:
            return identity.unit
        unit = await db.get(Unit, int(value)) if value.isdigit() and len(value) < 12 else None
        if unit is None:
            raise web.HTTPNotFound(
                text=self._render_message("Không tìm thấy đơn vị", "Không có đơn vị này."),
                content_type="text/html",
                headers=SECURITY_HEADERS,
            )
        if not can_manage(identity, unit):
            raise web.HTTPForbidden(
                text=self._render_message(
                    "Không có quyền truy cập",
                    "Đồng chí chỉ xem được các đơn vị thuộc phạm vi mình quản lý.",
                ),
                content_type="text/html",
                headers=SECURITY_HEADERS,
            )
        return unit

    async def _trail(self, db: AsyncSession, identity: Identity, unit: Unit) -> list[Unit]:
        """The unit's ancestors the person may see, from the top down, then the unit."""
        ids = [int(unit.path[i : i + PATH_DIGITS]) for i in range(0, len(unit.path), PATH_DIGITS)]
        found = {u.id: u for u in (await db.exec(select(Unit).where(col(Unit.id).in_(ids)))).all()}
        return [found[i] for i in ids if i in found and can_manage(identity, found[i])]

    # ------------------------------------------------------------------ progress

    async def progress(self, request: web.Request) -> web.StreamResponse:
        raw = request.cookies.get(COOKIE)
        async with self.services.sessions() as db:
            signed_in = await self._signed_in(db, request)
            unit = await self._unit_in_scope(db, signed_in.identity, request.query.get("unit"))
            local_now = self.now().astimezone(self.services.settings.zone)
            rollup = await compute(db, unit, local_now.date())
            trail = await self._trail(db, signed_in.identity, unit)
            query = request.query.get("q", "").strip()[:100]
            found = await people.search(db, signed_in.identity, query) if query else ([], False)
        children = sorted(rollup.children, key=lambda c: (c.share, c.unit.name))
        zone = self.services.settings.zone
        return self.page(
            "progress.html",
            signed_in=signed_in,
            raw=raw,
            title=f"Tổng quan tiến độ — {unit.name}",
            unit=unit,
            rollup=rollup,
            trail=trail,
            children=children,
            states=STATES,
            state_names=STATE_NAMES,
            as_of=vn_datetime(local_now),
            query=query,
            found=found[0],
            more_found=found[1],
            local=lambda moment: vn_datetime(moment.astimezone(zone)),
        )

    async def progress_xlsx(self, request: web.Request) -> web.StreamResponse:
        async with self.services.sessions() as db:
            signed_in = await self._signed_in(db, request)
            unit = await self._unit_in_scope(db, signed_in.identity, request.query.get("unit"))
            zone = self.services.settings.zone
            now = self.now().astimezone(zone)
            rollup = await compute(db, unit, now.date())
            with tempfile.TemporaryDirectory(prefix="troly-web-") as folder:
                path = Path(folder) / "tien-do.xlsx"
                await write_workbook(db, rollup, path, zone, now)
                body = path.read_bytes()
        name = re.sub(r"[^A-Za-z0-9._-]", "-", unit.code)
        return web.Response(
            body=body,
            content_type=XLSX,
            headers={
                **SECURITY_HEADERS,
                "Content-Disposition": f'attachment; filename="tien-do-{name}-{now:%Y%m%d}.xlsx"',
            },
        )


def register_console(
    app: web.Application,
    services: Services,
    *,
    clock: Callable[[], datetime] | None = None,
) -> None:
    """Add the console's routes (``/``, ``/dang-nhap/…``, ``/dang-xuat``, ``/tien-do``,
    ``/tien-do.xlsx``, ``/moi…``, ``/static/…``) to ``app``."""
    base = services.settings.console_base_url or ""
    console = Console(
        services=services,
        clock=clock or services.app.clock,
        templates=_environment(),
        secure=base.startswith("https://"),
    )
    router = app.router
    router.add_get("/", console.home)
    router.add_get(LOGIN_PATH + "{token}", console.login_form)
    router.add_post(LOGIN_PATH + "{token}", console.login)
    router.add_post("/dang-xuat", console.logout)
    router.add_get("/tien-do", console.progress)
    router.add_get("/tien-do.xlsx", console.progress_xlsx)
    invites.register(app, console)
    audit.register(app, console)
    people.register(app, console)
    unit_pages.register(app, console)
    reminders.register(app, console)
    questions.register(app, console)
    broadcasts.register(app, console)
    tasks.register(app, console)
    router.add_static("/static/", HERE / "static")


def create_web_app(
    services: Services, *, clock: Callable[[], datetime] | None = None
) -> web.Application:
    """The console as an application of its own (polling mode: served on WEB_PORT)."""
    app = web.Application()
    register_console(app, services, clock=clock)
    return app
