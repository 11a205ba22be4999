"""The Telegram Bot API emulator itself (tests/e2e/emulator/serve.js and its Python driver),
driven by aiogram 3 as troly drives it: command menus per scope and language and the menu a
user sees, group chats with several users, mentions and replies, and inline keyboards edited
away."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllChatAdministrators,
    BotCommandScopeAllGroupChats,
    BotCommandScopeAllPrivateChats,
    BotCommandScopeChat,
    BotCommandScopeChatAdministrators,
    BotCommandScopeChatMember,
    BotCommandScopeDefault,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    ReplyParameters,
    Update,
)

from tests.conftest import require
from tests.e2e.telegram_emulator import (
    BOT_USERNAME,
    EMULATOR_DIR,
    EmulatorError,
    TelegramEmulator,
    text_entities,
)

pytestmark = pytest.mark.e2e

TOKEN = "424242:emulator-test-token"
OTHER_TOKEN = "434343:another-bot-token"
OFFICIAL = 7001  # an official: has /baocao
STRANGER = 7002
GROUP = -1001234567890  # a supergroup
OTHER_GROUP = -424242  # a basic group


def _emulator_available() -> None:
    require(shutil.which("node") is not None, "Node.js is not installed")
    require(
        (EMULATOR_DIR / "node_modules" / "telegram-test-api").is_dir(),
        "the emulator is not installed (make emulator)",
    )


@pytest.fixture
async def emulator() -> AsyncIterator[TelegramEmulator]:
    _emulator_available()
    async with TelegramEmulator.start() as emu:
        yield emu


def _bot(emulator: TelegramEmulator, token: str = TOKEN) -> Bot:
    api = TelegramAPIServer.from_base(emulator.base_url)
    return Bot(token, session=AiohttpSession(api=api))


@pytest.fixture
async def bot(emulator: TelegramEmulator) -> AsyncIterator[Bot]:
    bot = _bot(emulator)
    try:
        yield bot
    finally:
        await bot.session.close()


class Poller:
    """getUpdates as a bot polls it: each batch confirmed by the next offset."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self.offset: int | None = None

    async def take(self, count: int, timeout: float = 10) -> list[Update]:
        updates: list[Update] = []
        async with asyncio.timeout(timeout):
            while len(updates) < count:
                for update in await self.bot.get_updates(offset=self.offset, timeout=1):
                    updates.append(update)
                    self.offset = update.update_id + 1
        assert await self.bot.get_updates(offset=self.offset, timeout=0) == []
        return updates


def _names(commands: list[BotCommand]) -> list[str]:
    return [c.command for c in commands]


def _commands(*names: str) -> list[BotCommand]:
    return [BotCommand(command=name, description=f"Lệnh {name}") for name in names]


async def _raw_call(emulator: TelegramEmulator, method: str, **params: str) -> dict[str, Any]:
    """A Bot API call with hand-written form fields (what aiogram's types cannot express)."""
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{emulator.base_url}/bot{TOKEN}/{method}", data=params) as resp,
    ):
        body: dict[str, Any] = await resp.json(content_type=None)
        assert resp.status == body.get("error_code", 200)
        return body


# --------------------------------------------------------------------------- command menus


async def test_get_me_names_the_bot_the_driver_mentions(bot: Bot) -> None:
    me = await bot.get_me()
    assert me.username == BOT_USERNAME
    assert me.id == 424242


