"""People, roles and enrolment by invitation code.

Codes are random (50 bits), single-purpose (one unit and role, or linking one more channel to
an existing person), expire, are stored only as a SHA-256 hash, and guessing is rate-limited
per person. A wrong, expired or used-up code all get the same answer. What a code does to
someone already enrolled is decided by the enrolment use case (``handlers.enrolment``).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core import UserRef
from bot.redaction import ALPHABET, CODE_LENGTH, PREFIX, find_code, normalise_code
from bot.storage.models import Invite, InviteAttempt, Person, PersonChannel, Unit
from handlers.audit import Actor, record
from handlers.context import UserError

__all__ = [
    "RANK",
    "ROLES",
    "ROLE_NAMES",
    "Identity",
    "apply_invite",
    "can_manage",
    "consume",
    "create_invite",
    "enrolment_of",
    "failed_attempts",
    "find_invite",
    "find_invites",
    "format_code",
    "identify",
    "invitable_roles",
    "looks_like_code",
    "record_attempt",
    "target_of",
    "usable",
]

ROLES = ("official", "unit_admin", "admin")
ROLE_NAMES = {
    "official": "cán bộ báo cáo",
    "unit_admin": "quản trị đơn vị",
    "admin": "quản trị hệ thống",
}
RANK = {role: rank for rank, role in enumerate(ROLES)}
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


def looks_like_code(text: str | None) -> bool:
    """Whether a message is, or contains, an invitation code (``TL-ABCDE-FGHJK``, any case
    or spacing, alone or inside a sentence)."""
    return find_code(text) is not None


def _hash(code: str) -> str:
    return hashlib.sha256(normalise_code(code).encode()).hexdigest()


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
    actor: Actor | None = None,
) -> str:
    """A new invitation code (shown once; only its hash is stored). With ``actor``, written
    to the audit log (without the code)."""
    if role not in ROLES:
        raise UserError(f"Vai trò không hợp lệ: {role} (chọn: {', '.join(ROLES)}).")
    if not 1 <= uses <= MAX_USES:
        raise UserError(f"Số lượt dùng phải từ 1 đến {MAX_USES}.")
    if not 1 <= days <= MAX_DAYS:
        raise UserError(f"Thời hạn phải từ 1 đến {MAX_DAYS} ngày.")
    code = PREFIX + "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))
    assert unit.id is not None
    invite = Invite(
        code_hash=_hash(code),
        unit_id=unit.id,
        role=role,
        person_id=person.id if person is not None else None,
        max_uses=uses,
        expires_at=now + timedelta(days=days),
        created_by=created_by,
        created_at=now,
    )
    session.add(invite)
    await session.flush()
    if actor is not None:
        what = f"vai trò {ROLE_NAMES[role]}"
        if person is not None:
            what = f"thêm kênh cho {person.name}"
        record(
            session,
            actor,
            "invite.create",
            f"Tạo mã mời số {invite.id} cho {unit.name} ({unit.code}), {what}; "
            f"{uses} người dùng, hiệu lực {days} ngày.",
            now=now,
            unit_id=unit.id,
            details={"invites": [invite.id], "role": role, "uses": uses, "days": days},
        )
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


async def failed_attempts(session: AsyncSession, user: UserRef, now: datetime) -> int:
    """Wrong codes this person typed in the last hour."""
    since = now - timedelta(hours=1)
    count: int = (
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
    return count


def record_attempt(session: AsyncSession, user: UserRef, *, ok: bool, now: datetime) -> None:
    session.add(InviteAttempt(channel=user.channel, user_id=user.user_id, ok=ok, created_at=now))


async def find_invite(session: AsyncSession, code: str) -> Invite | None:
    """The invitation behind ``code``, usable or not."""
    return (await session.exec(select(Invite).where(Invite.code_hash == _hash(code)))).first()


async def find_invites(session: AsyncSession, codes: list[str]) -> dict[str, Invite]:
    """The invitations behind ``codes`` (one query), by code as given; unknown codes are left
    out."""
    hashes = {_hash(code): code for code in codes}
    found = await session.exec(select(Invite).where(col(Invite.code_hash).in_(sorted(hashes))))
    return {hashes[invite.code_hash]: invite for invite in found.all()}


def invitable_roles(identity: Identity) -> tuple[str, ...]:
    """The roles ``identity`` may hand out in invitations: only a system administrator
    creates system administrators."""
    if identity.role == "admin":
        return ROLES
    if identity.role == "unit_admin":
        return ("official", "unit_admin")
    return ()


def usable(invite: Invite, now: datetime) -> bool:
    return not invite.revoked and invite.expires_at > now and invite.uses < invite.max_uses


async def consume(session: AsyncSession, invite: Invite) -> bool:
    """Use the invitation once. Atomic: two people racing for the last use cannot both
    get it."""
    claimed = await session.exec(
        update(Invite)
        .where(col(Invite.id) == invite.id, col(Invite.uses) < col(Invite.max_uses))
        .values(uses=col(Invite.uses) + 1)
    )
    return claimed.rowcount == 1


async def enrolment_of(session: AsyncSession, user: UserRef) -> tuple[Person, Unit] | None:
    """The person (active or not) this channel account is linked to, and their unit."""
    found = (
        await session.exec(
            select(Person, Unit)
            .join(PersonChannel, col(PersonChannel.person_id) == col(Person.id))
            .join(Unit, col(Unit.id) == col(Person.unit_id))
            .where(PersonChannel.channel == user.channel, PersonChannel.user_id == user.user_id)
        )
    ).first()
    return (found[0], found[1]) if found is not None else None


async def target_of(session: AsyncSession, invite: Invite) -> tuple[Unit, str, Person | None]:
    """Where the invitation puts its user: (unit, role, the person when it links one more
    channel to an existing person)."""
    if invite.person_id is not None:
        person = await session.get(Person, invite.person_id)
        if person is not None:
            unit = await session.get(Unit, person.unit_id)
            assert unit is not None
            return unit, person.role, person
    unit = await session.get(Unit, invite.unit_id)
    assert unit is not None
    return unit, invite.role, None


async def apply_invite(
    session: AsyncSession,
    invite: Invite,
    *,
    user: UserRef,
    chat_id: str,
    name: str | None,
    now: datetime,
) -> tuple[Identity, bool] | None:
    """Enrol ``user`` as the (already consumed) invitation says: a new person, this channel
    linked to an existing person, or the person behind this channel re-assigned.
    Returns (identity, whether a new person was created); ``None`` when the person the
    invitation links to is no longer active."""
    link = (
        await session.exec(
            select(PersonChannel).where(
                PersonChannel.channel == user.channel, PersonChannel.user_id == user.user_id
            )
        )
    ).first()
    unit, role, linked = await target_of(session, invite)
    created = False
    if linked is not None:  # a code to link one more channel to a person
        if not linked.active:
            return None
        person = linked
    elif link is not None:  # already enrolled: re-assigned (the caller confirmed it)
        found = await session.get(Person, link.person_id)
        assert found is not None
        person = found
        person.unit_id, person.role, person.active = unit.id or 0, role, True
    else:
        person = Person(
            name=(name or "Đồng chí").strip()[:200] or "Đồng chí",
            unit_id=unit.id or 0,
            role=role,
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
