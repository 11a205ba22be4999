"""Tables. Every timestamp is timezone-aware UTC, set by a ``default_factory``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from bot.core import utcnow
from bot.storage.types import UTCDateTime

__all__ = ["Conversation", "MessageLog"]


class MessageLog(SQLModel, table=True):
    """Every incoming message, as received, with what the assistant made of it."""

    __tablename__ = "message_log"

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    user_id: str = Field(max_length=64)
    chat_id: str = Field(max_length=64)
    kind: str = Field(max_length=16)
    text: str | None = Field(default=None, sa_type=Text)
    route: str | None = Field(default=None, max_length=32)
    entry_id: str | None = Field(default=None, max_length=100)
    score: float | None = None
    matched: bool | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)


class Conversation(SQLModel, table=True):
    """Per-person conversation state, kept in the database so it survives a restart.

    ``choices`` holds the payloads last offered as numbered options (channels without
    buttons); ``flow``/``step``/``data`` hold a multi-step flow in progress.
    """

    __tablename__ = "conversation"
    __table_args__ = (UniqueConstraint("channel", "user_id", name="uq_conversation_user"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    user_id: str = Field(max_length=64)
    flow: str | None = Field(default=None, max_length=32)
    step: str | None = Field(default=None, max_length=32)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    choices: list[str] = Field(default_factory=list, sa_type=JSON)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
