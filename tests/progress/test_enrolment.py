"""Enrolment by invitation code: hashed, single-purpose, expiring, rate-limited, and the same
answer for every unusable code."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from typer.testing import CliRunner

from bot.app import App
from bot.cli import app as cli
from bot.core import UserRef, utcnow
from bot.storage.db import create_engine, make_session_factory
from bot.storage.models import Invite, Person, PersonChannel
from handlers.people import INVALID_CODE, TOO_MANY, create_invite, identify, looks_like_code
from knowledge import Knowledge
from tests.conftest import Chat, Clock
from tests.helpers import numbered_choice
from tests.progress.conftest import Enrol, build_tree, invite_code


async def people(engine: AsyncEngine) -> list[tuple[Person, PersonChannel]]:
    async with make_session_factory(engine)() as session:
        rows = await session.exec(
            select(Person, PersonChannel).where(PersonChannel.person_id == Person.id)
        )
        return list(rows.all())


def test_code_shapes() -> None:
    assert looks_like_code("TL-ABCDE-FGHJK")
    assert looks_like_code("tl abcde fghjk")
    assert not looks_like_code("TL-ABCDE-FGHJ0")  # 0 is not in the alphabet
    assert not looks_like_code("dai hoi dang bo xa xong khi nao")
    assert not looks_like_code(None)


async def test_code_text_enrols_and_is_stored_hashed(tree: AsyncEngine, app: App) -> None:
    code = await invite_code(tree, "HN.BD", "official")
    chat = Chat(app, channel="zalo", user_id="6ede9afa66b88fe6d6a9")
    text = await chat.say(code.lower().replace("-", " "))
    assert "cán bộ báo cáo của Đảng ủy phường Ba Đình" in text
    assert "/baocao" in text
    [(person, link)] = await people(tree)
    assert person.name == "Đồng chí"  # no display name on this fake message
    assert (link.channel, link.user_id) == ("zalo", "6ede9afa66b88fe6d6a9")
    async with make_session_factory(tree)() as session:
        [invite] = (await session.exec(select(Invite))).all()
    assert code.replace("-", "") not in invite.code_hash and len(invite.code_hash) == 64
    assert invite.uses == 1


async def test_telegram_deep_link_start(tree: AsyncEngine, app: App) -> None:
    code = await invite_code(tree, "HN", "unit_admin")
    chat = Chat(app, channel="telegram", user_id="42", buttons=True)
    text = await chat.say(f"/start {code.replace('-', '')}")
    assert "quản trị đơn vị của Đảng bộ thành phố Hà Nội" in text
    assert "/tiendo" in text


async def test_unusable_codes_all_get_the_same_answer(
    tree: AsyncEngine, app: App, clock: Clock
) -> None:
    used = await invite_code(tree, "HN.BD", "official")
    await Chat(app, user_id="first").say(used)
    expired = await invite_code(tree, "HN.BD", "official", days=1, now=clock.now)
    clock.advance(days=1, seconds=1)
    chat = Chat(app, user_id="second")
    for attempt in (used, expired, "TL-AAAAA-AAAAA"):
        assert await chat.say(attempt) == INVALID_CODE
    assert len(await people(tree)) == 1


async def test_guessing_is_rate_limited(tree: AsyncEngine, app: App) -> None:
    chat = Chat(app, user_id="guesser")
    for guess in ("TL-AAAAA-AAAAB", "TL-AAAAA-AAAAC", "TL-AAAAA-AAAAD", "TL-AAAAA-AAAAE",
                  "TL-AAAAA-AAAAF"):  # fmt: skip
        assert await chat.say(guess) == INVALID_CODE
    good = await invite_code(tree, "HN.BD", "official")
    assert await chat.say(good) == TOO_MANY  # even a right code, for an hour
    assert await people(tree) == []
    other = Chat(app, user_id="someone-else")
    assert "đã được ghi nhận là" in await other.say(good)


async def test_a_multi_use_code(tree: AsyncEngine, app: App) -> None:
    code = await invite_code(tree, "HN.BD", "official", uses=2)
    for user in ("a", "b"):
        assert "đã được ghi nhận là" in await Chat(app, user_id=user).say(code)
    assert await Chat(app, user_id="c").say(code) == INVALID_CODE


async def test_one_person_on_two_channels(tree: AsyncEngine, app: App, enrol: Enrol) -> None:
    await enrol("HN.BD", "official", user_id="tg-1", channel="telegram")
    async with make_session_factory(tree)() as session:
        identity = await identify(session, UserRef("telegram", "tg-1"))
        assert identity is not None
        code = await create_invite(
            session,
            unit=identity.unit,
            role=identity.role,
            uses=1,
            days=1,
            created_by="test",
            now=utcnow() - timedelta(days=400),  # the app's clock is in 2025
            person=identity.person,
        )
        await session.commit()
    assert "đã được ghi nhận" in await Chat(app, channel="zalo", user_id="zl-1").say(code)
    pairs = await people(tree)
    assert {(link.channel, link.user_id) for _, link in pairs} == {("telegram", "tg-1"),
                                                                   ("zalo", "zl-1")}  # fmt: skip
    assert len({person.id for person, _ in pairs}) == 1


async def test_admin_invites_from_the_chat(tree: AsyncEngine, app: App, enrol: Enrol) -> None:
    admin = await enrol("HN", "unit_admin", user_id="boss")
    text = await admin.say("/moi HN.SS canbo 1 7")
    assert (
        "Mã mời: TL-" in text
        and "Đảng ủy xã Sóc Sơn" in text
        and "Hiệu lực 7 ngày, đến 10:00 ngày 27/8/2025." in text
    )
    code = text.split("Mã mời: ")[1].split()[0]
    assert "đã được ghi nhận là cán bộ báo cáo" in await Chat(app, user_id="new").say(code)
    # Not outside the subtree, and not an admin code.
    assert "chỉ tạo được mã mời" in await admin.say("/moi HP.CH canbo")
    assert "Chỉ quản trị hệ thống" in await admin.say("/moi HN.SS admin")
    official = await enrol("HN.BD", "official", user_id="worker")
    assert "dành cho quản trị" in await official.say("/moi HN.BD canbo")


def test_cli_invite_create(
    sqlite_url: str, knowledge: Knowledge, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    async def prepare() -> None:
        engine = create_engine(sqlite_url)
        await build_tree(engine, knowledge)
        await engine.dispose()

    asyncio.run(prepare())
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.setenv("TELEGRAM_BOT_USERNAME", "TroLyKetLuanBot")
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    monkeypatch.delenv("ZALO_BOT_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    result = runner.invoke(
        cli, ["invite", "create", "--unit", "HN.BD", "--role", "official", "--uses", "3"]
    )
    assert result.exit_code == 0, result.output
    code = result.stdout.split("Mã mời: ")[1].split()[0]
    assert "Đơn vị: Đảng ủy phường Ba Đình — vai trò: cán bộ báo cáo" in result.stdout
    assert "Dùng được cho 3 người. Hiệu lực 14 ngày, đến " in result.stdout
    assert f"https://t.me/TroLyKetLuanBot?start={code.replace('-', '')}" in result.stdout
    assert "Zalo" not in result.stdout  # Zalo is not configured
    monkeypatch.setenv("ZALO_BOT_TOKEN", "zalo-token")
    both = runner.invoke(cli, ["invite", "create", "--unit", "hn.bd", "--role", "official"])
    assert both.exit_code == 0, both.output  # unit codes in any case
    code = both.stdout.split("Mã mời: ")[1].split()[0]
    assert f"nhắn mã {code} cho trợ lý trên Zalo" in both.stdout
    assert "https://t.me/TroLyKetLuanBot?start=" in both.stdout
    unknown = runner.invoke(cli, ["invite", "create", "--unit", "NOPE", "--role", "official"])
    assert unknown.exit_code == 1 and "Không tìm thấy đơn vị có mã «NOPE»." in unknown.output
    boss = runner.invoke(cli, ["invite", "create", "--unit", "HN", "--role", "boss"])
    assert boss.exit_code == 1 and "Vai trò không hợp lệ: boss" in boss.output


# --------------------------------------------------------------------------- roles never
# change by accident


async def test_an_admin_checking_their_own_invitation_keeps_their_role(
    tree: AsyncEngine, app: App, enrol: Enrol
) -> None:
    admin = await enrol("HN", "unit_admin", user_id="boss", channel="telegram", buttons=True)
    text = await admin.say("/moi HN.SS canbo")
    code = text.split("Mã mời: ")[1].split()[0]
    tapped = await admin.say(f"/start {code.replace('-', '')}")  # the admin taps the link
    assert "Đồng chí đang là quản trị đơn vị của Đảng bộ thành phố Hà Nội" in tapped
    assert "vai trò của đồng chí giữ nguyên" in tapped and "vẫn còn hiệu lực" in tapped
    assert "TIẾN ĐỘ" in await admin.say("/tiendo")  # still an admin
    # The code still works for the person it was meant for.
    assert "cán bộ báo cáo của Đảng ủy xã Sóc Sơn" in await Chat(app, user_id="new").say(code)


async def test_a_code_for_another_unit_asks_before_moving_anyone(
    tree: AsyncEngine, app: App, enrol: Enrol
) -> None:
    official = await enrol("HN.BD", "official", user_id="u1", channel="zalo")
    code = await invite_code(tree, "HN.SS", "official")
    offer = await official.say(code)
    assert "Đồng chí đang là cán bộ báo cáo của Đảng ủy phường Ba Đình." in offer
    assert "sẽ chuyển đồng chí thành cán bộ báo cáo của Đảng ủy xã Sóc Sơn" in offer
    kept = await official.say(numbered_choice(offer, "Giữ nguyên"))
    assert "Đã giữ nguyên" in kept and "Mã mời chưa bị sử dụng" in kept
    async with make_session_factory(tree)() as session:
        identity = await identify(session, UserRef("zalo", "u1"))
        assert identity is not None and identity.unit.code == "HN.BD"
        invites = (await session.exec(select(Invite))).all()
        assert [i.uses for i in invites] == [1, 0]  # the first enrolled u1; this one is unused
    offer = await official.say(f"Mã mời mới của tôi là {code}, nhờ trợ lý cập nhật")
    moved = await official.say(numbered_choice(offer, "Đồng ý chuyển sang"))
    assert "Đã cập nhật thông tin của đồng chí" in moved and "Đảng ủy xã Sóc Sơn" in moved
    async with make_session_factory(tree)() as session:
        identity = await identify(session, UserRef("zalo", "u1"))
        assert identity is not None and identity.unit.code == "HN.SS"


async def test_opening_ones_own_code_again_is_a_friendly_already_enrolled(
    tree: AsyncEngine, app: App
) -> None:
    code = await invite_code(tree, "HN.BD", "official")
    chat = Chat(app, channel="telegram", user_id="77", buttons=True)
    assert "Chào mừng đồng chí" in await chat.say(f"/start {code.replace('-', '')}")
    for _ in range(7):  # more than the guessing limit
        again = await chat.say(f"/start {code.replace('-', '')}")
        assert "đã được ghi nhận là cán bộ báo cáo của Đảng ủy phường Ba Đình từ trước" in again
    assert "Nhiệm vụ của Đảng ủy phường Ba Đình" in await chat.say("/baocao")


async def test_a_code_inside_a_sentence_enrols(tree: AsyncEngine, app: App) -> None:
    code = await invite_code(tree, "HN.BD", "official")
    text = await Chat(app, user_id="s1").say(f"Chào trợ lý, mã mời của tôi: {code.lower()}.")
    assert "cán bộ báo cáo của Đảng ủy phường Ba Đình" in text
