"""People, roles and enrolment by invitation code.

Codes are random (50 bits), single-purpose (one unit and role, or linking one more channel to
an existing person), expire, are stored only as a SHA-256 hash, and guessing is rate-limited
per person. A wrong, expired or used-up code all get the same answer.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core import UserRef
from bot.storage.models import Invite, InviteAttempt, Person, PersonChannel, Unit
from handlers.context import UserError

__all__ = [
    "ROLES",
    "ROLE_NAMES",
    "Identity",
    "can_manage",
    "create_invite",
    "format_code",
    "identify",
    "looks_like_code",
    "redeem",
]

ROLES = ("official", "unit_admin", "admin")
ROLE_NAMES = {
    "official": "cán bộ báo cáo",
    "unit_admin": "quản trị đơn vị",
    "admin": "quản trị hệ thống",
}
ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud and typed on phones
CODE_LENGTH = 10
PREFIX = "TL"
_CODE_RE = re.compile(rf"^{PREFIX}[{ALPHABET}]{{{CODE_LENGTH}}}$")
MAX_FAILED_PER_HOUR = 5
MAX_USES = 10_000
MAX_DAYS = 365

INVALID_CODE = (
    "Mã mời không hợp lệ hoặc đã hết hạn. Đồng chí vui lòng kiểm tra lại mã, hoặc liên hệ "
    "văn phòng cấp ủy để được cấp mã mới."
)
TOO_MANY = "Đồng chí đã nhập sai mã nhiều lần. Vì lý do an toàn, xin vui lòng thử lại sau một giờ."


@dataclass(frozen=True, slots=True)
class Identity:
    person: Person
    unit: Unit

    @property
    def role(self) -> str:
        return self.person.role


def _normalise(text: str) -> str:
    return re.sub(r"[\s\-_.]", "", text).upper()


def looks_like_code(text: str | None) -> bool:
    """Whether a message is an invitation code (``TL-ABCDE-FGHJK``, any case or spacing)."""
    return bool(text) and len(text or "") <= 40 and bool(_CODE_RE.match(_normalise(text or "")))


def _hash(code: str) -> str:
    return hashlib.sha256(_normalise(code).encode()).hexdigest()


def format_code(code: str) -> str:
    body = code[len(PREFIX) :]
    return f"{PREFIX}-{body[:5]}-{body[5:]}"


async def create_invite(
    session: AsyncSession,
    *,
    unit: Unit,
    role: str,
    uses: int,
    days: int,
    created_by: str,
    now: datetime,
    person: Person | None = None,
) -> str:
    """A new invitation code (shown once; only its hash is stored)."""
    if role not in ROLES:
        raise UserError(f"Vai trò không hợp lệ: {role} (chọn: {', '.join(ROLES)}).")
    if not 1 <= uses <= MAX_USES:
        raise UserError(f"Số lượt dùng phải từ 1 đến {MAX_USES}.")
    if not 1 <= days <= MAX_DAYS:
        raise UserError(f"Thời hạn phải từ 1 đến {MAX_DAYS} ngày.")
    code = PREFIX + "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    assert unit.id is not None
    session.add(
        Invite(
            code_hash=_hash(code),
            unit_id=unit.id,
            role=role,
            person_id=person.id if person is not None else None,
            max_uses=uses,
            expires_at=now + timedelta(days=days),
            created_by=created_by,
            created_at=now,
        )
    )
    await session.flush()
    return format_code(code)


async def identify(session: AsyncSession, user: UserRef) -> Identity | None:
    """The enrolled person behind ``user``, if any (active people only)."""
    statement = (
        select(Person, Unit)
        .join(PersonChannel, col(PersonChannel.person_id) == col(Person.id))
        .join(Unit, col(Unit.id) == col(Person.unit_id))
        .where(
            PersonChannel.channel == user.channel,
            PersonChannel.user_id == user.user_id,
            col(Person.active),
        )
    )
    found = (await session.exec(statement)).first()
    return Identity(found[0], found[1]) if found is not None else None


async def redeem(
    session: AsyncSession,
    *,
    code: str,
    user: UserRef,
    chat_id: str,
    name: str | None,
    now: datetime,
) -> tuple[Identity, bool] | None:
    """Enrol ``user`` with ``code``: (identity, whether it is a new person), or ``None`` for
    a wrong, expired, revoked or used-up code (the attempt is recorded either way).

    Raises :class:`UserError` when this person has guessed too often.
    """
    since = now - timedelta(hours=1)
    failed = (
        await session.exec(
            select(func.count())
            .select_from(InviteAttempt)
            .where(
                InviteAttempt.channel == user.channel,
                InviteAttempt.user_id == user.user_id,
                col(InviteAttempt.ok).is_(False),
                col(InviteAttempt.created_at) >= since,
            )
        )
    ).one()
    if failed >= MAX_FAILED_PER_HOUR:
        raise UserError(TOO_MANY)
    invite = (await session.exec(select(Invite).where(Invite.code_hash == _hash(code)))).first()
    usable = (
        invite is not None
        and not invite.revoked
        and invite.expires_at > now
        and invite.uses < invite.max_uses
    )
    if usable and invite is not None:
        # Atomic use: two people racing for the last use cannot both get it.
        claimed = await session.exec(
            update(Invite)
            .where(col(Invite.id) == invite.id, col(Invite.uses) < col(Invite.max_uses))
            .values(uses=col(Invite.uses) + 1)
        )
        usable = claimed.rowcount == 1
    session.add(
        InviteAttempt(channel=user.channel, user_id=user.user_id, ok=usable, created_at=now)
    )
    if not usable or invite is None:
        return None
    return await _link(session, invite, user, chat_id, name, now)


async def _link(
    session: AsyncSession,
    invite: Invite,
    user: UserRef,
    chat_id: str,
    name: str | None,
    now: datetime,
) -> tuple[Identity, bool] | None:
    link = (
        await session.exec(
            select(PersonChannel).where(
                PersonChannel.channel == user.channel, PersonChannel.user_id == user.user_id
            )
        )
    ).first()
    unit = await session.get(Unit, invite.unit_id)
    assert unit is not None
    created = False
    if invite.person_id is not None:  # a code to link one more channel to a person
        person = await session.get(Person, invite.person_id)
        if person is None or not person.active:
            return None
        unit = await session.get(Unit, person.unit_id) or unit
    elif link is not None:  # already enrolled here: the new code re-assigns them
        person = await session.get(Person, link.person_id)
        assert person is not None
        person.unit_id, person.role, person.active = unit.id or 0, invite.role, True
    else:
        person = Person(
            name=(name or "Đồng chí").strip()[:200] or "Đồng chí",
            unit_id=unit.id or 0,
            role=invite.role,
            created_at=now,
        )
        created = True
    session.add(person)
    await session.flush()
    assert person.id is not None
    if link is None:
        link = PersonChannel(
            person_id=person.id,
            channel=user.channel,
            user_id=user.user_id,
            chat_id=chat_id,
            display_name=name,
            linked_at=now,
        )
    else:
        link.person_id, link.chat_id, link.blocked_at = person.id, chat_id, None
    session.add(link)
    await session.flush()
    return Identity(person, unit), created


def can_manage(identity: Identity, unit: Unit) -> bool:
    """Whether ``identity`` may report for / see ``unit``."""
    if identity.role == "admin":
        return True
    if identity.role == "unit_admin":
        return unit.path.startswith(identity.unit.path)
    return unit.id == identity.unit.id
