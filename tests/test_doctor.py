"""`troly doctor`: what the operator sees, against real local stand-ins — SQLite databases
migrated with the real migrations, the fake Telegram and Zalo Bot API servers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TypeVar

import pytest
from typer.testing import CliRunner

from bot.cli import app
from tests.conftest import ROOT
from tests.fakes.botapi_server import TOKEN, FakeBotAPI
from tests.fakes.zalo_server import TOKEN as ZALO_TOKEN
from tests.fakes.zalo_server import FakeZaloServer

runner = CliRunner()
T = TypeVar("T")

SECRET = "doctor-webhook-secret-42"


@contextlib.contextmanager
def in_thread(manager: AbstractAsyncContextManager[T]) -> Iterator[T]:
    """Run an async context manager (a fake server) on its own event loop in a thread, so
    the command under test can run its own loop in this one."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        value = asyncio.run_coroutine_threadsafe(manager.__aenter__(), loop).result(10)
        try:
            yield value
        finally:
            asyncio.run_coroutine_threadsafe(manager.__aexit__(None, None, None), loop).result(10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in (
        "TELEGRAM_BOT_TOKEN",
        "ZALO_BOT_TOKEN",
        "WEBHOOK_BASE_URL",
        "WEBHOOK_SECRET",
        "KNOWLEDGE_DIR",
        "DATABASE_URL",
        "TIMEZONE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def migrated_db(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A fresh SQLite file brought to head by `troly db upgrade` (the real migrations)."""
    path = tmp_path / "migrated.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{path}")
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    return path


def doctor(*args: str) -> tuple[int, list[str]]:
    result = runner.invoke(app, ["doctor", *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output.splitlines()


def line(lines: list[str], name: str) -> str:
    [found] = [text for text in lines if text[2:].startswith(f"{name}:")]
    return found


@contextlib.contextmanager
def telegram(monkeypatch: pytest.MonkeyPatch, api: FakeBotAPI) -> Iterator[FakeBotAPI]:
    with in_thread(api) as running:
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
        monkeypatch.setenv("TELEGRAM_API_BASE_URL", running.url)
        yield running


# --------------------------------------------------------------------------- all is well


def test_all_checks_pass(monkeypatch: pytest.MonkeyPatch, migrated_db: Path) -> None:
    api = FakeBotAPI(
        webhook_info={
            "url": "https://troly.example.vn/webhook/telegram",
            "has_custom_certificate": False,
            "pending_update_count": 3,
        }
    )
    with telegram(monkeypatch, api):
        monkeypatch.setenv("WEBHOOK_BASE_URL", "https://troly.example.vn")
        monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
        code, lines = doctor()
    output = "\n".join(lines)
    assert code == 0, output
    assert line(lines, "Cấu hình").startswith("✓ Cấu hình: hợp lệ (kênh: Telegram; chế độ: webhook")
    assert line(lines, "Cơ sở dữ liệu").startswith(
        "✓ Cơ sở dữ liệu: kết nối được, lược đồ mới nhất"
    )
    assert line(lines, "Kho kiến thức").startswith("✓ Kho kiến thức: hợp lệ (")
    assert line(lines, "Telegram") == "✓ Telegram: token hợp lệ (@fake_bot, id 123456789)"
    assert line(lines, "Telegram webhook") == (
        "✓ Telegram webhook: https://troly.example.vn/webhook/telegram, 3 cập nhật đang chờ"
    )
    assert line(lines, "Zalo") == "– Zalo: chưa cấu hình (ZALO_BOT_TOKEN trống)"
    assert lines[-1] == "Mọi kiểm tra đều đạt."
    assert TOKEN not in output and TOKEN.split(":")[1] not in output
    assert SECRET not in output


def test_zalo_token_accepted(monkeypatch: pytest.MonkeyPatch, migrated_db: Path) -> None:
    with in_thread(FakeZaloServer.start()) as zalo:
        monkeypatch.setenv("ZALO_BOT_TOKEN", ZALO_TOKEN)
        monkeypatch.setenv("ZALO_API_BASE_URL", zalo.base_url)
        code, lines = doctor()
    assert code == 0, lines
    assert line(lines, "Zalo") == "✓ Zalo: token hợp lệ (Trợ lý Kết luận, id 1122334455)"
    assert ZALO_TOKEN not in "\n".join(lines)


def test_the_real_command_in_a_subprocess(migrated_db: Path, tmp_path: Path) -> None:
    """As the operator types it: `python -m bot doctor`, its exit code and its lines."""
    result = subprocess.run(
        [sys.executable, "-m", "bot", "doctor"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env={**_environ(), "DATABASE_URL": f"sqlite+aiosqlite:///{migrated_db}"},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "✓ Cơ sở dữ liệu: kết nối được" in result.stdout
    assert result.stderr == ""


def _environ() -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELEGRAM_", "ZALO_"))}
    env["PYTHONPATH"] = str(ROOT)
    return env


# --------------------------------------------------------------------------- failures


def test_unmigrated_database_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{empty}")
    code, lines = doctor()
    assert code == 1
    assert line(lines, "Cơ sở dữ liệu").startswith(
        "✗ Cơ sở dữ liệu: kết nối được nhưng chưa có bảng nào (chưa chạy migration) — chạy "
        "`troly db upgrade`"
    )
    assert lines[-1] == "Có 1 mục chưa đạt."


def test_database_behind_head_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    assert runner.invoke(app, ["db", "upgrade", "0001"]).exit_code == 0
    code, lines = doctor()
    assert code == 1
    assert line(lines, "Cơ sở dữ liệu").startswith("✗ Cơ sở dữ liệu: lược đồ ở phiên bản 0001, mã")


def test_missing_sqlite_file_is_reported_not_created(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = tmp_path / "var" / "none.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{missing}")
    code, lines = doctor()
    assert code == 1
    assert line(lines, "Cơ sở dữ liệu").startswith(f"✗ Cơ sở dữ liệu: chưa có tệp {missing}")
    assert not missing.exists()


def test_unreachable_database_hides_the_password(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("DATABASE_URL", f"postgresql+asyncpg://troly:s3cretpw@127.0.0.1:{port}/t")
    code, lines = doctor("--timeout", "5")
    assert code == 1
    assert line(lines, "Cơ sở dữ liệu").startswith("✗ Cơ sở dữ liệu: không kết nối được (")
    assert "s3cretpw" not in "\n".join(lines)


def test_invalid_configuration_is_a_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TIMEZONE", "Sao/Hoa")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "not-a-token-but-secret-xyz")
    code, lines = doctor()
    assert code == 1
    assert lines[0].startswith("✗ Cấu hình: không hợp lệ — ")
    assert "TIMEZONE" in lines[0] and "TELEGRAM_BOT_TOKEN" in lines[0]
    assert lines[1] == "– Các kiểm tra khác: bỏ qua vì cấu hình không hợp lệ"
    assert "not-a-token-but-secret-xyz" not in "\n".join(lines)
    assert "Traceback" not in "\n".join(lines)


def test_rejected_telegram_token(monkeypatch: pytest.MonkeyPatch, migrated_db: Path) -> None:
    """The server knows another token: it answers 401 Unauthorized, as Telegram does."""
    with telegram(monkeypatch, FakeBotAPI(token="987654321:AAOtherTokenTheServerKnows_abcdef")):
        code, lines = doctor()
    output = "\n".join(lines)
    assert code == 1
    assert line(lines, "Telegram").startswith("✗ Telegram: token bị từ chối (")
    assert "Unauthorized" in line(lines, "Telegram")
    assert "Telegram webhook" not in output  # nothing to ask with a refused token
    assert TOKEN not in output and TOKEN.split(":")[1] not in output


def test_rejected_zalo_token(monkeypatch: pytest.MonkeyPatch, migrated_db: Path) -> None:
    with in_thread(FakeZaloServer.start(token="999:another-zalo-token")) as zalo:
        monkeypatch.setenv("ZALO_BOT_TOKEN", ZALO_TOKEN)
        monkeypatch.setenv("ZALO_API_BASE_URL", zalo.base_url)
        code, lines = doctor()
    assert code == 1
    assert line(lines, "Zalo").startswith("✗ Zalo: token bị từ chối (")
    assert ZALO_TOKEN not in "\n".join(lines)


def test_silent_bot_api_times_out(monkeypatch: pytest.MonkeyPatch, migrated_db: Path) -> None:
    """A server that accepts the connection and never answers: a clear line, in time."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
        monkeypatch.setenv("TELEGRAM_API_BASE_URL", url)
        code, lines = doctor("--timeout", "1")
    assert code == 1
    assert line(lines, "Telegram").startswith(
        "✗ Telegram: không có phản hồi sau 1 giây (127.0.0.1:"
    )
    assert TOKEN not in "\n".join(lines)


def test_webhook_errors_are_shown(monkeypatch: pytest.MonkeyPatch, migrated_db: Path) -> None:
    api = FakeBotAPI(
        webhook_info={
            "url": "https://old.example.vn/webhook/telegram",
            "has_custom_certificate": False,
            "pending_update_count": 12,
            "last_error_date": 1760000000,
            "last_error_message": "Wrong response from the webhook: 502 Bad Gateway",
        }
    )
    with telegram(monkeypatch, api):
        monkeypatch.setenv("WEBHOOK_BASE_URL", "https://troly.example.vn")
        monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
        code, lines = doctor()
    webhook = line(lines, "Telegram webhook")
    assert code == 0  # a warning, not a failure: `troly run` sets the webhook again
    assert webhook.startswith("! Telegram webhook: https://old.example.vn/webhook/telegram, 12 cập")
    assert "cấu hình cần https://troly.example.vn/webhook/telegram" in webhook
    assert "lỗi gần nhất lúc 09/10/2025 15:53: Wrong response from the webhook: 502" in webhook


def test_a_token_in_an_error_message_is_redacted(
    monkeypatch: pytest.MonkeyPatch, migrated_db: Path
) -> None:
    """Whatever the server says, a token-shaped text in it never reaches the screen."""
    api = FakeBotAPI(
        webhook_info={
            "url": "",
            "has_custom_certificate": False,
            "pending_update_count": 0,
            "last_error_message": f"failed POST https://x/bot{TOKEN}/getUpdates",
        }
    )
    with telegram(monkeypatch, api):
        code, lines = doctor()
    output = "\n".join(lines)
    assert code == 0
    assert "lỗi gần nhất" in line(lines, "Telegram webhook")
    assert TOKEN not in output and TOKEN.split(":")[1] not in output