async def test_commands_are_kept_per_scope_and_language(
    bot: Bot, emulator: TelegramEmulator
) -> None:
    scopes: list[Any] = [
        BotCommandScopeDefault(),
        BotCommandScopeAllPrivateChats(),
        BotCommandScopeAllGroupChats(),
        BotCommandScopeAllChatAdministrators(),
        BotCommandScopeChat(chat_id=OFFICIAL),
        BotCommandScopeChat(chat_id=GROUP),
        BotCommandScopeChatAdministrators(chat_id=GROUP),
        BotCommandScopeChatMember(chat_id=GROUP, user_id=OFFICIAL),
    ]
    for i, scope in enumerate(scopes):
        assert await bot.set_my_commands(_commands(f"c{i}"), scope=scope) is True
        assert await bot.set_my_commands(_commands(f"c{i}_vi"), scope=scope, language_code="vi")

    for i, scope in enumerate(scopes):
        assert _names(await bot.get_my_commands(scope=scope)) == [f"c{i}"]
        assert _names(await bot.get_my_commands(scope=scope, language_code="vi")) == [f"c{i}_vi"]
        # Exactly that scope and language: nothing falls back to a broader list here.
        assert await bot.get_my_commands(scope=scope, language_code="en") == []

    assert _names(await bot.get_my_commands()) == ["c0"]  # no scope is the default scope
    assert await bot.get_my_commands(scope=BotCommandScopeChat(chat_id=STRANGER)) == []
    assert await bot.get_my_commands(scope=BotCommandScopeChat(chat_id=OTHER_GROUP)) == []
    other_member = BotCommandScopeChatMember(chat_id=GROUP, user_id=STRANGER)
    assert await bot.get_my_commands(scope=other_member) == []

    # The lists belong to the bot (its token): another bot sees none of them.
    other = _bot(emulator, OTHER_TOKEN)
    try:
        assert await other.get_my_commands() == []
        assert await other.get_my_commands(scope=BotCommandScopeChat(chat_id=OFFICIAL)) == []
    finally:
        await other.session.close()

    stored = await emulator.command_menus(TOKEN)
    assert len(stored) == 2 * len(scopes)
    assert stored[0] == {
        "scope": {"type": "default"},
        "language_code": "",
        "commands": [{"command": "c0", "description": "Lệnh c0"}],
    }
    assert {"type": "chat_member", "chat_id": GROUP, "user_id": OFFICIAL} in [
        menu["scope"] for menu in stored
    ]


async def test_set_replaces_a_list_and_normalises_its_commands(bot: Bot) -> None:
    await bot.set_my_commands(_commands("hoi", "help"))
    await bot.set_my_commands(
        [
            BotCommand(command=" /hoi ", description="  Hỏi về các kết luận "),
            BotCommand(command="a" * 32, description="ả" * 256),  # characters, not bytes
        ]
    )
    commands = await bot.get_my_commands()
    assert [(c.command, c.description) for c in commands] == [
        ("hoi", "Hỏi về các kết luận"),
        ("a" * 32, "ả" * 256),
    ]
    # 100 commands is the limit, not past it.
    await bot.set_my_commands(_commands(*(f"c{i}" for i in range(100))))
    assert len(await bot.get_my_commands()) == 100


async def test_delete_and_empty_lists_remove_only_that_scope_and_language(
    bot: Bot, emulator: TelegramEmulator
) -> None:
    official_chat = BotCommandScopeChat(chat_id=OFFICIAL)
    await bot.set_my_commands(_commands("hoi"))
    await bot.set_my_commands(_commands("hoi_vi"), language_code="vi")
    await bot.set_my_commands(_commands("baocao"), scope=official_chat)

    assert await bot.delete_my_commands(language_code="vi") is True
    assert await bot.get_my_commands(language_code="vi") == []
    assert _names(await bot.get_my_commands()) == ["hoi"]
    assert _names(await bot.get_my_commands(scope=official_chat)) == ["baocao"]
    assert await bot.delete_my_commands(language_code="vi") is True  # nothing left: still True

    # An empty list is no list: the official's chat shows the default again.
    assert await bot.set_my_commands([], scope=official_chat) is True
    assert await bot.get_my_commands(scope=official_chat) == []
    assert await emulator.visible_commands(TOKEN, OFFICIAL) == ["hoi"]
    assert [menu["scope"] for menu in await emulator.command_menus(TOKEN)] == [{"type": "default"}]

    assert await bot.delete_my_commands(scope=BotCommandScopeDefault()) is True
    assert await bot.get_my_commands() == []
    assert await emulator.command_menus(TOKEN) == []


