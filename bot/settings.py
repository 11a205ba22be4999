"""One settings class, read from the environment and ``.env``, validated at start-up."""

from __future__ import annotations

import re
from datetime import date, time
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from knowledge import default_knowledge_dir

__all__ = ["Settings", "SettingsError", "load_settings"]

_TELEGRAM_TOKEN_RE = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


class SettingsError(Exception):
    """A setting is missing or wrong; the message names the variable, never a secret."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", validate_default=True
    )

    database_url: str = "sqlite+aiosqlite:///var/troly.db"
    timezone: str = "Asia/Ho_Chi_Minh"
    knowledge_dir: Path = Field(default_factory=default_knowledge_dir)
    # The validated, indexed knowledge base is cached here (empty: no cache).
    knowledge_cache_dir: Path | None = Path("var/cache")
    tasks_dir: Path | None = None
    log_level: str = "INFO"
    log_format: str = "text"  # "json": one JSON object per line

    # Prometheus metrics: /metrics on the webhook server; METRICS_PORT adds a server of its
    # own (the only one in polling mode). METRICS_TOKEN: scrapes must send it as a bearer.
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_token: SecretStr | None = None

    # Telegram
    telegram_bot_token: SecretStr | None = None
    telegram_api_base_url: str = "https://api.telegram.org"
    telegram_bot_username: str | None = None

    # Zalo
    zalo_bot_token: SecretStr | None = None
    zalo_api_base_url: str = "https://bot-api.zaloplatforms.com"
    zalo_poll_timeout: int = Field(default=30, ge=1, le=120)

    # Webhook mode (both channels share one aiohttp server). Polling when no URL is set.
    webhook_base_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_host: str = "127.0.0.1"
    webhook_port: int = Field(default=8080, ge=1, le=65535)

    # The web console: on the webhook server in webhook mode, on WEB_PORT (at WEBHOOK_HOST)
    # in polling mode. WEB_BASE_URL is the address in sign-in links (default WEBHOOK_BASE_URL).
    web_base_url: str | None = None
    web_port: int | None = Field(default=None, ge=1, le=65535)

    # Pushes: reminders, escalations, digests, broadcasts
    reminder_offsets_days: str = "7,3,1,0"  # days before the deadline (0: its morning)
    reminder_time: str = "08:00"
    overdue_every_days: int = Field(default=3, ge=1)
    overdue_max_reminders: int = Field(default=3, ge=0)
    quiet_hours: str = "21:00-07:00"  # local; empty for none
    non_working_days: str = ""  # e.g. "sun" or "sat,sun,2025-09-02"
    misfire_grace_hours: float = Field(default=12.0, ge=0)
    weekly_digest: str = "mon 08:00"  # empty: no digest
    telegram_rate: float = Field(default=25.0, gt=0)  # messages per second, whole bot
    zalo_rate: float = Field(default=10.0, gt=0)
    per_chat_interval: float = Field(default=1.0, ge=0)  # seconds between two to one chat

    # Conversation behaviour
    flood_limit_per_minute: int = Field(default=20, ge=1)
    conversation_timeout_minutes: int = Field(default=30, ge=1)

    @field_validator("database_url")
    @classmethod
    def _async_database_url(cls, value: str) -> str:
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in _ASYNC_DRIVERS:
            raise ValueError(
                "must be an SQLAlchemy URL such as sqlite+aiosqlite:///var/troly.db or "
                "postgresql+asyncpg://user@host/db"
            )
        return f"{_ASYNC_DRIVERS[scheme]}://{rest}"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator(
        "telegram_bot_token",
        "zalo_bot_token",
        "webhook_secret",
        "knowledge_cache_dir",
        "metrics_port",
        "metrics_token",
        "web_base_url",
        "web_port",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("telegram_bot_token")
    @classmethod
    def _telegram_token_shape(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not _TELEGRAM_TOKEN_RE.match(value.get_secret_value()):
            raise ValueError("does not look like a bot token from @BotFather (digits:letters)")
        return value

    @field_validator(
        "telegram_api_base_url", "zalo_api_base_url", "webhook_base_url", "web_base_url"
    )
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
        return upper

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        lower = value.strip().lower()
        if lower not in {"text", "json"}:
            raise ValueError("must be text or json")
        return lower

    @field_validator("metrics_host")
    @classmethod
    def _metrics_host(cls, value: str) -> str:
        value = value.strip()
        if not value or any(c.isspace() or c in "/@" for c in value):
            raise ValueError("must be a host name or address to listen on, e.g. 127.0.0.1")
        return value

    @field_validator("reminder_offsets_days")
    @classmethod
    def _offsets(cls, value: str) -> str:
        parts = [p.strip() for p in value.split(",") if p.strip()]
        if not all(p.isdigit() and int(p) <= 365 for p in parts):
            raise ValueError("must be whole numbers of days separated by commas, e.g. 7,3,1,0")
        return ",".join(parts)

    @field_validator("reminder_time")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        _parse_time(value)
        return value.strip()

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: str) -> str:
        value = value.strip()
        if value:
            start, sep, end = value.partition("-")
            if not sep:
                raise ValueError("must look like 21:00-07:00 (or be empty)")
            _parse_time(start)
            _parse_time(end)
        return value

    @field_validator("non_working_days")
    @classmethod
    def _days(cls, value: str) -> str:
        for part in (p.strip().lower() for p in value.split(",") if p.strip()):
            if part in _WEEKDAYS:
                continue
            try:
                date.fromisoformat(part)
            except ValueError:
                raise ValueError(
                    f"{part!r} is neither a weekday (mon..sun) nor a date YYYY-MM-DD"
                ) from None
        return value.strip()

    @field_validator("weekly_digest")
    @classmethod
    def _digest(cls, value: str) -> str:
        value = value.strip().lower()
        if value:
            day, _, at = value.partition(" ")
            if day not in _WEEKDAYS:
                raise ValueError("must look like 'mon 08:00' (or be empty)")
            _parse_time(at)
        return value

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        if self.webhook_base_url and self.webhook_secret is None:
            raise ValueError(
                "WEBHOOK_SECRET is required when WEBHOOK_BASE_URL is set "
                "(a random string of letters, digits, _ and -)"
            )
        if self.webhook_secret is not None and not re.match(
            r"^[A-Za-z0-9_-]{8,256}$", self.webhook_secret.get_secret_value()
        ):
            raise ValueError("WEBHOOK_SECRET must be 8-256 characters of A-Z, a-z, 0-9, _ and -")
        return self

    @model_validator(mode="after")
    def _metrics_server(self) -> Settings:
        if self.metrics_token is not None and not re.match(
            r"^[A-Za-z0-9._~+/=-]{16,256}$", self.metrics_token.get_secret_value()
        ):
            raise ValueError(
                "METRICS_TOKEN must be 16-256 characters of A-Z, a-z, 0-9 and . _ ~ + / = -"
            )
        if self.webhook_base_url and self.metrics_port == self.webhook_port:
            raise ValueError(
                "METRICS_PORT must differ from WEBHOOK_PORT (the webhook server serves "
                "/metrics already: leave METRICS_PORT empty)"
            )
        return self

    @model_validator(mode="after")
    def _web_server(self) -> Settings:
        if self.web_port is not None and self.web_port in {
            self.metrics_port,
            self.webhook_port if self.webhook_base_url else None,
        }:
            raise ValueError(
                "WEB_PORT must differ from METRICS_PORT and WEBHOOK_PORT (in webhook mode the "
                "console is served on the webhook server: leave WEB_PORT empty)"
            )
        return self

    @property
    def console_base_url(self) -> str | None:
        """The web console's address in sign-in links: WEB_BASE_URL, else WEBHOOK_BASE_URL."""
        return self.web_base_url or self.webhook_base_url

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _parse_time(value: str) -> time:
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", value)
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ValueError(f"{value!r} is not a time of day like 08:00")
    return time(int(match.group(1)), int(match.group(2)))


def load_settings(**overrides: object) -> Settings:
    """Build :class:`Settings` or raise :class:`SettingsError` naming each bad variable.

    Error texts are built from the field name and pydantic's message only: the offending
    value is never echoed, so a malformed token cannot leak into logs.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_input=False, include_url=False):
            names = [str(part).upper() for part in error["loc"] if part != "__root__"]
            message = str(error["msg"]).removeprefix("Value error, ")
            where = ".".join(names) if names else "settings"
            lines.append(f"{where}: {message}")
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(lines)) from None
