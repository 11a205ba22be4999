"""Channel-agnostic message types. Adapters translate to and from these; nothing here knows
Telegram, Zalo or the terminal."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "Button",
    "ChatType",
    "DeliveryError",
    "Image",
    "IncomingMessage",
    "Menu",
    "MenuCommand",
    "MessageKind",
    "PermanentFailure",
    "RecipientBlocked",
    "Reply",
    "RetryLater",
    "TemporaryFailure",
    "Transport",
    "UserRef",
    "utcnow",
    "wait_event",
]

# Telegram limits callback_data to 64 bytes (not characters): payloads are short ascii ids.
MAX_PAYLOAD_BYTES = 64

MessageKind = Literal["text", "button", "media", "unsupported"]
ChatType = Literal["private", "group"]


def utcnow() -> datetime:
    return datetime.now(UTC)


async def wait_event(event: asyncio.Event, seconds: float) -> bool:
    """Wait until ``event`` is set or ``seconds`` have passed; True if it is set.

    Instead of ``suppress(TimeoutError)`` around ``wait_for(event.wait(), timeout)``: on
    Python 3.11 a cancellation that arrives as that timeout expires comes out as the
    TimeoutError, which the suppress then swallows — the cancelled task carries on (a sender
    stopped by cancellation hung in its final gather that way). ``asyncio.wait`` never turns a
    cancellation into anything else."""
    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait((waiter,), timeout=seconds)
    finally:
        waiter.cancel()
    return event.is_set()


@dataclass(frozen=True, slots=True)
class UserRef:
    """A person on one channel. Ids are strings on every channel."""

    channel: str
    user_id: str


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """One message or button press. ``chat_type`` "group" covers groups and supergroups;
    there ``addressed`` says whether the assistant was spoken to (a command, a mention, a
    reply to one of its messages) — adapters strip the mention from ``text``.
    ``update_key``: the platform's unique id of this update (a redelivery has the same),
    so that one update is never handled twice."""

    channel: str
    user_id: str
    chat_id: str
    text: str | None = None
    payload: str | None = None
    kind: MessageKind = "text"
    user_name: str | None = None
    message_id: str | None = None
    received_at: datetime = field(default_factory=utcnow)
    chat_type: ChatType = "private"
    addressed: bool = True
    update_key: str | None = None

    @property
    def in_group(self) -> bool:
        return self.chat_type == "group"

    @property
    def user(self) -> UserRef:
        return UserRef(self.channel, self.user_id)

    @property
    def command(self) -> tuple[str, str] | None:
        """``("hoi", "câu hỏi")`` for ``"/hoi câu hỏi"`` or ``"/hoi@TroLyBot câu hỏi"``."""
        if self.kind != "text" or not self.text:
            return None
        text = self.text.strip()
        if not text.startswith("/") or len(text) < 2:
            return None
        head, _, rest = text[1:].partition(" ")
        name = head.split("@", 1)[0].lower()
        if not name or not name.isascii() or not name.replace("_", "").isalnum():
            return None
        return name, rest.strip()


@dataclass(frozen=True, slots=True)
class Button:
    """A choice. ``command``: what to type instead where a channel has no buttons; such a
    choice is never given a number there (a cancel or a stop must not be the number that
    the previous screen used for going forward)."""

    label: str
    payload: str
    command: str | None = None

    def __post_init__(self) -> None:
        size = len(self.payload.encode("utf-8"))
        if not 0 < size <= MAX_PAYLOAD_BYTES:
            raise ValueError(f"button payload must be 1-{MAX_PAYLOAD_BYTES} bytes, got {size}")


@dataclass(frozen=True, slots=True)
class Image:
    """A picture; ``alt_text`` is sent instead where a channel cannot show pictures."""

    data: bytes
    filename: str = "image.png"
    caption: str | None = None
    alt_text: str | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """What a handler wants shown. ``text`` is plain text; adapters escape it.

    ``footer`` (a citation, say) is rendered a little apart, in italics where the channel
    can; ``buttons`` are rows of choices (numbered text where a channel has no buttons).
    """

    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    footer: str | None = None
    image: Image | None = None

    @property
    def flat_buttons(self) -> list[Button]:
        return [button for row in self.buttons for button in row]


MenuCommand = tuple[str, str]  # (command without the slash, description)


@dataclass(frozen=True, slots=True)
class Menu:
    """A command menu (Telegram's "/" menu). ``key`` names it (what is stored per person)."""

    key: str
    commands: tuple[MenuCommand, ...]


# --------------------------------------------------------------------------- pushes
# The outbox sender delivers pushes through a Transport per channel. Adapters implement it
# and translate their platform's failures into these errors; the sender decides what to do.


class DeliveryError(Exception):
    """A push could not be delivered. Messages never contain tokens."""


class RetryLater(DeliveryError):
    """Rate limited (HTTP 429): pause the whole channel for ``retry_after`` seconds."""

    def __init__(self, retry_after: float, message: str = "rate limited") -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RecipientBlocked(DeliveryError):
    """The person blocked the bot (Telegram 403 "bot was blocked by the user", Zalo
    equivalent): push nothing more to them until they write again."""


class TemporaryFailure(DeliveryError):
    """5xx, timeouts, dropped connections: retry with back-off."""


class PermanentFailure(DeliveryError):
    """The platform refused this message for good (400 bad request, chat not found...)."""


class Transport(Protocol):
    """Sends one push to one chat on one channel."""

    channel: str
    buttons: bool  # False: buttons are dropped (texts carry a typed alternative)

    async def deliver(self, chat_id: str, text: str, buttons: Sequence[Sequence[Button]]) -> None:
        """Deliver or raise a :class:`DeliveryError` subclass."""
        ...
