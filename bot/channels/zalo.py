"""Zalo adapter (Zalo Bot API over aiohttp): native updates -> IncomingMessage -> dispatch ->
Replies as plain text.

It only translates. Long polling by default (``getUpdates`` returns one update, no offset);
webhook mode registers a handler on the shared aiohttp application. Zalo has no inline
keyboards: dispatch numbers the choices (``buttons=False``). The token is part of every API
URL, so no URL ever reaches a log line or an exception text.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import random
import re
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp import web

from bot.app import App
from bot.core import (
    Button,
    DeliveryError,
    IncomingMessage,
    MessageKind,
    PermanentFailure,
    RecipientBlocked,
    Reply,
    RetryLater,
    TemporaryFailure,
    wait_event,
)
from bot.logs import redact
from bot.render import PART_MARK_ROOM, mark_parts, split_text

__all__ = [
    "CHANNEL",
    "SECRET_HEADER",
    "TEXT_LIMIT",
    "WEBHOOK_PATH",
    "ZaloAPIError",
    "ZaloChannel",
    "ZaloClient",
    "ZaloError",
    "ZaloNetworkError",
    "ZaloTransport",
    "delivery_error",
    "extract_updates",
    "render",
    "to_incoming",
]

log = logging.getLogger(__name__)

CHANNEL = "zalo"
TEXT_LIMIT = 2000
WEBHOOK_PATH = "/webhook/zalo"
SECRET_HEADER = "X-Bot-Api-Secret-Token"  # noqa: S105 - a header name
POLL_TIMEOUT_CODE = 408  # getUpdates had nothing to deliver: an empty poll, not an error
MAX_SEND_ATTEMPTS = 3  # interactive replies: the first try and two retries after a 429
MAX_REPLY_WAIT = 30.0  # never wait longer than this for one interactive reply
DEFAULT_RETRY_AFTER = 10.0  # a 429 without a retry-after value
REQUEST_TIMEOUT = 30.0
MAX_IN_FLIGHT = 64  # updates being handled at once (polling waits beyond that)

TEXT_EVENTS = frozenset({"message.text.received"})
MEDIA_EVENTS = frozenset({"message.image.received", "message.sticker.received"})
UNSUPPORTED_EVENTS = frozenset({"message.unsupported.received"})

# Zalo has no documented "blocked" code for bots; these descriptions mean the same thing.
_BLOCKED_RE = re.compile(
    r"block|not allow|not_allow|forbidden|unfollow|not follow|not a follower", re.IGNORECASE
)
_RETRY_IN_TEXT_RE = re.compile(r"retry after (\d+(?:\.\d+)?)", re.IGNORECASE)


# --------------------------------------------------------------------------- errors


class ZaloError(Exception):
    """A Bot API call failed. The text never contains the token or the URL."""

    def __init__(self, method: str, message: str) -> None:
        super().__init__(f"{method}: {message}")
        self.method = method


class ZaloAPIError(ZaloError):
    """The Bot API answered with an error (an HTTP error or ``ok: false``)."""

    def __init__(
        self,
        method: str,
        *,
        error_code: int | None,
        description: str,
        status: int,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(method, f"error {error_code}: {description or 'no description'}")
        self.error_code = error_code
        self.description = description
        self.status = status
        self.retry_after = retry_after

    @property
    def code(self) -> int:
        """The error code, or the HTTP status when the body had none."""
        return self.error_code if self.error_code is not None else self.status


class ZaloNetworkError(ZaloError):
    """No usable answer: connection error, timeout, dropped connection, malformed JSON."""


def delivery_error(exc: ZaloError) -> DeliveryError:
    """A failed call as the outbox sender's :class:`~bot.core.DeliveryError`."""
    if not isinstance(exc, ZaloAPIError):  # network, timeout, malformed answer
        return TemporaryFailure(str(exc))
    code = exc.code
    if code == 429 or exc.status == 429:
        return RetryLater(exc.retry_after or DEFAULT_RETRY_AFTER, str(exc))
    if code == 403 or exc.status == 403 or _BLOCKED_RE.search(exc.description or ""):
        return RecipientBlocked(str(exc))
    if code >= 500 or exc.status >= 500 or code == POLL_TIMEOUT_CODE:
        return TemporaryFailure(str(exc))
    return PermanentFailure(str(exc))


