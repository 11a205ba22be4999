"""The message path's own transaction (bot.message_tx): few statements, one transaction with
whatever a handler does through its session, values stored as the ORM stores them; and
the pool's cheap liveness check on PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TypeVar

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.app import ERROR_REPLY
from bot.core import IncomingMessage, Reply
from bot.message_tx import MessageTransaction
from bot.storage import db as db_module
from bot.storage.db import create_engine, make_session_factory
from bot.storage.models import Conversation, MessageLog, Person, PersonChannel, Unit
from handlers import ROUTES, Context, Route
from knowledge import Knowledge
from tests.conftest import Clock, make_app


def _message(text_: str | None, *, update: str | None, user: str = "u1") -> IncomingMessage:
    return IncomingMessage(
        channel="telegram", user_id=user, chat_id=user, text=text_, update_key=update
    )


_T = TypeVar("_T")


async def _all(engine: AsyncEngine, model: type[_T]) -> list[_T]:
    async with make_session_factory(engine)() as session:
        return list((await session.exec(select(model))).all())  # type: ignore[arg-type]


async def test_what_the_path_writes_reads_back_through_the_orm(
    db_url: str, knowledge: Knowledge
) -> None:
    engine = create_engine(db_url)
    clock = Clock(datetime(2025, 8, 20, 3, 0, 15, 123456, tzinfo=UTC))
    try:
        app = make_app(knowledge, engine, clock=clock)
        outcome = await app.handle(_message("kết luận 185", update="u1"), buttons=False)
        assert outcome.replies and outcome.log_id is not None
        await app.confirm(outcome)  # the adapter sent the replies
        [conversation] = await _all(engine, Conversation)
        assert conversation.updated_at == clock.now  # aware, microseconds kept
        offered = [choice for choice in conversation.choices]
        assert offered and all(isinstance(choice, list) for choice in offered)
        assert isinstance(conversation.qa_turn, dict)
        [row] = await _all(engine, MessageLog)
        assert (row.id, row.update_key, row.text) == (outcome.log_id, "u1", "kết luận 185")
        assert row.created_at == clock.now and row.route == "qa"
        assert row.replies is not None and row.replies[0]["text"] == outcome.replies[0].text
        # The next message finds all of it: "1" picks the first choice offered.
        clock.advance(seconds=5)
        picked = await app.handle(_message("1", update="u2"), buttons=False)
        assert "Nguồn:" in (picked.replies[0].footer or picked.replies[0].text)
        await app.confirm(picked)
        await app.flush_confirmations()
        rows = await _all(engine, MessageLog)
        assert [r.replied_at for r in rows] == [clock.now, clock.now]
    finally:
        await engine.dispose()


async def test_an_enrolled_person_is_known_and_a_failing_handler_leaves_nothing(
    db_url: str, knowledge: Knowledge
) -> None:
    """The claim of the update, the conversation and what the handler wrote through its
    session are one transaction: an error takes all of them back."""
    engine = create_engine(db_url)
    seen: list[tuple[str, str]] = []

    async def write_then_fail(msg: IncomingMessage, ctx: Context) -> Reply:
        assert ctx.identity is not None
        seen.append((ctx.identity.person.name, ctx.identity.unit.code))
        ctx.session.add(Unit(code="NEW", name="Đơn vị mới", level="xa", path="9"))
        await ctx.session.flush()
        raise RuntimeError("bug")

    async def write(msg: IncomingMessage, ctx: Context) -> Reply:
        ctx.session.add(Unit(code="KEPT", name="Đơn vị giữ", level="xa", path="8"))
        return Reply(text="Đã ghi.")

    try:
        async with make_session_factory(engine)() as session:
            unit = Unit(code="T01", name="Tỉnh ủy thử", level="tinh", path="1")
            session.add(unit)
            await session.flush()
            assert unit.id is not None
            person = Person(name="Nguyễn Văn A", unit_id=unit.id, role="official")
            session.add(person)
            await session.flush()
            assert person.id is not None
            session.add(
                PersonChannel(person_id=person.id, channel="telegram", user_id="u1", chat_id="u1")
            )
            await session.commit()
        routes = (
            Route("fail", write_then_fail, commands=frozenset({"fail"})),
            Route("write", write, commands=frozenset({"write"})),
            *ROUTES,
        )
        app = make_app(knowledge, engine, routes=routes)
        failed = await app.handle(_message("/fail", update="u10"), buttons=True)
        assert [r.text for r in failed.replies] == [ERROR_REPLY]
        assert seen == [("Nguyễn Văn A", "T01")]
        assert {u.code for u in await _all(engine, Unit)} == {"T01"}
        assert [(r.update_key, r.route) for r in await _all(engine, MessageLog)] == [
            ("u10", "error")
        ]
        assert await _all(engine, Conversation) == []  # first contact, rolled back too
        done = await app.handle(_message("/write", update="u11"), buttons=True)
        assert [r.text for r in done.replies] == ["Đã ghi."]
        assert {u.code for u in await _all(engine, Unit)} == {"T01", "KEPT"}
        # Delivered again: acknowledged, not handled twice.
        again = await app.handle(_message("/write", update="u11"), buttons=True)
        assert again.route == "redelivered"
        assert len([u for u in await _all(engine, Unit) if u.code == "KEPT"]) == 1
    finally:
        await engine.dispose()


async def test_a_message_without_a_platform_id_is_logged_once(
    db_url: str, knowledge: Knowledge
) -> None:
    engine = create_engine(db_url)
    try:
        app = make_app(knowledge, engine)
        for _ in range(2):
            await app.handle(_message("Ai ký Kết luận 185?", update=None), buttons=True)
        rows = await _all(engine, MessageLog)
        assert [(r.update_key, r.route, r.matched) for r in rows] == [(None, "qa", True)] * 2
    finally:
        await engine.dispose()


async def test_many_people_at_once_are_all_answered(db_url: str, knowledge: Knowledge) -> None:
    """Concurrent messages (SQLite: the message transactions take turns)."""
    engine = create_engine(db_url)
    try:
        app = make_app(knowledge, engine)
        messages = [
            _message("Ai ký Kết luận 185?", update=f"c{i}", user=f"p{i % 10}") for i in range(40)
        ]
        outcomes = await asyncio.gather(*(app.handle(m, buttons=True) for m in messages))
        assert all("Trần Cẩm Tú" in o.replies[0].text for o in outcomes)
        assert len(await _all(engine, MessageLog)) == 40
        assert len(await _all(engine, Conversation)) == 10
    finally:
        await engine.dispose()


# --------------------------------------------------------------------------- liveness


async def _terminate_other_connections(url: str) -> int:
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as connection:
            result = await connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            return int(result.scalar_one())
    finally:
        await admin.dispose()


@pytest.mark.parametrize("idle", [False, True], ids=["closed-known", "idle-pinged"])
async def test_connections_the_server_dropped_are_replaced_before_use(
    postgres_database: str, knowledge: Knowledge, monkeypatch: pytest.MonkeyPatch, idle: bool
) -> None:
    """PostgreSQL restarted (its backends terminated) while the pool held connections: the
    next messages are answered, not given the error reply."""
    engine = create_engine(postgres_database)
    try:
        app = make_app(knowledge, engine)
        first = await app.handle(_message("Ai ký Kết luận 185?", update=None), buttons=True)
        assert "Trần Cẩm Tú" in first.replies[0].text
        await app.flush_confirmations()
        if idle:  # the driver has not seen the close yet: the ping finds out
            monkeypatch.setattr(db_module, "IDLE_PING_SECONDS", 0.0)
            assert await _terminate_other_connections(postgres_database) >= 1
        else:
            assert await _terminate_other_connections(postgres_database) >= 1
            await asyncio.sleep(0.2)  # the server's goodbye reaches the idle connection
        for _ in range(3):
            outcome = await app.handle(_message("Ai ký Kết luận 185?", update=None), buttons=True)
            assert "Trần Cẩm Tú" in outcome.replies[0].text
    finally:
        await engine.dispose()


async def test_sqlite_message_transactions_take_turns(
    sqlite_url: str, knowledge: Knowledge
) -> None:
    engine = create_engine(sqlite_url)
    try:
        app = make_app(knowledge, engine)
        serial = app.transactions.serial
        assert serial is not None
        async with app.transactions() as tx:
            assert serial.locked()
            waiting = asyncio.create_task(
                app.handle(_message("Ai ký Kết luận 185?", update="x1"), buttons=True)
            )
            await asyncio.sleep(0.05)
            assert not waiting.done()  # it waits for this transaction, not SQLite's lock
            del tx
        outcome = await waiting
        assert "Trần Cẩm Tú" in outcome.replies[0].text
        assert not serial.locked()
    finally:
        await engine.dispose()


async def test_a_question_is_answered_without_an_orm_session(
    db_url: str, knowledge: Knowledge, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lean path: claim, conversation, identity and the write-back need no ORM session;
    a question's handler needs none either."""

    def no_session(self: MessageTransaction) -> None:
        raise AssertionError("an ORM session was opened")

    engine = create_engine(db_url)
    try:
        app = make_app(knowledge, engine)
        monkeypatch.setattr(MessageTransaction, "session", property(no_session))
        outcome = await app.handle(_message("Ai ký Kết luận 185?", update="q1"), buttons=True)
        assert "Trần Cẩm Tú" in outcome.replies[0].text
        assert outcome.route == "qa"
    finally:
        await engine.dispose()


