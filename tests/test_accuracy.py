"""Accuracy floors on the public samples (../shared/eval) and the team's held-out sets,
through every channel the assistant has (same sets, same floors; only the way in differs).

The first samples (`dev`, `holdout`): short, clean questions. The second (`dev2`,
`holdout2`, issue 10): questions as officials really write them (long, indirect,
paraphrased, colloquial, abbreviated, mistyped, entity traps, yes/no), plus two-turn
dialogues whose second turn only makes sense after the first. Scored as
tests/data/shared-eval/README-dev2.md says, with knowledge.evaluation.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.app import App
from knowledge import Knowledge
from knowledge.evaluation import (
    EvalItem,
    evaluate,
    evaluate_dialogues,
    is_right,
    load_dialogues,
    load_items,
)
from tests.channels import Asker, Converser, engine_asker, engine_converser, shown_as_answer
from tests.conftest import EVAL_DIR, ROOT, require

DATA = ROOT / "tests" / "data"

IN_SCOPE_FLOOR = 0.95
OUT_OF_SCOPE_FLOOR = 0.90
# The second samples. Issue 10's targets are ≥ 90 % in scope, ≤ 2 % wrong-but-confident,
# ≥ 95 % out of scope (printed by `make bench`); these floors sit a little under where the
# assistant stands (dev2 92 %, holdout2 96 %, both 100 % out of scope), so that nothing slips
# back unnoticed while a small change of the knowledge base can move a question or two.
DEV2_IN_SCOPE_FLOOR = 0.88
DEV2_OUT_OF_SCOPE_FLOOR = 0.95
HOLDOUT2_IN_SCOPE_FLOOR = 0.90
HOLDOUT2_OUT_OF_SCOPE_FLOOR = 0.95
# In scope, shown as an answer, but without the expected fact (a wrong deadline stated with a
# citation is the worst failure): a share of the set's in-scope questions, for every set.
WRONG_CONFIDENT_CEILING = 0.035
# The reply to the second turn of a dialogue is an answer with the expected fact.
DEV2_DIALOGUE_FLOOR = 0.85
HOLDOUT2_DIALOGUE_FLOOR = 0.85


@dataclass(frozen=True)
class EvalSet:
    qa: Path
    oos: Path
    in_scope_floor: float
    out_of_scope_floor: float
    wrong_confident_ceiling: float = WRONG_CONFIDENT_CEILING


SETS = {
    "dev": EvalSet(
        EVAL_DIR / "dev_qa.jsonl", EVAL_DIR / "dev_oos.jsonl", IN_SCOPE_FLOOR, OUT_OF_SCOPE_FLOOR
    ),
    "holdout": EvalSet(
        DATA / "holdout_qa.jsonl", DATA / "holdout_oos.jsonl", IN_SCOPE_FLOOR, OUT_OF_SCOPE_FLOOR
    ),
    "dev2": EvalSet(
        EVAL_DIR / "dev2_qa.jsonl",
        EVAL_DIR / "dev2_oos.jsonl",
        DEV2_IN_SCOPE_FLOOR,
        DEV2_OUT_OF_SCOPE_FLOOR,
    ),
    "holdout2": EvalSet(
        DATA / "holdout2_qa.jsonl",
        DATA / "holdout2_oos.jsonl",
        HOLDOUT2_IN_SCOPE_FLOOR,
        HOLDOUT2_OUT_OF_SCOPE_FLOOR,
    ),
}
DIALOGUES = {
    "dev2": (EVAL_DIR / "dev2_dialogues.jsonl", DEV2_DIALOGUE_FLOOR),
    "holdout2": (DATA / "holdout2_dialogues.jsonl", HOLDOUT2_DIALOGUE_FLOOR),
}


def eval_items(name: str) -> list[EvalItem]:
    spec = SETS[name]
    for path in (spec.qa, spec.oos):
        require(path.exists(), f"evaluation set {path} not found")
    return [item for path in (spec.qa, spec.oos) for item in load_items(path)]


@pytest.mark.parametrize("dataset", sorted(SETS))
async def test_accuracy_floors(dataset: str, way: Way) -> None:
    spec = SETS[dataset]
    items = eval_items(dataset)
    answers: dict[str, tuple[bool, str]] = {}
    for item in items:
        if item.question not in answers:
            answers[item.question] = await way.ask(item.question)
    report = evaluate(items, answers.__getitem__)

    def listed(wrong: Callable[[EvalItem, bool, str], bool]) -> str:
        return "\n".join(
            f"[{item.variant or '-'}] {item.question!r} -> {answers[item.question][1][:160]!r}"
            for item in items
            if wrong(item, *answers[item.question])
        )

    missed = listed(lambda i, m, t: i.in_scope and not is_right(i, m, t))
    answered = listed(lambda i, m, t: not i.in_scope and m)
    confident = listed(lambda i, m, t: i.in_scope and m and not is_right(i, m, t))
    assert report.in_scope_accuracy >= spec.in_scope_floor, (
        f"{report.in_scope_right}/{report.in_scope_total} in scope right "
        f"(variants {report.variants}); misses:\n{missed}"
    )
    assert report.out_of_scope_accuracy >= spec.out_of_scope_floor, (
        f"{report.out_of_scope_right}/{report.out_of_scope_total} out of scope rejected; "
        f"answered:\n{answered}"
    )
    assert report.wrong_confident_rate <= spec.wrong_confident_ceiling, (
        f"{report.wrong_confident}/{report.in_scope_total} answered with a citation but "
        f"without the expected fact:\n{confident}"
    )


@pytest.mark.parametrize("dataset", sorted(DIALOGUES))
async def test_dialogue_floors(dataset: str, way: Way) -> None:
    """Both turns in one conversation (on a channel: sent by the same person); the reply to
    the second is right when it is an answer and holds one of the expected phrases."""
    path, floor = DIALOGUES[dataset]
    require(path.exists(), f"evaluation set {path} not found")
    dialogues = load_dialogues(path)
    replies = {dialogue.turns: await way.converse(dialogue.turns) for dialogue in dialogues}
    report = evaluate_dialogues(dialogues, lambda turns: replies[tuple(turns)])
    wrong = set(report.failures)
    failures = "\n".join(
        f"{list(turns)!r} -> {text[:160]!r}"
        for turns, (_, text) in replies.items()
        if f"DLG {list(turns)!r}" in wrong
    )
    assert report.accuracy >= floor, f"{report.right}/{report.total} right; wrong:\n{failures}"


# --------------------------------------------------------------------------- the ways in

# (person, text) -> everything that person was shown in reply, as one plain text
Send = Callable[[str, str], Awaitable[str]]


@dataclass(frozen=True)
class Way:
    ask: Asker  # one question, from a person who has not written before
    converse: Converser  # the turns of one conversation, all from one new person


def channel_way(send: Send) -> Way:
    """Each question (each dialogue) from a different official: one person asking them all
    would hit the flood limit, and would turn every question into a possible follow-up."""
    people = itertools.count(1)

    async def ask(question: str) -> tuple[bool, str]:
        text = await send(f"{next(people):06d}", question)
        return shown_as_answer(text), text

    async def converse(turns: Sequence[str]) -> tuple[bool, str]:
        person = f"{next(people):06d}"
        text = ""
        for turn in turns:
            text = await send(person, turn)
        return shown_as_answer(text), text

    return Way(ask, converse)


@pytest.fixture(params=["engine", "console", "telegram", "zalo"])
async def way(request: pytest.FixtureRequest, knowledge: Knowledge, app: App) -> AsyncIterator[Way]:
    if request.param == "engine":
        yield Way(engine_asker(knowledge), engine_converser(knowledge))
        return

    if request.param == "console":
        from tests.conftest import Chat

        async def say(person: str, text: str) -> str:
            return await Chat(app, user_id=f"u{person}").say(text)

        yield channel_way(say)
        return

    if request.param == "zalo":
        from tests.fakes.zalo_server import FakeZalo

        # Update dicts through the adapter; what the fake Zalo server received is what counts.
        async with FakeZalo.start(app) as zalo:

            async def send_zalo(person: str, text: str) -> str:
                return "\n".join(await zalo.send_text(text, user_id=f"zalo-{person}"))

            yield channel_way(send_zalo)
        return

    from tests.fakes.telegram import FakeTelegram, plain

    telegram = FakeTelegram(app)

    async def send_telegram(person: str, text: str) -> str:
        sent = await telegram.send_text(text, user_id=1000 + int(person))
        return "\n".join(plain(c.params.get("text", "")) for c in sent)

    yield channel_way(send_telegram)
