"""The `troly` command line: ask (scriptable), kb check/unanswered, db upgrade, and `run`
with no configuration (the terminal chat)."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import subprocess
import sys
import weakref
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app
from bot.runner import SERVING_GC_THRESHOLDS, freeze_startup_heap, run_event_loop
from knowledge import default_knowledge_dir
from tests.conftest import ROOT

runner = CliRunner()


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("TELEGRAM_BOT_TOKEN", "ZALO_BOT_TOKEN", "WEBHOOK_BASE_URL", "KNOWLEDGE_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_ask_json_contract() -> None:
    result = runner.invoke(
        app, ["ask", "--json", "dai hoi dang bo xa xong khi nao", "Công thức làm bánh chưng"]
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["question"] for r in lines] == [
        "dai hoi dang bo xa xong khi nao",
        "Công thức làm bánh chưng",
    ]
    keys = {"question", "matched", "answer", "entry_id", "score", "citation", "suggestions"}
    assert all(set(r) == keys for r in lines)
    hit, miss = lines
    assert hit["matched"] is True and hit["entry_id"] == "han-dai-hoi-cap-xa"
    assert hit["citation"].startswith("bản tin VTC News ngày 22/8/2025 về Kết luận số 185")
    assert hit["answer"].endswith(hit["citation"])
    assert 0 <= hit["score"] <= 1
    assert miss["matched"] is False and miss["entry_id"] is None and miss["citation"] is None
    assert "chưa có thông tin" in miss["answer"]


def test_ask_reads_stdin_when_no_arguments() -> None:
    result = runner.invoke(app, ["ask", "--json"], input="Ai ký Kết luận 185?\n\nkết luận 185\n")
    assert result.exit_code == 0
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == 2
    assert records[1]["matched"] is False
    assert len(records[1]["suggestions"]) == 3
    assert set(records[1]["suggestions"][0]) == {"entry_id", "title"}


FOLLOW_UP = "Xã phải đại hội xong khi nào?\nCòn cấp tỉnh thì sao?\n"


def ask_json(*args: str, input: str | None = None) -> list[dict[str, object]]:
    result = runner.invoke(app, ["ask", "--json", *args], input=input)
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_ask_conversation_resolves_follow_ups() -> None:
    first, second = ask_json("--conversation", input=FOLLOW_UP)
    assert first["matched"] is True and first["entry_id"] == "han-dai-hoi-cap-xa"
    assert second["question"] == "Còn cấp tỉnh thì sao?"
    assert second["matched"] is True and second["entry_id"] == "han-dai-hoi-truc-thuoc-tw"
    assert "tháng 10" in str(second["answer"]) and "tháng 8" not in str(second["answer"])
    # A new full question starts afresh; the next follow-up refers to it.
    turns = FOLLOW_UP + "Ai ký Kết luận 185?\nKý ngày nào?\n"
    *_, signer, date = ask_json("--conversation", input=turns)
    assert signer["entry_id"] == "kl-185-nguoi-ky" and "tháng 10" not in str(signer["answer"])
    assert date["matched"] is True and "22/8" in str(date["answer"])
    # The turns may also be given as arguments.
    _, by_argument = ask_json("--conversation", *FOLLOW_UP.splitlines())
    assert by_argument["entry_id"] == "han-dai-hoi-truc-thuoc-tw"


def test_ask_conversation_as_a_real_process_reading_a_pipe(tmp_path: Path) -> None:
    """As the acceptance set runs it: `troly ask --json --conversation < turns`."""
    env = {k: v for k, v in os.environ.items() if k not in {"KNOWLEDGE_DIR", "PYTHONIOENCODING"}}
    env["PYTHONPATH"] = str(ROOT)
    env["LC_ALL"] = env["LANG"] = "C"  # no UTF-8 locale: the JSON must still be UTF-8
    done = subprocess.run(
        [sys.executable, "-m", "bot", "ask", "--json", "--conversation"],
        cwd=tmp_path,
        env=env,
        input=FOLLOW_UP.encode("utf-8"),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode("utf-8", "replace")
    first, second = [json.loads(line) for line in done.stdout.decode("utf-8").splitlines()]
    assert first["question"] == "Xã phải đại hội xong khi nào?"
    assert second["matched"] is True and "tháng 10" in second["answer"]


def test_ask_without_conversation_keeps_every_line_alone() -> None:
    from handlers.qa import FOLLOWUP_ALONE

    first, second = ask_json(input=FOLLOW_UP)
    assert first["matched"] is True
    assert second["matched"] is False and second["entry_id"] is None
    assert second["answer"] == FOLLOWUP_ALONE  # a polite request, not a guess
    assert second["suggestions"] == [] and second["citation"] is None


BAD_INPUT = [
    "",
    "   ",
    "đại hội " * 1250,  # 10,000 characters
    "dai hoi\x00 xa\x07 xong\x1b[31m khi nao\x1b[0m",
    "🙂🙂🙂",
    "<b>đại hội</b> <script>alert(1)</script> *bold* _it_ [x](http://a)",
    "'; DROP TABLE message_log; --",
    "SELECT * FROM conversation WHERE 1=1; --",
]


@pytest.mark.parametrize("question", BAD_INPUT, ids=range(len(BAD_INPUT)))
def test_ask_json_gives_one_line_for_any_input(question: str) -> None:
    [record] = ask_json(question)
    assert record["question"] == question
    assert isinstance(record["matched"], bool)
    assert isinstance(record["answer"], str) and record["answer"].strip()
    assert "Traceback" not in record["answer"]


def test_ask_json_reads_bad_input_from_stdin_too() -> None:
    lines = [q for q in BAD_INPUT if q.strip() and "\x00" not in q] + ["Ai ký Kết luận 185?"]
    records = ask_json(input="\n".join(lines) + "\n")
    assert [r["question"] for r in records] == lines
    assert records[-1]["matched"] is True  # what comes after bad input is still answered


def test_chat_resolves_follow_ups_from_stdin() -> None:
    """`troly chat`: the lines typed are one person's conversation."""
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(app, ["chat"], input=FOLLOW_UP)
    assert result.exit_code == 0, result.output
    assert "tháng 8/2025" in result.stdout and "tháng 10/2025" in result.stdout
    assert "hỏi đầy đủ hơn" not in result.stdout