async def test_postgresql_message_transactions_stay_within_the_kept_connections(
    postgres_database: str, knowledge: Knowledge
) -> None:
    """A burst of messages never opens more connections than the pool keeps: the message
    transactions beyond its size minus two wait for a turn (opening and closing overflow
    connections all the time was most of PostgreSQL's extra cost per message)."""
    engine = create_engine(postgres_database)
    try:
        app = make_app(knowledge, engine)
        slots = app.transactions.slots
        assert slots is not None and app.transactions.serial is None
        opened: list[object] = []
        event.listen(engine.sync_engine, "connect", lambda *_: opened.append(1))
        held = [app.transactions() for _ in range(engine.pool.size() - 2)]  # type: ignore[attr-defined]
        for tx in held:
            await tx.__aenter__()
        waiting = asyncio.create_task(
            app.handle(_message("Ai ký Kết luận 185?", update="s1"), buttons=True)
        )
        await asyncio.sleep(0.1)
        assert not waiting.done()
        for tx in held:
            await tx.__aexit__(None, None, None)
        outcome = await waiting
        assert "Trần Cẩm Tú" in outcome.replies[0].text
        burst = [_message("Ai ký Kết luận 185?", update=f"b{i}", user=f"b{i}") for i in range(60)]
        outcomes = await asyncio.gather(*(app.handle(m, buttons=True) for m in burst))
        assert all(o.route == "qa" for o in outcomes)
        await app.flush_confirmations()
        assert 0 < len(opened) <= engine.pool.size()  # type: ignore[attr-defined]
    finally:
        await engine.dispose()


