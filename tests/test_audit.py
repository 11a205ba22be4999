"""«Nhật ký»: every audited action, done through its real path (chat, command line), writes
one entry with the right channel, person and unit and no secret; the log is append-only on
SQLite and PostgreSQL; `troly audit list` shows it."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from typer.testing import CliRunner

from bot.app import App
from bot.cli import app as cli
from bot.core import utcnow
from bot.storage.db import create_engine, make_session_factory
from bot.storage.models import AuditEntry, Unit
from handlers import ROUTES, weblogin
from handlers.audit import CLI, Actor, record
from knowledge import Knowledge
from tests.conftest import Chat, Clock, make_app
from tests.progress.conftest import (  # noqa: F401 - fixtures
    TREE,
    Enrol,
    build_tree,
    enrol,
    invite_code,
    tree,
)
from tests.progress.test_baocao import FIRST, report

BASE = "https://quan-tri.example.org"
CODE_RE = re.compile(r"TL-[A-Z0-9]{5}-[A-Z0-9]{5}")
TOKEN_RE = re.compile(r"/dang-nhap/(\S+)")


@pytest.fixture
def app(knowledge: Knowledge, engine: AsyncEngine, clock: Clock) -> App:
    """The core with /web configured (overrides the plain ``app`` the enrol fixture uses)."""
    return make_app(knowledge, engine, clock=clock, routes=weblogin.configure(ROUTES, BASE))


async def entries(engine: AsyncEngine) -> list[AuditEntry]:
    async with make_session_factory(engine)() as session:
        rows = await session.exec(select(AuditEntry).order_by(col(AuditEntry.id)))
        return list(rows.all())


async def ids(engine: AsyncEngine) -> dict[str, int]:
    """Unit codes to ids."""
    async with make_session_factory(engine)() as session:
        return {u.code: u.id or 0 for u in (await session.exec(select(Unit))).all()}


async def person_of(engine: AsyncEngine, chat: Chat) -> int:
    from bot.storage.models import PersonChannel

    async with make_session_factory(engine)() as session:
        found = await session.exec(
            select(PersonChannel.person_id).where(
                PersonChannel.channel == chat.channel, PersonChannel.user_id == chat.user_id
            )
        )
        return int(found.one())


# --------------------------------------------------------------------------- append-only


async def test_entries_cannot_be_updated_or_deleted(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        async with make_session_factory(engine)() as session:
            record(session, CLI, "units.import", "Nhập danh sách 1 đơn vị.", now=utcnow())
            await session.commit()
        for statement in (
            "UPDATE audit_log SET summary = 'đã sửa'",
            "UPDATE audit_log SET via = 'web' WHERE id = (SELECT min(id) FROM audit_log)",
            "DELETE FROM audit_log",
        ):
            async with engine.begin() as connection:
                with pytest.raises(DBAPIError, match="append-only"):
                    await connection.execute(text(statement))
        async with make_session_factory(engine)() as session:  # adding still works
            record(session, Actor("web", None), "web.sign_in", "Đăng nhập.", now=utcnow())
            await session.commit()
            stored = (await session.exec(select(AuditEntry).order_by(col(AuditEntry.id)))).all()
        assert [(e.via, e.summary) for e in stored] == [
            ("cli", "Nhập danh sách 1 đơn vị."),
            ("web", "Đăng nhập."),
        ]
    finally:
        await engine.dispose()


async def test_an_action_rolled_back_leaves_no_entry(tree: AsyncEngine) -> None:  # noqa: F811
    """The entry is part of the action's transaction."""
    from handlers.accounts import create_invites, get_unit
    from handlers.context import UserError

    async with make_session_factory(tree)() as session:
        hn = await get_unit(session, "HN")
        with pytest.raises(UserError):  # 4 units, a limit of 2: refused, nothing stored
            await create_invites(
                session,
                root=hn,
                subtree=True,
                role="official",
                uses=1,
                days=14,
                created_by="cli",
                now=utcnow(),
                limit=2,
                actor=CLI,
            )
        await session.rollback()
    assert await entries(tree) == []


# --------------------------------------------------------------------------- chat


