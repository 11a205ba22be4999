"""Questions as officials really write them, through the chat path (issue 10): follow-ups
that belong to one person and one conversation, the asker's own unit, command words without
the slash, captions, escape sequences, list numbering, groups and unrelated questions.

What is asserted is what the official sees (reply text, buttons) and what the database
holds (the conversation's remembered turn, the message log)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from aiogram.types import Chat as TgChat
from aiogram.types import Message, PhotoSize, Update, User
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.app import App
from bot.render import plain_text
from bot.storage.db import make_session_factory
from bot.storage.models import Conversation, MessageLog
from handlers.qa import FOLLOWUP_ALONE, NO_ANSWER, SUGGESTION_LABEL
from knowledge import Knowledge
from tests.channels import shown_as_answer
from tests.conftest import Chat, Clock
from tests.fakes.telegram import FakeTelegram, plain
from tests.fakes.zalo_server import FakeZalo, text_update
from tests.progress.conftest import build_tree, invite_code

COMMUNE = "Xã phải đại hội xong khi nào?"
PROVINCE_FOLLOWUP = "Còn cấp tỉnh thì sao?"
COMMUNE_ENTRY = "han-dai-hoi-cap-xa"
PROVINCE_ENTRY = "han-dai-hoi-truc-thuoc-tw"
SIGNER = "Ai ký Kết luận 185?"
SIGNER_ENTRY = "kl-185-nguoi-ky"
TEXT_ONLY = "chỉ đọc được tin nhắn chữ"


# --------------------------------------------------------------------------- helpers


async def remembered(engine: AsyncEngine, user_id: str, channel: str = "console") -> Any:
    """The turn the person's conversation remembers (None: nothing to follow)."""
    async with make_session_factory(engine)() as session:
        statement = select(Conversation).where(
            Conversation.channel == channel, Conversation.user_id == user_id
        )
        conversation = (await session.exec(statement)).one()
        return conversation.qa_turn


async def last_logged(engine: AsyncEngine) -> MessageLog:
    async with make_session_factory(engine)() as session:
        rows = await session.exec(select(MessageLog).order_by(col(MessageLog.id).desc()))
        return rows.first()  # type: ignore[return-value]


def is_commune_deadline(text: str) -> bool:
    return shown_as_answer(text) and "tháng 8" in text and "tháng 10" not in text


def is_province_deadline(text: str) -> bool:
    return shown_as_answer(text) and "tháng 10" in text and "tháng 8" not in text


@pytest.fixture
async def tree(engine: AsyncEngine, knowledge: Knowledge) -> AsyncEngine:
    """The small party hierarchy of tests/progress (Hà Nội, its communes, a chi bộ)."""
    await build_tree(engine, knowledge)
    return engine


async def enrolled(app: App, tree: AsyncEngine, unit_code: str, role: str, user_id: str) -> Chat:
    """An official of ``unit_code``, enrolled through the real invitation path."""
    chat = Chat(app, user_id=user_id)
    welcome = await chat.say(await invite_code(tree, unit_code, role))
    assert "đã được ghi nhận là" in welcome, welcome
    return chat


# --------------------------------------------------------------------------- follow-ups


async def test_a_follow_up_is_resolved_for_the_same_person_only(
    app: App, engine: AsyncEngine
) -> None:
    asker = Chat(app, user_id="asker")
    assert is_commune_deadline(await asker.say(COMMUNE))
    assert (await remembered(engine, "asker"))["entry"] == COMMUNE_ENTRY

    follow_up = await asker.say(PROVINCE_FOLLOWUP)
    assert is_province_deadline(follow_up), follow_up
    assert (await remembered(engine, "asker"))["entry"] == PROVINCE_ENTRY
    row = await last_logged(engine)
    assert (row.route, row.matched, row.entry_id) == ("qa", True, PROVINCE_ENTRY)

    # Someone else, with nothing before: a polite request for the whole question.
    other = Chat(app, user_id="other")
    assert await other.say(PROVINCE_FOLLOWUP) == FOLLOWUP_ALONE
    assert await remembered(engine, "other") is None
    row = await last_logged(engine)
    assert (row.route, row.matched, row.entry_id) == ("qa", False, None)
    # The same person on another channel is another conversation too.
    assert await Chat(app, channel="zalo", user_id="asker").say(PROVINCE_FOLLOWUP) == (
        FOLLOWUP_ALONE
    )


