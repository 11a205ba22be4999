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
        assert spec.citation.startswith("Kết luận 185-KL/TW")


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
    row = next(line for line in again.stdout.splitlines() if "tong-ket-nhiem-ky" in line)
    assert "no" in row.split("│")[-2]
    # A broken tasks file names its line; the assistant refuses to start on it.
    broken = LATER.replace("levels: [xa, truc_thuoc_tw]", "levels: [tinh]")
    (tasks_dir / "sai.yaml").write_text(broken, encoding="utf-8")
    refused = runner.invoke(cli, ["tasks", "list"])
    assert refused.exit_code == 1
    assert "sai.yaml:8: deadline: unknown level 'tinh'" in refused.output
    chat = runner.invoke(cli, ["chat"], input="")
    assert chat.exit_code == 1 and "sai.yaml:8" in chat.output
