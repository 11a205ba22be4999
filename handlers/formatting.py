"""How dates, times and numbers are written for officials."""

from __future__ import annotations

from datetime import date, datetime

__all__ = [
    "CHANNEL_NAMES",
    "WEEKDAY_NAMES",
    "channel_name",
    "vn_date",
    "vn_datetime",
    "vn_number",
]

CHANNEL_NAMES = {"telegram": "Telegram", "zalo": "Zalo", "console": "máy tính"}


def channel_name(channel: str, *, capitalised: bool = False) -> str:
    """``Telegram``, ``Zalo``, ``máy tính`` (the terminal; ``Máy tính`` in a column)."""
    name = CHANNEL_NAMES.get(channel, channel)
    return name[:1].upper() + name[1:] if capitalised else name


WEEKDAY_NAMES = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ nhật")


def vn_date(value: date) -> str:
    """``20/8/2025`` (no zero padding, as officials write it)."""
    return f"{value.day}/{value.month}/{value.year}"


def vn_datetime(value: datetime) -> str:
    """``19:44 ngày 23/11/2026`` (``value`` already in local time)."""
    return f"{value:%H:%M} ngày {vn_date(value)}"


def vn_number(value: int) -> str:
    """``44.040`` (dot as thousands separator)."""
    return f"{value:,}".replace(",", ".")