@pytest.mark.parametrize(
    ("commands", "kwargs", "description"),
    [
        (
            [BotCommand(command="Hoi", description="x")],
            {},
            "Bad Request: BOT_COMMAND_INVALID",
        ),
        (
            [BotCommand(command="hỏi", description="x")],
            {},
            "Bad Request: BOT_COMMAND_INVALID",
        ),
        (
            [BotCommand(command="bao-cao", description="x")],
            {},
            "Bad Request: BOT_COMMAND_INVALID",
        ),
        (
            [BotCommand(command="a" * 33, description="x")],
            {},
            "Bad Request: command length must not exceed 32",
        ),
        ([BotCommand(command="/", description="x")], {}, "Bad Request: command must be non-empty"),
        (
            [BotCommand(command="hoi", description="   ")],
            {},
            "Bad Request: command description must be non-empty",
        ),
        (
            [BotCommand(command="hoi", description="x" * 257)],
            {},
            "Bad Request: command description length must not exceed 256",
        ),
        (_commands(*(f"c{i}" for i in range(101))), {}, "Bad Request: BOT_COMMANDS_TOO_MUCH"),
        (
            _commands("hoi"),
            {"language_code": "vie"},
            "Bad Request: invalid language code specified",
        ),
        (
            _commands("hoi"),
            {"language_code": "VI"},
            "Bad Request: invalid language code specified",
        ),
        (
            _commands("hoi"),
            {"scope": BotCommandScopeChatAdministrators(chat_id=OFFICIAL)},
            "Bad Request: can't use specified scope in private chats",
        ),
        (
            _commands("hoi"),
            {"scope": BotCommandScopeChatMember(chat_id=OFFICIAL, user_id=OFFICIAL)},
            "Bad Request: can't use specified scope in private chats",
        ),
        (
            _commands("hoi"),
            {"scope": BotCommandScopeChat(chat_id="@some_group")},
            "Bad Request: chat not found",
        ),
        (
            _commands("hoi"),
            {"scope": BotCommandScopeChatMember(chat_id=GROUP, user_id=0)},
            "Bad Request: can't parse BotCommandScope: Invalid user_id specified",
        ),
    ],
)
async def test_set_my_commands_refuses_what_telegram_refuses(
    bot: Bot, commands: list[BotCommand], kwargs: dict[str, Any], description: str
) -> None:
    await bot.set_my_commands(_commands("hoi"))
    with pytest.raises(TelegramBadRequest) as refused:
        await bot.set_my_commands(commands, **kwargs)
    assert refused.value.message == description
    assert _names(await bot.get_my_commands()) == ["hoi"]  # a refused call changed nothing


@pytest.mark.parametrize(
    ("method", "params", "description"),
    [
        ("setMyCommands", {"commands": "[{"}, "Bad Request: can't parse commands JSON object"),
        (
            "setMyCommands",
            {"commands": '{"command": "hoi"}'},
            "Bad Request: expected an Array of BotCommand",
        ),
        (
            "setMyCommands",
            {"commands": '[{"command": "hoi"}]'},
            "Bad Request: can't parse BotCommand: Can't find field \"description\"",
        ),
        (
            "setMyCommands",
            {"commands": '["hoi"]'},
            "Bad Request: can't parse BotCommand: expected an Object",
        ),
        ("getMyCommands", {"scope": "{"}, "Bad Request: can't parse BotCommandScope JSON object"),
        (
            "getMyCommands",
            {"scope": '"default"'},
            "Bad Request: can't parse BotCommandScope: BotCommandScope must be an Object",
        ),
        (
            "deleteMyCommands",
            {"scope": '{"type": "everyone"}'},
            "Bad Request: can't parse BotCommandScope: Unsupported type specified",
        ),
        (
            "getMyCommands",
            {"scope": '{"type": "chat"}'},
            "Bad Request: can't parse BotCommandScope: Can't find field \"chat_id\"",
        ),
        (
            "getMyCommands",
            {"scope": '{"type": "chat_member", "chat_id": -100123}'},
            "Bad Request: can't parse BotCommandScope: Can't find field \"user_id\"",
        ),
        ("getMyCommands", {"language_code": "e"}, "Bad Request: invalid language code specified"),
    ],
)
async def test_malformed_parameters_get_telegrams_descriptions(
    emulator: TelegramEmulator, method: str, params: dict[str, str], description: str
) -> None:
    body = await _raw_call(emulator, method, **params)
    assert body == {"ok": False, "error_code": 400, "description": description}


