"""A fake Telegram Bot API server (aiohttp, 127.0.0.1, random port) that records every
``sendMessage`` and answers like Telegram (``getMe`` and ``getWebhookInfo`` too; a wrong
token gets 401 Unauthorized), with injectable failures:

* per chat, a script of the next answers (``"429"``, ``"403"``, ``"500"``, ``"400"``,
  ``"drop"``, ``"ok"``), or a chat that always answers one way (``always``);
* by seeded probability (``p429``, ``p500``, ``p403``, ``pdrop``): the ``n``-th request to a
  chat draws from ``Random(f"{seed}:{chat}:{n}")``, so the same requests fail whatever the
  interleaving.

A dropped connection is closed before any answer; the message counts as not delivered
(``status`` 0). Use it with the real aiogram client::

    async with FakeBotAPI() as api:
        bot = Bot(api.token, session=AiohttpSession(api=TelegramAPIServer.from_base(api.url)))

Also runnable on its own (the benchmark runs it in another process, so its CPU time is not
counted as the sender's): ``python -m tests.fakes.botapi_server --p429 0.02`` prints
``READY <url>``; ``GET /_log`` returns every request as ``[t, chat_id, status]``
(``t``: ``time.monotonic()`` at arrival, comparable across processes on Linux).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["TOKEN", "FakeBotAPI", "Request"]

TOKEN = "123456789:AAFakeTokenForTheFakeBotApiServer_x"

ANSWERS = {
    "429": (429, "Too Many Requests: retry after {retry_after}"),
    "403": (403, "Forbidden: bot was blocked by the user"),
    "500": (500, "Internal Server Error"),
    "400": (400, "Bad Request: chat not found"),
}


async def request_fields(request: web.Request) -> dict[str, Any]:
    """A Bot API request's fields as Telegram reads them: a url-encoded or multipart form,
    or a JSON body (nested objects as the JSON text a form field would carry)."""
    if not request.can_read_body:
        return {}
    if request.content_type == "application/json":
        body = await request.json()
        return {
            key: value
            if isinstance(value, str)
            else json.dumps(value, ensure_ascii=False)
            if isinstance(value, dict | list)
            else value
            for key, value in body.items()
        }
    return dict(await request.post())


@dataclass(frozen=True, slots=True)
class Request:
    t: float  # time.monotonic() when it arrived
    method: str
    chat_id: str
    text: str
    status: int  # HTTP status answered; 0: connection dropped
    reply_markup: Any = None


@dataclass
class FakeBotAPI:
    token: str = TOKEN
    seed: int = 0
    p429: float = 0.0
    p500: float = 0.0
    p403: float = 0.0
    pdrop: float = 0.0
    retry_after: int = 1
    latency: float = 0.0  # seconds before answering
    record_text: bool = True
    blocked: set[str] = field(default_factory=set)  # chats that blocked the bot
    always: dict[str, str] = field(default_factory=dict)  # chat -> answer, every time
    script: dict[str, list[str]] = field(default_factory=dict)  # chat -> next answers
    # Any other method (setWebhook, setMyCommands, answerCallbackQuery, ...) answers ``true``
    # instead of 404: enough for a whole `troly run` process.
    other_methods_ok: bool = False
    # What getWebhookInfo answers (Telegram's WebhookInfo fields).
    webhook_info: dict[str, Any] = field(
        default_factory=lambda: {
            "url": "",
            "has_custom_certificate": False,
            "pending_update_count": 0,
        }
    )
    requests: list[Request] = field(default_factory=list)
    url: str = ""

    def __post_init__(self) -> None:
        self.by_chat: dict[str, list[Request]] = {}  # sendMessage requests per chat
        # getUpdates: the updates to hand out, and every poll as (arrived, HTTP status); a
        # poll that arrives while another waits ends the waiting one with 409 Conflict, as
        # Telegram does when two processes poll one token.
        self.updates: list[dict[str, Any]] = []
        self.polls: list[tuple[float, int]] = []
        self._waiting_poll: asyncio.Future[None] | None = None
        self._new_update = asyncio.Event()
        self._per_chat: Counter[str] = Counter()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None

    # ------------------------------------------------------------------ lifecycle

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/_log", self._log)
        app.router.add_post("/bot{token}/{method}", self._method)
        app.router.add_get("/bot{token}/{method}", self._method)
        return app

    async def start(self, port: int = 0) -> str:
        self._runner = web.AppRunner(self.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        sockets = site._server.sockets  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}"
        return self.url

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeBotAPI:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ reading the log

    def messages(self) -> list[Request]:
        return [r for r in self.requests if r.method == "sendMessage"]

    def delivered(self) -> list[Request]:
        """sendMessage requests answered 200."""
        return [r for r in self.messages() if r.status == 200]

    def delivered_to(self, chat_id: str) -> list[Request]:
        return [r for r in self.delivered() if r.chat_id == chat_id]

    def delivery_counts(self) -> Counter[str]:
        return Counter(r.chat_id for r in self.delivered())

    # ------------------------------------------------------------------ answering

    def _decide(self, chat: str) -> str:
        n = self._per_chat[chat]
        self._per_chat[chat] += 1
        if chat in self.blocked:
            return "403"
        if chat in self.always:
            return self.always[chat]
        queued = self.script.get(chat)
        if queued:
            return queued.pop(0)
        probabilities = [
            ("429", self.p429),
            ("500", self.p500),
            ("drop", self.pdrop),
            ("403", self.p403),
        ]
        if any(p > 0 for _, p in probabilities):
            draw = random.Random(f"{self.seed}:{chat}:{n}").random()
            for answer, p in probabilities:
                if draw < p:
                    return answer
                draw -= p
        return "ok"

    async def _method(self, request: web.Request) -> web.StreamResponse:
        arrived = time.monotonic()
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        form = await request_fields(request)
        if method == "getMe":
            return _ok(
                {"id": 123456789, "is_bot": True, "first_name": "Fake", "username": "fake_bot"}
            )
        if method == "getWebhookInfo":
            return _ok(self.webhook_info)
        if method == "getUpdates":
            return await self._get_updates(arrived, form)
        if method != "sendMessage":
            if self.other_methods_ok:
                return _ok(True)
            return _error(404, "Not Found: method not found")
        chat = str(form.get("chat_id", ""))
        text = str(form.get("text", ""))
        markup = form.get("reply_markup")
        answer = self._decide(chat)
        if self.latency:
            await asyncio.sleep(self.latency)
        status = 0 if answer == "drop" else 200 if answer == "ok" else ANSWERS[answer][0]
        sent = Request(
            t=arrived,
            method=method,
            chat_id=chat,
            text=text if self.record_text else "",
            status=status,
            reply_markup=json.loads(markup) if isinstance(markup, str) else None,
        )
        self.requests.append(sent)
        self.by_chat.setdefault(chat, []).append(sent)
        if answer == "drop":
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError  # aiohttp stops handling this request quietly
        if answer != "ok":
            code, description = ANSWERS[answer]
            parameters = {"retry_after": self.retry_after} if code == 429 else None
            return _error(code, description.format(retry_after=self.retry_after), parameters)
        chat_id: int = int(chat) if chat.lstrip("-").isdigit() else abs(hash(chat)) % 10**9
        return _ok(
            {
                "message_id": next(self._ids),
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"},
                "text": text,
            }
        )

    def add_update(self, update: dict[str, Any]) -> None:
        """Queue an update for getUpdates (``update_id`` is the caller's)."""
        self.updates.append(update)
        self._new_update.set()

    async def _get_updates(self, arrived: float, form: dict[str, Any]) -> web.Response:
        if self._waiting_poll is not None and not self._waiting_poll.done():
            self._waiting_poll.set_result(None)  # the older poll is terminated
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting_poll = mine
        offset = int(form.get("offset") or 0)
        limit = min(int(form.get("limit") or 100), 100)
        self.updates = [u for u in self.updates if u["update_id"] >= offset]
        deadline = arrived + min(float(form.get("timeout") or 0), 2.0)
        while not self.updates and not mine.done():
            self._new_update.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                break
            waiter = asyncio.ensure_future(self._new_update.wait())
            await asyncio.wait({waiter, mine}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
        if mine.done():
            self.polls.append((arrived, 409))
            return _error(409, "Conflict: terminated by other getUpdates request")
        self._waiting_poll = None
        mine.cancel()
        self.polls.append((arrived, 200))
        return _ok(self.updates[:limit])

    async def _log(self, request: web.Request) -> web.Response:
        rows = [[r.t, r.chat_id, r.status] for r in self.messages()]
        return web.json_response(rows)


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(code: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=code)


# --------------------------------------------------------------------------- stand-alone


async def _serve(args: argparse.Namespace) -> None:
    api = FakeBotAPI(
        token=args.token,
        seed=args.seed,
        p429=args.p429,
        p500=args.p500,
        p403=args.p403,
        pdrop=args.pdrop,
        retry_after=args.retry_after,
        record_text=False,
    )
    url = await api.start(args.port)
    print(f"READY {url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await api.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=TOKEN)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--p429", type=float, default=0.0)
    parser.add_argument("--p500", type=float, default=0.0)
    parser.add_argument("--p403", type=float, default=0.0)
    parser.add_argument("--pdrop", type=float, default=0.0)
    parser.add_argument("--retry-after", type=int, default=1)
    asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
