"""A bare aiogram echo bot (long polling), the yardstick of the message-path benchmark:
``python -m bench.echo_bot API_URL TOKEN``. What it costs per message is what the framework
and the Bot API client cost; `troly run` is measured against it in the same run."""

from __future__ import annotations

import asyncio
import signal
import sys

from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import Message


async def _main(api_url: str, token: str) -> None:
    bot = Bot(token, session=AiohttpSession(api=TelegramAPIServer.from_base(api_url)))
    dispatcher = Dispatcher()

    @dispatcher.message()
    async def echo(message: Message) -> None:
        await message.answer(message.text or "")

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    polling = asyncio.create_task(dispatcher.start_polling(bot, handle_signals=False))
    await stop.wait()
    await dispatcher.stop_polling()
    await polling
    await bot.session.close()


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], sys.argv[2]))
