"""The sender in a process of its own, for the crash test:
``python -m tests.scheduler.sender_child DB_URL API_URL [--until-idle]``.

It prints ``READY`` once imported (aiogram takes seconds to import) and starts the sender
when a line arrives on its standard input, so the test can start the replacement process
early and let it begin only after the kill."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.storage.db import create_engine, make_session_factory
from scheduler.limits import ChannelLimits
from scheduler.sender import Sender
from scheduler.transports import TelegramTransport
from tests.fakes.botapi_server import TOKEN


async def main(args: argparse.Namespace) -> None:
    engine = create_engine(args.db)
    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(args.api)))
    limits = ChannelLimits(rate=args.rate, per_chat_interval=1.0, max_in_flight=args.max_in_flight)
    sender = Sender(
        make_session_factory(engine),
        [TelegramTransport(bot)],
        limits={"telegram": limits},
        poll_interval=0.1,
        commit_window=0.002,  # few slots (a tight duplicate bound): commit promptly
    )
    print("READY", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    try:
        await sender.run(until_idle=args.until_idle)
    finally:
        await bot.session.close()
        await engine.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("api")
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--max-in-flight", type=int, default=8)
    parser.add_argument("--until-idle", action="store_true")
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(main(parser.parse_args()))