async def test_visible_menu_follows_telegrams_resolution_order(
    bot: Bot, emulator: TelegramEmulator
) -> None:
    # Nothing set: no menu anywhere.
    assert await emulator.visible_menu(TOKEN, OFFICIAL) == {
        "scope": None,
        "language_code": "",
        "commands": [],
    }
    await bot.set_my_commands(_commands("hoi", "help"), scope=BotCommandScopeAllGroupChats())
    assert await emulator.visible_commands(TOKEN, OFFICIAL) == []  # group lists stay in groups
    assert await emulator.visible_commands(TOKEN, GROUP, STRANGER) == ["hoi", "help"]

    await bot.set_my_commands(_commands("start", "hoi", "help"))
    await bot.set_my_commands(
        _commands("start", "hoi", "help"), scope=BotCommandScopeAllPrivateChats()
    )
    await bot.set_my_commands(
        _commands("start", "hoi", "baocao", "help"), scope=BotCommandScopeChat(chat_id=OFFICIAL)
    )

    official = await emulator.visible_menu(TOKEN, OFFICIAL)
    assert official["scope"] == {"type": "chat", "chat_id": OFFICIAL}
    assert _names_of(official) == ["start", "hoi", "baocao", "help"]
    stranger = await emulator.visible_menu(TOKEN, STRANGER)
    assert stranger["scope"] == {"type": "all_private_chats"}
    assert "baocao" not in _names_of(stranger)
    # In the group both see the group list only.
    for user in (OFFICIAL, STRANGER):
        assert await emulator.visible_commands(TOKEN, GROUP, user) == ["hoi", "help"]
        assert await emulator.visible_commands(TOKEN, OTHER_GROUP, user) == ["hoi", "help"]

    # chat scope of one group beats all_group_chats there, chat_member beats both for its user.
    await bot.set_my_commands(_commands("hoi"), scope=BotCommandScopeChat(chat_id=GROUP))
    await bot.set_my_commands(
        _commands("hoi", "baocao"), scope=BotCommandScopeChatMember(chat_id=GROUP, user_id=OFFICIAL)
    )
    assert await emulator.visible_commands(TOKEN, GROUP, STRANGER) == ["hoi"]
    member = await emulator.visible_menu(TOKEN, GROUP, OFFICIAL)
    assert member["scope"] == {"type": "chat_member", "chat_id": GROUP, "user_id": OFFICIAL}
    assert _names_of(member) == ["hoi", "baocao"]
    assert await emulator.visible_commands(TOKEN, OTHER_GROUP, OFFICIAL) == ["hoi", "help"]

    # Administrator scopes count for administrators only, each at its documented place.
    await bot.set_my_commands(
        _commands("quanly"), scope=BotCommandScopeChatAdministrators(chat_id=GROUP)
    )
    await bot.set_my_commands(_commands("admin"), scope=BotCommandScopeAllChatAdministrators())
    assert await emulator.visible_commands(TOKEN, GROUP, STRANGER) == ["hoi"]
    assert await emulator.visible_commands(TOKEN, GROUP, STRANGER, is_admin=True) == ["quanly"]
    assert await emulator.visible_commands(TOKEN, GROUP, OFFICIAL, is_admin=True) == [
        "hoi",
        "baocao",
    ]  # chat_member comes before chat_administrators
    assert await emulator.visible_commands(TOKEN, OTHER_GROUP, STRANGER, is_admin=True) == [
        "admin"
    ]  # before all_group_chats
    await bot.set_my_commands(_commands("hoi"), scope=BotCommandScopeChat(chat_id=OTHER_GROUP))
    assert await emulator.visible_commands(TOKEN, OTHER_GROUP, STRANGER, is_admin=True) == [
        "hoi"
    ]  # but after the chat's own list

    # Deleting a list lets the next one show through.
    await bot.delete_my_commands(scope=BotCommandScopeChat(chat_id=OFFICIAL))
    assert await emulator.visible_commands(TOKEN, OFFICIAL) == ["start", "hoi", "help"]
    await bot.delete_my_commands(scope=BotCommandScopeAllPrivateChats())
    assert (await emulator.visible_menu(TOKEN, OFFICIAL))["scope"] == {"type": "default"}


