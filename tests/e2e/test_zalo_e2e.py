"""End to end: the real `troly run` process against the fake Zalo Bot API server, in polling
mode and in webhook mode. What the official sees is what the fake server received; what the
database holds is read from the SQLite file the process wrote."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from bot.channels.zalo import SECRET_HEADER, TEXT_LIMIT, WEBHOOK_PATH
from handlers.qa import entry_reply
from knowledge import Knowledge
from tests.conftest import ROOT
from tests.fakes.zalo_server import FakeZaloServer, text_update

TOKEN = "3344556677:zalo-e2e-SECRET-token_value"
WEBHOOK_SECRET = "zalo-e2e_webhook-secret-42"
OFFICIAL = "6ede9afa66b88fe6d6a9"
pytestmark = pytest.mark.e2e


class Troly:
    """A `python -m bot ...` subprocess whose whole output is kept."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.output = ""

    @classmethod
    async def start(cls, *args: str, env: dict[str, str], cwd: Path) -> Troly:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            *args,
            env=env,
            cwd=cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        return cls(process)

    async def stop(self, *, terminate: bool = True) -> int:
        if terminate and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        out, _ = await asyncio.wait_for(self.process.communicate(), timeout=60)
        self.output += out.decode(errors="replace")
        assert self.process.returncode is not None
        return self.process.returncode


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def message_log(database: Path) -> list[tuple[str, str, str | None, str | None]]:
    """(channel, user_id, text, route) of every stored incoming message."""
    connection = sqlite3.connect(database)
    try:
        return connection.execute(
            "SELECT channel, user_id, text, route FROM message_log ORDER BY id"
        ).fetchall()
    finally:
        connection.close()


@pytest.fixture
async def zalo() -> AsyncIterator[FakeZaloServer]:
    async with FakeZaloServer.start(TOKEN) as server:
        yield server


@pytest.fixture
async def run_env(tmp_path: Path, zalo: FakeZaloServer) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"TELEGRAM_BOT_TOKEN", "WEBHOOK_BASE_URL", "WEBHOOK_SECRET"}
    }
    env.update(
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'e2e.db'}",
        ZALO_BOT_TOKEN=TOKEN,
        ZALO_API_BASE_URL=zalo.base_url,
        ZALO_POLL_TIMEOUT="2",
        PYTHONPATH=str(ROOT),
        LOG_LEVEL="DEBUG",  # the most talkative level: still no token
    )
    upgrade = await Troly.start("db", "upgrade", env=env, cwd=tmp_path)
    assert await upgrade.stop(terminate=False) == 0, upgrade.output
    return env


def assert_no_token(output: str) -> None:
    assert TOKEN not in output
    assert TOKEN.split(":")[1] not in output


async def test_troly_run_answers_on_zalo_by_long_polling(
    zalo: FakeZaloServer, run_env: dict[str, str], tmp_path: Path, knowledge: Knowledge
) -> None:
    troly = await Troly.start("run", env=run_env, cwd=tmp_path)
    try:
        await zalo.wait_for_call("deleteWebhook", timeout=30)
        zalo.queue_text("dai hoi dang bo xa xong khi nao", user_id=OFFICIAL, name="Ted")
        [answer] = await zalo.wait_for_messages(1, chat_id=OFFICIAL, timeout=30)
        assert "tháng 8/2025" in answer
        assert "Nguồn: bản tin VTC News ngày 22/8/2025 về Kết luận số 185" in answer

        # A vague question: three numbered suggestions; "2" answers the second.
        zalo.queue_text("kết luận 185", user_id=OFFICIAL, name="Ted")
        [offer] = await zalo.wait_for_messages(1, chat_id=OFFICIAL, after=1, timeout=30)
        suggestions = knowledge.search("kết luận 185").suggestions
        assert [f"{n}. {e.title}" in offer for n, e in enumerate(suggestions, 1)] == [True] * 3
        assert "4. " not in offer
        zalo.queue_text("2", user_id=OFFICIAL, name="Ted")
        [picked] = await zalo.wait_for_messages(1, chat_id=OFFICIAL, after=2, timeout=30)
        expected = entry_reply(suggestions[1])
        assert expected.text in picked and picked.endswith(expected.footer or "")
    finally:
        code = await troly.stop()
    assert code == 0, troly.output
    assert "Zalo bot Trợ lý Kết luận connected" in troly.output
    assert all(len(text) <= TEXT_LIMIT for text in zalo.texts())
    assert_no_token(troly.output)
    assert message_log(tmp_path / "e2e.db") == [
        ("zalo", OFFICIAL, "dai hoi dang bo xa xong khi nao", "qa"),
        ("zalo", OFFICIAL, "kết luận 185", "qa"),
        ("zalo", OFFICIAL, "2", "qa_pick"),  # the typed number picked the suggestion
    ]


async def test_troly_run_serves_the_zalo_webhook_only_with_the_secret(
    zalo: FakeZaloServer, run_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    run_env.update(
        WEBHOOK_BASE_URL=f"http://127.0.0.1:{port}",
        WEBHOOK_SECRET=WEBHOOK_SECRET,
        WEBHOOK_HOST="127.0.0.1",
        WEBHOOK_PORT=str(port),
    )
    url = f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
    update = text_update("dai hoi dang bo xa xong khi nao", user_id=OFFICIAL)
    troly = await Troly.start("run", env=run_env, cwd=tmp_path)
    try:
        registered = await zalo.wait_for_call("setWebhook", timeout=30)
        assert registered.params == {"url": url, "secret_token": WEBHOOK_SECRET}
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json=update) as response:
                assert response.status == 401
            wrong = {SECRET_HEADER: "not-the-secret-at-all"}
            async with http.post(url, json=update, headers=wrong) as response:
                assert response.status == 403
            await asyncio.sleep(0.5)
            assert message_log(tmp_path / "e2e.db") == []
            assert zalo.sent() == []

            right = {SECRET_HEADER: WEBHOOK_SECRET}
            async with http.post(url, json={"ok": True, "result": update}, headers=right) as r:
                assert r.status == 200
            [answer] = await zalo.wait_for_messages(1, chat_id=OFFICIAL, timeout=30)
            assert (
                "tháng 8/2025" in answer
                and "Nguồn: bản tin VTC News ngày 22/8/2025 về Kết luận số 185" in answer
            )
            async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 200
    finally:
        code = await troly.stop()
    assert code == 0, troly.output
    assert zalo.called("getUpdates") == []  # webhook and polling are exclusive
    assert message_log(tmp_path / "e2e.db") == [
        ("zalo", OFFICIAL, "dai hoi dang bo xa xong khi nao", "qa")
    ]
    assert_no_token(troly.output)
