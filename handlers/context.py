"""What a handler gets besides the message: one DB session and the shared services."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol
from zoneinfo import ZoneInfo

from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage.models import Conversation
from knowledge import Knowledge

if TYPE_CHECKING:
    from handlers.people import Identity

__all__ = ["Context", "LogEntry", "SessionSource", "UserError"]


@dataclass(slots=True)
class LogEntry:
    """The message log row of the message being handled, as a plain record (what the
    assistant made of it: the handlers set ``route`` and, for answers, the entry and score);
    dispatch writes it in one statement."""

    channel: str
    user_id: str
    chat_id: str
    kind: str
    text: str | None
    update_key: str | None
    created_at: datetime
    route: str | None = None
    entry_id: str | None = None
    score: float | None = None
    matched: bool | None = None
    id: int | None = None


class UserError(Exception):
    """A problem the user can fix; its message (Vietnamese) is the reply. Raised anywhere in a
    handler, it rolls the handler's changes back and is turned into a reply by dispatch."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SessionSource(Protocol):
    """Where a handler's session comes from: the message's transaction, which opens it on
    first use (answering a question needs none)."""

    @property
    def session(self) -> AsyncSession: ...


@dataclass
class Context:
    transaction: SessionSource
    knowledge: Knowledge
    now: datetime
    zone: ZoneInfo
    conversation: Conversation
    log: LogEntry
    buttons: bool
    bot_username: str | None = None
    conversation_timeout_minutes: int = 30
    identity: Identity | None = None  # the enrolled person writing, if any
    # The first moment a push may go out from a given time (quiet hours, days off).
    push_window: Callable[[datetime], datetime] | None = None
    in_group: bool = False  # the message came from a group chat
    channels: frozenset[str] = field(default_factory=frozenset)  # messengers configured

    @property
    def session(self) -> AsyncSession:
        """The ORM session of this message's transaction (committed by dispatch)."""
        return self.transaction.session

    @property
    def local_now(self) -> datetime:
        return self.now.astimezone(self.zone)
