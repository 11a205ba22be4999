"""Use cases, channel-agnostic: ``async (IncomingMessage, Context) -> Reply | None``.

``ROUTES`` is the one ordered route list; the question-answering fallback is last.
"""

from __future__ import annotations

from handlers import admin, basic, broadcast, progress, qa
from handlers.context import Context, UserError
from handlers.people import looks_like_code
from handlers.routing import Handler, HandlerResult, Route

__all__ = ["ROUTES", "Context", "Handler", "HandlerResult", "Route", "UserError"]

ROUTES: tuple[Route, ...] = (
    Route("media", basic.media, kinds=frozenset({"media", "unsupported"})),
    Route("start", admin.start, commands=frozenset({"start"})),
    Route("help", admin.help_reply, commands=frozenset({"help", "huongdan"})),
    Route("ask", qa.ask, commands=frozenset({"hoi"})),
    Route("cancel", admin.cancel, commands=frozenset({"huy", "cancel"})),
    Route("me", admin.me, commands=frozenset({"toi"})),
    Route("baocao", progress.start, commands=frozenset({"baocao"})),
    Route("tiendo", admin.progress_view, commands=frozenset({"tiendo"})),
    Route("invite", admin.invite, commands=frozenset({"moi"})),
    Route("broadcast", broadcast.start, commands=frozenset({"thongbao"})),
    Route("qa_pick", qa.pick_suggestion, payload_prefix=qa.SUGGESTION_PREFIX),
    Route("baocao_step", progress.on_button, payload_prefix=progress.PREFIX),
    Route("broadcast_step", broadcast.on_button, payload_prefix=broadcast.PREFIX),
    Route("unknown_command", basic.unknown_command, when=lambda m, _: m.command is not None),
    Route("stale_button", basic.stale_button, kinds=frozenset({"button"})),
    Route("baocao_text", progress.on_text, flow=progress.FLOW),
    Route("broadcast_text", broadcast.on_text, flow=broadcast.FLOW),
    Route("enrol", admin.enrol, when=lambda m, _: looks_like_code(m.text)),
    Route(
        "progress_statement",
        progress.statement,
        when=lambda m, c: c.identity is not None and progress.is_progress_statement(m.text),
    ),
    Route("qa", qa.ask, fallback=True),
)
