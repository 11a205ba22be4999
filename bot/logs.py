"""Logging set-up with secret redaction: tokens and invitation codes never reach a log
line."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from bot.redaction import redact_codes, redact_user

__all__ = [
    "LOG_CONTEXT",
    "JsonFormatter",
    "RedactingFilter",
    "log_context",
    "redact",
    "setup_logging",
]

# What the message being handled is (channel, route, user: a redacted id), for JSON lines.
# Set by App.handle; a record's own ``extra={"channel": ...}`` wins over it.
LOG_CONTEXT: ContextVar[dict[str, str] | None] = ContextVar("troly_log_context", default=None)
_CONTEXT_FIELDS = ("channel", "route", "user")

# Telegram-style tokens and anything after /bot in an API URL.
_TOKEN_PATTERNS = (
    re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{20,}\b"),
    re.compile(r"(/bot)([^/\s]+)(/)"),
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _TOKEN_PATTERNS[0].sub("***", text)
    return redact_codes(_TOKEN_PATTERNS[1].sub(r"\1***\3", text)) or ""


class RedactingFilter(logging.Filter):
    """Rewrites every record's final message (and traceback) with secrets masked."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        record.msg = redact(message, self.secrets)
        record.args = None
        return True


@contextmanager
def log_context(**fields: str | None) -> Iterator[dict[str, str]]:
    """Log lines inside the block carry ``fields`` (``user`` is redacted here); the dict
    yielded may be updated (the route, once known)."""
    current = {k: v for k, v in fields.items() if v is not None}
    if "user" in current:
        current["user"] = redact_user(current["user"])
    token = LOG_CONTEXT.set(current)
    try:
        yield current
    finally:
        LOG_CONTEXT.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (ISO 8601, UTC), ``level``, ``logger``,
    ``message``; ``channel``, ``route`` and ``user`` (redacted) when known; ``exception``
    when there is one. Message and exception go through :func:`redact` (as the
    :class:`RedactingFilter` does before: a formatter used alone stays safe)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, str] = {
            "time": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage(), self.secrets),
        }
        context = LOG_CONTEXT.get() or {}
        for name in _CONTEXT_FIELDS:
            value = getattr(record, name, None) or context.get(name)
            if value:
                value = str(value)
                line[name] = redact_user(value) if name == "user" else redact(value, self.secrets)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = redact(record.exc_text, self.secrets)
        if record.stack_info:
            line["stack"] = redact(self.formatStack(record.stack_info), self.secrets)
        return json.dumps(line, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted (not the stream of the
    moment it was set up, which a test runner or a redirect may have closed since)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def setup_logging(
    level: str = "INFO", secrets: Iterable[str] = (), log_format: str = "text"
) -> None:
    secrets = [s for s in secrets if s]
    handler = _StderrHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter(secrets))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # Library chatter (every long-poll request) stays at WARNING unless debugging.
    for name in (
        "aiogram.event",
        "aiohttp.access",
        "bm25s",
        "apscheduler.executors.default",
    ):
        logging.getLogger(name).setLevel(logging.WARNING if level != "DEBUG" else logging.DEBUG)
