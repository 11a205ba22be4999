"""Managing accounts (handlers.accounts): the invitation text, unit codes in any case,
listing and revoking invitations, listing, deactivating, reactivating and moving people; and
the admin commands built on them, on a real migrated database."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from typer.testing import CliRunner

from bot.app import App
from bot.cli import app as cli
from bot.core import UserRef, utcnow
from bot.storage.db import create_engine, make_session_factory
from bot.storage.models import Broadcast, Invite, OutboxMessage, Person, PersonChannel, Unit
from handlers.accounts import (
    activate_person,
    creator_names,
    deactivate_person,
    get_unit,
    invitation_text,
    list_invites,
    list_people,
    move_person,
    revoke_invite,
)
from handlers.broadcast import create_broadcast, parse_audience, recipients
from handlers.context import UserError
from handlers.people import INVALID_CODE, identify
from handlers.progress import NOT_ENROLLED
from handlers.units import UnitImportError, UnitRow, apply_rows, unit_by_code
from knowledge import Knowledge
from tests.conftest import Chat, Clock, make_app
from tests.progress.conftest import Enrol, build_tree, invite_code

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
EXPIRES = datetime(2025, 9, 3, 10, 0, tzinfo=ZONE)


# --------------------------------------------------------------------------- the text


def test_invitation_text_names_the_unit_role_uses_and_expiry() -> None:
    text = invitation_text(
        "TL-ABCDE-FGHJK",
        "Đảng ủy xã Phú Lương",
        "unit_admin",
        telegram_username="TroLyBot",
        telegram=True,
        zalo=True,
        uses=3,
        days=14,
        expires_at=EXPIRES,
    )
    assert text.splitlines()[:3] == [
        "Mã mời: TL-ABCDE-FGHJK",
        "Đơn vị: Đảng ủy xã Phú Lương — vai trò: quản trị đơn vị",
        "Dùng được cho 3 người. Hiệu lực 14 ngày, đến 10:00 ngày 3/9/2025.",
    ]
    assert "• Telegram: mở liên kết https://t.me/TroLyBot?start=TLABCDEFGHJK" in text
    assert "• Zalo: nhắn mã TL-ABCDE-FGHJK cho trợ lý trên Zalo." in text


def test_invitation_text_per_configured_channel() -> None:
    def text(**channels: object) -> str:
        return invitation_text(
            "TL-ABCDE-FGHJK",
            "Chi bộ 1",
            "official",
            uses=1,
            days=7,
            **channels,  # type: ignore[arg-type]
        )

    zalo_only = text(telegram_username=None, telegram=False, zalo=True)
    assert "Telegram" not in zalo_only and "t.me" not in zalo_only
    assert "nhắn mã TL-ABCDE-FGHJK cho trợ lý trên Zalo" in zalo_only
    telegram_only = text(telegram_username="@TroLyBot", telegram=True, zalo=False)
    assert "https://t.me/TroLyBot?start=TLABCDEFGHJK" in telegram_only  # '@' dropped
    assert "Zalo" not in telegram_only
    assert "Dùng được cho 1 người. Hiệu lực 7 ngày, đến " in telegram_only
    no_username = text(telegram_username=None, telegram=True, zalo=False)
    assert "t.me" not in no_username
    assert "nhắn mã TL-ABCDE-FGHJK cho trợ lý trên Telegram" in no_username
    assert "chưa tạo được liên kết" in no_username
    neither = text(telegram_username="TroLyBot", telegram=False, zalo=False)
    assert "nhắn mã TL-ABCDE-FGHJK cho trợ lý trên Telegram." in neither
    assert "nhắn mã TL-ABCDE-FGHJK cho trợ lý trên Zalo." in neither
    assert "chưa tạo được" not in neither


# --------------------------------------------------------------------------- units


async def test_unit_codes_match_ignoring_case(tree: AsyncEngine) -> None:
    async with make_session_factory(tree)() as session:
        found = await unit_by_code(session, " hn.bd ")
        assert found is not None and found.code == "HN.BD"
        assert await unit_by_code(session, "HN.XX") is None
        with pytest.raises(UserError, match=r"Không tìm thấy đơn vị có mã «HN\.XX»"):
            await get_unit(session, "HN.XX")
        hp = await get_unit(session, "hp")
        with pytest.raises(UserError, match="không thuộc phạm vi"):
            await get_unit(session, "hn.bd", scope=hp)
        # An import refuses a code that differs only in case from a stored one...
        with pytest.raises(UnitImportError, match="chỉ khác chữ hoa, chữ thường"):
            await apply_rows(
                session, [UnitRow(2, "hn.bd", "Đơn vị viết thường", "co_so", "HN.BD")], utcnow()
            )
        # ... but data from before that rule may hold two: the exact one wins, a third
        # spelling is refused.
        parent = await unit_by_code(session, "HN.BD")
        assert parent is not None
        session.add(
            Unit(code="hn.bd", name="Đơn vị viết thường", level="co_so", parent_id=parent.id)
        )
        await session.flush()
        exact = await unit_by_code(session, "hn.bd")
        assert exact is not None and exact.name == "Đơn vị viết thường"
        with pytest.raises(UserError, match="nhiều đơn vị"):
            await unit_by_code(session, "Hn.Bd")


# --------------------------------------------------------------------------- invitations


async def test_invites_are_listed_with_their_state(tree: AsyncEngine, app: App) -> None:
    now = utcnow()
    usable = await invite_code(tree, "HN.BD", "official", uses=2)
    await invite_code(tree, "HN.SS", "unit_admin", days=1, now=now - timedelta(days=2))  # expired
    used = await invite_code(tree, "HP.CH", "official")
    await invite_code(tree, "HP", "unit_admin")  # revoked below
    await Chat(app, user_id="u1").say(used)
    async with make_session_factory(tree)() as session:
        await revoke_invite(session, invite_id=4, scope=None, now=now)
        await session.commit()
        shown = await list_invites(session, scope=None, now=now)
        assert [(i.id, i.unit_code, i.state) for i in shown] == [(1, "HN.BD", "còn hiệu lực")]
        [first] = shown
        assert (first.role_name, first.uses, first.max_uses) == ("cán bộ báo cáo", 0, 2)
        assert first.created_by == "test" and first.expires_at > now
        every = await list_invites(session, scope=None, now=now, everything=True)
        assert {i.id: i.state for i in every} == {
            1: "còn hiệu lực",
            2: "hết hạn",
            3: "đã dùng hết",
            4: "đã thu hồi",
        }
        hn = await unit_by_code(session, "HN")
        assert hn is not None
        inside = await list_invites(session, scope=hn, now=now, everything=True)
        assert {i.unit_code for i in inside} == {"HN.BD", "HN.SS"}
        hp = await unit_by_code(session, "HP")
        with pytest.raises(UserError, match="không thuộc phạm vi"):
            await list_invites(session, scope=hn, unit=hp, now=now)
    assert usable.startswith("TL-")


async def test_a_revoked_code_gets_the_wrong_code_answer(tree: AsyncEngine, app: App) -> None:
    code = await invite_code(tree, "HN.BD", "official", uses=5)
    async with make_session_factory(tree)() as session:
        hp = await unit_by_code(session, "HP")
        with pytest.raises(UserError, match="không thuộc phạm vi"):
            await revoke_invite(session, invite_id=1, scope=hp, now=utcnow())
        with pytest.raises(UserError, match="Không có mã mời số 9"):
            await revoke_invite(session, invite_id=9, scope=None, now=utcnow())
        info, was_usable = await revoke_invite(session, invite_id=1, scope=None, now=utcnow())
        await session.commit()
    assert was_usable and info.state == "đã thu hồi"
    assert await Chat(app, user_id="a").say(code) == INVALID_CODE
    assert await Chat(app, user_id="b").say("TL-AAAAA-BBBBB") == INVALID_CODE  # the same
    async with make_session_factory(tree)() as session:
        assert (await session.exec(select(Person))).all() == []
        [invite] = (await session.exec(select(Invite))).all()
        assert invite.revoked and invite.uses == 0
        _, again = await revoke_invite(session, invite_id=1, scope=None, now=utcnow())
        assert not again  # revoking twice is harmless


async def test_creators_are_named(tree: AsyncEngine, enrol: Enrol) -> None:
    await enrol("HN.SS", "unit_admin", user_id="m")
    async with make_session_factory(tree)() as session:
        await session.exec(update(Person).values(name="Nguyễn Văn A"))
        await session.commit()
        names = await creator_names(session, ["person:1", "cli", "person:99", "test"])
    assert names == {
        "person:1": "Nguyễn Văn A (Đảng ủy xã Sóc Sơn)",
        "cli": "dòng lệnh",
        "person:99": "người số 99",
        "test": "test",
    }


# --------------------------------------------------------------------------- people


@pytest.fixture
def count_queries(tree: AsyncEngine) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(tree.sync_engine, "before_cursor_execute", record)
    yield statements
    event.remove(tree.sync_engine, "before_cursor_execute", record)


async def _name(engine: AsyncEngine, user_id: str, name: str) -> int:
    async with make_session_factory(engine)() as session:
        link = (
            await session.exec(select(PersonChannel).where(PersonChannel.user_id == user_id))
        ).one()
        person = await session.get(Person, link.person_id)
        assert person is not None and person.id is not None
        person.name = name
        session.add(person)
        await session.commit()
        return person.id


async def test_people_are_listed_with_channels_and_last_message(
    tree: AsyncEngine, app: App, enrol: Enrol, clock: Clock, count_queries: list[str]
) -> None:
    lan = await enrol("HN.BD", "official", user_id="lan-tg", channel="telegram")
    await enrol("HN.SS", "official", user_id="binh", channel="zalo")
    await enrol("HP.CH", "official", user_id="cuong", channel="zalo")
    lan_id = await _name(tree, "lan-tg", "Trần Thị Lan")
    await _name(tree, "binh", "Lê Văn Bình")
    # Lan links Zalo too (a code for her person) and writes there later; Bình blocks the bot.
    async with make_session_factory(tree)() as session:
        unit = await unit_by_code(session, "HN.BD")
        person = await session.get(Person, lan_id)
        assert unit is not None and person is not None
        from handlers.people import create_invite

        link_code = await create_invite(
            session, unit=unit, role="official", uses=1, days=1, created_by="cli",
            now=utcnow(), person=person,
        )  # fmt: skip
        await session.exec(
            update(PersonChannel)
            .where(col(PersonChannel.user_id) == "binh")
            .values(blocked_at=clock.now)
        )
        await session.commit()
    clock.advance(hours=2)
    await Chat(app, channel="zalo", user_id="lan-zalo").say(link_code)
    clock.advance(hours=1)
    await lan.say("/toi")  # her latest message: 06:00 UTC, on Telegram
    latest = clock.now

    async with make_session_factory(tree)() as session:
        count_queries.clear()
        people = await list_people(session, scope=None)
        assert len(count_queries) == 2  # people, then channels with last messages: not per person
        by_name = {p.name: p for p in people}
        assert [p.unit_code for p in people] == ["HN.BD", "HN.SS", "HP.CH"]  # tree order
        lan_info = by_name["Trần Thị Lan"]
        assert [c.label for c in lan_info.channels] == ["Telegram", "Zalo"]
        assert lan_info.last_message_at == latest
        assert lan_info.role_name == "cán bộ báo cáo" and lan_info.active
        binh = by_name["Lê Văn Bình"]
        assert [c.label for c in binh.channels] == ["Zalo (đã chặn trợ lý)"] and binh.blocked
        assert binh.last_message_at is not None and binh.last_message_at < latest
        hn = await unit_by_code(session, "HN")
        assert hn is not None
        assert {p.name for p in await list_people(session, scope=hn)} == {
            "Trần Thị Lan",
            "Lê Văn Bình",
        }
        ss = await unit_by_code(session, "HN.SS")
        assert [p.name for p in await list_people(session, scope=hn, unit=ss)] == ["Lê Văn Bình"]


async def test_a_deactivated_person_is_not_recognised_and_gets_no_pushes(
    tree: AsyncEngine, app: App, enrol: Enrol, clock: Clock
) -> None:
    official = await enrol("HN.BD", "official", user_id="bd", channel="zalo")
    await enrol("HN.SS", "official", user_id="ss", channel="zalo")
    async with make_session_factory(tree)() as session:
        targets, _ = await recipients(
            session, parse_audience("all"), scope=None, today=clock.now.astimezone(ZONE)
        )
        await create_broadcast(
            session,
            text="Thông báo",
            audience=parse_audience("all"),
            targets=[t for t in targets if t.chat_id == "bd"],
            created_by="cli",
            now=clock.now,
        )
        await session.commit()
        ss = await unit_by_code(session, "HN.SS")
        with pytest.raises(UserError, match="không thuộc phạm vi"):
            await deactivate_person(session, person_id=1, scope=ss, now=clock.now)
        with pytest.raises(UserError, match="Không có người dùng số 9"):
            await deactivate_person(session, person_id=9, scope=None, now=clock.now)
        change = await deactivate_person(session, person_id=1, scope=None, now=clock.now)
        await session.commit()
        assert change.changed and change.cancelled_pushes == 1
        [row] = (await session.exec(select(OutboxMessage))).all()
        assert row.status == "cancelled"
        [broadcast] = (await session.exec(select(Broadcast))).all()
        assert broadcast.status == "done"  # its only message will not go out
        assert await identify(session, UserRef("zalo", "bd")) is None
        targets, _ = await recipients(
            session, parse_audience("all"), scope=None, today=clock.now.astimezone(ZONE)
        )
        assert {t.chat_id for t in targets} == {"ss"}
    assert await official.say("/baocao") == NOT_ENROLLED
    async with make_session_factory(tree)() as session:
        again = await deactivate_person(session, person_id=1, scope=None, now=clock.now)
        assert not again.changed
        back = await activate_person(session, person_id=1, scope=None)
        await session.commit()
        assert back.changed and back.person.active
    assert "Đảng ủy phường Ba Đình" in await official.say("/toi")


async def test_moving_a_person(tree: AsyncEngine, enrol: Enrol) -> None:
    official = await enrol("HN.BD", "official", user_id="bd")
    async with make_session_factory(tree)() as session:
        ss = await get_unit(session, "hn.ss")
        hn = await get_unit(session, "HN")
        hp = await get_unit(session, "HP")
        with pytest.raises(UserError, match="Vai trò không hợp lệ: boss"):
            await move_person(session, person_id=1, unit=ss, role="boss", scope=None)
        with pytest.raises(UserError, match="Chỉ quản trị hệ thống"):
            await move_person(session, person_id=1, unit=ss, role="admin", scope=hn)
        with pytest.raises(UserError, match="không thuộc phạm vi"):
            await move_person(session, person_id=1, unit=hp, scope=hn)
        moved = await move_person(session, person_id=1, unit=ss, role="unit_admin", scope=hn)
        await session.commit()
        assert moved.changed
        same = await move_person(session, person_id=1, unit=ss, scope=None)
        assert not same.changed and same.person.role == "unit_admin"  # the role is kept
    text = await official.say("/toi")
    assert "Đảng ủy xã Sóc Sơn" in text and "quản trị đơn vị" in text


async def test_accounts_on_both_databases(db_url: str, knowledge: Knowledge) -> None:
    """The queries that differ between SQLite and PostgreSQL: lower(), the grouped last
    message, UPDATE … RETURNING."""
    engine = create_engine(db_url)
    try:
        await build_tree(engine, knowledge)
        app = make_app(knowledge, engine)
        await Chat(app, channel="zalo", user_id="z1").say(
            await invite_code(engine, "HN.BD", "official")
        )
        await Chat(app, channel="telegram", user_id="t1").say("xin chào")  # not enrolled
        now = utcnow()
        async with make_session_factory(engine)() as session:
            unit = await get_unit(session, "hn.bd")
            targets, _ = await recipients(
                session, parse_audience("all"), scope=None, today=now.astimezone(ZONE)
            )
            await create_broadcast(
                session,
                text="Thông báo",
                audience=parse_audience("all"),
                targets=targets,
                created_by="cli",
                now=now,
            )
            [person] = await list_people(session, scope=unit)
            assert [c.label for c in person.channels] == ["Zalo"]
            assert person.last_message_at is not None and person.last_message_at <= utcnow()
            info, _ = await revoke_invite(session, invite_id=1, scope=unit, now=now)
            assert info.state == "đã thu hồi"
            change = await deactivate_person(session, person_id=person.id, scope=unit, now=now)
            assert change.cancelled_pushes == 1
            await session.commit()
            [broadcast] = (await session.exec(select(Broadcast))).all()
            assert broadcast.status == "done"
            assert await list_people(session, scope=None) == []
    finally:
        await engine.dispose()


# --------------------------------------------------------------------------- the CLI


@pytest.fixture
def cli_db(
    sqlite_url: str, knowledge: Knowledge, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> str:
    """The hierarchy, three invitations (two used) and two people, on a migrated database."""

    async def prepare() -> None:
        engine = create_engine(sqlite_url)
        await build_tree(engine, knowledge)
        app = make_app(knowledge, engine)
        await Chat(app, channel="zalo", user_id="lan").say(
            await invite_code(engine, "HN.BD", "official")
        )
        await Chat(app, channel="telegram", user_id="binh").say(
            await invite_code(engine, "HP.CH", "unit_admin")
        )
        await invite_code(engine, "HN.SS", "official", uses=3)
        async with make_session_factory(engine)() as session:
            await session.exec(update(Person).where(col(Person.id) == 1).values(name="[b]Lan[/b]"))
            await session.exec(update(Person).where(col(Person.id) == 2).values(name="Bình"))
            await session.commit()
        await engine.dispose()

    asyncio.run(prepare())
    for name in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_BOT_USERNAME", "ZALO_BOT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.chdir(tmp_path)
    return sqlite_url


async def _people(url: str) -> dict[int, tuple[str, str, bool]]:
    engine = create_engine(url)
    try:
        async with make_session_factory(engine)() as session:
            rows = await session.exec(
                select(Person, Unit).where(col(Unit.id) == col(Person.unit_id))
            )
            return {p.id or 0: (u.code, p.role, p.active) for p, u in rows.all()}
    finally:
        await engine.dispose()


def test_cli_invite_list_and_revoke(cli_db: str) -> None:
    runner = CliRunner()
    listed = runner.invoke(cli, ["invite", "list"], env={"COLUMNS": "120"})
    assert listed.exit_code == 0, listed.output
    assert "Đảng ủy xã Sóc Sơn (HN.SS)" in listed.stdout and "0/3" in listed.stdout
    assert "Cát Hải" not in listed.stdout  # used up: only with --all
    assert "1 mã mời." in listed.stdout
    every = runner.invoke(cli, ["invite", "list", "--all"], env={"COLUMNS": "160"})
    assert "đã dùng hết" in every.stdout and "còn hiệu lực" in every.stdout
    assert "3 mã mời." in every.stdout
    only = runner.invoke(cli, ["invite", "list", "--all", "--unit", "hp"], env={"COLUMNS": "160"})
    assert "Cát Hải" in only.stdout and "Sóc Sơn" not in only.stdout
    assert "không xem lại được" in runner.invoke(cli, ["invite", "list", "--help"]).stdout

    revoked = runner.invoke(cli, ["invite", "revoke", "3"])
    assert revoked.exit_code == 0, revoked.output
    assert "Đã thu hồi mã mời số 3 (Đảng ủy xã Sóc Sơn, cán bộ báo cáo)" in revoked.stdout
    nothing = runner.invoke(cli, ["invite", "list"])
    assert "Không có mã mời nào còn hiệu lực" in nothing.stdout
    unknown = runner.invoke(cli, ["invite", "revoke", "42"])
    assert unknown.exit_code == 1 and "Không có mã mời số 42." in unknown.output
    bad_unit = runner.invoke(cli, ["invite", "list", "--unit", "XX"])
    assert bad_unit.exit_code == 1 and "Không tìm thấy đơn vị có mã «XX»." in bad_unit.output


def test_cli_people(cli_db: str) -> None:
    runner = CliRunner()
    listed = runner.invoke(cli, ["people", "list"], env={"COLUMNS": "160"})
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    lan = next(line for line in lines if "[b]Lan[/b]" in line)  # a name is never markup
    assert "Đảng ủy phường Ba Đình (HN.BD)" in lan and "cán bộ báo cáo" in lan and "Zalo" in lan
    assert "20/08/2025" not in lan and f"{utcnow().astimezone(ZONE):%d/%m/%Y}" in lan
    binh = next(line for line in lines if "Bình" in line)
    assert "quản trị đơn vị" in binh and "Telegram" in binh
    assert "2 người." in listed.stdout

    off = runner.invoke(cli, ["people", "deactivate", "1"])
    assert off.exit_code == 0, off.output
    assert "Đã ngừng hoạt động tài khoản của [b]Lan[/b] (Đảng ủy phường Ba Đình)" in off.stdout
    assert asyncio.run(_people(cli_db))[1] == ("HN.BD", "official", False)
    active = runner.invoke(cli, ["people", "list"], env={"COLUMNS": "160"})
    assert "Lan" not in active.stdout and "1 người." in active.stdout
    every = runner.invoke(cli, ["people", "list", "--inactive"], env={"COLUMNS": "160"})
    assert "đã ngừng hoạt động" in every.stdout
    assert "2 người, trong đó 1 người đã ngừng hoạt động." in every.stdout
    on = runner.invoke(cli, ["people", "activate", "1"])
    assert "Đã mở lại tài khoản của [b]Lan[/b]" in on.stdout
    assert asyncio.run(_people(cli_db))[1] == ("HN.BD", "official", True)

    moved = runner.invoke(cli, ["people", "move", "1", "--unit", "hn.ss", "--role", "unit_admin"])
    assert moved.exit_code == 0, moved.output
    assert "Đã chuyển [b]Lan[/b] sang Đảng ủy xã Sóc Sơn (HN.SS), vai trò: quản trị đơn vị." in (
        moved.stdout
    )
    assert asyncio.run(_people(cli_db))[1] == ("HN.SS", "unit_admin", True)
    in_unit = runner.invoke(cli, ["people", "list", "--unit", "HN.SS"], env={"COLUMNS": "160"})
    assert "Lan" in in_unit.stdout and "Bình" not in in_unit.stdout

    for args, message in [
        (["people", "deactivate", "7"], "Không có người dùng số 7."),
        (["people", "activate", "7"], "Không có người dùng số 7."),
        (["people", "move", "1", "--unit", "XX"], "Không tìm thấy đơn vị có mã «XX»."),
        (["people", "move", "1", "--unit", "HN", "--role", "boss"], "Vai trò không hợp lệ: boss"),
        (["people", "list", "--unit", "XX"], "Không tìm thấy đơn vị có mã «XX»."),
    ]:
        result = runner.invoke(cli, args)
        assert result.exit_code == 1 and message in result.output, (args, result.output)
    assert asyncio.run(_people(cli_db))[1] == ("HN.SS", "unit_admin", True)  # unchanged


def test_cli_invite_create_when_telegram_is_unreachable(
    cli_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:ABCdefGHIjklMNOpqrSTUvwxYZ0123456789")
    monkeypatch.setenv("TELEGRAM_API_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    started = time.monotonic()
    result = CliRunner().invoke(cli, ["invite", "create", "--unit", "HN.BD", "--role", "official"])
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.output
    code = result.stdout.split("Mã mời: ")[1].split()[0]
    assert code.startswith("TL-")
    assert "Không kết nối được Telegram Bot API nên chưa tạo được liên kết Telegram" in (
        result.output
    )
    assert "TELEGRAM_BOT_USERNAME" in result.output
    assert "t.me/" not in result.output
    assert f"nhắn mã {code} cho trợ lý trên Telegram" in result.stdout
    assert "ABCdefGHI" not in result.output  # the token is never shown
    assert elapsed < 6, elapsed


def test_cli_invite_create_with_only_zalo(cli_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZALO_BOT_TOKEN", "zalo-token")
    result = CliRunner().invoke(cli, ["invite", "create", "--unit", "HN.BD", "--role", "official"])
    assert result.exit_code == 0, result.output
    code = result.stdout.split("Mã mời: ")[1].split()[0]
    assert "Telegram" not in result.output
    assert f"• Zalo: nhắn mã {code} cho trợ lý trên Zalo." in result.stdout


def test_cli_broadcast_status_names_the_sender(
    cli_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broadcast() -> None:
        engine = create_engine(cli_db)
        async with make_session_factory(engine)() as session:
            targets, _ = await recipients(
                session, parse_audience("all"), scope=None, today=datetime.now(UTC)
            )
            await create_broadcast(
                session,
                text="Họp trực tuyến lúc 8 giờ.",
                audience=parse_audience("all"),
                targets=targets,
                created_by="person:2",
                now=utcnow(),
            )
            await session.commit()
        await engine.dispose()

    asyncio.run(broadcast())
    runner = CliRunner()
    listing = runner.invoke(cli, ["broadcast", "status"], env={"COLUMNS": "160"})
    assert listing.exit_code == 0, listing.output
    assert "Bình (Đảng ủy phường Cát Hải)" in listing.stdout and "person:" not in listing.stdout
    assert "đang gửi" in listing.stdout
    one = runner.invoke(cli, ["broadcast", "status", "1"])
    assert "người gửi: Bình (Đảng ủy phường Cát Hải)" in one.stdout
    missing = runner.invoke(cli, ["broadcast", "status", "9"])
    assert missing.exit_code == 1 and "Không có thông báo số 9" in missing.output
