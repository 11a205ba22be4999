"""Settings fail fast with a message naming the variable, never echoing a secret."""

from __future__ import annotations

import pytest

from bot.settings import SettingsError, load_settings

SECRET = "123456:THIS-IS-A-SECRET-TOKEN-VALUE_xyz"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    for name in (
        "DATABASE_URL",
        "TELEGRAM_BOT_TOKEN",
        "ZALO_BOT_TOKEN",
        "TIMEZONE",
        "WEBHOOK_BASE_URL",
        "WEBHOOK_SECRET",
        "TELEGRAM_API_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults() -> None:
    settings = load_settings()
    assert settings.database_url == "sqlite+aiosqlite:///var/troly.db"
    assert settings.timezone == "Asia/Ho_Chi_Minh"
    assert settings.telegram_api_base_url == "https://api.telegram.org"
    assert settings.telegram_bot_token is None


def test_plain_database_urls_get_async_drivers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1/db")
    assert load_settings().database_url == "postgresql+asyncpg://postgres@127.0.0.1/db"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("DATABASE_URL", "mysql://x/y", "DATABASE_URL"),
        ("TIMEZONE", "Mars/Olympus", "TIMEZONE: không có múi giờ"),
        ("TELEGRAM_API_BASE_URL", "ftp://x", "TELEGRAM_API_BASE_URL: phải là địa chỉ bắt đầu"),
        ("WEBHOOK_BASE_URL", "https://bot.example.org", "cần đặt WEBHOOK_SECRET"),
        # pydantic's own checks, said in Vietnamese too
        ("METRICS_PORT", "0", "METRICS_PORT: phải từ 1 trở lên"),
        ("WEBHOOK_PORT", "70000", "WEBHOOK_PORT: không được lớn hơn 65535"),
        ("OVERDUE_EVERY_DAYS", "ba", "OVERDUE_EVERY_DAYS: phải là số nguyên"),
        ("TELEGRAM_RATE", "0", "TELEGRAM_RATE: phải lớn hơn 0\n"),
        # a reminder schedule that cannot work (the console's form says the same)
        ("NON_WORKING_DAYS", "mon,tue,wed,thu,fri,sat,sun", "NON_WORKING_DAYS: phải còn ít"),
        ("QUIET_HOURS", "21:00-21:00", "QUIET_HOURS: giờ bắt đầu và giờ kết thúc phải khác"),
        ("OVERDUE_MAX_REMINDERS", "31", "OVERDUE_MAX_REMINDERS: không được lớn hơn 30"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert str(caught.value).startswith("Cấu hình không hợp lệ:\n  ")
    assert expected in str(caught.value) + "\n"


def test_malformed_token_is_named_but_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    bad = "not a token but a secret nevertheless"
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", bad)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "TELEGRAM_BOT_TOKEN" in str(caught.value)
    assert bad not in str(caught.value)


def test_tokens_are_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", SECRET)
    settings = load_settings()
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings.model_dump())
    assert settings.telegram_bot_token is not None
    assert settings.telegram_bot_token.get_secret_value() == SECRET


def test_blank_token_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "  ")
    assert load_settings().telegram_bot_token is None