async def test_chat_actions_write_one_entry_each_with_their_channel(
    tree: AsyncEngine,  # noqa: F811
    enrol: Enrol,  # noqa: F811
) -> None:
    admin = await enrol("TW", "admin", user_id="tg-admin", channel="telegram", buttons=True)
    manager = await enrol("HN", "unit_admin", user_id="zl-hn", channel="zalo")
    await enrol("HN.BD", "official", user_id="bd", channel="zalo")
    assert await entries(tree) == []  # enrolment itself is not an audited action
    known = await ids(tree)
    admin_id, manager_id = await person_of(tree, admin), await person_of(tree, manager)

    # An invitation on Telegram, revoked on Zalo by the unit admin.
    reply = await admin.say("/moi HN.SS canbo 3 7")
    [code] = set(CODE_RE.findall(reply))
    [made] = await entries(tree)
    assert (made.action, made.via, made.person_id, made.unit_id) == (
        "invite.create",
        "telegram",
        admin_id,
        known["HN.SS"],
    )
    assert "Đảng ủy xã Sóc Sơn (HN.SS)" in made.summary and "3 người dùng" in made.summary
    invite_id = made.details["invites"][0] if made.details else None
    assert code not in made.summary and code.replace("-", "") not in str(made.details)
    assert "Đã thu hồi mã mời" in await manager.say(f"/thuhoi {invite_id}")
    revoked = (await entries(tree))[-1]
    assert (revoked.action, revoked.via, revoked.person_id, revoked.unit_id) == (
        "invite.revoke",
        "zalo",
        manager_id,
        known["HN.SS"],
    )
    assert f"Thu hồi mã mời số {invite_id} của Đảng ủy xã Sóc Sơn" in revoked.summary
    await manager.say(f"/thuhoi {invite_id}")  # again: nothing changes, nothing logged
    assert len(await entries(tree)) == 2

    # A broadcast sent and stopped with Telegram's buttons.
    await admin.say("/thongbao")
    menu = await admin.send("Họp giao ban lúc 14:00, mã phòng họp TL-ABCDE-FGHJK.")
    choices = {b.label.split(" (")[0]: b.payload for b in menu[0].flat_buttons}
    preview = await admin.press(choices["Tất cả cán bộ"])
    send = next(b for b in preview[0].flat_buttons if b.label.startswith("Gửi"))
    done = await admin.press(send.payload)
    stop = next(b for b in done[0].flat_buttons if b.label == "Dừng gửi")
    await admin.press(stop.payload)
    await admin.press(stop.payload)  # already stopped: not logged twice
    sent, stopped = (await entries(tree))[-2:]
    assert (sent.action, sent.via, sent.person_id, sent.unit_id) == (
        "broadcast.send",
        "telegram",
        admin_id,
        known["TW"],  # «all»: the sender's unit
    )
    assert sent.summary == "Gửi thông báo #1 cho tất cả cán bộ trong phạm vi: 3 người nhận."
    assert (stopped.action, stopped.via) == ("broadcast.cancel", "telegram")
    assert stopped.summary.startswith("Dừng thông báo #1") and "hủy 3 tin" in stopped.summary
    assert len(await entries(tree)) == 4

    # A sign-in link asked for on Zalo: logged, without the link.
    link = await manager.say("/web")
    [token] = TOKEN_RE.findall(link)
    linked = (await entries(tree))[-1]
    assert (linked.action, linked.via, linked.person_id, linked.unit_id) == (
        "web.link",
        "zalo",
        manager_id,
        known["HN"],
    )
    assert token not in linked.summary and token not in str(linked.details)