async def test_a_follow_up_works_the_same_on_zalo_and_telegram(
    app: App, engine: AsyncEngine
) -> None:
    async with FakeZalo.start(app) as zalo:
        await zalo.send_text(COMMUNE, user_id="z-1")
        [reply] = await zalo.send_text(PROVINCE_FOLLOWUP, user_id="z-1")
        assert is_province_deadline(reply), reply
        [alone] = await zalo.send_text(PROVINCE_FOLLOWUP, user_id="z-2")
        assert alone == FOLLOWUP_ALONE
    telegram = FakeTelegram(app)
    await telegram.send_text(COMMUNE, user_id=31)
    [sent] = await telegram.send_text(PROVINCE_FOLLOWUP, user_id=31)
    assert is_province_deadline(plain(sent.params["text"]))
    [alone_tg] = await telegram.send_text(PROVINCE_FOLLOWUP, user_id=32)
    assert plain(alone_tg.params["text"]) == FOLLOWUP_ALONE
    assert (await remembered(engine, "31", "telegram"))["entry"] == PROVINCE_ENTRY
    assert await remembered(engine, "32", "telegram") is None


async def test_the_follow_up_memory_expires_with_the_conversation(
    app: App, engine: AsyncEngine, clock: Clock
) -> None:
    timeout = app.conversation_timeout.total_seconds() / 60
    asker = Chat(app, user_id="asker")
    await asker.say(COMMUNE)
    clock.advance(minutes=timeout - 1)  # still the same conversation
    assert is_province_deadline(await asker.say(PROVINCE_FOLLOWUP))
    clock.advance(minutes=timeout + 1)
    assert await asker.say("Còn cấp xã thì sao?") == FOLLOWUP_ALONE
    assert await remembered(engine, "asker") is None
    # A full question starts a new conversation that can be followed again.
    await asker.say(COMMUNE)
    assert is_province_deadline(await asker.say(PROVINCE_FOLLOWUP))


async def test_the_remembered_turn_is_stored_on_both_databases(
    db_url: str, knowledge: Knowledge, clock: Clock
) -> None:
    from bot.storage.db import create_engine
    from tests.conftest import make_app

    engine = create_engine(db_url)
    try:
        app = make_app(knowledge, engine, clock=clock)
        await Chat(app, user_id="asker").say(COMMUNE)
        turn = await remembered(engine, "asker")
        assert turn["entry"] == COMMUNE_ENTRY and turn["mentions"]["levels"] == ["xa"]
        restarted = Chat(make_app(knowledge, engine, clock=clock), user_id="asker")
        assert is_province_deadline(await restarted.say(PROVINCE_FOLLOWUP))
        clock.advance(minutes=app.conversation_timeout.total_seconds() / 60 + 1)
        assert await restarted.say(PROVINCE_FOLLOWUP) == FOLLOWUP_ALONE
        assert await remembered(engine, "asker") is None
    finally:
        await engine.dispose()


async def test_a_new_full_question_after_a_follow_up_starts_afresh(
    app: App, engine: AsyncEngine
) -> None:
    asker = Chat(app, user_id="asker")
    await asker.say(COMMUNE)
    await asker.say(PROVINCE_FOLLOWUP)
    fresh = await asker.say(SIGNER)
    assert "Trần Cẩm Tú" in fresh and shown_as_answer(fresh)
    assert "tháng 10" not in fresh and "tháng 8" not in fresh
    turn = await remembered(engine, "asker")
    assert turn["entry"] == SIGNER_ENTRY
    assert "levels" not in turn["mentions"]  # nothing of the deadline questions is kept
    # The next follow-up refers to the new question, not to the deadlines.
    when = await asker.say("Ký ngày nào?")
    assert shown_as_answer(when) and "22/8" in when, when
    assert (await remembered(engine, "asker"))["entry"] == "kl-185-ngay-ban-hanh"


