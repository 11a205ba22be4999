"""Drive the local Telegram Bot API emulator (tests/e2e/emulator/serve.js) from Python.

    async with TelegramEmulator.start() as emu:
        bot = Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(emu.base_url)))
        user = emu.client(token, user_id=42, first_name="An")
        await user.send_text("/start")
        [reply] = await user.wait_for_bot_messages()
        await user.press_button("some:data", message=reply)

        # A group (negative chat id): several users, each a client of the same chat.
        an = emu.client(token, user_id=42, first_name="An", chat_id=-1001234, chat_title="Xã A")
        await an.mention_bot("cho hỏi lịch họp")  # "@troly_test_bot cho hỏi lịch họp"
        await an.send_command("hoi", "lịch họp")  # "/hoi@troly_test_bot lịch họp"
        await an.reply(reply, "cảm ơn")  # reply_to_message is the bot's message
        assert "hoi" in await an.visible_commands()  # the command menu An sees there

The emulator needs `npm ci` in tests/e2e/emulator first (`make emulator` does it).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import deque
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

EMULATOR_DIR = Path(__file__).resolve().parent / "emulator"
BOT_USERNAME = "troly_test_bot"  # what the emulator's getMe answers, for every token
Json = dict[str, Any]


class EmulatorError(RuntimeError):
    """The emulator could not be started or answered a client request with an error."""

    def __init__(self, message: str, status: int | None = None, description: str = "") -> None:
        super().__init__(message)
        self.status = status  # the HTTP status of a refused client request
        self.description = description  # its Telegram-like description


class TelegramEmulator:
    """A running emulator process plus an HTTP session for its client API."""

    def __init__(self, port: int, http: aiohttp.ClientSession) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"  # Bot API base: {base_url}/bot{token}/{method}
        self._http = http
        self.stderr: deque[str] = deque()  # the node process's last stderr lines, for debugging

    @classmethod
    @contextlib.asynccontextmanager
    async def start(
        cls, node: str = "node", port: int = 0, ready_timeout: float = 20.0
    ) -> AsyncIterator[TelegramEmulator]:
        """Spawn `node serve.js PORT` (port 0: the OS picks a free one) and wait for READY."""
        if not (EMULATOR_DIR / "node_modules" / "telegram-test-api").is_dir():
            raise EmulatorError(f"emulator not installed: run `npm ci` in {EMULATOR_DIR}")
        try:
            proc = await asyncio.create_subprocess_exec(
                node,
                "serve.js",
                str(port),
                "--exit-on-stdin-close",  # no orphan if this process dies without cleaning up
                cwd=EMULATOR_DIR,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise EmulatorError(f"cannot run Telegram emulator with node={node!r}: {exc}") from exc
        assert proc.stdout is not None and proc.stderr is not None
        stderr: deque[str] = deque(maxlen=200)
        drain_stderr = asyncio.create_task(_collect(proc.stderr, stderr))
        drain_stdout: asyncio.Task[None] | None = None
        try:
            try:
                actual_port = await asyncio.wait_for(_read_ready(proc.stdout), ready_timeout)
            except (TimeoutError, EOFError) as exc:
                reason = "timed out" if isinstance(exc, TimeoutError) else "exited"
                await _stop(proc)
                await drain_stderr
                raise EmulatorError(
                    f"Telegram emulator {reason} before READY (node={node!r}, "
                    f"exit code {proc.returncode}); stderr:\n" + "".join(stderr)
                ) from None
            drain_stdout = asyncio.create_task(_collect(proc.stdout, deque(maxlen=50)))
            async with aiohttp.ClientSession() as http:
                emulator = cls(actual_port, http)
                emulator.stderr = stderr
                yield emulator
        finally:
            await _stop(proc)
            await asyncio.gather(drain_stderr, *([drain_stdout] if drain_stdout else []))

    @staticmethod
    def available(node: str = "node") -> bool:
        """Whether the emulator can start here (Node.js and `make emulator` done)."""
        import shutil

        installed = (EMULATOR_DIR / "node_modules" / "telegram-test-api").is_dir()
        return installed and shutil.which(node) is not None

    def client(
        self,
        token: str,
        user_id: int = 1,
        first_name: str = "Test",
        chat_id: int | None = None,
        username: str | None = None,
        *,
        chat_title: str | None = None,
        language_code: str | None = None,
    ) -> TelegramUser:
        """A simulated user talking to the bot `token`. chat_id defaults to the user's private
        chat with the bot; a negative one is a group (-100... a supergroup) titled chat_title
        (default "Group <id>"). language_code goes into the user's `from` and picks the
        language-specific command menus in visible_commands()."""
        return TelegramUser(
            self, token, user_id, first_name, chat_id, username, chat_title, language_code
        )

    async def bot_calls(self, token: str, method: str | None = None) -> list[Json]:
        """Bot API calls the bot made (except getUpdates): [{"method", "params", "time"}]."""
        calls = await self.request("/_emulator/calls", {"token": token})
        return [c for c in calls if method is None or c["method"] == method]

    async def call_counts(self, token: str) -> Json:
        """Calls per method, the number of chats the bot sent a message to and of its
        getUpdates calls: {"methods": {method: n}, "chats": n, "polls": n} (cheap enough to
        poll while the bot works)."""
        result: Json = await self.request("/_emulator/counts", {"token": token})
        return result

    async def command_menus(self, token: str) -> list[Json]:
        """Every command list the bot has set and not deleted, in the order they were set:
        [{"scope": {"type", "chat_id"?, "user_id"?}, "language_code", "commands": [...]}]."""
        result: list[Json] = await self.request("/_emulator/commands", {"token": token})
        return result

    async def visible_menu(
        self,
        token: str,
        chat_id: int,
        user_id: int | None = None,
        *,
        chat_type: str | None = None,
        language_code: str | None = None,
        is_admin: bool = False,
    ) -> Json:
        """The command menu user `user_id` sees in chat `chat_id`, resolved as Telegram
        documents it (private chat: chat, all_private_chats, default; group: chat_member,
        chat_administrators if is_admin, chat, all_chat_administrators if is_admin,
        all_group_chats, default; each scope with language_code first, then without).
        Returns {"scope", "language_code", "commands"}: the list that won, scope None and
        no commands when none applies. user_id defaults to chat_id (a private chat);
        chat_type to the type of the chat as users showed it (else from the id's sign)."""
        payload: Json = {"token": token, "chat_id": chat_id, "is_admin": is_admin}
        if user_id is not None:
            payload["user_id"] = user_id
        if chat_type is not None:
            payload["chat_type"] = chat_type
        if language_code is not None:
            payload["language_code"] = language_code
        result: Json = await self.request("/_emulator/menu", payload)
        return result

    async def visible_commands(
        self,
        token: str,
        chat_id: int,
        user_id: int | None = None,
        *,
        chat_type: str | None = None,
        language_code: str | None = None,
        is_admin: bool = False,
    ) -> list[str]:
        """The command names of visible_menu(), in the bot's order."""
        menu = await self.visible_menu(
            token,
            chat_id,
            user_id,
            chat_type=chat_type,
            language_code=language_code,
            is_admin=is_admin,
        )
        return [command["command"] for command in menu["commands"]]

    async def request(self, path: str, payload: Json) -> Any:
        """POST to the emulator's client API and return `result`; EmulatorError (with status
        and description) when it refuses."""
        async with self._http.post(self.base_url + path, json=payload) as resp:
            body = await resp.json(content_type=None)
        if resp.status != 200 or not isinstance(body, dict) or not body.get("ok"):
            description = body.get("description", "") if isinstance(body, dict) else ""
            raise EmulatorError(f"POST {path} -> {resp.status} {body!r}", resp.status, description)
        return body.get("result")


class TelegramUser:
    """One user in one chat, sending updates to a bot and reading what the bot sent back."""

    def __init__(
        self,
        emulator: TelegramEmulator,
        token: str,
        user_id: int,
        first_name: str,
        chat_id: int | None,
        username: str | None,
        chat_title: str | None = None,
        language_code: str | None = None,
    ) -> None:
        self.emulator = emulator
        self.token = token
        self.user: Json = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username:
            self.user["username"] = username
        if language_code:
            self.user["language_code"] = language_code
        self.language_code = language_code
        self.chat_id = user_id if chat_id is None else chat_id
        self.chat: Json = (
            {"id": self.chat_id, "type": "private", "first_name": first_name}
            if self.chat_id > 0
            else {
                "id": self.chat_id,
                "type": _group_type(self.chat_id),
                "title": chat_title or f"Group {self.chat_id}",
            }
        )
        if username and self.chat_id > 0:
            self.chat["username"] = username
        self._seen: set[int] = set()

    @property
    def is_group(self) -> bool:
        return self.chat_id < 0

    async def send_text(
        self,
        text: str,
        *,
        reply_to: Json | int | None = None,
        entities: list[Json] | None = None,
    ) -> Json:
        """Send a text message and return it as the bot will get it (with its message_id).
        Entities default to what Telegram finds in the text: every /command (with its
        @botname, if any) as bot_command and every @username as mention, offsets and lengths
        in UTF-16 code units. reply_to (a message dict or a message_id of this chat) makes it
        a reply: the emulator fills reply_to_message from that message's current state."""
        message: Json = {
            "botToken": self.token,
            "from": self.user,
            "chat": self.chat,
            "date": int(time.time()),
            "text": text,
        }
        found = text_entities(text) if entities is None else entities
        if found:
            message["entities"] = found
        if reply_to is not None:
            message["reply_to_message_id"] = (
                reply_to["message_id"] if isinstance(reply_to, dict) else int(reply_to)
            )
        result: Json = await self.emulator.request("/sendMessage", message)
        return result

    async def send_command(
        self, command: str, args: str = "", *, addressed: bool | None = None
    ) -> Json:
        """Send `/command args`. addressed (default: in a group) writes it as
        `/command@troly_test_bot`, as Telegram's apps do in groups; one bot_command entity
        covers the command and the @botname."""
        name = command.removeprefix("/")
        if addressed is None:
            addressed = self.is_group
        text = f"/{name}@{BOT_USERNAME}" if addressed else f"/{name}"
        return await self.send_text(f"{text} {args}" if args else text)

    async def mention_bot(self, text: str = "") -> Json:
        """Send `@troly_test_bot text`, with a mention entity for the bot's username."""
        return await self.send_text(f"@{BOT_USERNAME} {text}" if text else f"@{BOT_USERNAME}")

    async def reply(self, message: Json | int, text: str) -> Json:
        """Reply to `message` (the bot's or anyone's in this chat) with `text`."""
        return await self.send_text(text, reply_to=message)

    async def press_button(self, callback_data: str, message: Json | int | None = None) -> Json:
        """Press the inline button carrying `callback_data` on `message` (a message dict or
        message_id; default: the newest bot message in this chat that has such a button).
        The message is read in its current state: LookupError if it is gone or has no such
        button now (e.g. the bot edited its keyboard away). Returns the CallbackQuery."""
        current = await self.bot_messages()
        target: Json | None
        if message is None:
            candidates = [m for m in current if _has_button(m, callback_data)]
            if not candidates:
                raise LookupError(f"no bot message in chat {self.chat_id} has {callback_data!r}")
            target = candidates[-1]
        else:
            message_id = message["message_id"] if isinstance(message, dict) else int(message)
            target = next((m for m in current if m["message_id"] == message_id), None)
            if target is None:
                raise LookupError(f"message {message_id} no longer exists in chat {self.chat_id}")
            if not _has_button(target, callback_data):
                raise LookupError(f"message {message_id} has no button {callback_data!r} now")
        try:
            result: Json = await self.emulator.request(
                "/sendCallback",
                {
                    "botToken": self.token,
                    "from": self.user,
                    "message": target,
                    "data": callback_data,
                    "chat_instance": f"emu-{self.chat_id}",
                },
            )
        except EmulatorError as exc:  # changed between our read and the press
            if exc.status == 400:
                raise LookupError(exc.description) from exc
            raise
        return result

    async def visible_commands(self, *, is_admin: bool = False) -> list[str]:
        """The command menu this user sees in this chat (see TelegramEmulator.visible_menu)."""
        return await self.emulator.visible_commands(
            self.token,
            self.chat_id,
            self.user["id"],
            chat_type=self.chat["type"],
            language_code=self.language_code,
            is_admin=is_admin,
        )

    async def bot_message(self, message_id: int) -> Json | None:
        """The bot's message `message_id` in this chat in its current state, None if gone."""
        return next((m for m in await self.bot_messages() if m["message_id"] == message_id), None)

    async def bot_messages(self) -> list[Json]:
        """Everything the bot sent to this chat that still exists, oldest first, as Bot API
        Message dicts in their current (possibly edited) state."""
        history = await self.emulator.request("/getUpdatesHistory", {"token": self.token})
        return [
            entry["apiMessage"]
            for entry in history
            if "apiMessage" in entry and entry["apiMessage"]["chat"]["id"] == self.chat_id
        ]

    async def wait_for_bot_messages(self, min_count: int = 1, timeout: float = 15.0) -> list[Json]:
        """Wait until the bot has sent at least `min_count` messages to this chat that no
        earlier call returned; return all of those (oldest first) and mark them seen."""
        deadline = time.monotonic() + timeout
        while True:
            new = [m for m in await self.bot_messages() if m["message_id"] not in self._seen]
            if len(new) >= min_count:
                self._seen.update(m["message_id"] for m in new)
                return new
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"bot sent {len(new)} new message(s) to chat {self.chat_id} within "
                    f"{timeout}s, wanted {min_count}: {new!r}"
                )
            await asyncio.sleep(0.05)