async def test_correcting_a_done_report_is_logged_other_reports_are_not(
    tree: AsyncEngine,  # noqa: F811
    enrol: Enrol,  # noqa: F811
) -> None:
    official = await enrol("HN.BD", "official", user_id="bd", channel="zalo")
    assert "Đã lưu báo cáo" in await report(official, FIRST, "Đang thực hiện")
    assert "Đã lưu báo cáo" in await report(official, FIRST, "Đã hoàn thành")
    assert await entries(tree) == []  # a first report and progress are not corrections
    assert "Đã lưu báo cáo" in await report(official, FIRST, "Gặp vướng mắc", "Phải bầu lại")
    [entry] = await entries(tree)
    assert (entry.action, entry.via, entry.person_id) == (
        "report.correct",
        "zalo",
        await person_of(tree, official),
    )
    assert entry.unit_id == (await ids(tree))["HN.BD"]
    assert "của Đảng ủy phường Ba Đình (HN.BD): Đã hoàn thành ngày 20/8/2025 → Gặp vướng mắc" in (
        entry.summary
    )
    assert "Phải bầu lại" not in entry.summary  # the note is the report's, not the log's


async def test_account_changes_in_chat_are_logged_once(
    tree: AsyncEngine,  # noqa: F811
    enrol: Enrol,  # noqa: F811
) -> None:
    from tests.helpers import numbered_choice

    manager = await enrol("HN", "unit_admin", user_id="boss", channel="telegram")
    official = await enrol("HN.BD", "official", user_id="u1")
    number = str(await person_of(tree, official))
    confirm = await manager.say(f"/khoa {number}")
    assert "Đã giữ nguyên" in await manager.say(numbered_choice(confirm, "Không, giữ nguyên"))
    assert await entries(tree) == []  # declined: nothing changed, nothing logged
    confirm = await manager.say(f"/khoa {number}")
    assert "Đã khóa" in await manager.say(numbered_choice(confirm, "Đồng ý"))
    assert "Đã mở lại" in await manager.say(f"/molai {number}")
    await manager.say(f"/molai {number}")  # already active: not logged
    confirm = await manager.say(f"/chuyen {number} hn.ss")
    await manager.say(numbered_choice(confirm, "Đồng ý"))
    known = await ids(tree)
    boss = await person_of(tree, manager)
    assert [(e.action, e.via, e.person_id, e.unit_id) for e in await entries(tree)] == [
        ("person.deactivate", "telegram", boss, known["HN.BD"]),
        ("person.activate", "telegram", boss, known["HN.BD"]),
        ("person.move", "telegram", boss, known["HN.SS"]),
    ]
    moved = (await entries(tree))[-1]
    assert moved.summary.endswith("nay là cán bộ báo cáo của Đảng ủy xã Sóc Sơn (HN.SS).")
    assert moved.details == {
        "person": int(number),
        "before": {"unit": known["HN.BD"], "role": "official"},
    }


# --------------------------------------------------------------------------- command line