async def test_a_short_question_of_another_matter_is_not_taken_as_a_follow_up(
    app: App,
) -> None:
    """After a deadline question, «giá vàng hôm nay» is not «that deadline, today»: «hôm
    nay» is a time, not «this», and words the knowledge base never uses make a short
    message a question of its own. «Văn bản này ký ngày nào?» still follows."""
    asker = Chat(app, user_id="asker")
    assert "tháng 8" in await asker.say(COMMUNE)
    for other in ("giá vàng hôm nay", "bóng đá tối nay"):
        reply = await asker.say(other)
        assert NO_ANSWER in reply and "tháng 8" not in reply, reply
    await asker.say(SIGNER)
    when = await asker.say("Văn bản này ký ngày nào?")
    assert shown_as_answer(when) and "22/8" in when, when


# --------------------------------------------------------------------------- the asker's unit


async def test_an_official_s_own_unit_gives_the_level_of_the_deadline(
    app: App, tree: AsyncEngine
) -> None:
    commune = await enrolled(app, tree, "HN.SS", "official", "commune")  # level xa
    assert is_commune_deadline(await commune.say("xã tôi phải đại hội xong khi nào?"))
    assert is_commune_deadline(await commune.say("đơn vị tôi phải đại hội xong khi nào?"))
    province = await enrolled(app, tree, "HN", "official", "province")  # trực thuộc TW
    text = await province.say("đơn vị tôi phải đại hội xong khi nào")
    assert is_province_deadline(text), text
    row = await last_logged(tree)
    assert (row.route, row.matched, row.entry_id) == ("qa", True, PROVINCE_ENTRY)


async def test_a_chi_bo_official_is_told_the_sources_state_no_deadline(
    app: App, tree: AsyncEngine
) -> None:
    chi_bo = await enrolled(app, tree, "HN.BD.CB1", "official", "chibo")
    explicit = await Chat(app, user_id="stranger").say("chi bộ tôi phải đại hội xong khi nào?")
    assert "không nêu" in explicit and not shown_as_answer(explicit)
    text = await chi_bo.say("đơn vị tôi phải đại hội xong khi nào?")
    assert "không nêu" in text and not shown_as_answer(text), text


async def test_own_unit_open_tasks_are_listed_with_deadlines(
    app: App, tree: AsyncEngine, clock: Clock
) -> None:
    from tests.progress.test_rollup import TASK, report_for

    official = await enrolled(app, tree, "HN.SS", "official", "commune")
    await report_for(tree, "HN.SS", "done", task=TASK)  # the congress itself is done
    text = await official.say("đơn vị tôi còn việc gì?")
    assert text.startswith("Nhiệm vụ Đảng ủy xã Sóc Sơn chưa báo cáo hoàn thành (3/4):")
    tasks = [line for line in text.splitlines() if line.startswith("• ")]
    assert len(tasks) == 3
    assert all(" — hạn " in line for line in tasks)
    assert any("hạn 30/9/2025" in line for line in tasks)  # the training, in September
    assert not any(line.startswith("• Hoàn thành đại hội") for line in tasks)  # reported done
    assert "/baocao" in text
    assert (await last_logged(tree)).route == "own_tasks"
    province = await enrolled(app, tree, "HN", "official", "province")
    theirs = await province.say("Đơn vị mình còn những việc gì chưa xong?")
    assert "Đảng bộ thành phố Hà Nội" in theirs and "hạn 31/10/2025" in theirs
    assert "/baocao" in theirs
    # Not enrolled: no unit, no list of tasks.
    stranger = await Chat(app, user_id="stranger").say("đơn vị tôi còn việc gì?")
    assert "Nhiệm vụ" not in stranger and "/baocao" not in stranger