async def test_sqlite_waits_for_another_writer_without_blocking_the_loop(
    sqlite_url: str, knowledge: Knowledge
) -> None:
    """Another connection of this process writes and awaits before committing (as the
    scheduler's sessions do): the message waits for it asynchronously — the event loop keeps
    running, so that writer can finish — instead of sleeping in SQLite's busy handler inside
    the loop (which would stall both for the 30 s busy timeout)."""
    engine = create_engine(sqlite_url)
    try:
        app = make_app(knowledge, engine)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        running = asyncio.create_task(ticker())
        async with engine.begin() as other:  # holds SQLite's write lock until the block ends
            await other.execute(
                text(
                    "INSERT INTO unit (code, name, level, path, depth, search_key, created_at, "
                    "updated_at) VALUES ('W', 'Ghi', 'xa', '7', 0, '', '2025-01-01', "
                    "'2025-01-01')"
                )
            )
            message = asyncio.create_task(
                app.handle(_message("Ai ký Kết luận 185?", update="w1"), buttons=True)
            )
            await asyncio.sleep(0.3)
            assert not message.done()  # waiting for the write lock...
            assert ticks >= 20  # ...without holding up the loop
        outcome = await asyncio.wait_for(message, 5)
        running.cancel()
        assert "Trần Cẩm Tú" in outcome.replies[0].text
        assert [r.update_key for r in await _all(engine, MessageLog)] == ["w1"]
    finally:
        await engine.dispose()