@pytest.fixture
def cli_db(
    knowledge: Knowledge, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> str:
    """A migrated database with the tree, an admin on Zalo and two officials; the CLI
    pointed at it."""

    async def prepare() -> None:
        engine = create_engine(sqlite_url)
        try:
            await build_tree(engine, knowledge)
            app = make_app(knowledge, engine)
            for unit, role, user in (("TW", "admin", "a"), ("HN.BD", "official", "bd")):
                await Chat(app, user_id=user, channel="zalo").say(
                    await invite_code(engine, unit, role)
                )
        finally:
            await engine.dispose()

    asyncio.run(prepare())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("QUIET_HOURS", "")
    monkeypatch.delenv("WEBHOOK_BASE_URL", raising=False)
    monkeypatch.setenv("WEB_BASE_URL", BASE)
    return sqlite_url


def test_command_line_actions_are_logged_as_the_operator(cli_db: str, tmp_path: Path) -> None:
    runner = CliRunner()

    def stored() -> list[AuditEntry]:
        async def go() -> list[AuditEntry]:
            engine = create_engine(cli_db)
            try:
                return await entries(engine)
            finally:
                await engine.dispose()

        return asyncio.run(go())

    units = tmp_path / "units.csv"
    lines = [f"{c},{n},{lv},{p}" for c, n, lv, p in TREE]
    lines.append("HN.DA,Đảng ủy xã Đông Anh,xa,HN")
    units.write_text("code,name,level,parent_code\n" + "\n".join(lines) + "\n", encoding="utf-8")
    assert runner.invoke(cli, ["units", "import", str(units)]).exit_code == 0
    created = runner.invoke(cli, ["invite", "create", "--unit", "hn.da", "--role", "official"])
    assert created.exit_code == 0, created.output
    [code] = set(CODE_RE.findall(created.stdout))
    assert runner.invoke(cli, ["invite", "revoke", "3"]).exit_code == 0
    message = tmp_path / "thong-bao.txt"
    message.write_text("Đề nghị các đồng chí báo cáo tiến độ.\n", encoding="utf-8")
    sent = runner.invoke(
        cli, ["broadcast", "send", "--to", "unit:HN", "--text-file", str(message), "--yes"]
    )
    assert sent.exit_code == 0, sent.output
    assert runner.invoke(cli, ["broadcast", "cancel", "1"]).exit_code == 0
    link = runner.invoke(cli, ["web", "link", "--person", "1"])
    assert link.exit_code == 0, link.output
    [token] = TOKEN_RE.findall(link.stdout)
    for command in (["deactivate", "2"], ["activate", "2"], ["move", "2", "--unit", "hn.ss"]):
        done = runner.invoke(cli, ["people", *command])
        assert done.exit_code == 0, done.output

    log = stored()
    assert [(e.action, e.via, e.person_id) for e in log] == [
        ("units.import", "cli", None),
        ("invite.create", "cli", None),
        ("invite.revoke", "cli", None),
        ("broadcast.send", "cli", None),
        ("broadcast.cancel", "cli", None),
        ("web.link", "cli", None),
        ("person.deactivate", "cli", None),
        ("person.activate", "cli", None),
        ("person.move", "cli", None),
    ]
    assert log[0].summary == (
        f"Nhập danh sách {len(TREE) + 1} đơn vị: thêm mới 1, cập nhật 0, giữ nguyên {len(TREE)}."
    )
    assert log[0].unit_id is None  # the whole tree: the system administrator's
    assert log[1].summary.startswith("Tạo mã mời số 3 cho Đảng ủy xã Đông Anh (HN.DA)")
    assert log[3].summary == (
        "Gửi thông báo #1 cho cán bộ Đảng bộ thành phố Hà Nội và các đơn vị trực thuộc: "
        "1 người nhận."
    )
    assert log[5].summary.startswith("Tạo liên kết đăng nhập trang quản trị (hiệu lực 10 phút)")
    every = " ".join(e.summary + str(e.details) for e in log)
    assert code not in every and code.replace("-", "") not in every and token not in every

    # `troly audit list`: newest first, filters, Vietnamese.
    listed = runner.invoke(cli, ["audit", "list"], env={"COLUMNS": "250"})
    assert listed.exit_code == 0, listed.output
    out = listed.stdout
    assert out.index("Chuyển đơn vị, vai trò") < out.index("Tạo liên kết đăng nhập")
    assert out.index("Tạo liên kết đăng nhập") < out.index("Nhập đơn vị")
    assert "Người vận hành (dòng lệnh)" in out and "Dòng lệnh" in out
    only = runner.invoke(
        cli, ["audit", "list", "--action", "invite.revoke"], env={"COLUMNS": "250"}
    )
    assert "Thu hồi mã mời" in only.stdout and "Nhập đơn vị" not in only.stdout
    subtree = runner.invoke(cli, ["audit", "list", "--unit", "hn.da"], env={"COLUMNS": "250"})
    assert "Tạo mã mời" in subtree.stdout and "Thu hồi mã mời" in subtree.stdout
    assert "Gửi thông báo" not in subtree.stdout  # its unit is HN, above HN.DA
    page = runner.invoke(cli, ["audit", "list", "--limit", "2"], env={"COLUMNS": "250"})
    assert "troly audit list --before 8" in page.stdout
    older = runner.invoke(cli, ["audit", "list", "--before", "2"], env={"COLUMNS": "250"})
    assert "Nhập đơn vị" in older.stdout and "Tạo mã mời" not in older.stdout
    bad = runner.invoke(cli, ["audit", "list", "--action", "xoa"])
    assert bad.exit_code == 1 and "Không có việc «xoa»" in bad.output
