"""Tasks come from the knowledge base's deadlines and from admins' data files."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.cli import app as cli
from handlers.tasks import load_task_specs
from knowledge import Knowledge

LATER = """\
sources:
  - id: kl-moi
    title: Kết luận mới của Ban Bí thư
    cite_as: Kết luận mới (thử nghiệm)
deadlines:
  - id: tong-ket-nhiem-ky
    what: Báo cáo tổng kết công tác đại hội
    levels: [xa, truc_thuoc_tw]
    due: 2026-03-31
    due_text: trong quý I/2026
    source: kl-moi
    clause: mục 2
"""


def test_tasks_mirror_the_knowledge_base_deadlines(knowledge: Knowledge) -> None:
    specs, problems = load_task_specs(knowledge)
    assert problems == []
    assert {s.code for s in specs} == set(knowledge.base.deadlines)
    for spec in specs:
        deadline = knowledge.base.deadlines[spec.code]
        assert (spec.title, spec.due, spec.levels) == (deadline.what, deadline.due, deadline.levels)
        assert spec.citation.startswith("bản tin VTC News ngày 22/8/2025 về Kết luận số 185")


def test_tasks_list_adds_a_later_directive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    (tasks_dir / "ket-luan-moi.yaml").write_text(LATER, encoding="utf-8")
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 't.db'}")
    monkeypatch.setenv("TASKS_DIR", str(tasks_dir))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    listed = runner.invoke(cli, ["tasks", "list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert "tong-ket-nhiem-ky" in listed.stdout and "ket-luan-moi.yaml" in listed.stdout
    assert "dai-hoi-thang-8" in listed.stdout
    # Removing the file deactivates the task (its history stays).
    (tasks_dir / "ket-luan-moi.yaml").unlink()
    again = runner.invoke(cli, ["tasks", "list"], env={"COLUMNS": "200"})
    assert "Đã ngừng theo dõi" not in listed.stdout
    assert again.stdout.count("Đã ngừng theo dõi") == 1
    assert "6 nhiệm vụ, trong đó 1 nhiệm vụ đã ngừng theo dõi." in again.stdout
    # A broken tasks file names its line; the assistant refuses to start on it.
    broken = LATER.replace("levels: [xa, truc_thuoc_tw]", "levels: [tinh]")
    (tasks_dir / "sai.yaml").write_text(broken, encoding="utf-8")
    refused = runner.invoke(cli, ["tasks", "list"])
    assert refused.exit_code == 1
    assert "sai.yaml:8: hạn: không có cấp 'tinh'" in refused.output
    assert "Định nghĩa nhiệm vụ không hợp lệ, chưa thay đổi gì." in refused.output
    chat = runner.invoke(cli, ["chat"], input="")
    assert chat.exit_code == 1 and "sai.yaml:8" in chat.output
    assert "Lỗi: Định nghĩa nhiệm vụ có lỗi (các dòng trên)" in chat.output


@pytest.mark.parametrize(
    "code",
    [
        "bao-cao-tong-ket-cong-tac-dai-hoi-quy-1",  # a table fits
        "bao-cao-tong-ket-cong-tac-dai-hoi-dang-bo-xa-phuong-nhiem-ky",  # too long for one
    ],
)
def test_tasks_list_never_cuts_a_task_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, knowledge: Knowledge, code: str
) -> None:
    """Administrators copy task codes from this list: in an 80-column terminal every code
    is printed whole on one line (a table while it fits, else one block per task)."""
    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    (tasks_dir / "dai.yaml").write_text(LATER.replace("tong-ket-nhiem-ky", code), encoding="utf-8")
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 't.db'}")
    monkeypatch.setenv("TASKS_DIR", str(tasks_dir))
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    listed = runner.invoke(cli, ["tasks", "list"], env={"COLUMNS": "80"})
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    for expected in [*knowledge.base.deadlines, code]:
        assert any(expected in line for line in lines), expected
    assert "Báo cáo tổng kết" in listed.stdout and "31/03/2026" in listed.stdout
