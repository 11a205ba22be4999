"""The queries behind «Nhắc việc» and «Câu hỏi chưa trả lời» on both databases (the route
tests run on SQLite): the subtree joins, the key prefixes, the grouping by status."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.db import create_engine, make_session_factory
from handlers.questions import group_questions, unanswered_questions
from handlers.units import unit_by_code
from knowledge import Knowledge
from scheduler.overview import ReminderOverview, reminder_overview
from scheduler.policy import PushPolicy
from tests.conftest import Chat, Clock, flush_apps, make_app
from tests.progress.conftest import build_tree, invite_code
from tests.web.test_questions import ask
from tests.web.test_reminders import ZONE, at, fire_round


@pytest.fixture
async def both(db_url: str, knowledge: Knowledge) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    await build_tree(engine, knowledge)
    yield engine
    await flush_apps()
    await engine.dispose()


async def test_subtree_figures_on_both_databases(
    both: AsyncEngine, knowledge: Knowledge, clock: Clock
) -> None:
    app = make_app(knowledge, both, clock=clock)
    chats = {}
    for unit, user in (("HN.BD", "bd"), ("HN.SS", "ss_x"), ("HP.CH", "hp")):
        chats[user] = chat = Chat(app, user_id=user)
        assert "đã được ghi nhận là" in await chat.say(await invite_code(both, unit, "official"))
    clock.now = at(2025, 8, 28, 8)
    await fire_round(both, clock, "before", 3, refuse={"hp"})
    assert "chưa có thông tin" in await ask(chats["bd"], "Công thức làm bánh chưng")
    assert "chưa có thông tin" in await ask(chats["hp"], "cong thuc lam banh chung")
    assert "chưa có thông tin" in await ask(chats["ss_x"], "Thủ tục cấp sổ đỏ cho hộ gia đình")

    policy = PushPolicy(zone=ZONE)
    async with make_session_factory(both)() as session:
        hanoi = await unit_by_code(session, "HN")
        everything = await reminder_overview(session, policy=policy, now=clock.now)
        scoped = await reminder_overview(session, policy=policy, now=clock.now, scope=hanoi)
        since = clock.now - timedelta(days=7)
        asked = group_questions(await unanswered_questions(session, since=since))
        asked_hanoi = group_questions(await unanswered_questions(session, since=since, scope=hanoi))

    def fired(overview: ReminderOverview) -> tuple[int, int, int, int]:
        [task] = [t for t in overview.tasks if t.task.code == "dai-hoi-thang-8"]
        [round_] = task.fired
        r = round_.reminders
        return round_.planned, r.sent, r.failed, r.waiting

    assert fired(everything) == (3, 2, 1, 0)
    assert fired(scoped) == (3, 2, 0, 0)  # planned is global; Hải Phòng's failure is not here
    assert (everything.backlog.failed, scoped.backlog.failed) == (1, 0)
    assert [(g.text, g.count) for g in asked] == [
        ("Công thức làm bánh chưng", 2),
        ("Thủ tục cấp sổ đỏ cho hộ gia đình", 1),
    ]
    assert sorted((g.text, g.count) for g in asked_hanoi) == [
        ("Công thức làm bánh chưng", 1),
        ("Thủ tục cấp sổ đỏ cho hộ gia đình", 1),
    ]
