"""Accuracy floors on the public sample (../shared/eval) and the team's held-out set, through
every channel the assistant has (same sets, same floors; only the way in differs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge.evaluation import EvalItem, is_right, load_items
from tests.channels import Asker
from tests.conftest import EVAL_DIR, ROOT, require

IN_SCOPE_FLOOR = 0.95
OUT_OF_SCOPE_FLOOR = 0.90

SETS = {
    "dev": (EVAL_DIR / "dev_qa.jsonl", EVAL_DIR / "dev_oos.jsonl"),
    "holdout": (
        ROOT / "tests" / "data" / "holdout_qa.jsonl",
        ROOT / "tests" / "data" / "holdout_oos.jsonl",
    ),
}


def eval_items(name: str) -> list[EvalItem]:
    paths = SETS[name]
    for path in paths:
        require(path.exists(), f"evaluation set {path} not found")
    return [item for path in paths for item in load_items(Path(path))]


@pytest.mark.parametrize("dataset", sorted(SETS))
async def test_accuracy_floors(dataset: str, asker: Asker) -> None:
    items = eval_items(dataset)
    wrong_in: list[str] = []
    wrong_out: list[str] = []
    for item in items:
        matched, text = await asker(item.question)
        if not is_right(item, matched, text):
            (wrong_in if item.in_scope else wrong_out).append(
                f"{item.question!r} -> {text[:120]!r}"
            )
    in_scope = [i for i in items if i.in_scope]
    out_scope = [i for i in items if not i.in_scope]
    in_accuracy = 1 - len(wrong_in) / len(in_scope)
    out_accuracy = 1 - len(wrong_out) / len(out_scope)
    assert in_accuracy >= IN_SCOPE_FLOOR, "in-scope misses:\n" + "\n".join(wrong_in)
    assert out_accuracy >= OUT_OF_SCOPE_FLOOR, "out-of-scope answered:\n" + "\n".join(wrong_out)


# --------------------------------------------------------------------------- the ways in


@pytest.fixture(params=["engine", "console", "telegram", "zalo"])
async def asker(request: pytest.FixtureRequest, knowledge, app):  # type: ignore[no-untyped-def]
    from tests.channels import engine_asker, shown_as_answer

    if request.param == "engine":
        yield engine_asker(knowledge)
        return
    if request.param == "console":
        from tests.conftest import Chat

        # Each question from a different official (one person would hit the flood limit).
        counter = iter(range(10_000))

        async def ask_console(question: str) -> tuple[bool, str]:
            text = await Chat(app, user_id=f"u{next(counter)}").say(question)
            return shown_as_answer(text), text

        yield ask_console
        return

    if request.param == "zalo":
        from tests.fakes.zalo_server import FakeZalo

        # Update dicts through the adapter; what the fake Zalo server received is what counts.
        async with FakeZalo.start(app) as zalo:
            zalo_users = iter(range(10_000))

            async def ask_zalo(question: str) -> tuple[bool, str]:
                sent = await zalo.send_text(question, user_id=f"zalo-{next(zalo_users):06d}")
                text = "\n".join(sent)
                return shown_as_answer(text), text

            yield ask_zalo
        return

    from tests.fakes.telegram import FakeTelegram, plain

    telegram = FakeTelegram(app)
    users = iter(range(1000, 100_000))

    async def ask_telegram(question: str) -> tuple[bool, str]:
        sent = await telegram.send_text(question, user_id=next(users))
        text = "\n".join(plain(c.params.get("text", "")) for c in sent)
        return shown_as_answer(text), text

    yield ask_telegram
