"""Admin broadcasts: audiences, the /thongbao flow, the CLI, progress and final reports."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select
from typer.testing import CliRunner

from bot.cli import app as cli
from bot.storage.db import create_engine, make_session_factory
from bot.storage.models import Broadcast, OutboxMessage, PersonChannel
from handlers.broadcast import Audience, AudienceError, parse_audience, recipients
from handlers.units import unit_by_code
from knowledge import Knowledge
from scheduler.broadcasts import report_progress
from scheduler.policy import PushPolicy
from tests.conftest import Chat, Clock, make_app
from tests.helpers import numbered_choice
from tests.progress.conftest import Enrol, build_tree
from tests.progress.test_rollup import report_for

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
POLICY = PushPolicy(zone=ZONE)


async def everyone(enrol: Enrol) -> dict[str, Chat]:
    return {
        "bd": await enrol("HN.BD", "official", user_id="bd", channel="zalo"),
        "ss": await enrol("HN.SS", "official", user_id="ss", channel="telegram", buttons=True),
        "ch": await enrol("HP.CH", "official", user_id="ch", channel="zalo"),
        "hn": await enrol("HN", "unit_admin", user_id="hn", channel="telegram", buttons=True),
        "boss": await enrol("TW", "admin", user_id="boss", channel="console"),
    }


async def who(engine: AsyncEngine, spec: str, scope: str | None = None) -> set[str]:
    async with make_session_factory(engine)() as session:
        unit = await unit_by_code(session, scope) if scope else None
        targets, _ = await recipients(
            session,
            parse_audience(spec),
            scope=unit,
            today=datetime(2025, 9, 5, tzinfo=ZONE),
        )
        return {t.chat_id for t in targets}


async def test_audiences(tree: AsyncEngine, enrol: Enrol) -> None:
    await everyone(enrol)
    await report_for(tree, "HN.BD", "done")
    assert await who(tree, "all") == {"bd", "ss", "ch", "hn", "boss"}
    assert await who(tree, "level:xa") == {"bd", "ss", "ch"}
    assert await who(tree, "unit:HN") == {"bd", "ss", "hn"}
    assert await who(tree, "late:dai-hoi-thang-8") == {"ss", "ch"}  # Ba Đình reported done
    assert await who(tree, "all", scope="HN") == {"bd", "ss", "hn"}  # a unit admin's reach
    with pytest.raises(AudienceError):
        await who(tree, "unit:HP", scope="HN")
    with pytest.raises(AudienceError):
        await who(tree, "late:tap-huan-boi-duong-thang-9")  # not due yet on 5/9
    with pytest.raises(AudienceError):
        parse_audience("level:tinh")


async def test_blocked_people_are_counted_but_not_targeted(tree: AsyncEngine, enrol: Enrol) -> None:
    await everyone(enrol)
    async with make_session_factory(tree)() as session:
        await session.exec(
            update(PersonChannel)
            .where(col(PersonChannel.user_id) == "ch")
            .values(blocked_at=datetime(2025, 9, 1, tzinfo=UTC))
        )
        await session.commit()
        targets, unreachable = await recipients(
            session, Audience("level", "xa"), scope=None, today=datetime(2025, 9, 5, tzinfo=ZONE)
        )
    assert {t.chat_id for t in targets} == {"bd", "ss"} and unreachable == 1


async def test_thongbao_flow_preview_confirm_and_stop(
    tree: AsyncEngine, enrol: Enrol, knowledge: Knowledge, clock: Clock
) -> None:
    await everyone(enrol)
    app = make_app(knowledge, tree, clock=clock, push_window=POLICY.next_allowed)
    manager = Chat(app, user_id="hn", channel="telegram", buttons=True)
    assert "Đồng chí gõ nội dung thông báo" in await manager.say("/thongbao")
    menu = await manager.send("Kính gửi các đồng chí: họp giao ban lúc 14:00 thứ Hai.")
    choices = {b.label: b.payload for b in menu[0].flat_buttons}
    preview = await manager.press(choices["Tất cả cán bộ"])
    text = preview[0].text
    assert "Kính gửi các đồng chí: họp giao ban" in text
    assert "Gửi cho tất cả cán bộ trong phạm vi: 3 người (Telegram: 2, Zalo: 1)." in text
    send = next(b for b in preview[0].flat_buttons if b.label.startswith("Gửi cho"))
    done = await manager.press(send.payload)
    assert "Đã xếp lịch gửi thông báo #1 cho 3 người." in done[0].text
    again = await manager.press(send.payload)
    assert "đã được gửi trước đó" in again[0].text
    async with make_session_factory(tree)() as session:
        rows = (await session.exec(select(OutboxMessage))).all()
        assert {(r.channel, r.chat_id) for r in rows} == {
            ("zalo", "bd"), ("telegram", "ss"), ("telegram", "hn"),
        }  # fmt: skip
        assert all(r.kind == "broadcast" and r.broadcast_id == 1 for r in rows)
    stop = next(b for b in done[0].flat_buttons if b.label == "Dừng gửi")
    stopped = await manager.press(stop.payload)
    assert "Đã dừng thông báo #1: 0/3 người đã nhận; 3 tin chưa gửi đã được hủy." in (
        stopped[0].text
    )


async def test_thongbao_in_quiet_hours_and_on_zalo(
    tree: AsyncEngine, enrol: Enrol, knowledge: Knowledge, clock: Clock
) -> None:
    await everyone(enrol)
    clock.now = datetime(2025, 9, 5, 22, tzinfo=ZONE).astimezone(UTC)
    app = make_app(knowledge, tree, clock=clock, push_window=POLICY.next_allowed)
    admin = Chat(app, user_id="boss", channel="console")
    await admin.say("/thongbao")
    menu = await admin.say("Thông báo khẩn.")
    levels = await admin.say(numbered_choice(menu, "Theo cấp"))
    preview = await admin.say(numbered_choice(levels, "Cấp xã"))
    assert "3 người" in preview
    done = await admin.say(numbered_choice(preview, "Gửi cho 3 người"))
    assert "sẽ bắt đầu gửi lúc 07:00 ngày 6/9/2025" in done
    async with make_session_factory(tree)() as session:
        rows = (await session.exec(select(OutboxMessage))).all()
        assert {r.next_attempt_at for r in rows} == {datetime(2025, 9, 6, 7, tzinfo=ZONE)}


async def test_officials_cannot_broadcast(tree: AsyncEngine, enrol: Enrol) -> None:
    chats = await everyone(enrol)
    assert "dành cho quản trị" in await chats["bd"].say("/thongbao")


async def test_progress_and_final_reports_reach_the_sender(
    tree: AsyncEngine, enrol: Enrol, knowledge: Knowledge, clock: Clock
) -> None:
    await everyone(enrol)
    app = make_app(knowledge, tree, clock=clock, push_window=POLICY.next_allowed)
    admin = Chat(app, user_id="boss", channel="console")
    await admin.say("/thongbao")
    menu = await admin.say("Họp trực tuyến.")
    preview = await admin.say(numbered_choice(menu, "Tất cả cán bộ"))
    await admin.say(numbered_choice(preview, "Gửi cho"))
    now = clock.now

    async def settle(statuses: dict[str, str]) -> list[str]:
        async with make_session_factory(tree)() as session:
            for chat, status in statuses.items():
                await session.exec(
                    update(OutboxMessage)
                    .where(
                        col(OutboxMessage.chat_id) == chat, col(OutboxMessage.kind) == "broadcast"
                    )
                    .values(
                        status=status,
                        last_error="Bad Request: chat not found" if status == "failed" else None,
                    )
                )
            if all(s != "pending" for s in statuses.values()) and len(statuses) == 5:
                await session.exec(update(Broadcast).values(status="done", finished_at=now))
            await report_progress(session, now=now, policy=POLICY)
            await session.commit()
            rows = await session.exec(
                select(OutboxMessage.text)
                .where(OutboxMessage.kind == "report")
                .order_by(col(OutboxMessage.id))
            )
            return list(rows.all())

    assert await settle({"bd": "sent"}) == []  # 1 of 5: below a quarter
    reports = await settle({"bd": "sent", "ss": "sent"})
    assert reports == ["Thông báo #1: đã xử lý 2/5 (40%), trong đó 2 người đã nhận."]
    assert await settle({"bd": "sent", "ss": "sent"}) == reports  # once per quarter
    final = await settle(
        {"bd": "sent", "ss": "sent", "ch": "blocked", "hn": "failed", "boss": "sent"}
    )
    assert final[-1] == (
        "ĐÃ GỬI XONG thông báo #1:\n• Đã nhận: 3/5 người\n"
        "• Không gửi được: 1 (Bad Request: chat not found (1))\n• Đã chặn trợ lý: 1"
    )


def test_cli_send_status_cancel(
    sqlite_url: str, knowledge: Knowledge, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async def prepare() -> None:
        engine = create_engine(sqlite_url)
        await build_tree(engine, knowledge)
        app = make_app(knowledge, engine)
        from tests.progress.conftest import invite_code

        for unit, user in (("HN.BD", "bd"), ("HN.SS", "ss"), ("HP.CH", "ch")):
            await Chat(app, user_id=user, channel="zalo").say(
                await invite_code(engine, unit, "official")
            )
        await engine.dispose()

    asyncio.run(prepare())
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("QUIET_HOURS", "")
    monkeypatch.chdir(tmp_path)
    text = tmp_path / "thong-bao.txt"
    text.write_text("Đề nghị các đảng ủy xã báo cáo tiến độ trước thứ Sáu.\n", encoding="utf-8")
    runner = CliRunner()
    no = runner.invoke(
        cli, ["broadcast", "send", "--to", "unit:HN", "--text-file", str(text)], input="n\n"
    )
    assert no.exit_code == 1 and "Người nhận (unit:HN): 2 người (Zalo: 2)." in no.stdout
    assert "Đã hủy, chưa gửi gì." in no.output
    sent = runner.invoke(
        cli, ["broadcast", "send", "--to", "level:xa", "--text-file", str(text), "--yes"]
    )
    assert sent.exit_code == 0, sent.output
    assert "Đã xếp thông báo #1 vào hàng gửi cho 3 người" in sent.stdout
    status = runner.invoke(cli, ["broadcast", "status", "1"])
    assert "Thông báo #1 (level:xa), người gửi: dòng lệnh" in status.stdout
    assert "Đang gửi: đã gửi 0, chờ gửi 3" in status.stdout
    listing = runner.invoke(cli, ["broadcast", "status"])
    assert "level:xa" in listing.stdout
    cancelled = runner.invoke(cli, ["broadcast", "cancel", "1"])
    assert cancelled.exit_code == 0
    assert "Đã dừng thông báo #1: hủy 3 tin đang chờ gửi." in cancelled.stdout
    assert "ĐÃ DỪNG thông báo #1" in cancelled.stdout
    bad = runner.invoke(
        cli, ["broadcast", "send", "--to", "tinh:1", "--text-file", str(text), "--yes"]
    )
    assert bad.exit_code == 1 and "Đối tượng không hợp lệ" in bad.output


def test_cli_send_reads_a_file_saved_with_a_bom(
    sqlite_url: str, knowledge: Knowledge, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Notepad saves "UTF-8" with a byte order mark: it is not part of the announcement."""

    async def prepare() -> None:
        engine = create_engine(sqlite_url)
        await build_tree(engine, knowledge)
        from tests.progress.conftest import invite_code

        await Chat(make_app(knowledge, engine), user_id="bd", channel="zalo").say(
            await invite_code(engine, "HN.BD", "official")
        )
        await engine.dispose()

    async def stored() -> tuple[list[str], list[str]]:
        engine = create_engine(sqlite_url)
        async with make_session_factory(engine)() as session:
            broadcasts = [b.text for b in (await session.exec(select(Broadcast))).all()]
            rows = [r.text for r in (await session.exec(select(OutboxMessage))).all()]
        await engine.dispose()
        return broadcasts, rows

    asyncio.run(prepare())
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("QUIET_HOURS", "")
    monkeypatch.chdir(tmp_path)
    text = "Đề nghị báo cáo tiến độ trước thứ Sáu."
    path = tmp_path / "thong-bao.txt"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode() + b"\r\n")
    sent = CliRunner().invoke(
        cli, ["broadcast", "send", "--to", "unit:hn", "--text-file", str(path), "--yes"]
    )
    assert sent.exit_code == 0, sent.output
    assert "Người nhận (unit:HN): 1 người (Zalo: 1)." in sent.stdout  # the code in any case
    assert asyncio.run(stored()) == ([text], [text])
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"\xd0\xe0i h\xf4i")  # Latin-1
    refused = CliRunner().invoke(
        cli, ["broadcast", "send", "--to", "all", "--text-file", str(latin), "--yes"]
    )
    assert refused.exit_code == 1 and "không phải văn bản UTF-8" in refused.output
