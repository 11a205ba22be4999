"""Channel-agnostic message types. Adapters translate to and from these; nothing here knows
Telegram, Zalo or the terminal."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "Button",
    "Image",
    "IncomingMessage",
    "MessageKind",
    "Reply",
    "UserRef",
    "utcnow",
]

# Telegram limits callback_data to 64 bytes (not characters): payloads are short ascii ids.
MAX_PAYLOAD_BYTES = 64

MessageKind = Literal["text", "button", "media", "unsupported"]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class UserRef:
    """A person on one channel. Ids are strings on every channel."""

    channel: str
    user_id: str


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    channel: str
    user_id: str
    chat_id: str
    text: str | None = None
    payload: str | None = None
    kind: MessageKind = "text"
    user_name: str | None = None
    message_id: str | None = None
    received_at: datetime = field(default_factory=utcnow)

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
    label: str
    payload: str

    def __post_init__(self) -> None:
        size = len(self.payload.encode("utf-8"))
        if not 0 < size <= MAX_PAYLOAD_BYTES:
            raise ValueError(f"button payload must be 1-{MAX_PAYLOAD_BYTES} bytes, got {size}")


@dataclass(frozen=True, slots=True)
class Image:
    data: bytes
    filename: str = "image.png"
    caption: str | None = None


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
