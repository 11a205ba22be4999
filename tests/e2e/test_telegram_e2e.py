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


async def _troly(
    *args: str, env: dict[str, str], cwd: Path, output: Path | None = None
) -> asyncio.subprocess.Process:
    """``troly ARGS`` in a process; its output piped, or (``output``: a long-running one,
    whose log nobody reads until it ends — a full pipe would stall it) written to a file."""
    if output is None:
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
    with output.open("wb") as sink:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", *args, env=env, cwd=cwd, stdout=sink, stderr=sink
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


async def _cli(*args: str, env: dict[str, str], cwd: Path) -> str:
    process = await _troly(*args, env=env, cwd=cwd)
    stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()


async def test_troly_run_answers_on_telegram(
    emulator: TelegramEmulator, run_env: dict[str, str], tmp_path: Path
) -> None:
    upgrade = await _troly("db", "upgrade", env=run_env, cwd=tmp_path)
    assert await upgrade.wait() == 0
    units = tmp_path / "don-vi.csv"
    units.write_text(
        "code,name,level,parent_code\n"
        "TNG,Đảng bộ tỉnh Thái Nguyên,truc_thuoc_tw,\n"
        "TNG.PL,Đảng ủy xã Phú Lương,xa,TNG\n"
        "TNG.PY,Đảng ủy phường Phổ Yên,xa,TNG\n",
        encoding="utf-8",
    )
    await _cli("units", "import", str(units), env=run_env, cwd=tmp_path)
    invitation = await _cli(
        "invite", "create", "--unit", "tng", "--role", "unit_admin", env=run_env, cwd=tmp_path
    )
    admin_link = invitation.split("https://t.me/troly_test_bot?start=")[1].split()[0]

    run_log = tmp_path / "troly-run.log"
    process = await _troly("run", env=run_env, cwd=tmp_path, output=run_log)
    try:
        official = emulator.client(TOKEN, user_id=7001, first_name="Nguyễn Văn An")
        await official.send_text("dai hoi dang bo xa xong khi nao")
        # 60 s: a liveness bound that includes the process's start-up (about 7 s here)
        [reply] = await official.wait_for_bot_messages(min_count=1, timeout=60)
        assert "tháng 8/2025" in reply["text"]
        assert "Nguồn: bản tin VTC News ngày 22/8/2025 về Kết luận số 185" in reply["text"]

        # A vague question offers buttons; pressing one answers it, and the keyboard is
        # closed with the choice shown (an old button cannot be pressed again).
        await official.send_text("kết luận 185")
        [choices] = await official.wait_for_bot_messages(min_count=1, timeout=30)
        keyboard = choices["reply_markup"]["inline_keyboard"]
        data = keyboard[0][0]["callback_data"]
        assert len(data.encode()) <= 64
        await official.press_button(data, message=choices)
        [picked] = await official.wait_for_bot_messages(min_count=1, timeout=30)
        assert "Nguồn:" in picked["text"]
        closed = await official.bot_message(choices["message_id"])
        assert closed is not None and "reply_markup" not in closed
        assert f"→ <b>{keyboard[0][0]['text']}</b>" in closed["text"]  # HTML, unparsed
        with pytest.raises(LookupError):
            await official.press_button(data, message=choices["message_id"])

        # Menus: a stranger sees the short one, a group only /hoi and /help.
        assert await emulator.visible_commands(TOKEN, official.chat_id) == ["hoi", "start", "help"]
        assert await emulator.visible_commands(TOKEN, -100777, user_id=7001) == ["hoi", "help"]

        # The provincial admin enrols by the link; their menu grows.
        admin = emulator.client(TOKEN, user_id=7002, first_name="Trần Thị Bình")
        await admin.send_text(f"/start {admin_link}")
        [welcome] = await admin.wait_for_bot_messages(min_count=1, timeout=30)
        assert "quản trị đơn vị của Đảng bộ tỉnh Thái Nguyên" in welcome["text"]
        await _wait_for(lambda: admin.visible_commands(), "tiendo")
        assert {"baocao", "tiendo", "thongbao", "moi"} <= set(await admin.visible_commands())

        # The admin makes a code for a commune and taps it to check: still an admin.
        await admin.send_text("/moi tng.pl canbo")
        [made] = await admin.wait_for_bot_messages(min_count=1, timeout=30)
        commune_link = made["text"].split("?start=")[1].split()[0]
        await admin.send_text(f"/start {commune_link}")
        [kept] = await admin.wait_for_bot_messages(min_count=1, timeout=30)
        assert "vai trò của đồng chí giữ nguyên" in kept["text"]
        # ... and the code still enrols the commune's official.
        await official.send_text(f"/start {commune_link}")
        [enrolled] = await official.wait_for_bot_messages(min_count=1, timeout=30)
        assert "cán bộ báo cáo của Đảng ủy xã Phú Lương" in enrolled["text"]
        await _wait_for(lambda: official.visible_commands(), "baocao")
        assert "tiendo" not in await official.visible_commands()

        # A group: chatter is ignored, a mention is answered, nothing private runs there.
        group_admin = emulator.client(TOKEN, user_id=7002, chat_id=-100777)
        stranger = emulator.client(TOKEN, user_id=7099, chat_id=-100777, first_name="Khách")
        await stranger.send_text("Ai ký Kết luận 185?")
        await stranger.mention_bot("Ai ký Kết luận 185?")
        [answer] = await stranger.wait_for_bot_messages(min_count=1, timeout=30)
        assert "Nguồn:" in answer["text"]
        await group_admin.send_command("tiendo")
        *_, pointer = await group_admin.wait_for_bot_messages(min_count=2, timeout=30)
        assert "tin nhắn riêng" in pointer["text"]
        assert "https://t.me/troly_test_bot?start=tiendo" in pointer["text"]
        await asyncio.sleep(1)
        group_messages = await stranger.bot_messages()
        assert len(group_messages) == 2  # nothing for the chatter, no roll-up, no chart
        assert not any("TIẾN ĐỘ" in (m.get("text") or "") for m in group_messages)
    except BaseException:
        print(f"troly run's log (end):\n{run_log.read_text(encoding='utf-8')[-8000:]}")
        raise
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), timeout=30)
    output = run_log.read_text(encoding="utf-8")
    assert code == 0, output[-8000:]
    # setMyCommands succeeded, so the bot had nothing to log about it.
    assert "setMyCommands is not available" not in output
    # The token never reaches the output, nor does an invitation code.
    assert TOKEN not in output
    assert TOKEN.split(":")[1] not in output
    assert admin_link not in output and commune_link not in output


async def _wait_for(read, wanted: str, timeout: float = 10) -> None:  # type: ignore[no-untyped-def]
    """The command menu is set just after the reply: wait until it shows ``wanted``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while wanted not in await read():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{wanted!r} never appeared in the menu")
        await asyncio.sleep(0.1)
