"""Logging set-up with secret redaction: tokens and invitation codes never reach a log
line."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from bot.redaction import redact_codes

__all__ = ["RedactingFilter", "redact", "setup_logging"]

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


def setup_logging(level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler()
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
