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
from handlers.broadcast import (
    DEFAULT_SENDER,
    Audience,
    AudienceError,
    parse_audience,
    recipients,
    with_header,
)
from handlers.units import unit_by_code
from knowledge import Knowledge
from scheduler.broadcasts import report_progress
from scheduler.policy import PushPolicy
from tests.conftest import Chat, Clock, make_app
from tests.helpers import numbered_choice
from tests.progress.conftest import Enrol, build_tree, invite_code
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
    preview = await manager.press(choices["Tất cả cán bộ (3 người)"])
    text = preview[0].text
    assert "người nhận sẽ thấy đúng như sau" in text
    assert "THÔNG BÁO của Đảng bộ thành phố Hà Nội:\n\nKính gửi các đồng chí: họp giao ban" in text
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
        assert all(r.text.startswith("THÔNG BÁO của Đảng bộ thành phố Hà Nội") for r in rows)
        assert (await session.get(Broadcast, 1)).text.startswith("Kính gửi")  # as typed
    progress = next(b for b in done[0].flat_buttons if b.label == "Xem tiến độ")
    assert (
        "0/3, trong đó 0 người đã nhận; còn 3 tin"
        in (await manager.press(progress.payload))[0].text
    )
    stop = next(b for b in done[0].flat_buttons if b.label == "Dừng gửi")
    stopped = await manager.press(stop.payload)
    assert "Đã dừng thông báo #1: 0/3 người đã nhận; 3 tin chưa gửi đã được hủy." in (
        stopped[0].text
    )