def test_kb_check_ok() -> None:
    result = runner.invoke(app, ["kb", "check"])
    assert result.exit_code == 0
    assert "Kho kiến thức hợp lệ: " in result.stdout


def test_kb_check_reports_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "kb"
    broken.mkdir()
    (broken / "a.yaml").write_text(
        "sources:\n  - id: s\n    title: T\n    cite_as: C\nentries:\n  - id: x\n    title: X\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["kb", "check", str(broken)])
    assert result.exit_code == 1
    assert f"{broken / 'a.yaml'}:6: mục: thiếu trường bắt buộc 'questions'" in result.stdout
    problems = result.stdout.count(f"{broken / 'a.yaml'}:")
    assert f"Có {problems} lỗi trong kho kiến thức." in result.output


def test_db_upgrade_and_unanswered(isolated_env: Path) -> None:
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    assert "bản mới nhất." in runner.invoke(app, ["db", "current"]).stdout
    empty = runner.invoke(app, ["kb", "unanswered", "--days", "7"])
    assert "Không có câu hỏi nào chưa trả lời trong 7 ngày qua." in empty.stdout
    asked = (
        "Công thức làm bánh chưng\ncông thức làm BÁNH CHƯNG\ncong thuc lam banh chung?\n"
        "ai ky kl 185\ngiá vàng hôm nay\n"
    )
    result = runner.invoke(app, ["chat"], input=asked)
    assert result.exit_code == 0, result.output
    table = runner.invoke(app, ["kb", "unanswered"])
    assert table.exit_code == 0
    assert "Câu hỏi chưa trả lời, 30 ngày qua" in table.stdout
    rows = [line for line in table.stdout.splitlines() if "│" in line]
    # The same words with and without accents are one group, most frequent first.
    assert "3" in rows[0] and "bánh chưng" in rows[0].lower()  # a wording with accents
    assert "giá vàng" in table.stdout
    assert "ai ky kl 185" not in table.stdout  # that one was answered
    assert "4 lượt hỏi, 2 nhóm câu hỏi." in table.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="uvloop is not installed on Windows")
