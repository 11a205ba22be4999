"""One settings class, read from the environment and ``.env``, validated at start-up."""

from __future__ import annotations

import re
from datetime import date, time
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from knowledge import default_knowledge_dir

__all__ = [
    "WEEKDAYS",
    "PushSchedule",
    "Settings",
    "SettingsError",
    "load_settings",
    "validation_messages",
]

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


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # as .env writes them


def _parse_time(value: str) -> time:
    match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", value)
    if not match or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ValueError(f"{value!r} không phải giờ trong ngày dạng 08:00")
    return time(int(match.group(1)), int(match.group(2)))


class PushSchedule(BaseModel):
    """The reminder schedule: when reminders go out, and when no push may.

    Read from the environment as part of :class:`Settings` (``REMINDER_TIME``, ...); a root
    admin may replace it from the web console (stored in the database, see
    ``scheduler.schedule``), validated by this same model, so both paths accept the same
    values and say the same things about a wrong one."""

    reminder_offsets_days: str = "7,3,1,0"  # days before the deadline (0: its morning)
    reminder_time: str = "08:00"
    overdue_every_days: int = Field(default=3, ge=1, le=365)
    overdue_max_reminders: int = Field(default=3, ge=0, le=30)
    quiet_hours: str = "21:00-07:00"  # local; empty for none
    non_working_days: str = ""  # e.g. "sun" or "sat,sun,2025-09-02"
    weekly_digest: str = "mon 08:00"  # empty: no digest

    @field_validator("reminder_offsets_days")
    @classmethod
    def _offsets(cls, value: str) -> str:
        parts = [p.strip() for p in value.split(",") if p.strip()]
        if not all(p.isdigit() and int(p) <= 365 for p in parts):
            raise ValueError("phải là các số ngày (0–365) cách nhau bằng dấu phẩy, ví dụ 7,3,1,0")
        return ",".join(str(n) for n in sorted({int(p) for p in parts}, reverse=True))

    @field_validator("reminder_time")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        return f"{_parse_time(value):%H:%M}"

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, value: str) -> str:
        value = value.strip()
        if value:
            start, sep, end = value.partition("-")
            if not sep:
                raise ValueError("phải có dạng 21:00-07:00 (hoặc để trống)")
            begins, ends = _parse_time(start), _parse_time(end)
            if begins == ends:
                raise ValueError("giờ bắt đầu và giờ kết thúc phải khác nhau")
            return f"{begins:%H:%M}-{ends:%H:%M}"
        return value

    @field_validator("non_working_days")
    @classmethod
    def _days(cls, value: str) -> str:
        parts: list[str] = []
        for part in (p.strip().lower() for p in value.split(",") if p.strip()):
            if part not in WEEKDAYS:
                try:
                    part = date.fromisoformat(part).isoformat()
                except ValueError:
                    raise ValueError(
                        f"{part!r} không phải thứ trong tuần (mon..sun) hay ngày dạng YYYY-MM-DD"
                    ) from None
            if part not in parts:
                parts.append(part)
        if all(day in parts for day in WEEKDAYS):
            raise ValueError("phải còn ít nhất một ngày trong tuần trợ lý được gửi tin")
        return ",".join(parts)

    @field_validator("weekly_digest")
    @classmethod
    def _digest(cls, value: str) -> str:
        value = value.strip().lower()
        if value:
            day, _, at = value.partition(" ")
            if day not in WEEKDAYS:
                raise ValueError("phải có dạng 'mon 08:00' (hoặc để trống)")
            return f"{day} {_parse_time(at):%H:%M}"
        return value

    @property
    def push_schedule(self) -> PushSchedule:
        """The schedule's fields alone (from :class:`Settings`, the ``.env`` schedule)."""
        return PushSchedule.model_validate(self.model_dump(include=set(PushSchedule.model_fields)))


