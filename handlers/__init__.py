"""Use cases, channel-agnostic: ``async (IncomingMessage, Context) -> Reply | None``.

``ROUTES`` is the one ordered route list; the question-answering fallback is last.
"""

from __future__ import annotations

from handlers import basic, qa
from handlers.context import Context, UserError
from handlers.routing import Handler, HandlerResult, Route

__all__ = ["ROUTES", "Context", "Handler", "HandlerResult", "Route", "UserError"]

ROUTES: tuple[Route, ...] = (
    Route("media", basic.media, kinds=frozenset({"media", "unsupported"})),
    Route("start", basic.start, commands=frozenset({"start"})),
    Route("help", basic.help_reply, commands=frozenset({"help", "huongdan"})),
    Route("ask", qa.ask, commands=frozenset({"hoi"})),
    Route("qa_pick", qa.pick_suggestion, payload_prefix=qa.SUGGESTION_PREFIX),
    Route("unknown_command", basic.unknown_command, when=lambda m, _: m.command is not None),
    Route("stale_button", basic.stale_button, kinds=frozenset({"button"})),
    Route("qa", qa.ask, fallback=True),
)
