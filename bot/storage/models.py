"""Tables. Every timestamp is timezone-aware UTC, set by a ``default_factory``."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Float,
    Index,
    LargeBinary,
    String,
    Table,
    Text,
    Unicode,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from bot.core import utcnow
from bot.storage.types import UTCDateTime

__all__ = [
    "SCHEDULER_JOBS",
    "AuditEntry",
    "Broadcast",
    "Conversation",
    "Invite",
    "InviteAttempt",
    "MessageLog",
    "OutboxMessage",
    "Person",
    "PersonChannel",
    "ProgressEvent",
    "ProgressStatus",
    "PushScheduleRow",
    "ReminderRun",
    "Task",
    "Unit",
    "WebLogin",
    "WebSession",
]

# Materialised unit paths compare byte-wise ("C" collation) so that a subtree is a range.
PATH_TYPE = String(400).with_variant(String(400, collation="C"), "postgresql")


class MessageLog(SQLModel, table=True):
    """Every incoming message, as received (invitation codes redacted), with what the
    assistant made of it. ``update_key`` is the platform's id of the update: a redelivered
    update finds its row and is not handled twice."""

    __tablename__ = "message_log"
    __table_args__ = (
        UniqueConstraint("channel", "update_key", name="uq_message_log_update"),
        Index("ix_message_log_user", "channel", "user_id", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    user_id: str = Field(max_length=64)
    chat_id: str = Field(max_length=64)
    kind: str = Field(max_length=16)
    text: str | None = Field(default=None, sa_type=Text)
    route: str | None = Field(default=None, max_length=32)
    entry_id: str | None = Field(default=None, max_length=100)
    score: float | None = None
    matched: bool | None = None
    update_key: str | None = Field(default=None, max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    # What the assistant answered (bot.core.Reply as JSON) and when it was sent: an update
    # delivered again after its handling was committed but not confirmed sent gets it again.
    replies: list[Any] | None = Field(default=None, sa_type=JSON)
    replied_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Conversation(SQLModel, table=True):
    """Per-person conversation state, kept in the database so it survives a restart.

    ``choices`` holds the choices last offered as numbered options (channels without
    buttons), each ``[payload, label]``; ``flow``/``step``/``data`` hold a multi-step flow
    in progress; ``menu`` names the command menu last set for this person (Telegram);
    ``qa_turn`` is what was last asked and answered (to resolve a follow-up), cleared when
    the conversation expires.
    """

    __tablename__ = "conversation"
    __table_args__ = (UniqueConstraint("channel", "user_id", name="uq_conversation_user"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    user_id: str = Field(max_length=64)
    flow: str | None = Field(default=None, max_length=32)
    step: str | None = Field(default=None, max_length=32)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    choices: list[Any] = Field(default_factory=list, sa_type=JSON)
    menu: str | None = Field(default=None, max_length=64)
    qa_turn: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # The flood limit's window: when it started, messages counted in it, notice given. Kept
    # here so that every process counts the same messages.
    flood_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    flood_count: int = 0
    flood_notified: bool = False


# --------------------------------------------------------------------------- hierarchy


class Unit(SQLModel, table=True):
    """A party unit. ``path`` is the chain of ids from the root, each zero-padded to
    ``PATH_DIGITS``: the subtree of a unit is the range of paths starting with its own.
    ``search_key``: the name and code without diacritics, lower case (``handlers.units.
    search_key``), for finding units by what is typed; kept by the unit import."""

    __tablename__ = "unit"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=64, unique=True)
    name: str = Field(max_length=300)
    level: str = Field(max_length=20, index=True)
    parent_id: int | None = Field(default=None, foreign_key="unit.id", index=True)
    path: str = Field(default="", sa_type=PATH_TYPE, index=True)
    depth: int = 0
    search_key: str = Field(default="", max_length=400)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Person(SQLModel, table=True):
    """An enrolled official: one unit, one role (official, unit_admin, admin)."""

    __tablename__ = "person"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200)
    unit_id: int = Field(foreign_key="unit.id", index=True)
    role: str = Field(max_length=20)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class PersonChannel(SQLModel, table=True):
    """A person on one channel. ``blocked_at``: the person blocked the bot there; nothing
    is pushed to them until they write again."""

    __tablename__ = "person_channel"
    __table_args__ = (UniqueConstraint("channel", "user_id", name="uq_person_channel_user"),)

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    channel: str = Field(max_length=16)
    user_id: str = Field(max_length=64)
    chat_id: str = Field(max_length=64)
    display_name: str | None = Field(default=None, max_length=200)
    linked_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    blocked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Invite(SQLModel, table=True):
    """An enrolment code, stored hashed; single-purpose (one unit, one role). With
    ``person_id`` it links one more channel to that existing person instead."""

    __tablename__ = "invite"

    id: int | None = Field(default=None, primary_key=True)
    code_hash: str = Field(max_length=64, unique=True)
    unit_id: int = Field(foreign_key="unit.id", index=True)
    role: str = Field(max_length=20)
    person_id: int | None = Field(default=None, foreign_key="person.id")
    max_uses: int = 1
    uses: int = 0
    expires_at: datetime = Field(sa_type=UTCDateTime)
    revoked: bool = False
    created_by: str = Field(max_length=100)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class InviteAttempt(SQLModel, table=True):
    """Every code someone tried, for rate-limiting guesses."""

    __tablename__ = "invite_attempt"
    __table_args__ = (Index("ix_invite_attempt_user_time", "channel", "user_id", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    user_id: str = Field(max_length=64)
    ok: bool
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


# --------------------------------------------------------------------------- tasks


class Task(SQLModel, table=True):
    """A task with a deadline, synchronised from the knowledge base's deadlines (and tasks
    files). A task no longer in the data is deactivated, never deleted (history stays)."""

    __tablename__ = "task"

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=100, unique=True)
    title: str = Field(max_length=500)
    levels: list[str] = Field(default_factory=list, sa_type=JSON)
    due: date
    due_text: str = Field(max_length=200)
    citation: str = Field(max_length=500)
    entry_id: str | None = Field(default=None, max_length=100)
    origin: str = Field(max_length=200)
    active: bool = True


class ProgressEvent(SQLModel, table=True):
    """Append-only: who reported what for which unit and task, when, on which channel.
    A correction is a new event; ``idempotency_key`` makes a repeated submission harmless."""

    __tablename__ = "progress_event"
    __table_args__ = (Index("ix_progress_event_unit_task", "unit_id", "task_id"),)

    id: int | None = Field(default=None, primary_key=True)
    unit_id: int = Field(foreign_key="unit.id")
    task_id: int = Field(foreign_key="task.id")
    person_id: int | None = Field(default=None, foreign_key="person.id")
    status: str = Field(max_length=20)
    done_on: date | None = None
    note: str | None = Field(default=None, max_length=1000)
    channel: str = Field(max_length=16)
    idempotency_key: str = Field(max_length=100, unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ProgressStatus(SQLModel, table=True):
    """The current status of a unit on a task: the latest event, kept in the same
    transaction as the event is appended (a projection; rebuildable from the events)."""

    __tablename__ = "progress_status"

    unit_id: int = Field(foreign_key="unit.id", primary_key=True)
    task_id: int = Field(foreign_key="task.id", primary_key=True, index=True)
    status: str = Field(max_length=20)
    done_on: date | None = None
    note: str | None = Field(default=None, max_length=1000)
    person_id: int | None = Field(default=None, foreign_key="person.id")
    channel: str = Field(max_length=16)
    event_id: int = Field(foreign_key="progress_event.id")
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


# --------------------------------------------------------------------------- pushes


class Broadcast(SQLModel, table=True):
    """An admin announcement; its messages are outbox rows with ``broadcast_id``."""

    __tablename__ = "broadcast"

    id: int | None = Field(default=None, primary_key=True)
    text: str = Field(sa_type=Text)
    audience: str = Field(max_length=200)
    created_by: str = Field(max_length=100)
    status: str = Field(default="sending", max_length=20)  # sending, done, cancelled
    total: int = 0
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class OutboxMessage(SQLModel, table=True):
    """Every push (reminder, escalation, digest, broadcast) is first a row here, then
    delivered by the one sender. ``idempotency_key`` makes planning twice harmless.

    status: pending -> sending (claimed by the sender) -> sent | failed | blocked |
    cancelled. ``next_attempt_at`` is when it may next be tried (retry back-off, quiet hours).
    """

    __tablename__ = "outbox_message"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_broadcast", "broadcast_id", "status"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=20)
    channel: str = Field(max_length=16)
    chat_id: str = Field(max_length=64)
    person_id: int | None = Field(default=None, foreign_key="person.id")
    broadcast_id: int | None = Field(default=None, foreign_key="broadcast.id")
    text: str = Field(sa_type=Text)
    buttons: list[list[dict[str, str]]] = Field(default_factory=list, sa_type=JSON)
    idempotency_key: str = Field(max_length=200, unique=True)
    status: str = Field(default="pending", max_length=20)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


# --------------------------------------------------------------------------- scheduler


class ReminderRun(SQLModel, table=True):
    """A reminder round that has fired (its APScheduler job id). Inserted in the same
    transaction as the round's pushes: a second fire of the same round (two schedulers, a
    re-planned job after a restart) finds it and does nothing, and planning skips it."""

    __tablename__ = "reminder_run"

    key: str = Field(primary_key=True, max_length=191)
    fired_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    reminders: int = 0
    escalations: int = 0


class PushScheduleRow(SQLModel, table=True):
    """The reminder schedule a root admin set on the web console (one row, ``id`` 1; no
    row: the schedule of ``.env``). The values are written as in ``.env``
    (``bot.settings.PushSchedule`` checks them); ``scheduler.schedule`` reads and writes it."""

    __tablename__ = "push_schedule"

    id: int = Field(default=1, primary_key=True)
    reminder_offsets_days: str = Field(max_length=100)
    reminder_time: str = Field(max_length=5)
    overdue_every_days: int
    overdue_max_reminders: int
    quiet_hours: str = Field(max_length=11)
    non_working_days: str = Field(sa_type=Text)
    weekly_digest: str = Field(max_length=9)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_by: int | None = Field(default=None, foreign_key="person.id")


# --------------------------------------------------------------------------- web console


class WebLogin(SQLModel, table=True):
    """A one-time sign-in link to the web console, stored as the SHA-256 of its token.
    ``used_at`` is set once, atomically, when the link is used."""

    __tablename__ = "web_login"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    created_via: str = Field(max_length=16)  # cli, telegram, zalo, console
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class WebSession(SQLModel, table=True):
    """A signed-in browser, known by the SHA-256 of its cookie. It ends after a spell of
    inactivity (``last_seen_at``), at sign-out (``ended_at``) or at its maximum age."""

    __tablename__ = "web_session"

    id: int | None = Field(default=None, primary_key=True)
    session_hash: str = Field(max_length=64, unique=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


# --------------------------------------------------------------------------- audit


class AuditEntry(SQLModel, table=True):
    """«Nhật ký»: who did what to the accounts and the reports, when, from which channel.
    Append-only: nothing in the code updates or deletes a row, and the database refuses to
    (triggers made by migration 0009). ``person_id`` is empty for the command line (the
    operator); ``unit_id`` is the unit the action concerns (its scope on the console; empty:
    the whole system). ``summary`` is short Vietnamese and never holds a code or a token."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_action_id", "action", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    person_id: int | None = Field(default=None, foreign_key="person.id", index=True)
    via: str = Field(max_length=16)  # telegram, zalo, console, web, cli
    action: str = Field(max_length=40)
    unit_id: int | None = Field(default=None, foreign_key="unit.id", index=True)
    summary: str = Field(max_length=500)
    details: dict[str, Any] | None = Field(default=None, sa_type=JSON)


# APScheduler 3's SQLAlchemyJobStore table, declared here so that Alembic manages it like
# every other table (the job store then finds it and creates nothing).
SCHEDULER_JOBS = Table(
    "apscheduler_jobs",
    SQLModel.metadata,
    Column("id", Unicode(191), primary_key=True),
    Column("next_run_time", Float(25), index=True),
    Column("job_state", LargeBinary, nullable=False),
)
