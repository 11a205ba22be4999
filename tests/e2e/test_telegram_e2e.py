"""End to end: the real `troly run` process, polling a real Bot API emulator
(telegram-test-api, patched only in its launcher), answers an official's question."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.channels.telegram import COMMANDS
from tests.conftest import ROOT, require
from tests.e2e.telegram_emulator import EMULATOR_DIR, TelegramEmulator

TOKEN = "123456:e2e-secret-token-value_ABCDEFGH"
pytestmark = pytest.mark.e2e


def _emulator_available() -> None:
    require(shutil.which("node") is not None, "Node.js is not installed")
    require(
        (EMULATOR_DIR / "node_modules" / "telegram-test-api").is_dir(),
        "the emulator is not installed (make emulator)",
    )


async def _troly(*args: str, env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


@pytest.fixture
async def emulator() -> AsyncIterator[TelegramEmulator]:
    _emulator_available()
    async with TelegramEmulator.start() as emu:
        yield emu


@pytest.fixture
def run_env(tmp_path: Path, emulator: TelegramEmulator) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"ZALO_BOT_TOKEN", "WEBHOOK_BASE_URL"}}
    env.update(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'e2e.db'}",
        TELEGRAM_BOT_TOKEN=TOKEN,
        TELEGRAM_API_BASE_URL=emulator.base_url,
        PYTHONPATH=str(ROOT),
        LOG_LEVEL="INFO",
    )
    return env


async def test_troly_run_answers_on_telegram(
    emulator: TelegramEmulator, run_env: dict[str, str], tmp_path: Path
) -> None:
    upgrade = await _troly("db", "upgrade", env=run_env, cwd=tmp_path)
    assert await upgrade.wait() == 0

    process = await _troly("run", env=run_env, cwd=tmp_path)
    try:
        official = emulator.client(TOKEN, user_id=7001, first_name="Nguyễn Văn An")
        await official.send_text("dai hoi dang bo xa xong khi nao")
        [reply] = await official.wait_for_bot_messages(min_count=1, timeout=30)
        assert "tháng 8/2025" in reply["text"]
        assert "Nguồn: Kết luận 185-KL/TW" in reply["text"]

        # A vague question offers buttons; pressing one answers it.
        await official.send_text("kết luận 185")
        [choices] = await official.wait_for_bot_messages(min_count=1, timeout=30)
        keyboard = choices["reply_markup"]["inline_keyboard"]
        data = keyboard[0][0]["callback_data"]
        assert len(data.encode()) <= 64
        await official.press_button(data, message=choices)
        [picked] = await official.wait_for_bot_messages(min_count=1, timeout=30)
        assert "Nguồn:" in picked["text"]

        # The bot published its command menu in the default scope: that is what the
        # official sees in the private chat, and what a group shows too.
        menu = await emulator.visible_menu(TOKEN, chat_id=official.chat_id)
        assert menu["scope"] == {"type": "default"}
        assert [(c["command"], c["description"]) for c in menu["commands"]] == [
            (c.command, c.description) for c in COMMANDS
        ]
        assert await emulator.visible_commands(TOKEN, -100777, user_id=7001) == [
            c.command for c in COMMANDS
        ]
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=30)
        stdout = (await process.stdout.read()).decode() if process.stdout else ""
        stderr = (await process.stderr.read()).decode() if process.stderr else ""
    assert code == 0, stderr
    # setMyCommands succeeded, so the bot had nothing to log about it.
    assert "setMyCommands is not available" not in stderr
    # The token never reaches the output.
    assert TOKEN not in stdout + stderr
    assert TOKEN.split(":")[1] not in stdout + stderr