def _names_of(menu: dict[str, Any]) -> list[str]:
    return [c["command"] for c in menu["commands"]]


async def test_visible_menu_prefers_the_users_language_within_each_scope(
    bot: Bot, emulator: TelegramEmulator
) -> None:
    await bot.set_my_commands(_commands("help"))
    await bot.set_my_commands(_commands("trogiup"), language_code="vi")
    await bot.set_my_commands(
        _commands("hoi_vi"), scope=BotCommandScopeAllPrivateChats(), language_code="vi"
    )
    await bot.set_my_commands(_commands("baocao"), scope=BotCommandScopeChat(chat_id=OFFICIAL))

    vi_stranger = await emulator.visible_menu(TOKEN, STRANGER, language_code="vi")
    assert (vi_stranger["scope"], vi_stranger["language_code"]) == (
        {"type": "all_private_chats"},
        "vi",
    )
    assert await emulator.visible_commands(TOKEN, STRANGER, language_code="en") == ["help"]
    assert await emulator.visible_commands(TOKEN, STRANGER) == ["help"]
    assert await emulator.visible_commands(TOKEN, GROUP, STRANGER, language_code="vi") == [
        "trogiup"
    ]
    # A narrower scope without a language beats a broader one in the user's language.
    assert await emulator.visible_commands(TOKEN, OFFICIAL, language_code="vi") == ["baocao"]

    # The driver's users bring their own chat and language.
    vi_user = emulator.client(TOKEN, user_id=STRANGER, language_code="vi")
    assert await vi_user.visible_commands() == ["hoi_vi"]
    in_group = emulator.client(TOKEN, user_id=STRANGER, chat_id=GROUP, language_code="vi")
    assert await in_group.visible_commands() == ["trogiup"]


async def test_visible_menu_refuses_impossible_chats(emulator: TelegramEmulator) -> None:
    cases: list[dict[str, Any]] = [
        {"chat_id": OFFICIAL, "user_id": STRANGER},  # someone else's private chat
        {"chat_id": GROUP, "chat_type": "channel"},  # channels have no command menu
        {"chat_id": "@group"},
        {"chat_id": OFFICIAL, "language_code": "vie"},
    ]
    for case in cases:
        with pytest.raises(EmulatorError) as refused:
            await emulator.request("/_emulator/menu", {"token": TOKEN, **case})
        assert refused.value.status == 400, case


# --------------------------------------------------------------------------- group chats


async def test_group_messages_reach_get_updates_with_their_chat_and_senders(
    bot: Bot, emulator: TelegramEmulator
) -> None:
    an = emulator.client(TOKEN, user_id=OFFICIAL, first_name="An", chat_id=GROUP, chat_title="Xã A")
    binh = emulator.client(
        TOKEN, user_id=STRANGER, first_name="Bình", chat_id=GROUP, chat_title="Xã A"
    )
    cuong = emulator.client(TOKEN, user_id=7003, first_name="Cường", chat_id=OTHER_GROUP)
    sent = [
        await an.send_text("chào cả nhà"),
        await binh.send_text("chào An"),
        await cuong.send_text("nhóm khác"),
    ]
    updates = await Poller(bot).take(3)

    messages = [u.message for u in updates]
    assert all(m is not None for m in messages)
    assert [m.message_id for m in messages if m] == [s["message_id"] for s in sent]
    first, second, third = (m for m in messages if m)
    assert (first.chat.id, first.chat.type, first.chat.title) == (GROUP, "supergroup", "Xã A")
    assert (second.chat.id, second.chat.type, second.chat.title) == (GROUP, "supergroup", "Xã A")
    assert (third.chat.id, third.chat.type) == (OTHER_GROUP, "group")
    assert third.chat.title == f"Group {OTHER_GROUP}"
    assert [m.from_user.id for m in (first, second, third) if m.from_user] == [
        OFFICIAL,
        STRANGER,
        7003,
    ]
    assert second.from_user is not None and second.from_user.first_name == "Bình"
    assert (first.text, second.text, third.text) == ("chào cả nhà", "chào An", "nhóm khác")
    assert first.entities is None


