"""The one dispatch path, through the terminal/fake channel: what the official sees and what
the database holds."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.app import ERROR_REPLY, THROTTLE_NOTICE, App
from bot.core import IncomingMessage, Reply
from bot.render import plain_text
from bot.storage.db import create_engine, make_session_factory
from bot.storage.models import MessageLog
from handlers import ROUTES, Route, UserError
from knowledge import Knowledge
from tests.conftest import ZONE, Chat, Clock, make_app


async def logged(engine: AsyncEngine) -> list[MessageLog]:
    async with make_session_factory(engine)() as session:
        rows = await session.exec(select(MessageLog).order_by(MessageLog.id))  # type: ignore[arg-type]
        return list(rows.all())


async def test_start_and_help(chat: Chat) -> None:
    start = await chat.say("/start")
    assert "Xin chào đồng chí" in start
    assert "/help" in start
    help_text = await chat.say("/help")
    assert "/hoi" in help_text


async def test_question_is_answered_with_citation_and_logged(
    db_url: str, knowledge: Knowledge
) -> None:
    engine = create_engine(db_url)
    try:
        chat = Chat(make_app(knowledge, engine))
        text = await chat.say("dai hoi dang bo xa xong khi nao")
        assert "tháng 8/2025" in text
        assert (
            text.rstrip()
            .splitlines()[-1]
            .startswith("Nguồn: bản tin VTC News ngày 22/8/2025 về Kết luận số 185")
        )
        [row] = await logged(engine)
        assert row.text == "dai hoi dang bo xa xong khi nao"
        assert row.route == "qa"
        assert row.matched is True
        assert row.entry_id == "han-dai-hoi-cap-xa"
        assert row.score is not None and 0.46 <= row.score <= 1
        assert row.created_at.tzinfo is not None
    finally:
        await engine.dispose()


async def test_hoi_command(chat: Chat) -> None:
    assert "Trần Cẩm Tú" in await chat.say("/hoi Ai ký Kết luận 185?")
    assert "ngay sau lệnh /hoi" in await chat.say("/hoi")


async def test_unknown_question_is_honest_and_stored(chat: Chat, engine: AsyncEngine) -> None:
    text = await chat.say("Công thức làm bánh chưng")
    assert "chưa có thông tin" in text
    assert "Nguồn:" not in text
    [row] = await logged(engine)
    assert row.matched is False and row.entry_id is None


async def test_numbered_suggestion_is_picked_by_number(chat: Chat, engine: AsyncEngine) -> None:
    text = await chat.say("kết luận 185")
    assert "Có phải đồng chí muốn hỏi:" in text
    lines = [line for line in text.splitlines() if line[:2] in {"1.", "2.", "3."}]
    assert len(lines) == 3
    second_title = lines[1][3:]
    answer = await chat.say("2")
    assert "Nguồn:" in answer
    rows = await logged(engine)
    picked = rows[-1]
    assert picked.route == "qa_pick" and picked.text == "2"  # logged as typed
    assert picked.entry_id is not None
    # The answer is the second suggestion's entry.
    entry = chat.app.knowledge.base.entries[picked.entry_id]
    assert entry.title == second_title
    assert entry.answer in answer


async def test_choice_out_of_range_keeps_the_choices(chat: Chat) -> None:
    await chat.say("kết luận 185")
    again = await chat.say("9")
    assert again.startswith("Đồng chí vui lòng chọn một số từ 1 đến 3:\n\n1. ")  # listed again
    assert "Nguồn:" in await chat.say("1")
    # After an answer the old numbers no longer pick anything.
    assert "Nguồn:" not in await chat.say("1")


async def test_choices_survive_a_restart(knowledge: Knowledge, engine: AsyncEngine) -> None:
    first = Chat(make_app(knowledge, engine))
    await first.say("kết luận 185")
    restarted = Chat(make_app(knowledge, engine))  # a new process, same database
    assert "Nguồn:" in await restarted.say("3")


async def test_bad_input_gets_sensible_replies_and_is_kept(chat: Chat, engine: AsyncEngine) -> None:
    inputs = [
        "",
        "   ",
        "đại hội " * 1250,  # 10,000 characters
        "🙂🙂🙂",
        "dai hoi\x00 xa\x07 xong khi nao",
        "<b>đại hội</b> <script>alert(1)</script> *bold* _it_ [x](http://a)",
        "'; DROP TABLE message_log; --",
        "/",
        "/khonglenh",
    ]
    for text in inputs:
        replies = await chat.send(text)
        assert replies, f"no reply to {text[:30]!r}"
        assert all(plain_text(r) != ERROR_REPLY for r in replies), text[:30]
    media = await chat.send(None, kind="media")
    assert "chỉ đọc được tin nhắn chữ" in plain_text(media[0])
    rows = await logged(engine)
    assert len(rows) == len(inputs) + 1
    assert rows[2].text == "đại hội " * 1250
    assert rows[4].text == "dai hoi xa xong khi nao"  # control characters dropped
    assert rows[6].text == "'; DROP TABLE message_log; --"
    assert rows[8].route == "unknown_command"
    assert rows[-1].kind == "media" and rows[-1].route == "media"


async def test_flooding_gets_one_notice(chat: Chat, engine: AsyncEngine) -> None:
    counts = []
    for index in range(25):
        counts.append(await chat.send(f"câu hỏi số {index}"))
    assert all(len(r) == 1 for r in counts[:20])
    assert [plain_text(r) for r in counts[20]] == [THROTTLE_NOTICE]
    assert all(r == [] for r in counts[21:])
    rows = await logged(engine)
    assert len(rows) == 25  # nothing is lost
    assert [r.route for r in rows[20:]] == ["throttled"] * 5


async def test_a_crashing_handler_becomes_a_polite_reply(
    knowledge: Knowledge, engine: AsyncEngine, clock: Clock
) -> None:
    async def boom(msg: IncomingMessage, ctx: object) -> Reply:
        raise RuntimeError("bug")

    async def refuse(msg: IncomingMessage, ctx: object) -> Reply:
        raise UserError("Đồng chí chưa có quyền báo cáo.")

    routes = (
        Route("boom", boom, commands=frozenset({"boom"})),
        Route("refuse", refuse, commands=frozenset({"refuse"})),
        *ROUTES,
    )
    app = App(
        knowledge=knowledge,
        sessions=make_session_factory(engine),
        zone=ZONE,
        clock=clock,
        routes=routes,
    )
    chat = Chat(app)
    assert await chat.say("/boom") == ERROR_REPLY
    assert await chat.say("/refuse") == "Đồng chí chưa có quyền báo cáo."
    assert "Trần Cẩm Tú" in await chat.say("Ai ký Kết luận 185?")  # still working
    rows = await logged(engine)
    assert [r.route for r in rows] == ["error", "user_error", "qa"]


async def test_conversation_rows_are_per_person(db_url: str, knowledge: Knowledge) -> None:
    engine = create_engine(db_url)
    try:
        app = make_app(knowledge, engine)
        await Chat(app, user_id="a").say("kết luận 185")
        await Chat(app, user_id="b", channel="zalo").say("kết luận 185")
        assert "Nguồn:" in await Chat(app, user_id="a").say("1")
        assert "Nguồn:" in await Chat(app, user_id="b", channel="zalo").say("2")
    finally:
        await engine.dispose()