# --------------------------------------------------------------------------- the client


class ZaloClient:
    """``POST {base}/bot<TOKEN>/<method>`` with a JSON body; one shared ClientSession."""

    def __init__(
        self,
        token: str,
        *,
        base_url: str,
        request_timeout: float = REQUEST_TIMEOUT,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        if not token:
            raise ValueError("a Zalo bot token is required")
        self._token = token
        self.base_url = base_url.rstrip("/")
        self.request_timeout = request_timeout
        self._session = session
        self._owns_session = session is None

    def __repr__(self) -> str:
        return f"ZaloClient(base_url={self.base_url!r})"

    def _clean(self, text: str) -> str:
        return redact(text, [self._token])

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
            self._owns_session = True
        return self._session

    async def call(
        self, method: str, params: Mapping[str, Any] | None = None, *, seconds: float | None = None
    ) -> Any:
        """The ``result`` of a successful call; :class:`ZaloError` otherwise."""
        url = f"{self.base_url}/bot{self._token}/{method}"
        limit = aiohttp.ClientTimeout(total=seconds or self.request_timeout)
        try:
            async with self._http().post(url, json=dict(params or {}), timeout=limit) as response:
                status = response.status
                raw = await response.read()
                header_retry = response.headers.get("Retry-After")
        except TimeoutError:
            raise ZaloNetworkError(method, "timed out") from None
        except aiohttp.ClientError as exc:
            reason = self._clean(str(exc)) or "no details"
            raise ZaloNetworkError(method, f"{type(exc).__name__}: {reason}") from None
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            if status >= 400:
                raise ZaloAPIError(
                    method,
                    error_code=None,
                    description=f"HTTP {status}",
                    status=status,
                    retry_after=_number(header_retry),
                )
            raise ZaloNetworkError(method, f"malformed response (HTTP {status})")
        if body.get("ok") is True and status < 400:
            return body.get("result")
        description = self._clean(str(body.get("description") or body.get("message") or ""))
        parameters = body.get("parameters")
        retry_after = (
            _number(parameters.get("retry_after")) if isinstance(parameters, dict) else None
        )
        if retry_after is None:
            retry_after = _number(body.get("retry_after")) or _number(header_retry)
        if retry_after is None and (match := _RETRY_IN_TEXT_RE.search(description)):
            retry_after = float(match.group(1))
        raise ZaloAPIError(
            method,
            error_code=_integer(body.get("error_code")),
            description=description,
            status=status,
            retry_after=retry_after,
        )

    # ------------------------------------------------------------------ methods

    async def get_me(self) -> dict[str, Any]:
        result = await self.call("getMe")
        return result if isinstance(result, dict) else {}

    async def get_updates(self, poll_seconds: int) -> list[dict[str, Any]]:
        """Long-poll; ``[]`` when nothing arrived (408). The HTTP timeout outlasts the poll."""
        try:
            result = await self.call(
                "getUpdates",
                {"timeout": poll_seconds},
                seconds=poll_seconds + self.request_timeout,
            )
        except ZaloAPIError as exc:
            if POLL_TIMEOUT_CODE in (exc.error_code, exc.status):
                return []
            raise
        return extract_updates(result)

    async def send_message(self, chat_id: str, text: str) -> Any:
        return await self.call("sendMessage", {"chat_id": chat_id, "text": text})

    async def send_photo(self, chat_id: str, photo_url: str, caption: str | None = None) -> Any:
        params = {"chat_id": chat_id, "photo": photo_url}
        if caption:
            params["caption"] = caption
        return await self.call("sendPhoto", params)

    async def send_chat_action(self, chat_id: str, action: str = "typing") -> Any:
        return await self.call("sendChatAction", {"chat_id": chat_id, "action": action})

    async def set_webhook(self, url: str, secret_token: str) -> Any:
        return await self.call("setWebhook", {"url": url, "secret_token": secret_token})

    async def delete_webhook(self) -> Any:
        return await self.call("deleteWebhook")

    async def get_webhook_info(self) -> Any:
        return await self.call("getWebhookInfo")

    async def close(self) -> None:
        if self._session is not None and self._owns_session and not self._session.closed:
            await self._session.close()


def _number(value: object) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return min(max(number, 0.0), 3600.0) if number == number else None


def _integer(value: object) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- inbound


def extract_updates(body: object) -> list[dict[str, Any]]:
    """Updates from a webhook body or a getUpdates result: bare, wrapped in ``{ok, result}``
    (even twice), or a list of either."""
    if isinstance(body, list):
        return [update for item in body for update in extract_updates(item)]
    if not isinstance(body, dict):
        return []
    if "event_name" not in body and "message" not in body and "result" in body:
        return extract_updates(body["result"])
    return [body] if body else []


def _text_id(value: object) -> str | None:
    if value is None or isinstance(value, bool | dict | list):
        return None
    text = str(value).strip()
    return text or None


def _received_at(value: object) -> datetime | None:
    """``date`` is epoch milliseconds (seconds accepted too)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        raw = float(value)  # type: ignore[arg-type]
        if not raw > 0:
            return None
        return datetime.fromtimestamp(raw / 1000 if raw > 1e11 else raw, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def to_incoming(update: Mapping[str, Any]) -> IncomingMessage | None:
    """A Zalo update as the core sees it; ``None`` for what the assistant ignores."""
    updates = extract_updates(dict(update))
    if not updates:
        return None
    update = updates[0]
    event = str(update.get("event_name") or "")
    message = update.get("message")
    if not isinstance(message, dict):
        log.info("Zalo update without a message ignored (event %r)", event or None)
        return None
    sender = message.get("from") if isinstance(message.get("from"), dict) else {}
    chat = message.get("chat") if isinstance(message.get("chat"), dict) else {}
    assert isinstance(sender, dict) and isinstance(chat, dict)
    if sender.get("is_bot") is True:
        return None
    user_id = _text_id(sender.get("id")) or _text_id(chat.get("id"))
    chat_id = _text_id(chat.get("id")) or user_id
    if user_id is None or chat_id is None:
        log.warning("Zalo update without a sender ignored (event %r)", event or None)
        return None
    text = message.get("text") if isinstance(message.get("text"), str) else None
    kind: MessageKind
    if event in TEXT_EVENTS or (not event and text is not None):
        kind = "text" if text is not None else "unsupported"
    elif event in MEDIA_EVENTS:
        kind = "media"
        caption = message.get("caption")
        text = caption if isinstance(caption, str) else None
    elif event in UNSUPPORTED_EVENTS:
        kind, text = "unsupported", None
    else:
        log.info("Zalo event %r ignored", event)
        return None
    name = sender.get("display_name") or sender.get("name")
    message_id = _text_id(message.get("message_id"))
    in_group = str(chat.get("chat_type") or "").upper() == "GROUP"
    # Zalo documents no mention entity: in a group only a command is addressed to the bot.
    addressed = not in_group or (kind == "text" and (text or "").lstrip().startswith("/"))
    incoming = IncomingMessage(
        channel=CHANNEL,
        user_id=user_id,
        chat_id=chat_id,
        text=text,
        kind=kind,
        user_name=str(name) if name else None,
        message_id=message_id,
        chat_type="group" if in_group else "private",
        addressed=addressed,
        update_key=f"m{message_id}" if message_id else None,
    )
    stamp = _received_at(message.get("date"))
    return replace(incoming, received_at=stamp) if stamp is not None else incoming


# --------------------------------------------------------------------------- outbound


def _with_footer(text: str, footer: str | None, limit: int) -> list[str]:
    """Chunks of ``text``; the footer (a citation) shares the last chunk with the text."""
    if not footer:
        return split_text(text, limit)
    footer = footer.strip()
    chunks = split_text(text, limit)
    if not chunks:
        return split_text(footer, limit)
    if len(chunks[-1]) + 2 + len(footer) <= limit:
        return [*chunks[:-1], f"{chunks[-1]}\n\n{footer}"]
    room = limit - 2 - len(footer)
    if room >= limit // 4:  # re-split the end so the citation stays beside the text
        tail = split_text(chunks[-1], room)
        return [*chunks[:-1], *tail[:-1], f"{tail[-1]}\n\n{footer}"]
    return [*chunks, *split_text(footer, limit)]


def render(reply: Reply, limit: int = TEXT_LIMIT) -> list[str]:
    """Plain-text messages for one reply (buttons already numbered by dispatch), each at most
    ``limit`` characters; a text that takes several messages is numbered (1/2), (2/2). A
    picture cannot be sent (sendPhoto needs a public URL): its text alternative (or caption)
    goes first instead."""
    parts: list[str] = []
    if reply.image is not None:
        alternative = reply.image.alt_text or reply.image.caption
        if alternative:
            parts.extend(split_push(alternative, limit))
    text = _with_footer(reply.text, reply.footer, limit)
    if len(text) > 1:
        text = mark_parts(_with_footer(reply.text, reply.footer, limit - PART_MARK_ROOM))
    return parts + text


def split_push(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """A push's text in messages of at most ``limit`` characters, numbered when several."""
    parts = split_text(text, limit)
    if len(parts) > 1:
        parts = mark_parts(split_text(text, limit - PART_MARK_ROOM))
    return parts or ["…"]


# --------------------------------------------------------------------------- the channel


class ZaloChannel:
    def __init__(
        self,
        app: App,
        *,
        token: str,
        api_base_url: str,
        poll_timeout: int = 30,
        client: ZaloClient | None = None,
        backoff_base: float = 1.0,
        backoff_cap: float = 60.0,
    ) -> None:
        self.app = app
        self.client = client or ZaloClient(token, base_url=api_base_url)
        self.poll_timeout = poll_timeout
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.name: str | None = None
        self._stopping = asyncio.Event()
        self._poll: asyncio.Task[list[dict[str, Any]]] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._chat_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    # ------------------------------------------------------------------ inbound

    async def handle_update(self, update: Mapping[str, Any]) -> None:
        """Translate, dispatch, send the replies (one chat's replies stay in order)."""
        incoming = to_incoming(update)
        if incoming is None:
            return
        lock = self._chat_locks.get(incoming.chat_id)
        if lock is None:
            lock = asyncio.Lock()
            self._chat_locks[incoming.chat_id] = lock
        async with lock:
            outcome = await self.app.handle(incoming, buttons=False)
            await self.send_replies(incoming.chat_id, outcome.replies)
            await self.app.confirm(outcome)

    async def _handle_safely(self, update: Mapping[str, Any]) -> None:
        try:
            await self.handle_update(update)
        except Exception:
            log.exception("a Zalo update could not be handled")

    def _spawn(self, update: Mapping[str, Any]) -> None:
        task = asyncio.create_task(self._handle_safely(update))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, within: float | None = None) -> None:
        """Wait for the updates being handled (webhook and polling hand them to tasks)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=within)

    # ------------------------------------------------------------------ outbound

    async def send_replies(self, chat_id: str, replies: Sequence[Reply]) -> None:
        for reply in replies:
            for part in render(reply):
                if not await self._send_text(chat_id, part):
                    return  # blocked, refused or unreachable: the rest would fail too

    async def _send_text(self, chat_id: str, text: str) -> bool:
        """A reply to a person who just wrote: retry a 429 a few times, log other errors."""
        for attempt in range(1, MAX_SEND_ATTEMPTS + 1):
            try:
                await self.client.send_message(chat_id, text)
                return True
            except ZaloError as exc:
                error = delivery_error(exc)
                if isinstance(error, RetryLater) and attempt < MAX_SEND_ATTEMPTS:
                    await asyncio.sleep(min(error.retry_after, MAX_REPLY_WAIT))
                    continue
                kind = type(error).__name__
                log.warning("Zalo did not take a reply (%s): %s", kind, exc)
                return False
        return False  # pragma: no cover - the loop always returns

    # ------------------------------------------------------------------ lifecycle

    async def prepare(self) -> None:
        """Check the token with getMe."""
        try:
            me = await self.client.get_me()
        except ZaloAPIError as exc:
            raise RuntimeError(f"Zalo không chấp nhận token bot (ZALO_BOT_TOKEN): {exc}") from None
        except ZaloError as exc:
            raise RuntimeError(f"không kết nối được Zalo Bot API: {exc}") from None
        self.name = str(me.get("display_name") or me.get("account_name") or me.get("name") or "")
        log.info("Zalo bot %s connected", self.name or "(unnamed)")

    async def run_polling(self) -> None:
        """Long-poll until :meth:`stop_polling`. Errors back off with jitter; never fatal."""
        self._stopping.clear()
        try:
            await self.client.delete_webhook()
        except Exception as exc:
            log.warning("Zalo deleteWebhook failed (%s); polling anyway", exc)
        failures = 0
        while not self._stopping.is_set():
            self._poll = asyncio.create_task(self.client.get_updates(self.poll_timeout))
            try:
                updates = await self._poll
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if self._stopping.is_set() and (task is None or not task.cancelling()):
                    break
                raise
            except ZaloError as exc:
                failures += 1
                delay = self._backoff(failures)
                if isinstance(exc, ZaloAPIError) and exc.code == 429:
                    delay = min(exc.retry_after or DEFAULT_RETRY_AFTER, self.backoff_cap)
                log.warning("Zalo getUpdates failed (%s); retrying in %.1f s", exc, delay)
                await self._pause(delay)
                continue
            except Exception:
                failures += 1
                delay = self._backoff(failures)
                log.exception("Zalo polling hit an unexpected error; retrying in %.1f s", delay)
                await self._pause(delay)
                continue
            finally:
                self._poll = None
            failures = 0
            for update in updates:
                if len(self._tasks) >= MAX_IN_FLIGHT:
                    await asyncio.wait(set(self._tasks), return_when=asyncio.FIRST_COMPLETED)
                self._spawn(update)
        await self.drain(within=10)

    def _backoff(self, failures: int) -> float:
        """Exponential back-off with full jitter over the upper half."""
        ceiling = min(self.backoff_cap, self.backoff_base * 2 ** min(failures - 1, 16))
        return random.uniform(ceiling / 2, ceiling)

    async def _pause(self, delay: float) -> None:
        await wait_event(self._stopping, delay)

    async def stop_polling(self) -> None:
        self._stopping.set()
        if self._poll is not None:
            self._poll.cancel()

    def register_webhook(self, web_app: web.Application, secret: str) -> None:
        if not secret:
            raise ValueError("a webhook secret is required")
        web_app.router.add_post(WEBHOOK_PATH, self.webhook_handler(secret))

    def webhook_handler(self, secret: str) -> Callable[[web.Request], Awaitable[web.Response]]:
        expected = secret.encode("utf-8")

        async def handler(request: web.Request) -> web.Response:
            given = request.headers.get(SECRET_HEADER)
            if given is None:
                log.info("Zalo webhook request without the secret header refused")
                return web.json_response({"ok": False, "description": "missing"}, status=401)
            if not hmac.compare_digest(given.encode("utf-8", "replace"), expected):
                log.info("Zalo webhook request with a wrong secret refused")
                return web.json_response({"ok": False, "description": "forbidden"}, status=403)
            try:
                body = json.loads(await request.read())
            except ValueError:
                return web.json_response({"ok": False, "description": "bad json"}, status=400)
            # Handled (replies sent) before Zalo is answered: an update whose worker died is
            # delivered again, and the message log tells it was seen.
            for update in extract_updates(body):
                await self.handle_update(update)
            return web.json_response({"ok": True})

        return handler

    async def set_webhook(self, base_url: str, secret: str) -> None:
        try:
            await self.client.set_webhook(f"{base_url.rstrip('/')}{WEBHOOK_PATH}", secret)
        except ZaloError as exc:
            raise RuntimeError(f"Zalo từ chối đăng ký webhook: {exc}") from None
        log.info("Zalo webhook registered at %s%s", base_url.rstrip("/"), WEBHOOK_PATH)

    async def close(self) -> None:
        self._stopping.set()
        await self.drain(within=10)
        leftover = list(self._tasks)
        for task in leftover:
            task.cancel()
        await asyncio.gather(*leftover, return_exceptions=True)
        await self.client.close()


# --------------------------------------------------------------------------- pushes


class ZaloTransport:
    """:class:`bot.core.Transport` for the outbox sender: plain text, no buttons."""

    channel = CHANNEL
    buttons = False

    def __init__(self, client: ZaloClient) -> None:
        self.client = client

    async def deliver(self, chat_id: str, text: str, buttons: Sequence[Sequence[Button]]) -> None:
        """Send ``text`` (split at 2000 characters); buttons are dropped (the text carries a
        typed alternative). Raises a :class:`~bot.core.DeliveryError` subclass."""
        for part in split_push(text):
            try:
                await self.client.send_message(chat_id, part)
            except ZaloError as exc:
                raise delivery_error(exc) from None
