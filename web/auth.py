"""Browser sessions of the web console and the CSRF tokens of its forms.

A session is a random cookie value; the database keeps only its SHA-256. It ends after
``IDLE`` without a request, at ``MAX_AGE`` whatever happens, or at sign-out. A form's CSRF
token is an HMAC of the session's cookie value, so it needs no storage and a page from another
site cannot know it. Who is signed in is read again on every request: a person locked or moved
to another role loses the console at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage.models import Person, Unit, WebLogin, WebSession
from handlers.people import Identity
from handlers.weblogin import CONSOLE_ROLES, hash_token

__all__ = [
    "COOKIE",
    "IDLE",
    "LOGIN_COOKIE",
    "MAX_AGE",
    "SECURITY_HEADERS",
    "SignedIn",
    "csrf_ok",
    "csrf_token",
    "end_session",
    "find_session",
    "open_session",
]

COOKIE = "troly_session"
LOGIN_COOKIE = "troly_login_csrf"  # double-submit token of the sign-in form (no session yet)
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; "
        "base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # The sign-in link carries its token in the address: never send it to another site.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
IDLE = timedelta(minutes=30)
MAX_AGE = timedelta(hours=12)
TOUCH_EVERY = timedelta(minutes=1)  # last_seen_at is written at most this often
# Rows of sessions and sign-in links that can no longer be used are deleted when a session
# opens, after a grace period (a link opened again within it still says "already used").
KEEP_DEAD = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The person behind a live session. ``allowed``: still a unit admin or admin."""

    session: WebSession
    identity: Identity

    @property
    def allowed(self) -> bool:
        return self.identity.person.active and self.identity.role in CONSOLE_ROLES


async def open_session(db: AsyncSession, person_id: int, now: datetime) -> str:
    """A new session for ``person_id``; returns the cookie value (shown to the browser only).
    Sessions and sign-in links dead for ``KEEP_DEAD`` are purged on the way."""
    await db.exec(delete(WebSession).where(col(WebSession.created_at) < now - MAX_AGE - KEEP_DEAD))
    await db.exec(delete(WebLogin).where(col(WebLogin.expires_at) < now - KEEP_DEAD))
    raw = secrets.token_urlsafe(32)
    db.add(
        WebSession(
            session_hash=hash_token(raw), person_id=person_id, created_at=now, last_seen_at=now
        )
    )
    await db.flush()
    return raw


async def find_session(db: AsyncSession, raw: str | None, now: datetime) -> SignedIn | None:
    """The live session behind a cookie value, its last activity moved to ``now``."""
    if not raw:
        return None
    found = (
        await db.exec(
            select(WebSession, Person, Unit)
            .join(Person, col(Person.id) == col(WebSession.person_id))
            .join(Unit, col(Unit.id) == col(Person.unit_id))
            .where(WebSession.session_hash == hash_token(raw))
        )
    ).first()
    if found is None:
        return None
    web_session, person, unit = found
    if (
        web_session.ended_at is not None
        or web_session.last_seen_at + IDLE <= now
        or web_session.created_at + MAX_AGE <= now
    ):
        return None
    if now - web_session.last_seen_at >= TOUCH_EVERY:
        web_session.last_seen_at = now
        db.add(web_session)
    return SignedIn(web_session, Identity(person, unit))


async def end_session(db: AsyncSession, raw: str, now: datetime) -> None:
    await db.exec(
        update(WebSession)
        .where(col(WebSession.session_hash) == hash_token(raw), col(WebSession.ended_at).is_(None))
        .values(ended_at=now)
    )


def csrf_token(raw: str) -> str:
    """The CSRF token of the forms shown to the browser holding session ``raw``."""
    return hmac.new(raw.encode(), b"troly-console-csrf", hashlib.sha256).hexdigest()


def csrf_ok(raw: str | None, given: object) -> bool:
    if not raw or not isinstance(given, str) or not given:
        return False
    return hmac.compare_digest(csrf_token(raw), given)