async def test_mentions_and_addressed_commands_carry_utf16_entities(
    bot: Bot, emulator: TelegramEmulator
) -> None:
    an = emulator.client(TOKEN, user_id=OFFICIAL, first_name="An", chat_id=GROUP)
    await an.mention_bot("cho hỏi lịch họp")
    await an.send_command("hoi", "lịch họp chi bộ")
    await an.send_text("🇻🇳😀 nhờ @troly_test_bot xem /help@troly_test_bot giúp, cc @nguyen_binh")
    await an.send_text("thư a@example.com và /x/y không phải lệnh")
    updates = await Poller(bot).take(4)
    mention, command, mixed, plain = (u.message for u in updates if u.message)

    assert mention.text == f"@{BOT_USERNAME} cho hỏi lịch họp"
    [entity] = mention.entities or []
    assert (entity.type, entity.offset, entity.length) == ("mention", 0, 15)

    assert command.text == f"/hoi@{BOT_USERNAME} lịch họp chi bộ"
    [entity] = command.entities or []
    assert (entity.type, entity.offset, entity.length) == ("bot_command", 0, 19)

    assert mixed.text is not None
    found = [(e.type, e.offset, e.length, e.extract_from(mixed.text)) for e in mixed.entities or []]
    # The flag is 2 code points and 4 UTF-16 units, the emoji 1 code point and 2 units.
    assert found == [
        ("mention", 11, 15, "@troly_test_bot"),
        ("bot_command", 31, 20, "/help@troly_test_bot"),
        ("mention", 61, 12, "@nguyen_binh"),
    ]
    assert plain.entities is None

    # In a private chat a command is written without the bot's name.
    private = emulator.client(TOKEN, user_id=OFFICIAL, first_name="An")
    sent = await private.send_command("start")
    assert (sent["text"], sent["entities"]) == (
        "/start",
        [{"type": "bot_command", "offset": 0, "length": 6}],
    )
    assert text_entities("/start@troly_test_bot") == [
        {"type": "bot_command", "offset": 0, "length": 21}
    ]


async def test_replies_both_ways_carry_the_replied_message(
    bot: Bot, emulator: TelegramEmulator
) -> None:
    poller = Poller(bot)
    an = emulator.client(TOKEN, user_id=OFFICIAL, first_name="An", chat_id=GROUP, chat_title="Xã A")
    question = await an.mention_bot("khi nào đại hội?")
    [update] = await poller.take(1)
    assert update.message is not None

    # The bot answers as a reply; its message carries the chat as the users showed it.
    answer = await bot.send_message(
        GROUP, "Tháng 8/2025.", reply_parameters=ReplyParameters(message_id=question["message_id"])
    )
    assert (answer.chat.type, answer.chat.title) == ("supergroup", "Xã A")
    assert answer.from_user is not None and answer.from_user.username == BOT_USERNAME
    assert answer.reply_to_message is not None
    assert answer.reply_to_message.message_id == question["message_id"]
    assert answer.reply_to_message.text == f"@{BOT_USERNAME} khi nào đại hội?"
    old_style = await bot.send_message(
        GROUP, "Xem thêm.", reply_to_message_id=question["message_id"]
    )
    assert old_style.reply_to_message is not None
    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
        await bot.send_message(GROUP, "?", reply_parameters=ReplyParameters(message_id=999999))
    lenient = await bot.send_message(
        GROUP,
        "!",
        reply_parameters=ReplyParameters(message_id=999999, allow_sending_without_reply=True),
    )
    assert lenient.reply_to_message is None

    # A user replies to the bot's message: reply_to_message is that message, one level deep.
    [seen] = [m for m in await an.bot_messages() if m["message_id"] == answer.message_id]
    sent = await an.reply(seen, "cảm ơn")
    [update] = await poller.take(1)
    reply = update.message
    assert reply is not None and reply.message_id == sent["message_id"]
    assert reply.reply_to_message is not None
    assert reply.reply_to_message.message_id == answer.message_id
    assert reply.reply_to_message.from_user is not None
    assert reply.reply_to_message.from_user.is_bot
    assert reply.reply_to_message.text == "Tháng 8/2025."
    assert reply.reply_to_message.reply_to_message is None

    # Nobody can reply to a message that is gone, or to another chat's message.
    await bot.delete_message(GROUP, answer.message_id)
    with pytest.raises(EmulatorError, match="message to be replied not found"):
        await an.reply(answer.message_id, "còn không?")
    elsewhere = emulator.client(TOKEN, user_id=STRANGER, chat_id=OTHER_GROUP)
    with pytest.raises(EmulatorError, match="message to be replied not found"):
        await elsewhere.reply(question["message_id"], "?")


