"""Sign-in to the web console without passwords: one-time links valid ten minutes.

Only unit admins and admins have a console. The link's token is random (256 bits), shown
once and stored only as its SHA-256. Creating a link lives here, used by the chat command
``/web`` (alias ``/dangnhap``) and by ``troly web link``; using one (``use_login``) is called
by the console (``web/``), which then opens a browser session.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core import IncomingMessage, Reply
from bot.storage.models import Person, Unit, WebLogin
from handlers.audit import Actor, record
from handlers.context import Context, UserError
from handlers.people import Identity
from handlers.routing import Handler, Route

__all__ = [
    "CONSOLE_ROLES",
    "LINK_MINUTES",
    "LOGIN_PATH",
    "LoginOutcome",
    "command",
    "configure",
    "create_login_link",
    "hash_token",
    "login_state",
    "route",
    "use_login",
]

CONSOLE_ROLES = frozenset({"unit_admin", "admin"})
LINK_MINUTES = 10
LOGIN_PATH = "/dang-nhap/"
ROUTE_NAME = "web"
COMMANDS = frozenset({"web", "dangnhap"})

NOT_CONFIGURED = (
    "Trang quản trị trên web chưa được cấu hình trên máy chủ này (thiếu địa chỉ WEB_BASE_URL). "
    "Đồng chí vui lòng liên hệ bộ phận kỹ thuật."
)
NOT_ALLOWED = (
    "Trang quản trị trên web dành cho quản trị đơn vị và quản trị hệ thống. Các chức năng "
    "của đồng chí đều dùng được ngay trong cuộc trò chuyện này (gõ /help để xem)."
)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_login_link(
    session: AsyncSession,
    *,
    person: Person,
    base_url: str,
    via: str,
    now: datetime,
) -> str:
    """A new one-time sign-in link for ``person`` (shown once; only its hash is stored).
    Refuses anyone who may not use the console. Written to the audit log (without the link):
    asked for by the person in a chat (``via`` a channel) or by the operator (``via="cli"``)."""
    if not person.active or person.role not in CONSOLE_ROLES:
        raise UserError(NOT_ALLOWED)
    assert person.id is not None
    token = secrets.token_urlsafe(32)
    session.add(
        WebLogin(
            token_hash=hash_token(token),
            person_id=person.id,
            created_via=via[:16],
            expires_at=now + timedelta(minutes=LINK_MINUTES),
            created_at=now,
        )
    )
    await session.flush()
    record(
        session,
        Actor(via, None if via == "cli" else person.id),
        "web.link",
        f"Tạo liên kết đăng nhập trang quản trị (hiệu lực {LINK_MINUTES} phút) cho {person.name}.",
        now=now,
        unit_id=person.unit_id,
        details={"person": person.id},
    )
    return f"{base_url.rstrip('/')}{LOGIN_PATH}{token}"


LoginState = Literal["ok", "unknown", "used", "expired"]


async def login_state(session: AsyncSession, token: str, now: datetime) -> LoginState:
    """What a link is, without using it."""
    login = (
        await session.exec(select(WebLogin).where(WebLogin.token_hash == hash_token(token)))
    ).first()
    if login is None:
        return "unknown"
    if login.used_at is not None:
        return "used"
    if login.expires_at <= now:
        return "expired"
    return "ok"


@dataclass(frozen=True, slots=True)
class LoginOutcome:
    """``state`` "ok" with the identity; "forbidden" when the person may no longer use the
    console (role changed, account locked); otherwise why the link did not work."""

    state: Literal["ok", "unknown", "used", "expired", "forbidden"]
    identity: Identity | None = None


async def use_login(session: AsyncSession, token: str, now: datetime) -> LoginOutcome:
    """Use a link once. Atomic: the same link opened twice at once signs in one browser.
    A sign-in is written to the audit log (a refused link is not: nobody is known)."""
    token_hash = hash_token(token)
    claimed = await session.exec(
        update(WebLogin)
        .where(
            col(WebLogin.token_hash) == token_hash,
            col(WebLogin.used_at).is_(None),
            col(WebLogin.expires_at) > now,
        )
        .values(used_at=now)
    )
    if claimed.rowcount != 1:
        state = await login_state(session, token, now)
        return LoginOutcome("unknown" if state == "ok" else state)
    found = (
        await session.exec(
            select(Person, Unit)
            .join(WebLogin, col(WebLogin.person_id) == col(Person.id))
            .join(Unit, col(Unit.id) == col(Person.unit_id))
            .where(WebLogin.token_hash == token_hash)
        )
    ).first()
    if found is None or not found[0].active or found[0].role not in CONSOLE_ROLES:
        return LoginOutcome("forbidden")
    person, unit = found
    record(
        session,
        Actor("web", person.id),
        "web.sign_in",
        f"{person.name} ({unit.name}) đăng nhập trang quản trị.",
        now=now,
        unit_id=unit.id,
    )
    return LoginOutcome("ok", Identity(person, unit))


# --------------------------------------------------------------------------- chat command


async def _link_reply(ctx: Context, base_url: str | None) -> Reply:
    identity = ctx.identity
    if identity is None or identity.role not in CONSOLE_ROLES:
        return Reply(text=NOT_ALLOWED)
    if base_url is None:
        return Reply(text=NOT_CONFIGURED)
    link = await create_login_link(
        ctx.session, person=identity.person, base_url=base_url, via=ctx.log.channel, now=ctx.now
    )
    return Reply(
        text=(
            f"Liên kết đăng nhập trang quản trị (dùng một lần, hiệu lực {LINK_MINUTES} phút):\n"
            f"{link}\n\n"
            "Không chuyển liên kết này cho người khác: ai mở được nó sẽ đăng nhập với tư cách "
            "của đồng chí."
        )
    )


def command(base_url: str | None) -> Handler:
    """The ``/web`` handler for a console at ``base_url`` (None: not configured)."""

    async def web(msg: IncomingMessage, ctx: Context) -> Reply:
        return await _link_reply(ctx, base_url)

    return web


def route(base_url: str | None = None) -> Route:
    return Route(ROUTE_NAME, command(base_url), commands=COMMANDS, private=True)


def configure(routes: Sequence[Route], base_url: str | None) -> tuple[Route, ...]:
    """``routes`` with the ``/web`` route answering with links to ``base_url``."""
    return tuple(
        dataclasses.replace(r, handler=command(base_url)) if r.name == ROUTE_NAME else r
        for r in routes
    )
