"""The Zalo adapter against a fake Zalo Bot API server: translation, numbered choices,
splitting, the webhook (secret, body shapes), the polling loop under failures, and the
push transport's error mapping. What the official sees is read from the fake server; what
the database holds is read from the database."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.app import App
from bot.channels.zalo import (
    SECRET_HEADER,
    TEXT_LIMIT,
    WEBHOOK_PATH,
    ZaloChannel,
    ZaloClient,
    ZaloError,
    ZaloTransport,
    extract_updates,
    render,
    to_incoming,
)
from bot.core import (
    Image,
    PermanentFailure,
    RecipientBlocked,
    Reply,
    RetryLater,
    TemporaryFailure,
    Transport,
)
from bot.storage.db import make_session_factory
from bot.storage.models import Conversation, MessageLog
from handlers import Route
from handlers.qa import entry_reply
from knowledge import Knowledge
from tests.conftest import make_app
from tests.fakes.zalo_server import TOKEN, FakeZalo, FakeZaloServer, text_update

SECRET = "webhook-secret_0123456789"
QUESTION = "dai hoi dang bo xa xong khi nao"
TEXT_ONLY = "chỉ đọc được tin nhắn chữ"


@pytest.fixture
async def zalo(app: App) -> AsyncIterator[FakeZalo]:
    async with FakeZalo.start(app) as fake:
        yield fake


async def logged(engine: AsyncEngine) -> list[MessageLog]:
    async with make_session_factory(engine)() as session:
        return list((await session.exec(select(MessageLog).order_by(MessageLog.id))).all())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------- translation


def test_text_update_becomes_an_incoming_message() -> None:
    update = text_update("Xin chào", user_id="6ede9afa66b88fe6d6a9", message_id="2d758cb5e2")
    update["message"]["date"] = 1750316131602
    msg = to_incoming(update)
    assert msg is not None
    assert (msg.channel, msg.user_id, msg.chat_id) == (
        "zalo",
        "6ede9afa66b88fe6d6a9",
        "6ede9afa66b88fe6d6a9",
    )
    assert (msg.kind, msg.text, msg.user_name, msg.message_id) == (
        "text",
        "Xin chào",
        "Ted",
        "2d758cb5e2",
    )
    assert msg.received_at == datetime(2025, 6, 19, 6, 55, 31, 602000, tzinfo=UTC)


@pytest.mark.parametrize("name_field", ["display_name", "name"])
@pytest.mark.parametrize("wrapped", [False, True])
def test_bare_or_wrapped_update_and_either_name(name_field: str, wrapped: bool) -> None:
    update: dict[str, Any] = text_update("hỏi", user_id="abc", name="Lan", name_field=name_field)
    body = {"ok": True, "result": update} if wrapped else update
    [found] = extract_updates(body)
    msg = to_incoming(found)
    assert msg is not None and msg.user_name == "Lan" and msg.user_id == "abc"
    direct = to_incoming(body)
    assert direct is not None and (direct.user_name, direct.text) == ("Lan", "hỏi")


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        ("message.image.received", "media"),
        ("message.sticker.received", "media"),
        ("message.unsupported.received", "unsupported"),
    ],
)
def test_other_events_become_media_or_unsupported(event: str, kind: str) -> None:
    msg = to_incoming(text_update("", event=event))
    assert msg is not None and msg.kind == kind


def test_unknown_event_and_bot_senders_are_ignored(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        assert to_incoming(text_update("x", event="message.reaction.received")) is None
    assert "message.reaction.received" in caplog.text
    update = text_update("x")
    update["message"]["from"]["is_bot"] = True
    assert to_incoming(update) is None
    assert to_incoming({"event_name": "message.text.received"}) is None


# --------------------------------------------------------------------------- rendering


def test_long_reply_is_split_at_2000_with_the_citation_beside_the_text() -> None:
    sentence = "Đại hội đảng bộ các cấp phải hoàn thành đúng thời hạn đã được quy định. "
    text = "\n".join([sentence * 10] * 7)
    assert len(text) > 5000
    reply = Reply(
        text=text, footer="Nguồn: bản tin VTC News ngày 22/8/2025 về Kết luận số 185, đoạn 3"
    )
    parts = render(reply)
    assert len(parts) >= 3
    assert all(0 < len(part) <= TEXT_LIMIT for part in parts)
    assert all(part.endswith((".", "đoạn 3")) for part in parts)  # never cut mid-sentence
    assert parts[-1].endswith(
        "\n\nNguồn: bản tin VTC News ngày 22/8/2025 về Kết luận số 185, đoạn 3"
    )
    assert parts[-1].count("Đại hội") >= 1  # the citation is not alone
    total = len(parts)
    assert [p.split(" ", 1)[0] for p in parts] == [f"({i}/{total})" for i in range(1, total + 1)]
    joined = "".join(p.split(" ", 1)[1] for p in parts).replace("\n", "").replace(" ", "")
    assert joined == (
        text + "Nguồn: bản tin VTC News ngày 22/8/2025 về Kết luận số 185, đoạn 3"
    ).replace("\n", "").replace(" ", "")


def test_image_reply_sends_its_caption_as_text() -> None:
    reply = Reply(text="Tiến độ", image=Image(b"\x89PNG", caption="Biểu đồ tiến độ"))
    assert render(reply) == ["Biểu đồ tiến độ", "Tiến độ"]
    chart = Image(b"\x89PNG", caption="Biểu đồ", alt_text="1. Xã A: 0% (0/3)")
    assert render(Reply(text="", image=chart)) == ["1. Xã A: 0% (0/3)"]  # the text, not a title


# --------------------------------------------------------------------------- through dispatch


async def test_question_is_answered_in_plain_text_with_citation(
    zalo: FakeZalo, engine: AsyncEngine
) -> None:
    [text] = await zalo.send_text(QUESTION, user_id="6ede9afa66b88fe6d6a9")
    assert "tháng 8/2025" in text
    assert "Nguồn: bản tin VTC News ngày 22/8/2025 về Kết luận số 185" in text
    assert "<" not in text  # no markup on Zalo
    [call] = zalo.server.sent()
    assert call.params["chat_id"] == "6ede9afa66b88fe6d6a9"
    [row] = await logged(engine)
    assert (row.channel, row.user_id, row.chat_id, row.kind, row.text) == (
        "zalo",
        "6ede9afa66b88fe6d6a9",
        "6ede9afa66b88fe6d6a9",
        "text",
        QUESTION,
    )
    assert row.matched is True


async def test_numbered_suggestion_picked_by_replying_2(
    zalo: FakeZalo, engine: AsyncEngine, knowledge: Knowledge
) -> None:
    [offer] = await zalo.send_text("kết luận 185", user_id="u-pick")
    suggestions = knowledge.search("kết luận 185").suggestions
    assert len(suggestions) == 3
    for number, entry in enumerate(suggestions, start=1):
        assert f"{number}. {entry.title}" in offer
    async with make_session_factory(engine)() as session:
        conversation = (
            await session.exec(select(Conversation).where(Conversation.user_id == "u-pick"))
        ).one()
    assert conversation.channel == "zalo" and len(conversation.choices) == 3

    [answer] = await zalo.send_text("2", user_id="u-pick")
    expected = entry_reply(suggestions[1])
    assert expected.text in answer
    assert answer.endswith(expected.footer or "")
    # Someone else's "2" is not a choice: that person was offered nothing.
    [other] = await zalo.send_text("2", user_id="u-other")
    assert expected.text not in other


async def test_photo_sticker_and_withheld_content_get_a_polite_reply(
    zalo: FakeZalo, engine: AsyncEngine
) -> None:
    events = ("message.image.received", "message.sticker.received", "message.unsupported.received")
    for event in events:
        [text] = await zalo.send_update(text_update("", event=event, user_id="u-media"))
        assert TEXT_ONLY in text
    rows = await logged(engine)
    assert [r.kind for r in rows] == ["media", "media", "unsupported"]


async def test_unknown_event_is_ignored_and_leaves_no_trace(
    zalo: FakeZalo, engine: AsyncEngine
) -> None:
    assert await zalo.send_update(text_update("x", event="message.reaction.received")) == []
    assert await logged(engine) == []


async def test_a_5000_character_answer_arrives_as_several_messages(
    knowledge: Knowledge, engine: AsyncEngine
) -> None:
    sentence = "Ban Thường vụ tỉnh ủy chỉ đạo chuẩn bị văn kiện và nhân sự đại hội. "
    long_text = "\n\n".join([sentence * 13] * 6)
    assert len(long_text) >= 5000

    async def long_answer(msg: Any, ctx: Any) -> Reply:
        return Reply(
            text=long_text, footer="Nguồn: bản tin VTC News ngày 22/8/2025 về Kết luận số 185"
        )

    app = make_app(knowledge, engine, routes=[Route("long", long_answer, fallback=True)])
    async with FakeZalo.start(app) as zalo:
        texts = await zalo.send_text("cho tôi bản dài", user_id="u-long")
    assert len(texts) >= 3
    assert all(len(t) <= TEXT_LIMIT for t in texts)
    assert texts[-1].endswith("\n\nNguồn: bản tin VTC News ngày 22/8/2025 về Kết luận số 185")
    assert "Ban Thường vụ" in texts[-1]  # the citation travels with the end of the answer
    assert sum(t.count("Ban Thường vụ") for t in texts) == 78


async def test_rate_limited_reply_is_retried(zalo: FakeZalo) -> None:
    zalo.server.fail_next("sendMessage", "status", status=429, retry_after=0.05)
    texts = await zalo.send_text("Ai ký Kết luận 185?", user_id="u-429")
    assert len(zalo.server.called("sendMessage")) == 2  # refused, then delivered
    [text] = texts
    assert "Trần Cẩm Tú" in text


async def test_blocked_user_does_not_break_the_adapter(
    zalo: FakeZalo, caplog: pytest.LogCaptureFixture
) -> None:
    zalo.server.fail_next("sendMessage", "status", status=403, description="user blocked bot")
    with caplog.at_level(logging.WARNING):
        assert await zalo.send_text("Ai ký Kết luận 185?", user_id="u-blocked") == []
    assert "RecipientBlocked" in caplog.text
    [text] = await zalo.send_text("Ai ký Kết luận 185?", user_id="u-next")
    assert "Trần Cẩm Tú" in text
    assert TOKEN not in caplog.text


# --------------------------------------------------------------------------- webhook


@pytest.fixture
async def webhook(zalo: FakeZalo) -> AsyncIterator[str]:
    web_app = web.Application()
    zalo.channel.register_webhook(web_app, SECRET)
    runner = web.AppRunner(web_app, access_log=None, handle_signals=False, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}{WEBHOOK_PATH}"
    finally:
        await runner.cleanup()


async def post(url: str, body: object, secret: str | None) -> int:
    headers = {SECRET_HEADER: secret} if secret is not None else {}
    async with aiohttp.ClientSession() as http, http.post(url, json=body, headers=headers) as r:
        return r.status


async def test_webhook_refuses_a_missing_or_wrong_secret(
    zalo: FakeZalo, webhook: str, engine: AsyncEngine
) -> None:
    update = text_update(QUESTION, user_id="u-hook")
    assert await post(webhook, update, None) == 401
    assert await post(webhook, update, "wrong-secret_0123456789") == 403
    assert await post(webhook, update, SECRET[:-1]) == 403
    await zalo.channel.drain()
    assert await logged(engine) == []
    assert zalo.server.sent() == []

    assert await post(webhook, update, SECRET) == 200
    [text] = await zalo.server.wait_for_messages(1)
    assert "tháng 8/2025" in text
    assert [r.user_id for r in await logged(engine)] == ["u-hook"]


@pytest.mark.parametrize(
    ("shape", "name_field"),
    [("bare", "display_name"), ("bare", "name"), ("wrapped", "display_name"), ("wrapped", "name")],
)
async def test_webhook_accepts_bare_and_wrapped_bodies(
    zalo: FakeZalo, webhook: str, engine: AsyncEngine, shape: str, name_field: str
) -> None:
    update = text_update("Ai ký Kết luận 185?", user_id="u-shape", name_field=name_field)
    body = update if shape == "bare" else {"ok": True, "result": update}
    assert await post(webhook, body, SECRET) == 200
    [text] = await zalo.server.wait_for_messages(1, chat_id="u-shape")
    assert "Trần Cẩm Tú" in text
    [row] = await logged(engine)
    assert row.channel == "zalo" and row.user_id == "u-shape"


async def test_webhook_ignores_a_malformed_body(zalo: FakeZalo, webhook: str) -> None:
    headers = {SECRET_HEADER: SECRET, "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(webhook, data=b"{not json", headers=headers) as response,
    ):
        assert response.status == 400
    assert await post(webhook, {"ok": True, "result": None}, SECRET) == 200
    await zalo.channel.drain()
    assert zalo.server.sent() == []


# --------------------------------------------------------------------------- polling


async def test_polling_answers_and_treats_408_as_an_empty_poll(
    zalo: FakeZalo, caplog: pytest.LogCaptureFixture
) -> None:
    server = zalo.server
    with caplog.at_level(logging.INFO):
        task = asyncio.create_task(zalo.channel.run_polling())
        try:
            await server.wait_for_call("deleteWebhook")
            # poll_timeout is 1 s: let one long poll come back empty (408) first.
            await asyncio.sleep(1.3)
            assert server.called("getUpdates")
            server.queue_text(QUESTION, user_id="u-poll")
            [text] = await server.wait_for_messages(1, chat_id="u-poll")
        finally:
            await zalo.channel.stop_polling()
            await asyncio.wait_for(task, timeout=5)
    assert "getUpdates failed" not in caplog.text  # an empty poll is not a failure
    assert (
        "tháng 8/2025" in text
        and "Nguồn: bản tin VTC News ngày 22/8/2025 về Kết luận số 185" in text
    )
    assert all(c.params["timeout"] == 1 for c in server.called("getUpdates"))


@pytest.mark.parametrize(
    "failure",
    [
        {"kind": "status", "status": 429, "retry_after": 0.01},
        {"kind": "status", "status": 500},
        {"kind": "status", "status": 502, "description": "Bad Gateway"},
        {"kind": "ok_false", "error_code": 400, "description": "Bad request"},
        {"kind": "malformed"},
        {"kind": "drop"},
    ],
    ids=["429", "500", "502", "ok_false", "malformed", "dropped"],
)
async def test_polling_survives_failures_and_answers_the_next_update(
    zalo: FakeZalo, failure: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    server = zalo.server
    kind = failure.pop("kind")
    for _ in range(3):
        server.fail_next("getUpdates", kind, **failure)
    with caplog.at_level(logging.INFO):
        task = asyncio.create_task(zalo.channel.run_polling())
        try:
            server.queue_text("Ai ký Kết luận 185?", user_id="u-survivor")
            [text] = await server.wait_for_messages(1, chat_id="u-survivor")
            assert "Trần Cẩm Tú" in text
            assert len(server.called("getUpdates")) >= 4  # three failures, then the update
            assert not task.done()
        finally:
            await zalo.channel.stop_polling()
            await asyncio.wait_for(task, timeout=5)
    assert "getUpdates failed" in caplog.text
    assert TOKEN not in caplog.text
    assert TOKEN.split(":")[1] not in caplog.text


async def test_polling_tolerates_a_failing_delete_webhook(
    zalo: FakeZalo, caplog: pytest.LogCaptureFixture
) -> None:
    zalo.server.fail_next("deleteWebhook", "status", status=500)
    with caplog.at_level(logging.WARNING):
        task = asyncio.create_task(zalo.channel.run_polling())
        try:
            zalo.server.queue_text("Ai ký Kết luận 185?", user_id="u-dw")
            [text] = await zalo.server.wait_for_messages(1, chat_id="u-dw")
        finally:
            await zalo.channel.stop_polling()
            await asyncio.wait_for(task, timeout=5)
    assert "Trần Cẩm Tú" in text
    assert "deleteWebhook failed" in caplog.text


async def test_stop_interrupts_a_long_poll(app: App) -> None:
    async with FakeZaloServer.start() as server:
        channel = ZaloChannel(
            app, token=server.token, api_base_url=server.base_url, poll_timeout=60
        )
        task = asyncio.create_task(channel.run_polling())
        await server.wait_for_call("deleteWebhook")
        await asyncio.sleep(0.1)
        await channel.stop_polling()
        await asyncio.wait_for(task, timeout=2)
        await channel.close()


# --------------------------------------------------------------------------- lifecycle


async def test_prepare_checks_the_token(app: App) -> None:
    async with FakeZaloServer.start() as server:
        good = ZaloChannel(app, token=server.token, api_base_url=server.base_url)
        await good.prepare()
        assert good.name == "Trợ lý Kết luận"
        await good.close()

        wrong = "999999:wrong-token-value-xyz"
        bad = ZaloChannel(app, token=wrong, api_base_url=server.base_url)
        with pytest.raises(RuntimeError, match="Zalo không chấp nhận token bot") as caught:
            await bad.prepare()
        assert wrong not in str(caught.value) and "wrong-token" not in str(caught.value)
        await bad.close()


async def test_set_webhook_sends_url_and_secret(app: App) -> None:
    async with FakeZaloServer.start() as server:
        channel = ZaloChannel(app, token=server.token, api_base_url=server.base_url)
        await channel.set_webhook("https://bot.example.org/", SECRET)
        await channel.close()
    assert server.webhook == {
        "url": "https://bot.example.org/webhook/zalo",
        "secret_token": SECRET,
    }


async def test_network_errors_never_show_the_token() -> None:
    client = ZaloClient(TOKEN, base_url=f"http://127.0.0.1:{free_port()}", request_timeout=2)
    try:
        with pytest.raises(ZaloError) as caught:
            await client.get_me()
    finally:
        await client.close()
    assert TOKEN not in str(caught.value) and TOKEN not in repr(client)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


# --------------------------------------------------------------------------- the push transport


@pytest.fixture
async def transport() -> AsyncIterator[tuple[ZaloTransport, FakeZaloServer]]:
    async with FakeZaloServer.start() as server:
        client = ZaloClient(server.token, base_url=server.base_url, request_timeout=0.5)
        try:
            yield ZaloTransport(client), server
        finally:
            await client.close()


async def test_transport_delivers_long_pushes_in_pieces(
    transport: tuple[ZaloTransport, FakeZaloServer],
) -> None:
    sender, server = transport
    protocol: Transport = sender  # the outbox sender's contract
    assert (protocol.channel, protocol.buttons) == ("zalo", False)
    assert (sender.channel, sender.buttons) == ("zalo", False)
    text = "Nhắc việc: báo cáo tiến độ chuẩn bị đại hội. " * 120
    await sender.deliver("u-push", text, [])
    texts = server.texts("u-push")
    assert len(texts) == 3 and all(len(t) <= TEXT_LIMIT for t in texts)


@pytest.mark.parametrize(
    ("failure", "error", "retry_after"),
    [
        ({"kind": "status", "status": 429, "retry_after": 7}, RetryLater, 7.0),
        ({"kind": "ok_false", "error_code": 429, "description": "Too many"}, RetryLater, 10.0),
        ({"kind": "status", "status": 403, "description": "Forbidden"}, RecipientBlocked, None),
        (
            {"kind": "ok_false", "error_code": -201, "description": "User has blocked the bot"},
            RecipientBlocked,
            None,
        ),
        (
            {"kind": "ok_false", "error_code": 230, "description": "not allowed"},
            RecipientBlocked,
            None,
        ),
        ({"kind": "status", "status": 500}, TemporaryFailure, None),
        ({"kind": "status", "status": 503}, TemporaryFailure, None),
        ({"kind": "malformed"}, TemporaryFailure, None),
        ({"kind": "drop"}, TemporaryFailure, None),
        ({"kind": "status", "status": 400, "description": "Bad Request"}, PermanentFailure, None),
        (
            {"kind": "ok_false", "error_code": 404, "description": "not found"},
            PermanentFailure,
            None,
        ),
        ({"kind": "status", "status": 401, "description": "Unauthorized"}, PermanentFailure, None),
    ],
    ids=lambda v: (
        str(v.get("kind", "")) + str(v.get("status", v.get("error_code", "")))
        if isinstance(v, dict)
        else ""
    ),
)
async def test_transport_maps_errors(
    transport: tuple[ZaloTransport, FakeZaloServer],
    failure: dict[str, Any],
    error: type[Exception],
    retry_after: float | None,
) -> None:
    sender, server = transport
    kind = failure.pop("kind")
    server.fail_next("sendMessage", kind, **failure)
    with pytest.raises(error) as caught:
        await sender.deliver("u-push", "Nhắc việc", [])
    assert TOKEN not in str(caught.value)
    if retry_after is not None:
        assert isinstance(caught.value, RetryLater) and caught.value.retry_after == retry_after
    await sender.deliver("u-push", "Nhắc lại", [])  # the next push goes through
    assert server.texts("u-push") == ["Nhắc lại"]


async def test_transport_timeouts_and_refused_connections_are_temporary() -> None:
    client = ZaloClient(TOKEN, base_url=f"http://127.0.0.1:{free_port()}", request_timeout=2)
    try:
        with pytest.raises(TemporaryFailure):
            await ZaloTransport(client).deliver("u", "x", [])
    finally:
        await client.close()
    async with FakeZaloServer.start() as server:
        slow = ZaloClient(server.token, base_url=server.base_url, request_timeout=0.2)
        try:
            with pytest.raises(ZaloError, match="timed out"):
                await slow.call("getUpdates", {"timeout": 5})
            server.fail_next("sendMessage", "slow", delay=1.0)
            with pytest.raises(TemporaryFailure):
                await ZaloTransport(slow).deliver("u", "x", [])
        finally:
            await slow.close()