# Entities Telegram finds in a user's text. A bot command: '/' and up to 64 of [A-Za-z0-9_],
# then maybe '@' and a username, not glued to a word, '/' or '@' on either side. A mention:
# '@' and a 5-32 character username, not glued to a word (so no e-mail address).
_BOT_COMMAND = re.compile(r"(?<![\w/@.])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/@])")
_MENTION = re.compile(r"(?<![\w/@.])@[A-Za-z0-9_]{5,32}(?![\w@])")


def utf16_len(text: str) -> int:
    """The length of `text` in UTF-16 code units, the unit of MessageEntity offsets."""
    return len(text.encode("utf-16-le")) // 2


def text_entities(text: str) -> list[Json]:
    """bot_command and mention entities of `text`, by offset (UTF-16 code units)."""
    spans: list[tuple[int, int, str]] = [
        (m.start(), m.end(), "bot_command") for m in _BOT_COMMAND.finditer(text)
    ]
    for m in _MENTION.finditer(text):
        if not any(start < m.end() and m.start() < end for start, end, _ in spans):
            spans.append((m.start(), m.end(), "mention"))
    return [
        {"type": kind, "offset": utf16_len(text[:start]), "length": utf16_len(text[start:end])}
        for start, end, kind in sorted(spans)
    ]


def _group_type(chat_id: int) -> str:
    return "supergroup" if str(chat_id).startswith("-100") else "group"  # as serve.js does


def _has_button(message: Json, callback_data: str) -> bool:
    rows = (message.get("reply_markup") or {}).get("inline_keyboard") or []
    return any(button.get("callback_data") == callback_data for row in rows for button in row)


async def _read_ready(stdout: asyncio.StreamReader) -> int:
    while line := await stdout.readline():
        if line.startswith(b"READY "):
            return int(line.split()[1])
    raise EOFError


async def _collect(stream: asyncio.StreamReader, into: deque[str]) -> None:
    while line := await stream.readline():
        into.append(line.decode(errors="replace"))


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    if proc.stdin is not None:
        proc.stdin.close()