class Settings(BaseSettings, PushSchedule):
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

    # Pushes (the reminder schedule's fields are PushSchedule's, above)
    misfire_grace_hours: float = Field(default=12.0, ge=0)
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
                "phải là địa chỉ SQLAlchemy, ví dụ sqlite+aiosqlite:///var/troly.db hoặc "
                "postgresql+asyncpg://user@host/db"
            )
        return f"{_ASYNC_DRIVERS[scheme]}://{rest}"

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"không có múi giờ {value!r} (ví dụ: Asia/Ho_Chi_Minh)") from None
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
            raise ValueError("không giống token bot do @BotFather cấp (dạng số:chữ)")
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
            raise ValueError("phải là địa chỉ bắt đầu bằng http:// hoặc https://")
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("phải là DEBUG, INFO, WARNING hoặc ERROR")
        return upper

    @field_validator("log_format")
    @classmethod
    def _log_format(cls, value: str) -> str:
        lower = value.strip().lower()
        if lower not in {"text", "json"}:
            raise ValueError("phải là text hoặc json")
        return lower

    @field_validator("metrics_host")
    @classmethod
    def _metrics_host(cls, value: str) -> str:
        value = value.strip()
        if not value or any(c.isspace() or c in "/@" for c in value):
            raise ValueError("phải là tên máy hoặc địa chỉ để lắng nghe, ví dụ 127.0.0.1")
        return value

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        if self.webhook_base_url and self.webhook_secret is None:
            raise ValueError(
                "cần đặt WEBHOOK_SECRET khi đã đặt WEBHOOK_BASE_URL "
                "(một chuỗi ngẫu nhiên gồm chữ, số, _ và -)"
            )
        if self.webhook_secret is not None and not re.match(
            r"^[A-Za-z0-9_-]{8,256}$", self.webhook_secret.get_secret_value()
        ):
            raise ValueError("WEBHOOK_SECRET phải dài 8–256 ký tự, chỉ gồm A-Z, a-z, 0-9, _ và -")
        return self

    @model_validator(mode="after")
    def _metrics_server(self) -> Settings:
        if self.metrics_token is not None and not re.match(
            r"^[A-Za-z0-9._~+/=-]{16,256}$", self.metrics_token.get_secret_value()
        ):
            raise ValueError(
                "METRICS_TOKEN phải dài 16–256 ký tự, chỉ gồm A-Z, a-z, 0-9 và . _ ~ + / = -"
            )
        if self.webhook_base_url and self.metrics_port == self.webhook_port:
            raise ValueError(
                "METRICS_PORT phải khác WEBHOOK_PORT (máy chủ webhook đã có /metrics: "
                "để trống METRICS_PORT)"
            )
        return self

    @model_validator(mode="after")
    def _web_server(self) -> Settings:
        if self.web_port is not None and self.web_port in {
            self.metrics_port,
            self.webhook_port if self.webhook_base_url else None,
        }:
            raise ValueError(
                "WEB_PORT phải khác METRICS_PORT và WEBHOOK_PORT (ở chế độ webhook, trang quản "
                "trị chạy trên máy chủ webhook: để trống WEB_PORT)"
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


def load_settings(**overrides: object) -> Settings:
    """Build :class:`Settings` or raise :class:`SettingsError` naming each bad variable.

    Error texts are built from the field name and pydantic's message only: the offending
    value is never echoed, so a malformed token cannot leak into logs.
    """
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = [
            f"{name.upper()}: {message}" if name else message
            for name, message in validation_messages(exc)
        ]
        raise SettingsError("Cấu hình không hợp lệ:\n  " + "\n  ".join(lines)) from None


def validation_messages(exc: ValidationError) -> list[tuple[str, str]]:
    """(field name, Vietnamese message) of each error of ``exc``, never echoing a value."""
    found = []
    for error in exc.errors(include_input=False, include_url=False):
        name = ".".join(str(part) for part in error["loc"] if part != "__root__")
        found.append((name, _vietnamese(error["type"], error.get("ctx") or {}, str(error["msg"]))))
    return found


# pydantic's own messages for the kinds of values these settings take, in Vietnamese
_MESSAGES = {
    "int_parsing": "phải là số nguyên",
    "int_from_float": "phải là số nguyên",
    "float_parsing": "phải là số",
    "bool_parsing": "phải là true hoặc false",
    "greater_than": "phải lớn hơn {gt}",
    "greater_than_equal": "phải từ {ge} trở lên",
    "less_than": "phải nhỏ hơn {lt}",
    "less_than_equal": "không được lớn hơn {le}",
    "string_type": "phải là một chuỗi ký tự",
    "missing": "chưa đặt",
}


def _vietnamese(kind: str, context: dict[str, object], message: str) -> str:
    """The message of one validation error: ours (``ValueError``) as written, pydantic's
    common ones in Vietnamese, any other as pydantic words it."""
    if kind == "value_error":
        return message.removeprefix("Value error, ")
    template = _MESSAGES.get(kind)
    if template is None:
        return message
    return template.format(
        **{k: f"{v:g}" if isinstance(v, float) else v for k, v in context.items()}
    )
