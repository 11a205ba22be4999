"""The outbox: every push is first a row here, then delivered by the one sender.

Enqueueing is insert-if-absent on the idempotency key (``INSERT ... ON CONFLICT DO
NOTHING`` on SQLite and PostgreSQL), so planning twice is harmless. The functions that take a
session never commit: the caller owns the transaction. The functions the sender uses
(:func:`claim_due`, :func:`record_outcomes`, :func:`recover_claims`, ...) take ``now`` so they
can be tested with a fixed clock.

Row life: ``pending`` -> ``sending`` (claimed by the sender) -> ``sent`` | ``failed`` |
``blocked`` | ``cancelled``, or back to ``pending`` with a later ``next_attempt_at`` (retry,
rate limit, sender stopped).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, func, update
from sqlalchemy.sql.dml import Insert
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import select

from bot.core import Button, utcnow
from bot.storage.db import AsyncSession
from bot.storage.models import Broadcast, OutboxMessage, PersonChannel
from bot.storage.types import UTCDateTime

__all__ = [
    "ACTIVE",
    "PROGRESS_KIND",
    "PROGRESS_VALIDITY",
    "BroadcastStatus",
    "Claimed",
    "Outcome",
    "Push",
    "Recipient",
    "blocked_chats",
    "broadcast_status",
    "buttons_from_json",
    "buttons_to_json",
    "cancel_broadcast",
    "claim_due",
    "drop_pending",
    "enqueue",
    "enqueue_broadcast",
    "enqueue_many",
    "finish_broadcasts",
    "has_pending",
    "mark_blocked",
    "next_due",
    "record_outcomes",
    "recover_claims",
    "unblock",
]

OUTBOX: Table = OutboxMessage.__table__  # type: ignore[attr-defined]
BROADCAST: Table = Broadcast.__table__  # type: ignore[attr-defined]
PERSON_CHANNEL: Table = PersonChannel.__table__  # type: ignore[attr-defined]

ACTIVE = ("pending", "sending")  # rows the sender has yet to settle
# A broadcast's progress report (its text holds a figure of the moment it was planned): still
# pending this long after, it is out of date and a starting sender cancels it.
PROGRESS_KIND = "broadcast_progress"
PROGRESS_VALIDITY = timedelta(minutes=2)
ERROR_LIMIT = 500  # OutboxMessage.last_error
_INSERT_CHUNK = 1000

JsonButtons = list[list[dict[str, str]]]


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who gets a push: a chat on a channel, and the person behind it when known."""

    channel: str
    chat_id: str
    person_id: int | None = None


@dataclass(frozen=True, slots=True)
class Push:
    """One push to plan. ``not_before``: not delivered earlier (quiet hours, a due date)."""

    kind: str
    channel: str
    chat_id: str
    text: str
    idempotency_key: str
    person_id: int | None = None
    broadcast_id: int | None = None
    buttons: Sequence[Sequence[Button]] = ()
    not_before: datetime | None = None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A row claimed by the sender (status ``sending``)."""

    id: int
    kind: str
    channel: str
    chat_id: str
    person_id: int | None
    broadcast_id: int | None
    text: str
    buttons: JsonButtons
    attempts: int

    def cancelled(self) -> Outcome:
        """Not sent: its broadcast was cancelled."""
        return Outcome(
            self.id,
            "cancelled",
            error="broadcast cancelled",
            broadcast_id=self.broadcast_id,
            channel=self.channel,
        )

    def skipped_blocked(self) -> Outcome:
        """Not attempted: the recipient has blocked the bot."""
        return Outcome(
            self.id,
            "blocked",
            error="recipient has blocked the bot",
            broadcast_id=self.broadcast_id,
            channel=self.channel,
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one claimed row.

    ``status`` is the row's new status; ``pending`` with ``next_attempt_at`` reschedules it.
    ``attempted``: a delivery request was made (counts in ``attempts``; a 429 does not).
    ``block_chat``: the recipient blocked the bot: record it on their ``PersonChannel``.
    """

    row_id: int
    status: str
    attempted: bool = False
    error: str | None = None
    next_attempt_at: datetime | None = None
    broadcast_id: int | None = None
    channel: str = ""
    chat_id: str = ""
    person_id: int | None = None
    block_chat: bool = False


