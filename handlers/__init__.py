"""Use cases, channel-agnostic: ``async (IncomingMessage, Context) -> Reply | None``.

``ROUTES`` is the one ordered route list; the question-answering fallback is last.
"""

from __future__ import annotations

from bot.storage.models import Conversation
from handlers import admin, basic, broadcast, enrolment, manage, progress, qa, weblogin
from handlers.context import Context, UserError
from handlers.people import looks_like_code
from handlers.routing import Handler, HandlerResult, Route
from knowledge.normalize import fold

__all__ = [
    "PRIVATE_ONLY",
    "ROUTES",
    "Context",
    "Handler",
    "HandlerResult",
    "Route",
    "UserError",
    "expired_notice",
]

_CANCEL_WORDS = frozenset({"huy", "huy bo", "thoi", "thoat", "dung lai", "bo qua", "cancel"})


def _cancel_word(text: str | None) -> bool:
    """«hủy», «thôi», «thoát» typed (without the slash) while a flow waits."""
    return bool(text) and " ".join(fold(text or "").strip(" .!").split()) in _CANCEL_WORDS


PRIVATE_ONLY = Route("private_only", basic.private_only)

ROUTES: tuple[Route, ...] = (
    Route("media", basic.media, kinds=frozenset({"media", "unsupported"})),
    Route("start", admin.start, commands=frozenset({"start"})),
    Route("help", admin.help_reply, commands=frozenset({"help", "huongdan"})),
    Route("ask", qa.ask, commands=frozenset({"hoi"})),
    Route("cancel", admin.cancel, commands=frozenset({"huy", "cancel"}), private=True),
    Route("me", admin.me, commands=frozenset({"toi"}), private=True),
    Route("baocao", progress.start, commands=frozenset({"baocao"}), private=True),
    Route("tiendo", admin.progress_view, commands=frozenset({"tiendo"}), private=True),
    Route("invite", admin.invite, commands=frozenset({"moi"}), private=True),
    Route("broadcast", broadcast.start, commands=frozenset({"thongbao"}), private=True),
    Route("broadcast_stop", broadcast.stop_command, commands=frozenset({"dung"}), private=True),
    Route("people", manage.people, commands=frozenset({"canbo"}), private=True),
    Route("person_off", manage.deactivate, commands=frozenset({"khoa"}), private=True),
    Route("person_on", manage.activate, commands=frozenset({"molai"}), private=True),
    Route("person_move", manage.move, commands=frozenset({"chuyen"}), private=True),
    Route("invites", manage.invites, commands=frozenset({"mamoi"}), private=True),
    Route("invite_revoke", manage.revoke, commands=frozenset({"thuhoi"}), private=True),
    weblogin.route(),  # the console's address is set by the composition root (configure)
    Route("qa_pick", qa.pick_suggestion, payload_prefix=qa.SUGGESTION_PREFIX),
    Route("baocao_step", progress.on_button, payload_prefix=progress.PREFIX, private=True),
    Route("broadcast_step", broadcast.on_button, payload_prefix=broadcast.PREFIX, private=True),
    Route("enrol_step", enrolment.on_button, payload_prefix=enrolment.PREFIX, private=True),
    Route("manage_step", manage.on_button, payload_prefix=manage.PREFIX, private=True),
    Route("unknown_command", basic.unknown_command, when=lambda m, _: m.command is not None),
    Route("stale_button", basic.stale_button, kinds=frozenset({"button"})),
    Route(
        "cancel_word",
        admin.cancel,
        when=lambda m, c: c.conversation.flow is not None and _cancel_word(m.text),
        private=True,
    ),
    Route("baocao_text", progress.on_text, flow=progress.FLOW, private=True),
    Route("broadcast_text", broadcast.on_text, flow=broadcast.FLOW, private=True),
    Route("enrol", enrolment.enrol, when=lambda m, _: looks_like_code(m.text), private=True),
    Route(
        "progress_statement",
        progress.statement,
        when=lambda m, c: c.identity is not None and progress.is_progress_statement(m.text),
        private=True,
    ),
    Route("qa", qa.ask, fallback=True),
)

admin.DEEP_LINKS.update(
    {
        "baocao": progress.start,
        "tiendo": admin.progress_view,
        "thongbao": broadcast.start,
        "toi": admin.me,
        "help": admin.help_reply,
        "hoi": admin.help_reply,
    }
)

_EXPIRY = {
    progress.FLOW: progress.expired_notice,
    broadcast.FLOW: broadcast.expired_notice,
    enrolment.FLOW: enrolment.expired_notice,
    manage.FLOW: manage.expired_notice,
}


def expired_notice(conversation: Conversation) -> str:
    """What an official is told when their idle flow expires: what was not saved or sent."""
    notice = _EXPIRY.get(conversation.flow or "")
    if notice is None:
        return "Thao tác trước đã hết hạn do lâu không có phản hồi; chưa có gì được ghi nhận."
    return notice(dict(conversation.data or {}))
