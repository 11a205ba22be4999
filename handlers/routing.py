"""Routes: which handler takes a message. One ordered list; the first match wins."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bot.core import IncomingMessage, Reply
from handlers.context import Context

__all__ = ["Handler", "HandlerResult", "Route"]

HandlerResult = Reply | list[Reply] | None
Handler = Callable[[IncomingMessage, Context], Awaitable[HandlerResult]]
Predicate = Callable[[IncomingMessage, Context], bool]


@dataclass(frozen=True)
class Route:
    """``commands``: slash commands; ``payload_prefix``: button payloads; ``flow``: a
    conversation flow in progress; ``when``: any other condition; ``fallback``: everything.

    ``private``: a personal or administrative use case. In a group chat it never runs: asked
    for explicitly (its command, button or condition) it gets a pointer to the private chat;
    a flow in progress is not continued from a group."""

    name: str
    handler: Handler
    commands: frozenset[str] = frozenset()
    payload_prefix: str | None = None
    flow: str | None = None
    when: Predicate | None = None
    kinds: frozenset[str] = frozenset()
    fallback: bool = False
    private: bool = False

    def explicitly_matches(self, msg: IncomingMessage, ctx: Context) -> bool:
        """Asked for by its command, its button or its condition (not by a flow)."""
        command = msg.command
        if self.commands and command is not None and command[0] in self.commands:
            return True
        if (
            self.payload_prefix is not None
            and msg.kind == "button"
            and (msg.payload or "").startswith(self.payload_prefix)
        ):
            return True
        return self.when is not None and self.when(msg, ctx)

    def matches(self, msg: IncomingMessage, ctx: Context) -> bool:
        if self.fallback:
            return True
        if self.kinds and msg.kind in self.kinds:
            return True
        if self.commands:
            command = msg.command
            if command is not None and command[0] in self.commands:
                return True
        if (
            self.payload_prefix is not None
            and msg.kind == "button"
            and (msg.payload or "").startswith(self.payload_prefix)
        ):
            return True
        if self.flow is not None and msg.kind == "text" and ctx.conversation.flow == self.flow:
            return msg.command is None
        return self.when is not None and self.when(msg, ctx)
