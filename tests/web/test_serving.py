"""`troly run` serves the console: on the webhook server in webhook mode, on WEB_PORT when
polling."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiohttp import ClientSession

from bot.settings import Settings, load_settings
from knowledge import Knowledge
from tests.fakes.zalo_server import TOKEN, FakeZaloServer
from tests.test_zalo import free_port


async def _home_page(settings: Settings, knowledge: Knowledge, port: int) -> tuple[int, str]:
    from bot import runner

    stop = asyncio.Event()
    task = asyncio.create_task(runner.run_assistant(settings, knowledge, stop=stop))
    try:
        async with ClientSession() as http:
            for _ in range(200):
                try:
                    async with http.get(f"http://127.0.0.1:{port}/") as response:
                        return response.status, await response.text()
                except OSError:
                    await asyncio.sleep(0.05)
        raise AssertionError("the console never answered")
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


@pytest.fixture
def quiet_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from bot import runner

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runner, "freeze_startup_heap", lambda: None)
    for name in (
        "TELEGRAM_BOT_TOKEN",
        "WEBHOOK_BASE_URL",
        "WEBHOOK_SECRET",
        "WEB_BASE_URL",
        "WEB_PORT",
        "METRICS_PORT",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_run_serves_the_console(
    mode: str, knowledge: Knowledge, sqlite_url: str, quiet_env: None
) -> None:
    port = free_port()
    async with FakeZaloServer.start(TOKEN) as zalo:
        common = {
            "database_url": sqlite_url,
            "zalo_bot_token": TOKEN,
            "zalo_api_base_url": zalo.base_url,
            "zalo_poll_timeout": 1,
            "weekly_digest": "",
        }
        if mode == "polling":
            settings = load_settings(**common, web_port=port)
        else:
            settings = load_settings(
                **common,
                webhook_base_url=f"http://127.0.0.1:{port}",
                webhook_secret="webhook-secret_0123456789",
                webhook_port=port,
            )
        status, html = await _home_page(settings, knowledge, port)
    assert status == 200
    assert "Trang quản trị Trợ lý Kết luận" in html and "/dangnhap" in html