@pytest.mark.parametrize("typed", ["tiến độ", "Tiến độ", "xem tiến độ", "Tiến độ?"])
async def test_an_admin_typing_tien_do_gets_the_pointer_to_the_command(
    app: App, tree: AsyncEngine, typed: str
) -> None:
    admin = await enrolled(app, tree, "HN", "unit_admin", "admin")
    text = await admin.say(typed)
    assert "/tiendo" in text and not shown_as_answer(text), text
    assert (await last_logged(tree)).route == "command_word"


# --------------------------------------------------------------------------- how it is written


async def test_a_photo_whose_caption_is_a_question_gets_the_answer(
    app: App, engine: AsyncEngine
) -> None:
    telegram = FakeTelegram(app)
    photo = Message(
        message_id=1,
        date=datetime.now(UTC),
        chat=TgChat(id=41, type="private"),
        from_user=User(id=41, is_bot=False, first_name="A"),
        photo=[PhotoSize(file_id="a", file_unique_id="b", width=1, height=1)],
        caption=SIGNER,
    )
    [sent] = await telegram.send_update(Update(update_id=1, message=photo))
    text = plain(sent.params["text"])
    assert "Trần Cẩm Tú" in text and shown_as_answer(text)
    row = await last_logged(engine)
    assert (row.kind, row.route, row.matched, row.entry_id) == ("media", "qa", True, SIGNER_ENTRY)

    async with FakeZalo.start(app) as zalo:
        update = text_update("", event="message.image.received", user_id="z-photo")
        update["message"]["caption"] = "Xã phải đại hội xong khi nào?"
        [answer] = await zalo.send_update(update)
        assert is_commune_deadline(answer)
        update = text_update("", event="message.image.received", user_id="z-photo")
        update["message"]["caption"] = "Ảnh hội nghị chiều nay"  # a caption, not a question
        [polite] = await zalo.send_update(update)
        assert TEXT_ONLY in polite


async def test_an_escape_sequence_does_not_change_the_answer(app: App, engine: AsyncEngine) -> None:
    clean = await Chat(app, user_id="clean").say(SIGNER)
    coloured = await Chat(app, user_id="coloured").say(f"\x1b[31m{SIGNER}\x1b[0m")
    assert coloured == clean and "Trần Cẩm Tú" in coloured
    row = await last_logged(engine)
    assert row.text == SIGNER and row.entry_id == SIGNER_ENTRY  # stored without the escapes
    telegram = FakeTelegram(app)
    [sent] = await telegram.send_text(f"\x1b[1;32m{SIGNER}\x1b[m", user_id=51)
    assert plain(sent.params["text"]).replace("\n\n", "\n") == clean.replace("\n\n", "\n")


@pytest.mark.parametrize(
    "pasted",
    [
        f"1. {SIGNER}",
        f"Câu 2: {SIGNER}",
        f"Hỏi 3 - {SIGNER}",
        f"2) {SIGNER}",
        f"a) {SIGNER}",
        pytest.param(
            f"Câu hỏi 4: {SIGNER}",
        ),
    ],
)
async def test_a_question_pasted_with_its_list_numbering_is_answered(
    app: App, engine: AsyncEngine, pasted: str
) -> None:
    clean = await Chat(app, user_id="clean").say(SIGNER)
    text = await Chat(app, user_id="pasted").say(pasted)
    assert text == clean, text
    assert (await last_logged(engine)).entry_id == SIGNER_ENTRY


