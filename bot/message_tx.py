"""One message's database transaction, with as few statements as the database allows.

PostgreSQL: one statement claims the update (a redelivery finds it claimed), creates the
conversation on first contact and returns it — locked against other workers until the
transaction ends — with the person's identity; one statement writes the conversation and
the log row back; then COMMIT. They run on the driver's own connection
(:mod:`bot.storage.raw`), and a handler that needs the ORM gets a session on that same
connection and transaction, opened only then (answering a question needs none).

SQLite: the same statements, one by one, on the ``sqlite3`` connection under aiosqlite's,
called right here in the event loop (a few microseconds each; a trip to aiosqlite's thread
and back costs far more). Only one transaction writes at a time in SQLite: this process's
message transactions take turns on an asyncio lock, and the write lock is taken up front
(``BEGIN IMMEDIATE``) without SQLite's busy handler, waiting asynchronously while another
connection writes, so the event loop is never blocked on a lock.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

from sqlalchemy import and_, bindparam, null, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.orm import configure_mappers
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.core import UserRef, utcnow
from bot.storage.db import POOL_SIZE, SQLITE_BUSY_TIMEOUT_MS
from bot.storage.models import Conversation, MessageLog, Person, PersonChannel, Unit
from bot.storage.raw import RawStatement
from bot.storage.types import UTCDateTime
from handlers.context import LogEntry
from handlers.people import Identity

__all__ = ["MessageTransaction", "MessageTransactions"]

_M = TypeVar("_M", bound=SQLModel)

MESSAGE_LOG = MessageLog.__table__  # type: ignore[attr-defined]
CONVERSATION = Conversation.__table__  # type: ignore[attr-defined]
PERSON = Person.__table__  # type: ignore[attr-defined]
UNIT = Unit.__table__  # type: ignore[attr-defined]
PERSON_CHANNEL = PersonChannel.__table__  # type: ignore[attr-defined]

LOG_VALUES = ("channel", "user_id", "chat_id", "kind", "text", "update_key", "created_at")
LOG_FIELDS = ("route", "entry_id", "score", "matched", "text")
CONVERSATION_FIELDS = (
    "flow",
    "step",
    "data",
    "choices",
    "menu",
    "qa_turn",
    "updated_at",
    "flood_at",
    "flood_count",
    "flood_notified",
)
_CONVERSATION_COLUMNS = tuple(column.name for column in CONVERSATION.c)
_PERSON_COLUMNS = tuple(column.name for column in PERSON.c)
_UNIT_COLUMNS = tuple(column.name for column in UNIT.c)


_IDENTITY_COLUMNS = (*PERSON.c, *UNIT.c, PERSON_CHANNEL.c.blocked_at)


def _identity_joins(conversation: Any) -> Any:
    return (
        conversation.outerjoin(
            PERSON_CHANNEL,
            and_(
                PERSON_CHANNEL.c.channel == conversation.c.channel,
                PERSON_CHANNEL.c.user_id == conversation.c.user_id,
            ),
        )
        .outerjoin(PERSON, and_(PERSON.c.id == PERSON_CHANNEL.c.person_id, PERSON.c.active))
        .outerjoin(UNIT, UNIT.c.id == PERSON.c.unit_id)
    )


def _log_insert(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(MESSAGE_LOG).values({name: bindparam(name) for name in LOG_VALUES})


def _conversation_insert(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(CONVERSATION).values(
        channel=bindparam("channel"),
        user_id=bindparam("user_id"),
        data=bindparam("data", type_=CONVERSATION.c.data.type),
        choices=bindparam("choices", type_=CONVERSATION.c.choices.type),
        updated_at=bindparam("started_at", type_=UTCDateTime()),
        flood_count=0,
        flood_notified=False,
    )


@dataclass(frozen=True, slots=True)
class _Statements:
    open_claimed: RawStatement | None  # PostgreSQL: claim + conversation + identity
    open: RawStatement | None  # PostgreSQL: conversation + identity (no update id)
    claim: RawStatement | None  # SQLite, statement by statement
    load: RawStatement | None
    start: RawStatement | None
    save_conversation: RawStatement
    save_log: RawStatement
    save_both: RawStatement | None  # PostgreSQL: the conversation and the log row at once
    log: RawStatement  # a log row for a message without a platform id


def _statements(engine: AsyncEngine) -> _Statements:
    dialect = engine.dialect
    name = dialect.name
    conversation_values: dict[str, Any] = {field: bindparam(field) for field in CONVERSATION_FIELDS}
    save_conversation = (
        update(CONVERSATION)
        .where(CONVERSATION.c.id == bindparam("conversation_id"))
        .values(conversation_values)
    )
    save_log = (
        update(MESSAGE_LOG)
        .where(MESSAGE_LOG.c.id == bindparam("log_id"))
        .values({field: bindparam(field) for field in (*LOG_FIELDS, "replies")})
    )
    log = (
        _log_insert(name)
        .values({field: bindparam(field) for field in (*LOG_FIELDS, "replies")})
        .on_conflict_do_nothing()
    )
    if name == "postgresql":
        start = _conversation_insert(name)
        # A no-op update on conflict: the row comes back either way, locked until the
        # transaction ends (one person's messages one at a time across workers).
        started = (
            start.on_conflict_do_update(
                constraint="uq_conversation_user", set_={"channel": start.excluded.channel}
            )
            .returning(*CONVERSATION.c)
            .cte("conversation_row")
        )
        claimed = (
            _log_insert(name).on_conflict_do_nothing().returning(MESSAGE_LOG.c.id).cte("claimed")
        )
        columns = [*started.c, *_IDENTITY_COLUMNS]
        joined = _identity_joins(started)
        open_claimed = select(
            select(claimed.c.id).scalar_subquery().label("claimed"), *columns
        ).select_from(joined)
        open_plain = select(null().label("claimed"), *columns).select_from(joined)
        saved = save_log.add_cte(save_conversation.cte("saved_conversation"))
        return _Statements(
            open_claimed=RawStatement(open_claimed, dialect),
            open=RawStatement(open_plain, dialect),
            claim=None,
            load=None,
            start=None,
            save_conversation=RawStatement(save_conversation, dialect),
            save_log=RawStatement(save_log, dialect),
            save_both=RawStatement(saved, dialect),
            log=RawStatement(log, dialect),
        )
    load = (
        select(*CONVERSATION.c, *_IDENTITY_COLUMNS)
        .select_from(_identity_joins(CONVERSATION))
        .where(
            CONVERSATION.c.channel == bindparam("channel"),
            CONVERSATION.c.user_id == bindparam("user_id"),
        )
    )
    return _Statements(
        open_claimed=None,
        open=None,
        claim=RawStatement(
            _log_insert(name).on_conflict_do_nothing().returning(MESSAGE_LOG.c.id), dialect
        ),
        load=RawStatement(load, dialect),
        start=RawStatement(_conversation_insert(name).on_conflict_do_nothing(), dialect),
        save_conversation=RawStatement(save_conversation, dialect),
        save_log=RawStatement(save_log, dialect),
        save_both=None,
        log=RawStatement(log, dialect),
    )


class MessageTransactions:
    """Opens :class:`MessageTransaction` on one engine (statements compiled once)."""

    def __init__(self, engine: AsyncEngine) -> None:
        configure_mappers()  # rows become model instances without the ORM's help (_loaded)
        self.engine = engine
        self.statements = _statements(engine)
        self.serial = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        # PostgreSQL: at most this many message transactions at once, within the
        # connections the pool keeps (a burst of updates would otherwise open and close
        # overflow connections all the time); the others wait their turn here.
        pool_size = getattr(engine.pool, "size", lambda: POOL_SIZE)()
        self.slots = asyncio.Semaphore(max(1, pool_size - 2)) if self.serial is None else None
        self.gate: asyncio.Lock | asyncio.Semaphore | None = self.serial or self.slots

    def __call__(self) -> MessageTransaction:
        return MessageTransaction(self)


class MessageTransaction:
    """``async with transactions() as tx``: one message's transaction. Left without
    :meth:`commit`, everything in it is rolled back."""

    def __init__(self, owner: MessageTransactions) -> None:
        self._owner = owner
        self._statements = owner.statements
        self._pooled: PoolProxiedConnection | None = None  # the pool's connection
        self._driver: Any = None  # asyncpg's or aiosqlite's connection under it
        self._postgres: Any = None  # PostgreSQL: the asyncpg transaction begun here
        self._sqlite: sqlite3.Connection | None = None  # SQLite: used right here, in the loop
        self._connection: AsyncConnection | None = None  # for a session, on first use
        self._session: AsyncSession | None = None
        self._locked = False
        self.claimed: int | None = None

    async def __aenter__(self) -> MessageTransaction:
        gate = self._owner.gate
        if gate is not None:
            await gate.acquire()
            self._locked = True
        try:
            # The pool's connection itself, not a SQLAlchemy Connection around it: most
            # messages need none (a session makes one, :attr:`session`).
            self._pooled = await self._owner.engine.raw_connection()
            adapter: Any = self._pooled.dbapi_connection
            self._driver = adapter.driver_connection
            if self._owner.serial is not None:
                self._sqlite = self._driver._conn  # the sqlite3 connection under aiosqlite
                await _begin_immediate(self._sqlite)
            else:
                self._postgres = self._driver.transaction()
                await self._postgres.start()
                # SQLAlchemy's adapter runs a session's statements in this transaction
                # (it begins one itself only when it has none) and ends it on rollback.
                adapter._transaction = self._postgres
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        """Roll back what was not committed and give the connection back to the pool."""
        pooled, connection = self._pooled, self._connection
        try:
            if self._session is not None:
                await self._session.close()  # rolls the transaction back if it is still open
            if self._sqlite is not None:
                if self._sqlite.in_transaction:
                    self._sqlite.rollback()
                self._sqlite.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            if self._postgres is not None and pooled is not None:
                adapter: Any = pooled.dbapi_connection
                if adapter is not None and adapter._transaction is self._postgres:
                    adapter._transaction = None
                    try:
                        await self._postgres.rollback()
                    except Exception:  # the connection died: it must not be used again
                        await greenlet_spawn(pooled.invalidate)
            if connection is not None:
                await connection.close()  # gives the pooled connection back
            elif pooled is not None:
                await greenlet_spawn(pooled.close)
        finally:
            self._session = self._connection = self._sqlite = self._postgres = None
            self._pooled = None
            if self._locked:
                self._locked = False
                gate = self._owner.gate
                assert gate is not None
                gate.release()

    @property
    def session(self) -> AsyncSession:
        """An ORM session in this transaction (it flushes; :meth:`commit` commits)."""
        if self._session is None:
            assert self._pooled is not None, "the transaction is closed"
            engine = self._owner.engine
            connection = Connection(engine.sync_engine, connection=self._pooled)
            self._connection = AsyncConnection(engine, connection)
            self._session = AsyncSession(bind=self._connection, expire_on_commit=False)
        return self._session

    async def _run(self, statement: RawStatement, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        if self._sqlite is not None:
            return statement.run_sqlite(self._sqlite, params)
        return await statement.run(self._driver, params)

    async def open(
        self, user: UserRef, entry: LogEntry
    ) -> tuple[Conversation, Identity | None, bool] | None:
        """Claim the update (``entry.update_key``) and load the conversation (created on
        first contact) with who is writing and whether they had blocked the bot. ``None``:
        the update was claimed before (a redelivery); nothing else was done."""
        key = {"channel": user.channel, "user_id": user.user_id}
        logged = {name: getattr(entry, name) for name in LOG_VALUES}
        statements = self._statements
        if statements.open_claimed is not None and statements.open is not None:
            values = {**logged, **key, "data": {}, "choices": [], "started_at": utcnow()}
            claiming = entry.update_key is not None
            opening = statements.open_claimed if claiming else statements.open
            row = (await self._run(opening, values))[0]
            if claiming and row[0] is None:
                return None
            self.claimed = row[0]
            return _parse(row[1:])
        claim, load, start = statements.claim, statements.load, statements.start
        assert claim is not None and load is not None and start is not None
        if entry.update_key is not None:
            claimed = await self._run(claim, logged)
            if not claimed:
                return None
            self.claimed = claimed[0][0]
        rows = await self._run(load, key)
        if not rows:
            await self._run(start, {**key, "data": {}, "choices": [], "started_at": utcnow()})
            rows = await self._run(load, key)
        return _parse(rows[0])

    async def save(
        self, conversation: Conversation, entry: LogEntry, replies: list[dict[str, Any]] | None
    ) -> None:
        """Write the conversation and the log row (inserted now for a message without a
        platform id)."""
        if self._session is not None:
            await self._session.flush()  # the handler's changes first, as they were made
        statements = self._statements
        values = {name: getattr(conversation, name) for name in CONVERSATION_FIELDS}
        values["conversation_id"] = conversation.id
        logged = {name: getattr(entry, name) for name in LOG_FIELDS}
        if entry.id is None:  # a message without a platform id (the terminal): logged now
            await self._run(statements.save_conversation, values)
            await self.log(entry, replies)
            return
        params = {**values, **logged, "log_id": entry.id, "replies": replies}
        if statements.save_both is not None:
            await self._run(statements.save_both, params)
        else:
            await self._run(statements.save_conversation, values)
            await self._run(statements.save_log, params)

    async def log(self, entry: LogEntry, replies: list[dict[str, Any]] | None = None) -> None:
        """A log row for ``entry`` (one logged before under its update id is left alone)."""
        values = {name: getattr(entry, name) for name in (*LOG_VALUES, *LOG_FIELDS)}
        await self._run(self._statements.log, {**values, "replies": replies})

    async def commit(self) -> None:
        if self._session is not None:
            await self._session.flush()
        if self._sqlite is not None:
            self._sqlite.commit()
            return
        assert self._postgres is not None and self._pooled is not None
        await self._postgres.commit()
        adapter: Any = self._pooled.dbapi_connection
        adapter._transaction = None


async def _begin_immediate(connection: sqlite3.Connection) -> None:
    """Take SQLite's write lock for this transaction without ever blocking the event loop:
    while another connection writes, wait here (asynchronously, so that a writer of this
    process can finish) and try again; SQLite's own busy handler would sleep in the loop.
    Holding the lock, the transaction's statements never wait (WAL: readers do not block
    it), so the busy handler stays off until the connection goes back to the pool."""
    connection.execute("PRAGMA busy_timeout=0")
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    pause = 0.001
    while True:
        try:
            connection.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.05)


def _parse(row: tuple[Any, ...]) -> tuple[Conversation, Identity | None, bool]:
    conversation_end = len(_CONVERSATION_COLUMNS)
    person_end = conversation_end + len(_PERSON_COLUMNS)
    unit_end = person_end + len(_UNIT_COLUMNS)
    conversation = _loaded(Conversation, _CONVERSATION_COLUMNS, row[:conversation_end])
    person_values = row[conversation_end:person_end]
    unit_values = row[person_end:unit_end]
    blocked_at: datetime | None = row[unit_end]
    if person_values[0] is None or unit_values[0] is None:
        return conversation, None, False
    person = _loaded(Person, _PERSON_COLUMNS, person_values)
    unit = _loaded(Unit, _UNIT_COLUMNS, unit_values)
    return conversation, Identity(person, unit), blocked_at is not None


def _loaded(model: type[_M], names: tuple[str, ...], values: tuple[Any, ...]) -> _M:
    """An instance of ``model`` from a row, made the way the ORM makes the objects it loads
    (no validation, no defaults: the row has every column); detached, its later changes
    are tracked as usual. The model's constructor costs several times more."""
    instance: _M = model._sa_class_manager.new_instance()  # type: ignore[attr-defined]
    instance.__dict__.update(zip(names, values, strict=True))
    return instance
