"""What a handler gets besides the message: one DB session and the shared services."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage.models import Conversation, MessageLog
from knowledge import Knowledge

if TYPE_CHECKING:
    from handlers.people import Identity

__all__ = ["Context", "UserError"]


class UserError(Exception):
    """A problem the user can fix; its message (Vietnamese) is the reply. Raised anywhere in a
    handler, it rolls the handler's changes back and is turned into a reply by dispatch."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Context:
    session: AsyncSession
    knowledge: Knowledge
    now: datetime
    zone: ZoneInfo
    conversation: Conversation
    log: MessageLog
    buttons: bool
    bot_username: str | None = None
    conversation_timeout_minutes: int = 30
    identity: Identity | None = None  # the enrolled person writing, if any
    # The first moment a push may go out from a given time (quiet hours, days off).
    push_window: Callable[[datetime], datetime] | None = None
    in_group: bool = False  # the message came from a group chat
    channels: frozenset[str] = field(default_factory=frozenset)  # messengers configured

    @property
    def local_now(self) -> datetime:
        return self.now.astimezone(self.zone)