async def test_a_pasted_list_of_questions_answers_the_first_and_offers_the_next(
    app: App,
) -> None:
    chat = Chat(app, user_id="list", buttons=True)
    [reply] = await chat.send(f"1. {SIGNER}\n2. Đại hội đảng bộ xã phải hoàn thành khi nào?")
    assert "Trần Cẩm Tú" in reply.text and shown_as_answer(plain_text(reply))
    assert [row[0].payload for row in reply.buttons] == [f"qa:{COMMUNE_ENTRY}"]


async def test_follow_up_memory_is_not_used_in_a_group(app: App, engine: AsyncEngine) -> None:
    group = -1007654321
    telegram = FakeTelegram(app)
    [first] = await telegram.send_text(f"@troly_test_bot {COMMUNE}", user_id=61, chat_id=group)
    assert is_commune_deadline(plain(first.params["text"]))
    [second] = await telegram.send_text(
        f"@troly_test_bot {PROVINCE_FOLLOWUP}", user_id=61, chat_id=group
    )
    assert plain(second.params["text"]) == FOLLOWUP_ALONE  # the group is many people
    assert await remembered(engine, "61", "telegram") is None
    # A question asked in private is not followed from the group, and stays remembered.
    await telegram.send_text(COMMUNE, user_id=61)
    [in_group] = await telegram.send_text(
        f"@troly_test_bot {PROVINCE_FOLLOWUP}", user_id=61, chat_id=group
    )
    assert plain(in_group.params["text"]) == FOLLOWUP_ALONE
    assert (await remembered(engine, "61", "telegram"))["entry"] == COMMUNE_ENTRY
    [private] = await telegram.send_text(PROVINCE_FOLLOWUP, user_id=61)
    assert is_province_deadline(plain(private.params["text"]))


# --------------------------------------------------------------------------- suggestions


HANOI_SESSION = (
    "answered (with a citation) by the entry on the Politburo's working session with Hà Nội "
    "on 21/8 (lam-viec-thanh-uy-ha-noi-21-8): the place alone is taken for the question"
)


@pytest.mark.parametrize(
    "unrelated",
    [
        "giá vàng hôm nay",
        "Giá vàng hôm nay bao nhiêu?",
        "tỷ giá đô la hôm nay",
        "thời tiết Hải Phòng ngày mai",
        pytest.param(
            "thời tiết Hà Nội ngày mai",
        ),
        pytest.param(
            "Hà Nội hôm nay có mưa không?",
        ),
    ],
)
async def test_an_unrelated_question_is_not_answered_and_offered_no_suggestion(
    app: App, engine: AsyncEngine, unrelated: str
) -> None:
    [reply] = await Chat(app, user_id="buttons", buttons=True).send(unrelated)
    assert not shown_as_answer(plain_text(reply)), plain_text(reply)
    assert reply.buttons == ()
    assert reply.text.startswith(NO_ANSWER)
    numbered = await Chat(app, user_id="numbers").say(unrelated)  # a channel without buttons
    assert "\n1. " not in numbered and NO_ANSWER in numbered
    async with make_session_factory(engine)() as session:
        rows = (await session.exec(select(Conversation))).all()
        assert all(row.choices == [] for row in rows)  # nothing on offer to pick by number
    telegram = FakeTelegram(app)
    [sent] = await telegram.send_text(unrelated, user_id=71)
    assert "reply_markup" not in sent.params or not sent.params["reply_markup"]


async def test_suggestion_labels_are_cut_at_a_word_with_an_ellipsis(
    app: App, knowledge: Knowledge
) -> None:
    [reply] = await Chat(app, user_id="vague", buttons=True).send("Cho tôi hỏi về đại hội")
    assert reply.buttons
    for [button] in reply.buttons:
        title = knowledge.base.entries[button.payload.removeprefix("qa:")].title
        assert len(button.label) <= SUGGESTION_LABEL
        if button.label != title:
            assert button.label.endswith("…")
            kept = button.label.removesuffix("…")
            assert title.startswith(kept) and not title[len(kept)].isalnum(), (button.label, title)