async def test_thongbao_in_quiet_hours_says_so_and_offers_an_urgent_send(
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
    # The preview says it before anything is sent.
    assert "bắt đầu gửi lúc 07:00 ngày 6/9/2025" in preview
    done = await admin.say(numbered_choice(preview, "Gửi cho 3 người lúc 07:00"))
    assert "sẽ bắt đầu gửi lúc 07:00 ngày 6/9/2025" in done
    await admin.say("/thongbao")
    menu = await admin.say("Khẩn: họp ngay tối nay.")
    preview = await admin.say(numbered_choice(menu, "Tất cả cán bộ"))
    urgent = await admin.say(numbered_choice(preview, "Gửi ngay"))
    assert "Gửi ngay (khẩn)" in urgent
    async with make_session_factory(tree)() as session:
        rows = (await session.exec(select(OutboxMessage))).all()
        by_broadcast = {r.broadcast_id: r.next_attempt_at for r in rows}
        assert by_broadcast[1] == datetime(2025, 9, 6, 7, tzinfo=ZONE)
        assert by_broadcast[2] == clock.now


async def test_on_zalo_a_repeated_number_never_sends_or_stops(
    tree: AsyncEngine, enrol: Enrol, knowledge: Knowledge, clock: Clock
) -> None:
    await everyone(enrol)
    app = make_app(knowledge, tree, clock=clock, push_window=POLICY.next_allowed)
    admin = Chat(app, user_id="zadmin", channel="zalo")
    code = await invite_code(tree, "TW", "admin")
    await admin.say(code)
    await admin.say("/thongbao")
    menu = await admin.say("Họp giao ban.")
    assert numbered_choice(menu, "Tất cả cán bộ") == "1"
    preview = await admin.say("1")
    assert "Xem trước thông báo" in preview
    back = await admin.say("1")  # the same "1" again: back to the audiences, nothing sent
    assert "Gửi cho ai?" in back
    preview = await admin.say("1")
    done = await admin.say(numbered_choice(preview, "Gửi cho"))
    assert "Đã xếp lịch gửi thông báo #1" in done
    assert "Gõ /dung 1 để dừng gửi." in done  # stopping is typed, never a number
    assert "Xem tiến độ" in await admin.say("1")  # a repeated "1" only shows progress
    confirm = await admin.say("/dung 1")
    assert "Dừng gửi thông báo #1?" in confirm
    kept = await admin.say(numbered_choice(confirm, "Không dừng"))
    assert "Thông báo #1: đã xử lý" in kept
    async with make_session_factory(tree)() as session:
        assert (await session.get(Broadcast, 1)).status == "sending"
    confirm = await admin.say("/dung 1")
    stopped = await admin.say(numbered_choice(confirm, "Dừng hẳn"))
    assert "Đã dừng thông báo #1" in stopped


async def test_a_unit_admin_is_offered_only_what_reaches_their_subtree(
    tree: AsyncEngine, enrol: Enrol, knowledge: Knowledge, clock: Clock
) -> None:
    await everyone(enrol)
    hp = await enrol("HP", "unit_admin", user_id="hp")
    clock.now = datetime(2025, 9, 5, 3, tzinfo=UTC)  # the August tasks are late
    await report_for(tree, "HP.CH", "done", task="dai-hoi-thang-8")
    app = make_app(knowledge, tree, clock=clock)
    admin = Chat(app, user_id="hp")
    await admin.say("/thongbao")
    menu = await admin.say("Nhắc việc.")
    assert "Tất cả cán bộ (2 người)" in menu  # the HP admin and the Cát Hải official
    levels = await admin.say(numbered_choice(menu, "Theo cấp"))
    assert "Cấp xã (1 người)" in levels and "Trực thuộc Trung ương (1 người)" in levels
    assert "Cơ sở" not in levels  # nobody there in this subtree
    await admin.say("/huy")
    await admin.say("/thongbao")
    menu = await admin.say("Nhắc việc.")
    late = await admin.say(numbered_choice(menu, "Đơn vị quá hạn"))
    assert "Hoàn thành đại hội đảng bộ cấp" not in late  # Cát Hải has done it
    assert "Kiện toàn" in late and "(1 người)" in late
    assert hp


async def test_a_typed_mistake_keeps_the_draft(
    tree: AsyncEngine, enrol: Enrol, knowledge: Knowledge, clock: Clock
) -> None:
    await everyone(enrol)
    admin = Chat(make_app(knowledge, tree, clock=clock), user_id="bd2", channel="zalo")
    await admin.say(await invite_code(tree, "HN", "unit_admin"))
    await admin.say("/thongbao")
    await admin.say("Nội dung quan trọng.")
    again = await admin.say("hai")  # "Theo cấp" by its number word
    assert "Chọn cấp:" in again
    await admin.say("/thongbao")
    await admin.say("Nội dung quan trọng.")
    repeat = await admin.say("gửi luôn đi")
    assert "nội dung vẫn được giữ" in repeat and "Gửi cho ai?" in repeat
    preview = await admin.say("tất cả")
    assert "Nội dung quan trọng." in preview


async def test_the_text_fits_one_zalo_message_with_its_header(
    tree: AsyncEngine, enrol: Enrol, knowledge: Knowledge, clock: Clock
) -> None:
    from bot.channels.zalo import split_push
    from handlers.broadcast import MAX_TEXT

    await everyone(enrol)
    admin = Chat(make_app(knowledge, tree, clock=clock), user_id="boss", channel="console")
    await admin.say("/thongbao")
    too_long = await admin.say("x" * (MAX_TEXT + 1))
    assert "tối đa 1.800" in too_long
    menu = await admin.say(("Một câu dài của thông báo. " * 100)[:MAX_TEXT])
    preview = await admin.say(numbered_choice(menu, "Tất cả cán bộ"))
    await admin.say(numbered_choice(preview, "Gửi cho"))
    async with make_session_factory(tree)() as session:
        rows = (await session.exec(select(OutboxMessage))).all()
    assert rows and all(len(split_push(r.text)) == 1 for r in rows)


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
                .where(col(OutboxMessage.kind).in_(["report", "broadcast_progress"]))
                .order_by(col(OutboxMessage.id))
            )
            return list(rows.all())

    assert await settle({"bd": "sent"}) == []
    # 2 of 5: a broadcast this small is over within a tick or two, it gets only the final
    # report (progress: tests/pushes/test_broadcast_progress.py)
    assert await settle({"bd": "sent", "ss": "sent"}) == []
    final = await settle(
        {"bd": "sent", "ss": "sent", "ch": "blocked", "hn": "failed", "boss": "sent"}
    )
    assert final == [
        "ĐÃ GỬI XONG thông báo #1:\n• Đã nhận: 3/5 người\n"
        "• Không gửi được: 1 (Bad Request: chat not found (1))\n• Đã chặn trợ lý: 1"
    ]


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
    assert asyncio.run(stored()) == ([text], [with_header(text, DEFAULT_SENDER)])
    latin = tmp_path / "latin.txt"
    latin.write_bytes(b"\xd0\xe0i h\xf4i")  # Latin-1
    refused = CliRunner().invoke(
        cli, ["broadcast", "send", "--to", "all", "--text-file", str(latin), "--yes"]
    )
    assert refused.exit_code == 1 and "không phải văn bản UTF-8" in refused.output


def test_the_header_names_the_sender_when_known() -> None:
    from bot.storage.models import Person, Unit
    from handlers.broadcast import sender_of
    from handlers.people import Identity

    unit = Unit(code="HN", name="Đảng bộ thành phố Hà Nội", level="truc_thuoc_tw")
    named = Identity(Person(name="Trần Thị Bình", unit_id=1, role="unit_admin"), unit)
    assert sender_of(named) == "Đảng bộ thành phố Hà Nội (đồng chí Trần Thị Bình gửi)"
    unnamed = Identity(Person(name="Đồng chí", unit_id=1, role="unit_admin"), unit)
    assert sender_of(unnamed) == "Đảng bộ thành phố Hà Nội"
