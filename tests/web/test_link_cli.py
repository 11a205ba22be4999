"""`troly web link`, the /web chat command's edge cases, and the console's settings."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot.app import App
from bot.cli import app as cli
from bot.settings import SettingsError, load_settings
from bot.storage.db import create_engine, make_session_factory
from bot.storage.models import Person
from handlers.units import unit_by_code
from knowledge import Knowledge
from tests.conftest import Chat
from tests.progress.conftest import build_tree
from tests.web.conftest import BASE, People, token_of


@pytest.fixture
def cli_db(
    knowledge: Knowledge, sqlite_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> dict[str, int]:
    """A migrated database with the tree, an admin (TW) and an official (HN.BD); the CLI
    pointed at it. Returns the people's ids."""

    async def prepare() -> dict[str, int]:
        engine = create_engine(sqlite_url)
        try:
            await build_tree(engine, knowledge)
            ids = {}
            async with make_session_factory(engine)() as session:
                for role, code in (("admin", "TW"), ("official", "HN.BD")):
                    unit = await unit_by_code(session, code)
                    assert unit is not None and unit.id is not None
                    person = Person(name=f"Đồng chí {code}", unit_id=unit.id, role=role)
                    session.add(person)
                    await session.flush()
                    ids[role] = person.id or 0
                await session.commit()
            return ids
        finally:
            await engine.dispose()

    ids = asyncio.run(prepare())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.delenv("WEBHOOK_BASE_URL", raising=False)
    monkeypatch.setenv("WEB_BASE_URL", "https://quan-tri.example.org/")
    return ids


def test_cli_prints_a_link_for_a_manager_only(
    cli_db: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    done = runner.invoke(cli, ["web", "link", "--person", str(cli_db["admin"])])
    assert done.exit_code == 0, done.output
    assert done.stdout.strip().startswith("https://quan-tri.example.org/dang-nhap/")
    assert token_of(done.stdout)
    assert "dùng một lần, hiệu lực 10 phút" in done.stderr

    official = runner.invoke(cli, ["web", "link", "--person", str(cli_db["official"])])
    assert official.exit_code == 1
    assert "dành cho quản trị đơn vị và quản trị hệ thống" in official.stderr
    missing = runner.invoke(cli, ["web", "link", "--person", "999"])
    assert missing.exit_code == 1 and "Không có người dùng số 999" in missing.stderr

    monkeypatch.delenv("WEB_BASE_URL")
    unset = runner.invoke(cli, ["web", "link", "--person", str(cli_db["admin"])])
    assert unset.exit_code == 1 and "WEB_BASE_URL" in unset.stderr


async def test_web_command_without_a_console_and_for_strangers(app: App, people: People) -> None:
    # `app` has the default routes: no console address configured.
    assert "chưa được cấu hình" in await Chat(app, user_id="admin").say("/web")
    stranger = await Chat(app, user_id="nobody").say("/dangnhap")
    assert "dành cho quản trị đơn vị" in stranger and BASE not in stranger


def test_console_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WEB_BASE_URL", "WEBHOOK_BASE_URL", "WEB_PORT", "METRICS_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert load_settings().console_base_url is None
    hooked = load_settings(
        webhook_base_url="https://bot.example.org", webhook_secret="s3cret-value"
    )
    assert hooked.console_base_url == "https://bot.example.org"
    own = load_settings(
        webhook_base_url="https://bot.example.org",
        webhook_secret="s3cret-value",
        web_base_url="https://quan-tri.example.org/",
    )
    assert own.console_base_url == "https://quan-tri.example.org"
    assert load_settings(web_port="").web_port is None
    with pytest.raises(SettingsError, match="WEB_BASE_URL"):
        load_settings(web_base_url="quan-tri.example.org")
    with pytest.raises(SettingsError, match="WEB_PORT phải khác"):
        load_settings(web_port=9100, metrics_port=9100)