def test_the_assistant_runs_on_uvloop() -> None:
    async def loop_class() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert run_event_loop(loop_class()).startswith("uvloop")


def test_once_started_the_heap_is_frozen_and_new_cycles_are_still_collected() -> None:
    class Node:
        other: Node | None = None

    before = gc.get_threshold()
    try:
        freeze_startup_heap()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == SERVING_GC_THRESHOLDS
        first, second = Node(), Node()
        first.other, second.other = second, first  # a cycle: reference counting cannot free it
        gone = weakref.ref(first)
        del first, second
        keep = [[index] for index in range(3 * SERVING_GC_THRESHOLDS[0])]  # allocations
        assert gone() is None and len(keep) > 0  # a young collection ran and freed the cycle
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_run_refuses_an_unmigrated_database() -> None:
    result = runner.invoke(app, ["chat"], input="")
    assert result.exit_code == 1
    assert result.output.startswith("Lỗi: cơ sở dữ liệu chưa có bảng nào, mã này cần")
    assert "chạy `troly db upgrade`" in result.output


def test_db_current_says_what_to_do() -> None:
    from bot.services import head_revision

    before = runner.invoke(app, ["db", "current"])
    assert before.stdout == "Cơ sở dữ liệu chưa có bảng nào: chạy `troly db upgrade`.\n"
    assert runner.invoke(app, ["db", "upgrade", "0007"]).exit_code == 0
    behind = runner.invoke(app, ["db", "current"])
    assert behind.stdout.startswith("Lược đồ cơ sở dữ liệu đang ở phiên bản 0007, chưa phải")
    assert behind.stdout.endswith(": chạy `troly db upgrade`.\n")
    upgraded = runner.invoke(app, ["db", "upgrade"])
    head = head_revision()
    assert upgraded.stdout == f"Lược đồ cơ sở dữ liệu đang ở phiên bản {head}.\n"
    after = runner.invoke(app, ["db", "current"])
    assert after.stdout == f"Lược đồ cơ sở dữ liệu đang ở phiên bản {head}, bản mới nhất.\n"


def test_run_refuses_an_invalid_knowledge_base(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import shutil

    kb = tmp_path / "kb"
    shutil.copytree(default_knowledge_dir(), kb)
    (kb / "zz.yaml").write_text("entries:\n  - id: Sai\n", encoding="utf-8")
    monkeypatch.setenv("KNOWLEDGE_DIR", str(kb))
    result = runner.invoke(app, ["run"])
    assert result.exit_code == 1
    assert "zz.yaml:2" in result.output
    assert "trợ lý không khởi động" in result.output


def test_bad_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIMEZONE", "Asia/Atlantis")
    result = runner.invoke(app, ["run"])
    assert result.exit_code == 2
    assert "TIMEZONE: không có múi giờ 'Asia/Atlantis'" in result.output


def test_make_run_path_with_no_configuration(tmp_path: Path) -> None:
    """`troly db upgrade && troly run` with nothing configured: a terminal chat that answers."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"TELEGRAM_BOT_TOKEN", "ZALO_BOT_TOKEN", "DATABASE_URL", "KNOWLEDGE_DIR"}
    }
    env["PYTHONPATH"] = str(ROOT)
    subprocess.run(
        [sys.executable, "-m", "bot", "db", "upgrade"], cwd=tmp_path, env=env, check=True
    )
    done = subprocess.run(
        [sys.executable, "-m", "bot", "run"],
        cwd=tmp_path,
        env=env,
        input="dai hoi dang bo xa xong khi nao\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "TELEGRAM_BOT_TOKEN" in done.stderr  # how to configure a messenger
    assert "tháng 8/2025" in done.stdout
    assert "Nguồn: bản tin VTC News ngày 22/8/2025 về Kết luận số 185" in done.stdout
    assert (tmp_path / "var" / "troly.db").exists()  # the default database location
