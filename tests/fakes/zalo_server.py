"""A fake Zalo Bot API server (aiohttp, 127.0.0.1, a random port).

    async with FakeZaloServer.start(TOKEN) as zalo:
        zalo.queue_text("Xin chào", user_id="6ede9afa66b88fe6d6a9")   # for getUpdates
        [text] = await zalo.wait_for_messages(1)                       # what sendMessage got
        zalo.fail_next("getUpdates", "status", status=500)            # failure injection

``getUpdates`` long-polls until an update is queued or its ``timeout`` passes (then answers
``ok: false, error_code: 408`` with HTTP 200, as Zalo does). ``sendMessage`` is recorded.
Failures per method: ``status`` (an HTTP status with an error envelope, e.g. 429 with
``retry_after``), ``ok_false`` (HTTP 200 with ``ok: false``), ``malformed`` (not JSON) and
``drop`` (the connection is closed without an answer) and ``slow`` (answers after ``delay``).

``FakeZalo`` puts a :class:`~bot.channels.zalo.ZaloChannel` on such a server and feeds it
update dicts directly, the way the webhook and the poller do.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bot.app import App
from bot.channels.zalo import ZaloChannel

TOKEN = "1122334455:zalo-TEST-token-for-the-fake-server"
Json = dict[str, Any]


@dataclass
class Call:
    method: str
    params: Json
    delivered: bool = True  # False: the call got an injected failure
    at: float = field(default_factory=time.monotonic)


@dataclass
class Failure:
    kind: str  # "status" | "ok_false" | "malformed" | "drop" | "slow"
    status: int = 500
    error_code: int | None = None
    description: str = "injected failure"
    retry_after: float | None = None
    delay: float = 0.0  # "slow": answer normally after this long


def text_update(
    text: str,
    *,
    user_id: str = "6ede9afa66b88fe6d6a9",
    name: str = "Ted",
    name_field: str = "display_name",
    chat_id: str | None = None,
    event: str = "message.text.received",
    message_id: str | None = None,
) -> Json:
    """An update as Zalo sends it (ids are strings, ``date`` in milliseconds)."""
    message: Json = {
        "from": {"id": user_id, name_field: name, "is_bot": False},
        "chat": {"id": chat_id or user_id, "chat_type": "PRIVATE"},
        "message_id": message_id or f"m{next(_message_ids):020d}",
        "date": int(time.time() * 1000),
    }
    if event == "message.text.received":
        message["text"] = text
    return {"event_name": event, "message": message}


_message_ids = itertools.count(1)


class FakeZaloServer:
    def __init__(self, token: str = TOKEN) -> None:
        self.token = token
        self.calls: list[Call] = []
        self.updates: asyncio.Queue[Json] = asyncio.Queue()
        self.failures: dict[str, list[Failure]] = {}
        self.webhook: Json | None = None
        self.base_url = ""
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Condition()
        self._message_ids = itertools.count(1)

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    @contextlib.asynccontextmanager
    async def start(cls, token: str = TOKEN) -> AsyncIterator[FakeZaloServer]:
        server = cls(token)
        web_app = web.Application()
        web_app.router.add_post("/{bot}/{method}", server._handle)
        web_app.router.add_get("/{bot}/{method}", server._handle)
        server._runner = web.AppRunner(
            web_app, access_log=None, handle_signals=False, shutdown_timeout=0.1
        )
        await server._runner.setup()
        site = web.TCPSite(server._runner, "127.0.0.1", 0)
        await site.start()
        sockets = server._runner.addresses
        port = sockets[0][1]
        server.base_url = f"http://127.0.0.1:{port}"
        try:
            yield server
        finally:
            await server._runner.cleanup()

    # ------------------------------------------------------------------ driving it

    def queue_update(self, update: Json) -> None:
        self.updates.put_nowait(update)

    def queue_text(self, text: str, **kwargs: Any) -> Json:
        update = text_update(text, **kwargs)
        self.queue_update(update)
        return update

    def fail_next(self, method: str, kind: str, **details: Any) -> None:
        """The next call of ``method`` fails this way (queued in order)."""
        self.failures.setdefault(method, []).append(Failure(kind, **details))

    # ------------------------------------------------------------------ reading it

    def sent(self, chat_id: str | None = None) -> list[Call]:
        """The messages delivered (to ``chat_id``), failed attempts left out."""
        return [
            c
            for c in self.calls
            if c.method == "sendMessage"
            and c.delivered
            and (chat_id is None or str(c.params["chat_id"]) == chat_id)
        ]

    def texts(self, chat_id: str | None = None) -> list[str]:
        return [str(c.params["text"]) for c in self.sent(chat_id)]

    def called(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    async def wait_for_messages(
        self, count: int, *, chat_id: str | None = None, after: int = 0, timeout: float = 15
    ) -> list[str]:
        """At least ``count`` texts sent (to ``chat_id``) beyond the first ``after``."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: len(self.texts(chat_id)) - after >= count)
        return self.texts(chat_id)[after:]

    async def wait_for_call(self, method: str, *, timeout: float = 15) -> Call:
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: bool(self.called(method)))
        return self.called(method)[0]

    # ------------------------------------------------------------------ the API

    async def _record(self, call: Call) -> None:
        self.calls.append(call)
        async with self._changed:
            self._changed.notify_all()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["bot"] != f"bot{self.token}":
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        method = request.match_info["method"]
        try:
            raw = await request.read()
            params: Json = json.loads(raw) if raw.strip() else {}
        except ValueError:
            return web.json_response(
                {"ok": False, "error_code": 400, "description": "Bad Request"}, status=400
            )
        queued = self.failures.get(method)
        if queued:
            await self._record(Call(method, params, delivered=False))
            return await self._fail(request, queued.pop(0))
        if method == "getUpdates":
            return await self._get_updates(params)
        await self._record(Call(method, params))
        return self._answer(method, params)

    async def _get_updates(self, params: Json) -> web.Response:
        timeout = float(params.get("timeout", 30) or 0)
        try:
            update = await asyncio.wait_for(self.updates.get(), timeout=timeout)
        except TimeoutError:
            await self._record(Call("getUpdates", params))
            return web.json_response(
                {"ok": False, "error_code": 408, "description": "Request timeout"}
            )
        await self._record(Call("getUpdates", params))
        return web.json_response({"ok": True, "result": update})

    def _answer(self, method: str, params: Json) -> web.Response:
        result: Any = True
        if method == "getMe":
            result = {
                "id": "1122334455",
                "account_name": "bot.troly",
                "account_type": "BASIC",
                "display_name": "Trợ lý Kết luận",
                "can_join_groups": False,
            }
        elif method in {"sendMessage", "sendPhoto"}:
            if not params.get("chat_id"):
                return web.json_response(
                    {"ok": False, "error_code": 400, "description": "chat_id is required"}
                )
            text = params.get("text", params.get("caption", ""))
            if method == "sendMessage" and not 0 < len(str(text)) <= 2000:
                return web.json_response(
                    {"ok": False, "error_code": 400, "description": "text must be 1-2000 chars"}
                )
            result = {"message_id": f"s{next(self._message_ids):020d}", "date": time.time_ns()}
        elif method == "setWebhook":
            self.webhook = {"url": params.get("url"), "secret_token": params.get("secret_token")}
            result = {"url": params.get("url"), "updated_at": int(time.time() * 1000)}
        elif method == "deleteWebhook":
            self.webhook = None
        elif method == "getWebhookInfo":
            result = {"url": (self.webhook or {}).get("url", "")}
        elif method != "sendChatAction":
            return web.json_response(
                {"ok": False, "error_code": 404, "description": "Method not found"}, status=404
            )
        return web.json_response({"ok": True, "result": result})

    async def _fail(self, request: web.Request, failure: Failure) -> web.StreamResponse:
        if failure.kind == "drop":
            transport = request.transport
            if transport is not None:
                transport.abort()
            raise asyncio.CancelledError  # nothing more to say on a closed connection
        if failure.kind == "slow":
            await asyncio.sleep(failure.delay)
            return web.json_response({"ok": True, "result": {"message_id": "slow"}})
        if failure.kind == "malformed":
            return web.Response(text="<html>502 Bad Gateway", content_type="text/html")
        envelope: Json = {
            "ok": False,
            "error_code": failure.error_code or failure.status,
            "description": failure.description,
        }
        if failure.retry_after is not None:
            envelope["parameters"] = {"retry_after": failure.retry_after}
        status = 200 if failure.kind == "ok_false" else failure.status
        return web.json_response(envelope, status=status)


class FakeZalo:
    """A ZaloChannel on a fake server, fed update dicts directly (in process)."""

    def __init__(self, app: App, server: FakeZaloServer) -> None:
        self.server = server
        self.channel = ZaloChannel(
            app,
            token=server.token,
            api_base_url=server.base_url,
            poll_timeout=1,
            backoff_base=0.01,
            backoff_cap=0.05,
        )

    @classmethod
    @contextlib.asynccontextmanager
    async def start(cls, app: App) -> AsyncIterator[FakeZalo]:
        async with FakeZaloServer.start() as server:
            zalo = cls(app, server)
            try:
                yield zalo
            finally:
                await zalo.channel.close()

    async def send_update(self, update: Json) -> list[str]:
        """Hand one update to the adapter; the texts the official received."""
        before = len(self.server.calls)
        await self.channel.handle_update(update)
        return [
            str(c.params["text"])
            for c in self.server.calls[before:]
            if c.method == "sendMessage" and c.delivered
        ]

    async def send_text(
        self, text: str, user_id: str = "6ede9afa66b88fe6d6a9", **kw: Any
    ) -> list[str]:
        return await self.send_update(text_update(text, user_id=user_id, **kw))