async def test_bot_messages_are_read_per_chat(bot: Bot, emulator: TelegramEmulator) -> None:
    an_group = emulator.client(TOKEN, user_id=OFFICIAL, chat_id=GROUP)
    binh_group = emulator.client(TOKEN, user_id=STRANGER, chat_id=GROUP)
    an_private = emulator.client(TOKEN, user_id=OFFICIAL)
    other_group = emulator.client(TOKEN, user_id=OFFICIAL, chat_id=OTHER_GROUP)
    await bot.send_message(GROUP, "cho nhóm")
    await bot.send_message(OFFICIAL, "riêng An")
    await bot.send_message(OTHER_GROUP, "nhóm khác")
    await bot.send_message(GROUP, "cho nhóm lần hai")

    for member in (an_group, binh_group):  # everyone in the group reads the group's messages
        assert [m["text"] for m in await member.bot_messages()] == ["cho nhóm", "cho nhóm lần hai"]
    assert [m["text"] for m in await an_private.bot_messages()] == ["riêng An"]
    assert [m["text"] for m in await other_group.bot_messages()] == ["nhóm khác"]
    assert [m["text"] for m in await binh_group.wait_for_bot_messages(min_count=2)] == [
        "cho nhóm",
        "cho nhóm lần hai",
    ]
    # Each reader keeps its own place.
    assert len(await an_group.wait_for_bot_messages(min_count=2)) == 2


async def test_counts_tell_methods_chats_and_polls_apart(
    bot: Bot, emulator: TelegramEmulator
) -> None:
    assert await emulator.call_counts(TOKEN) == {"methods": {}, "chats": 0, "polls": 0}
    await bot.get_me()
    await bot.get_updates(timeout=0)
    await bot.get_updates(timeout=0)
    await bot.send_message(OFFICIAL, "một")
    await bot.send_message(OFFICIAL, "hai")
    await bot.send_message(GROUP, "ba")

    counts = await emulator.call_counts(TOKEN)
    # getUpdates is counted apart (the benchmark waits for a bot's first poll on it)
    assert counts == {"methods": {"getMe": 1, "sendMessage": 3}, "chats": 2, "polls": 2}
    assert (await emulator.call_counts(OTHER_TOKEN))["polls"] == 0


async def test_a_private_chat_belongs_to_its_user(emulator: TelegramEmulator) -> None:
    impostor = emulator.client(TOKEN, user_id=STRANGER, chat_id=OFFICIAL)
    with pytest.raises(EmulatorError) as refused:
        await impostor.send_text("xin chào")
    assert refused.value.status == 400


# --------------------------------------------------------------------------- inline keyboards


def _keyboard(*data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=d.upper(), callback_data=d)] for d in data]
    )


async def test_pressing_a_button_reaches_the_bot_and_is_answered(
    bot: Bot, emulator: TelegramEmulator
) -> None:
    poller = Poller(bot)
    an = emulator.client(TOKEN, user_id=OFFICIAL, first_name="An", chat_id=GROUP)
    choices = await bot.send_message(GROUP, "Chọn:", reply_markup=_keyboard("kl:185", "kl:186"))
    [shown] = await an.wait_for_bot_messages()
    assert shown["reply_markup"]["inline_keyboard"][1][0]["callback_data"] == "kl:186"

    pressed = await an.press_button("kl:186", message=shown)
    [update] = await poller.take(1)
    query = update.callback_query
    assert query is not None and query.id == pressed["id"]
    assert query.data == "kl:186" and query.from_user.id == OFFICIAL
    assert query.message is not None and query.message.message_id == choices.message_id
    assert query.message.chat.id == GROUP
    assert query.chat_instance
    assert await bot.answer_callback_query(query.id, text="Đã chọn") is True


