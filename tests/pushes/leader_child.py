"""One ``troly run`` process's push side, for the two-process test:
``python -m tests.pushes.leader_child DB_URL API_URL``.

It contends for leadership exactly as :mod:`bot.runner` does (the real
:class:`~scheduler.leader.LeaderElection` around the real
:func:`~scheduler.service.push_service`, with the election's intervals shortened) and
prints ``LEADER`` when it starts leading, and the scheduler's log lines. Settings come from
the environment like the real process's."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer

from bot.settings import Settings
from bot.storage.db import create_engine, make_session_factory
from scheduler.leader import LeaderElection
from scheduler.schedule import LiveSchedule
from scheduler.service import push_service
from scheduler.transports import TelegramTransport
from tests.fakes.botapi_server import TOKEN


async def main(database_url: str, api_url: str) -> None:
    settings = Settings(database_url=database_url)
    engine = create_engine(database_url)
    bot = Bot(TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base(api_url)))
    service = push_service(
        settings,
        make_session_factory(engine),
        [TelegramTransport(bot)],
        LiveSchedule(settings),
    )

    async def lead(stop: asyncio.Event) -> None:
        print("LEADER", flush=True)
        await service(stop)

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    election = LeaderElection(
        engine, retry_interval=0.2, check_interval=0.2, check_timeout=1.0, takeover_delay=0.5
    )
    print("READY", flush=True)
    try:
        await election.run(lead, stop)
    finally:
        await bot.session.close()
        await engine.dispose()


if __name__ == "__main__":
    logging.basicConfig(
        stream=sys.stdout, level=logging.WARNING, format="%(name)s: %(message)s", force=True
    )
    logging.getLogger("scheduler").setLevel(logging.INFO)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    asyncio.run(main(sys.argv[1], sys.argv[2]))