@dataclass(frozen=True, slots=True)
class BroadcastStatus:
    """Progress, then the final report, of one broadcast."""

    id: int
    status: str  # sending, done, cancelled
    total: int
    pending: int
    sending: int
    sent: int
    failed: int
    blocked: int
    cancelled: int
    failures: tuple[tuple[str, int], ...] = ()  # (reason, count), most frequent first
    created_at: datetime | None = None
    finished_at: datetime | None = None
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def delivered(self) -> int:
        return self.sent

    @property
    def remaining(self) -> int:
        return self.pending + self.sending

    @property
    def finished(self) -> bool:
        return self.status in ("done", "cancelled") and self.sending == 0


# --------------------------------------------------------------------------- helpers


def buttons_to_json(buttons: Sequence[Sequence[Button]]) -> JsonButtons:
    return [[{"label": b.label, "payload": b.payload} for b in row] for row in buttons if row]


def buttons_from_json(data: Any) -> tuple[tuple[Button, ...], ...]:
    """Rows of buttons from the stored JSON; ``ValueError`` when malformed."""
    if not data:
        return ()
    try:
        return tuple(
            tuple(Button(label=str(b["label"]), payload=str(b["payload"])) for b in row)
            for row in data
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed buttons: {exc!r}") from None


def _clip(text: str | None) -> str | None:
    if text is None:
        return None
    return text if len(text) <= ERROR_LIMIT else text[: ERROR_LIMIT - 1] + "…"


def _still(status: str) -> ColumnElement[bool]:
    """``status = :status`` for rows picked by primary key, written so that SQLite (no table
    statistics) looks them up by key instead of scanning every row with that status."""
    return func.coalesce(OUTBOX.c.status, "") == status


def _dialect(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def _insert_ignore(session: AsyncSession) -> Insert:
    """``INSERT ... ON CONFLICT (idempotency_key) DO NOTHING RETURNING id``."""
    dialect = _dialect(session)
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(OUTBOX).on_conflict_do_nothing(index_elements=["idempotency_key"])
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(OUTBOX).on_conflict_do_nothing(index_elements=["idempotency_key"])
    raise NotImplementedError(f"the outbox supports SQLite and PostgreSQL, not {dialect}")


def _row_values(push: Push, now: datetime) -> dict[str, Any]:
    if not push.idempotency_key:
        raise ValueError("a push needs an idempotency key")
    return {
        "kind": push.kind,
        "channel": push.channel,
        "chat_id": push.chat_id,
        "person_id": push.person_id,
        "broadcast_id": push.broadcast_id,
        "text": push.text,
        "buttons": buttons_to_json(push.buttons),
        "idempotency_key": push.idempotency_key,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": push.not_before or now,
        "last_error": None,
        "created_at": now,
        "sent_at": None,
    }


# --------------------------------------------------------------------------- planning API


async def enqueue_many(
    session: AsyncSession, pushes: Iterable[Push], *, now: datetime | None = None
) -> int:
    """Insert the pushes whose idempotency key is new; return how many were inserted.

    Keys already in the outbox (whatever their status) and repeats within ``pushes`` are
    skipped: planning the same thing twice sends it once.
    """
    now = now or utcnow()
    seen: set[str] = set()
    values: list[dict[str, Any]] = []
    for push in pushes:
        if push.idempotency_key in seen:
            continue
        seen.add(push.idempotency_key)
        values.append(_row_values(push, now))
    inserted = 0
    statement = _insert_ignore(session).returning(OUTBOX.c.id)
    for start in range(0, len(values), _INSERT_CHUNK):
        chunk = values[start : start + _INSERT_CHUNK]
        result = await session.exec(statement, params=chunk)
        inserted += len(result.all())
    return inserted


async def enqueue(
    session: AsyncSession,
    *,
    kind: str,
    channel: str,
    chat_id: str,
    text: str,
    idempotency_key: str,
    person_id: int | None = None,
    broadcast_id: int | None = None,
    buttons: Sequence[Sequence[Button]] = (),
    not_before: datetime | None = None,
    now: datetime | None = None,
) -> bool:
    """Plan one push; False when its idempotency key was already planned."""
    push = Push(
        kind=kind,
        channel=channel,
        chat_id=chat_id,
        text=text,
        idempotency_key=idempotency_key,
        person_id=person_id,
        broadcast_id=broadcast_id,
        buttons=buttons,
        not_before=not_before,
    )
    return await enqueue_many(session, [push], now=now) == 1


async def enqueue_broadcast(
    session: AsyncSession,
    broadcast: Broadcast,
    recipients: Iterable[Recipient],
    *,
    buttons: Sequence[Sequence[Button]] = (),
    now: datetime | None = None,
) -> int:
    """Plan ``broadcast.text`` for each recipient (key ``broadcast:<id>:<channel>:<chat>``,
    so a chat gets it once however often it is listed or the planning is repeated), update
    ``broadcast.total``, and return how many rows were added. ``broadcast`` must have an id
    (flush it first). A broadcast nobody receives is ``done`` at once."""
    if broadcast.id is None:
        raise ValueError("flush the broadcast before enqueueing its messages")
    now = now or utcnow()
    pushes = [
        Push(
            kind="broadcast",
            channel=r.channel,
            chat_id=r.chat_id,
            person_id=r.person_id,
            text=broadcast.text,
            buttons=buttons,
            broadcast_id=broadcast.id,
            idempotency_key=f"broadcast:{broadcast.id}:{r.channel}:{r.chat_id}",
        )
        for r in recipients
    ]
    added = await enqueue_many(session, pushes, now=now)
    total = (
        await session.exec(
            select(func.count()).select_from(OUTBOX).where(OUTBOX.c.broadcast_id == broadcast.id)
        )
    ).one()
    values: dict[str, Any] = {"total": total}
    if total == 0 and broadcast.status == "sending":
        values.update(status="done", finished_at=now)
    await session.exec(update(BROADCAST).where(BROADCAST.c.id == broadcast.id).values(**values))
    await session.refresh(broadcast)
    return added


async def drop_pending(session: AsyncSession, keys: Collection[str], *, reason: str) -> int:
    """Cancel the rows with these idempotency keys that are still ``pending`` (a push
    overtaken by a newer one); return how many. Rows the sender has claimed go on."""
    if not keys:
        return 0
    result = await session.exec(
        update(OUTBOX)
        .where(OUTBOX.c.idempotency_key.in_(sorted(keys)), OUTBOX.c.status == "pending")
        .values(status="cancelled", last_error=reason)
    )
    return int(result.rowcount or 0)


async def cancel_broadcast(
    session: AsyncSession, broadcast_id: int, *, now: datetime | None = None
) -> int:
    """Cancel a broadcast: its pending rows become ``cancelled`` (returned: how many). The
    sender drops rows it already claimed within ``cancel_check_interval`` (0.25 s); only
    requests already on the wire still complete. A finished broadcast is left as it is."""
    now = now or utcnow()
    changed = await session.exec(
        update(BROADCAST)
        .where(BROADCAST.c.id == broadcast_id, BROADCAST.c.status == "sending")
        .values(status="cancelled", finished_at=now)
    )
    if not changed.rowcount:
        return 0
    result = await session.exec(
        update(OUTBOX)
        .where(OUTBOX.c.broadcast_id == broadcast_id, OUTBOX.c.status == "pending")
        .values(status="cancelled", last_error="broadcast cancelled")
    )
    return int(result.rowcount or 0)


async def broadcast_status(session: AsyncSession, broadcast_id: int) -> BroadcastStatus | None:
    """Counts by status and failure reasons; ``None`` for an unknown broadcast."""
    head = (
        await session.exec(
            select(
                BROADCAST.c.status,
                BROADCAST.c.total,
                BROADCAST.c.created_at,
                BROADCAST.c.finished_at,
            ).where(BROADCAST.c.id == broadcast_id)
        )
    ).first()
    if head is None:
        return None
    rows = await session.exec(
        select(OUTBOX.c.status, func.count())
        .where(OUTBOX.c.broadcast_id == broadcast_id)
        .group_by(OUTBOX.c.status)
    )
    counts = {status: int(n) for status, n in rows.all()}
    failures = await session.exec(
        select(OUTBOX.c.last_error, func.count().label("n"))
        .where(OUTBOX.c.broadcast_id == broadcast_id, OUTBOX.c.status == "failed")
        .group_by(OUTBOX.c.last_error)
        .order_by(func.count().desc(), OUTBOX.c.last_error)
        .limit(20)
    )
    return BroadcastStatus(
        id=broadcast_id,
        status=head[0],
        total=head[1],
        pending=counts.get("pending", 0),
        sending=counts.get("sending", 0),
        sent=counts.get("sent", 0),
        failed=counts.get("failed", 0),
        blocked=counts.get("blocked", 0),
        cancelled=counts.get("cancelled", 0),
        failures=tuple((reason or "unknown", int(n)) for reason, n in failures.all()),
        created_at=head[2],
        finished_at=head[3],
        counts=counts,
    )


async def finish_broadcasts(
    session: AsyncSession, *, now: datetime, ids: Collection[int] | None = None
) -> list[int]:
    """Mark ``done`` every sending broadcast (of ``ids``, or all) with no pending or sending
    row left; return their ids."""
    remaining = (
        select(OUTBOX.c.id)
        .where(OUTBOX.c.broadcast_id == BROADCAST.c.id, OUTBOX.c.status.in_(ACTIVE))
        .exists()
    )
    statement = (
        update(BROADCAST)
        .where(BROADCAST.c.status == "sending", ~remaining)
        .values(status="done", finished_at=now)
        .returning(BROADCAST.c.id)
    )
    if ids is not None:
        if not ids:
            return []
        statement = statement.where(BROADCAST.c.id.in_(sorted(ids)))
    return sorted(row[0] for row in (await session.exec(statement)).all())


# --------------------------------------------------------------------------- blocking


async def unblock(session: AsyncSession, channel: str, user_id: str) -> bool:
    """The person wrote to us again: pushes to them resume. True when they were blocked.

    Cheap on the hot path: one indexed read, a write only when they were blocked."""
    blocked = (
        await session.exec(
            select(PERSON_CHANNEL.c.id).where(
                PERSON_CHANNEL.c.channel == channel,
                PERSON_CHANNEL.c.user_id == user_id,
                PERSON_CHANNEL.c.blocked_at.is_not(None),
            )
        )
    ).first()
    if blocked is None:
        return False
    await session.exec(
        update(PERSON_CHANNEL).where(PERSON_CHANNEL.c.id == blocked).values(blocked_at=None)
    )
    return True


async def mark_blocked(
    session: AsyncSession,
    *,
    channel: str,
    chat_id: str,
    person_id: int | None = None,
    now: datetime,
) -> int:
    """Record that the chat blocked the bot on its ``PersonChannel`` (rows changed)."""
    conditions = [
        PERSON_CHANNEL.c.channel == channel,
        PERSON_CHANNEL.c.chat_id == chat_id,
        PERSON_CHANNEL.c.blocked_at.is_(None),
    ]
    if person_id is not None:
        conditions.append(PERSON_CHANNEL.c.person_id == person_id)
    result = await session.exec(update(PERSON_CHANNEL).where(*conditions).values(blocked_at=now))
    return int(result.rowcount or 0)


async def blocked_chats(
    session: AsyncSession, *, channel: str, rows: Sequence[Claimed]
) -> set[str]:
    """The chats among ``rows`` whose person blocked the bot on ``channel``."""
    if not rows:
        return set()
    found: set[str] = set()
    people = sorted({r.person_id for r in rows if r.person_id is not None})
    if people:  # indexed by person_id
        result = await session.exec(
            select(PERSON_CHANNEL.c.chat_id).where(
                PERSON_CHANNEL.c.channel == channel,
                PERSON_CHANNEL.c.person_id.in_(people),
                PERSON_CHANNEL.c.blocked_at.is_not(None),
            )
        )
        found.update(result.all())
    anonymous = sorted({r.chat_id for r in rows if r.person_id is None})
    if anonymous:
        result = await session.exec(
            select(PERSON_CHANNEL.c.chat_id).where(
                PERSON_CHANNEL.c.channel == channel,
                PERSON_CHANNEL.c.chat_id.in_(anonymous),
                PERSON_CHANNEL.c.blocked_at.is_not(None),
            )
        )
        found.update(result.all())
    return found & {r.chat_id for r in rows}


# --------------------------------------------------------------------------- the sender's side

_CLAIMED_COLUMNS = (
    OUTBOX.c.id,
    OUTBOX.c.kind,
    OUTBOX.c.channel,
    OUTBOX.c.chat_id,
    OUTBOX.c.person_id,
    OUTBOX.c.broadcast_id,
    OUTBOX.c.text,
    OUTBOX.c.buttons,
    OUTBOX.c.attempts,
    OUTBOX.c.next_attempt_at,
)


async def _due_ids(
    session: AsyncSession, *, channel: str, limit: int, now: datetime, broadcasts: bool
) -> list[int]:
    lane = OUTBOX.c.broadcast_id.is_not(None) if broadcasts else OUTBOX.c.broadcast_id.is_(None)
    statement = (
        select(OUTBOX.c.id)
        .where(
            OUTBOX.c.status == "pending",
            OUTBOX.c.next_attempt_at <= now,
            OUTBOX.c.channel == channel,
            lane,
        )
        .order_by(OUTBOX.c.next_attempt_at, OUTBOX.c.id)
        .limit(limit)
    )
    if _dialect(session) == "postgresql":
        statement = statement.with_for_update(skip_locked=True)
    return list((await session.exec(statement)).all())


async def claim_due(
    session: AsyncSession, *, channel: str, limit: int, now: datetime
) -> list[Claimed]:
    """Claim up to ``limit`` due rows of ``channel`` (``pending`` -> ``sending``), oldest
    first; reminders and other single pushes before broadcast rows, so a long broadcast does
    not delay a reminder. Rows of a cancelled broadcast become ``cancelled``, rows for a chat
    that blocked the bot become ``blocked`` (not attempted); the rest are returned. Commit
    before delivering them."""
    ids = await _due_ids(session, channel=channel, limit=limit, now=now, broadcasts=False)
    if len(ids) < limit:
        ids += await _due_ids(
            session, channel=channel, limit=limit - len(ids), now=now, broadcasts=True
        )
    if not ids:
        return []
    result = await session.exec(
        update(OUTBOX)
        .where(OUTBOX.c.id.in_(ids), _still("pending"))
        .values(status="sending")
        .returning(*_CLAIMED_COLUMNS)
    )
    fetched = sorted(
        result.all(), key=lambda r: (r.next_attempt_at, r.broadcast_id is not None, r.id)
    )
    rows = [
        Claimed(
            id=r.id,
            kind=r.kind,
            channel=r.channel,
            chat_id=r.chat_id,
            person_id=r.person_id,
            broadcast_id=r.broadcast_id,
            text=r.text,
            buttons=r.buttons or [],
            attempts=r.attempts,
        )
        for r in fetched
    ]
    skipped: list[Outcome] = []
    broadcast_ids = sorted({r.broadcast_id for r in rows if r.broadcast_id is not None})
    if broadcast_ids:
        found = await session.exec(
            select(BROADCAST.c.id).where(
                BROADCAST.c.id.in_(broadcast_ids), BROADCAST.c.status == "cancelled"
            )
        )
        cancelled = set(found.all())
        skipped += [r.cancelled() for r in rows if r.broadcast_id in cancelled]
    blocked = await blocked_chats(session, channel=channel, rows=rows)
    skipped += [
        r.skipped_blocked()
        for r in rows
        if r.chat_id in blocked and all(s.row_id != r.id for s in skipped)
    ]
    if skipped:
        await record_outcomes(session, skipped, now=now)
        gone = {s.row_id for s in skipped}
        rows = [r for r in rows if r.id not in gone]
    return rows


# Built once (the sender runs these many times a second).
_MARK_SENT = (
    update(OUTBOX)
    .where(OUTBOX.c.id.in_(bindparam("b_ids", expanding=True)), _still("sending"))
    .values(
        status="sent",
        sent_at=bindparam("b_now", type_=UTCDateTime()),
        attempts=OUTBOX.c.attempts + 1,
    )
)
_SETTLE = (
    update(OUTBOX)
    .where(OUTBOX.c.id == bindparam("b_id"), _still("sending"))
    .values(
        status=bindparam("b_status"),
        attempts=OUTBOX.c.attempts + bindparam("b_inc"),
        next_attempt_at=func.coalesce(
            bindparam("b_next", type_=UTCDateTime()), OUTBOX.c.next_attempt_at
        ),
        last_error=func.coalesce(bindparam("b_error"), OUTBOX.c.last_error),
    )
)


async def record_outcomes(
    session: AsyncSession,
    outcomes: Sequence[Outcome],
    *,
    now: datetime,
    finish: Collection[int] | None = None,
) -> list[int]:
    """Write what became of claimed rows (only rows still ``sending`` change), record blocks
    on ``PersonChannel``, and mark finished broadcasts done; return the latter's ids.

    ``finish``: the broadcasts to check for completion (default: those these outcomes
    settled a row of; the sender leaves out broadcasts it still holds rows of)."""
    if not outcomes:
        return []
    sent = [o.row_id for o in outcomes if o.status == "sent"]
    if sent:
        await session.exec(_MARK_SENT, params={"b_ids": sent, "b_now": now})
    others = [
        {
            "b_id": o.row_id,
            "b_status": o.status,
            "b_inc": 1 if o.attempted else 0,
            "b_next": o.next_attempt_at,
            "b_error": _clip(o.error),
        }
        for o in outcomes
        if o.status != "sent"
    ]
    if others:
        await session.exec(_SETTLE, params=others)
    for chat in sorted(
        {(o.channel, o.chat_id, o.person_id) for o in outcomes if o.block_chat}, key=str
    ):
        await mark_blocked(session, channel=chat[0], chat_id=chat[1], person_id=chat[2], now=now)
    if finish is None:
        finish = {
            o.broadcast_id
            for o in outcomes
            if o.broadcast_id is not None and o.status not in ACTIVE
        }
    return await finish_broadcasts(session, now=now, ids=finish) if finish else []


async def recover_claims(session: AsyncSession, *, now: datetime) -> int:
    """At sender start: rows left ``sending`` by a sender that died go back to ``pending``
    (those of a cancelled broadcast are cancelled), and progress reports planned more than
    :data:`PROGRESS_VALIDITY` ago that are still waiting are cancelled (their figure is out of
    date; a final report is kept). Only the elected sender calls this."""
    await session.exec(
        update(OUTBOX)
        .where(
            OUTBOX.c.status == "sending",
            OUTBOX.c.broadcast_id.in_(
                select(BROADCAST.c.id).where(BROADCAST.c.status == "cancelled")
            ),
        )
        .values(status="cancelled", last_error="broadcast cancelled")
    )
    result = await session.exec(
        update(OUTBOX).where(OUTBOX.c.status == "sending").values(status="pending")
    )
    await session.exec(
        update(OUTBOX)
        .where(
            OUTBOX.c.status == "pending",
            OUTBOX.c.kind == PROGRESS_KIND,
            OUTBOX.c.created_at < now - PROGRESS_VALIDITY,
        )
        .values(status="cancelled", last_error="progress report out of date")
    )
    await finish_broadcasts(session, now=now)
    return int(result.rowcount or 0)


async def next_due(session: AsyncSession, *, channel: str) -> datetime | None:
    """When the earliest pending row of ``channel`` falls due (None: nothing pending)."""
    value = (
        await session.exec(
            select(func.min(OUTBOX.c.next_attempt_at)).where(
                OUTBOX.c.status == "pending", OUTBOX.c.channel == channel
            )
        )
    ).one()
    if value is None:
        return None
    if isinstance(value, str):  # in case a driver hands the aggregate back untyped
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def has_pending(session: AsyncSession, *, channels: Collection[str]) -> bool:
    """Whether any row of ``channels`` is pending or claimed."""
    row = (
        await session.exec(
            select(OUTBOX.c.id)
            .where(OUTBOX.c.status.in_(ACTIVE), OUTBOX.c.channel.in_(sorted(channels)))
            .limit(1)
        )
    ).first()
    return row is not None