async def test_a_keyboard_edited_away_is_gone_for_the_driver(
    bot: Bot, emulator: TelegramEmulator
) -> None:
    poller = Poller(bot)
    an = emulator.client(TOKEN, user_id=OFFICIAL, first_name="An")
    sent = await bot.send_message(OFFICIAL, "Chọn:", reply_markup=_keyboard("a", "b"))
    [stale] = await an.wait_for_bot_messages()  # a copy taken while the keyboard was there
    assert "reply_markup" in stale

    # The bot removes the keyboard after the first press.
    await an.press_button("a", message=stale)
    [update] = await poller.take(1)
    assert update.callback_query is not None
    edited = await bot.edit_message_reply_markup(
        chat_id=OFFICIAL, message_id=sent.message_id, reply_markup=None
    )
    assert not isinstance(edited, bool)
    assert edited.reply_markup is None and edited.edit_date is not None

    [now] = await an.bot_messages()
    assert now["message_id"] == sent.message_id
    assert "reply_markup" not in now
    assert now["text"] == "Chọn:"
    assert await an.bot_message(sent.message_id) == now
    with pytest.raises(LookupError):
        await an.press_button("b", message=stale)  # the stale copy still shows the button
    with pytest.raises(LookupError):
        await an.press_button("b", message=sent.message_id)
    with pytest.raises(LookupError):
        await an.press_button("b")
    # Nor can a client go around the driver: the emulator checks the current message too.
    with pytest.raises(EmulatorError) as refused:
        await emulator.request(
            "/sendCallback",
            {"botToken": TOKEN, "from": an.user, "message": stale, "data": "b"},
        )
    assert refused.value.status == 400
    assert await bot.get_updates(offset=poller.offset, timeout=0) == []  # no second press

    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_reply_markup(
            chat_id=OFFICIAL, message_id=sent.message_id, reply_markup=None
        )


async def test_keyboards_replaced_emptied_or_dropped_by_a_text_edit(
    bot: Bot, emulator: TelegramEmulator
) -> None:
    an = emulator.client(TOKEN, user_id=OFFICIAL, chat_id=GROUP)
    sent = await bot.send_message(GROUP, "Chọn:", reply_markup=_keyboard("a"))

    await bot.edit_message_reply_markup(
        chat_id=GROUP, message_id=sent.message_id, reply_markup=_keyboard("c")
    )
    with pytest.raises(LookupError):
        await an.press_button("a", message=sent.message_id)
    pressed = await an.press_button("c")
    assert pressed["message"]["reply_markup"] == _keyboard("c").model_dump(exclude_none=True)

    # An empty inline keyboard is no keyboard.
    await bot.edit_message_reply_markup(
        chat_id=GROUP,
        message_id=sent.message_id,
        reply_markup=InlineKeyboardMarkup(inline_keyboard=[]),
    )
    assert "reply_markup" not in (await an.bot_message(sent.message_id) or {})

    # editMessageText without reply_markup drops a keyboard, as Telegram does.
    again = await bot.send_message(GROUP, "Lại:", reply_markup=_keyboard("d"))
    await bot.edit_message_text("Đã xong.", chat_id=GROUP, message_id=again.message_id)
    current = await an.bot_message(again.message_id)
    assert current is not None and current["text"] == "Đã xong."
    assert "reply_markup" not in current
    with pytest.raises(LookupError):
        await an.press_button("d")

    # A message sent with an empty keyboard shows none either.
    bare = await bot.send_message(
        GROUP, "Trống", reply_markup=InlineKeyboardMarkup(inline_keyboard=[])
    )
    assert bare.reply_markup is None

    # A deleted message cannot be pressed.
    kept = await bot.send_message(GROUP, "Xoá", reply_markup=_keyboard("e"))
    await bot.delete_message(GROUP, kept.message_id)
    assert await an.bot_message(kept.message_id) is None
    with pytest.raises(LookupError):
        await an.press_button("e", message=kept.message_id)
