"""``troly run``: start every configured channel in one process and one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from aiohttp import web
from pydantic import SecretStr
from rich.console import Console
from sqlalchemy import text

from bot.channels.console import run_console
from bot.services import Services, build_services
from bot.settings import Settings
from knowledge import Knowledge

__all__ = [
    "HOW_TO_CONFIGURE",
    "freeze_startup_heap",
    "run_assistant",
    "run_event_loop",
    "run_terminal",
]

T = TypeVar("T")

log = logging.getLogger(__name__)
# Standbys try an election this often: a standby takes over within this plus the takeover
# delay (about 5 s) of the active process's death.
ELECTION_RETRY_SECONDS = 2.0
# The collector's thresholds once serving (CPython's are 700, 10, 10; bot/__main__ raises
# them during start-up). With CPython's, a burst of messages (each one's objects alive
# until it is answered) ran a collection every 700 allocations and moved enough of them to
# the oldest generation for a full scan every few hundred messages (0.2 s each): 0.45 ms of
# collection a message, and a PostgreSQL process answered 191-200 messages/s against the
# emulator where it answers 238-282 with these (the `make bench throughput` emulator
# harness, runs side by side).
# Cycles are still collected, later.
SERVING_GC_THRESHOLDS = (5_000, 20, 10)

HOW_TO_CONFIGURE = """\
Chưa cấu hình Telegram hay Zalo nên trợ lý chạy ngay trong cửa sổ dòng lệnh này.
Để phục vụ cán bộ trên Telegram, tạo bot với @BotFather rồi đặt
    TELEGRAM_BOT_TOKEN=123456:ABC...
và với Zalo, tạo bot trên Zalo Bot Platform rồi đặt
    ZALO_BOT_TOKEN=...
trong biến môi trường hoặc tệp .env, rồi chạy lại `make run` (xem README)."""


def run_event_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on uvloop where it is installed (Linux and macOS; a dependency there),
    else on the standard event loop. The sender's CPU per push is lower on uvloop, which is
    what keeps sending at its limit between 429 pauses (``make bench``)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows, PyPy
        return asyncio.run(coro)
    return uvloop.run(coro)


def freeze_startup_heap() -> None:
    """Keep what start-up built (imported modules, the knowledge base and its index: some
    270,000 objects) out of the garbage collector's scans for the life of the process. At
    high push rates those scans were a tenth of the sender's CPU (``make bench``); then
    collect less often (:data:`SERVING_GC_THRESHOLDS`)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVING_GC_THRESHOLDS)


async def run_terminal(settings: Settings, knowledge: Knowledge) -> None:
    services = await build_services(settings, knowledge=knowledge)
    try:
        await run_console(services.app)
    finally:
        await services.close()


async def run_assistant(
    settings: Settings,
    knowledge: Knowledge,
    *,
    notice: Console | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Run until SIGINT/SIGTERM (or ``stop`` is set)."""
    services = await build_services(settings, knowledge=knowledge)
    try:
        if settings.telegram_bot_token is None and settings.zalo_bot_token is None:
            (notice or Console(stderr=True)).print(HOW_TO_CONFIGURE, markup=False)
            await run_console(services.app)
            return
        stop = stop or asyncio.Event()
        _install_signal_handlers(stop)
        freeze_startup_heap()
        await _serve(services, stop)
    finally:
        await services.close()


def _install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


async def _serve(services: Services, stop: asyncio.Event) -> None:
    from bot.channels.telegram import TelegramChannel
    from bot.channels.zalo import ZaloChannel, ZaloTransport
    from bot.core import Transport
    from bot.metrics_web import metrics_handler, start_metrics_server
    from scheduler.leader import LeaderElection
    from scheduler.schedule import watch
    from scheduler.service import push_service
    from scheduler.transports import TelegramTransport
    from web.app import create_web_app, register_console

    settings = services.settings
    closers: list[Callable[[], Awaitable[None]]] = []
    # (lock name, start, stop) of each channel that polls; started once every one is ready
    pollers: list[tuple[str, Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]] = []
    web_app = web.Application()
    webhook = settings.webhook_base_url is not None
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
    metrics_token = settings.metrics_token.get_secret_value() if settings.metrics_token else None
    transports: list[Transport] = []

    try:
        if settings.telegram_bot_token is not None:
            telegram = TelegramChannel(
                services.app,
                token=settings.telegram_bot_token.get_secret_value(),
                api_base_url=settings.telegram_api_base_url,
            )
            closers.append(telegram.close)
            await telegram.prepare()
            services.app.bot_username = settings.telegram_bot_username or telegram.username
            transports.append(TelegramTransport(telegram.bot))
            if webhook:
                telegram.register_webhook(web_app, secret)
            else:
                name = polling_lock_name("telegram", settings.telegram_bot_token)
                pollers.append((name, telegram.run_polling, telegram.stop_polling))

        zalo: ZaloChannel | None = None
        if settings.zalo_bot_token is not None:
            zalo = ZaloChannel(
                services.app,
                token=settings.zalo_bot_token.get_secret_value(),
                api_base_url=settings.zalo_api_base_url,
                poll_timeout=settings.zalo_poll_timeout,
            )
            closers.append(zalo.close)
            await zalo.prepare()
            transports.append(ZaloTransport(zalo.client))
            if webhook:
                zalo.register_webhook(web_app, secret)
            else:
                name = polling_lock_name("zalo", settings.zalo_bot_token)
                pollers.append((name, zalo.run_polling, zalo.stop_polling))

        runner: web.AppRunner | None = None
        if webhook:
            web_app.router.add_get("/healthz", _healthz(services))
            web_app.router.add_get(
                "/metrics", metrics_handler(services.sessions, token=metrics_token)
            )
            register_console(web_app, services)  # the web console, on the same server
            runner = web.AppRunner(web_app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, settings.webhook_host, settings.webhook_port)
            await site.start()
            closers.append(runner.cleanup)
            log.info("webhook server on %s:%s", settings.webhook_host, settings.webhook_port)
            if settings.telegram_bot_token is not None:
                await telegram.set_webhook(settings.webhook_base_url or "", secret)
            if zalo is not None:
                await zalo.set_webhook(settings.webhook_base_url or "", secret)
        elif settings.web_port is not None:  # polling: the web console on a server of its own
            console = web.AppRunner(create_web_app(services), access_log=None)
            await console.setup()
            await web.TCPSite(console, settings.webhook_host, settings.web_port).start()
            closers.append(console.cleanup)
            log.info("web console on %s:%s", settings.webhook_host, settings.web_port)

        if settings.metrics_port is not None:
            metrics_runner = await start_metrics_server(
                settings.metrics_host, settings.metrics_port, services.sessions, token=metrics_token
            )
            closers.append(metrics_runner.cleanup)

        # Reminders, digests and the outbox sender run in one process only: the leader.
        election = LeaderElection(services.engine, retry_interval=ELECTION_RETRY_SECONDS)
        pushes = asyncio.create_task(
            election.run(
                push_service(settings, services.sessions, transports, services.schedule), stop
            )
        )
        # a reminder schedule saved on the console by another process takes effect here too
        watcher = asyncio.create_task(watch(services.schedule, services.sessions, stop))
        if election.uses_lock:
            # Several processes on one PostgreSQL database: one polls each bot token (a
            # second getUpdates on a token gets 409 Conflict); the others stand by.
            tasks = [
                asyncio.create_task(
                    LeaderElection(
                        services.engine, name=name, retry_interval=ELECTION_RETRY_SECONDS
                    ).run(_polling_job(poll, stop_poll), stop)
                )
                for name, poll, stop_poll in pollers
            ]
        else:
            tasks = [asyncio.create_task(_guard(poll())) for _, poll, _ in pollers]
        waiter = asyncio.create_task(stop.wait())
        await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        log.info("stopping")
        stop.set()
        for _, _, stop_poll in pollers:
            await stop_poll()
        for task in [*tasks, pushes, watcher]:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, timeout=15)
        waiter.cancel()
    finally:
        for closer in reversed(closers):
            with contextlib.suppress(Exception):
                await closer()


def polling_lock_name(channel: str, token: SecretStr) -> str:
    """The election for polling one bot token: named by a digest, never the token."""
    digest = hashlib.sha256(token.get_secret_value().encode()).hexdigest()[:16]
    return f"troly:poll:{channel}:{digest}"


def _polling_job(
    poll: Callable[[], Awaitable[None]], stop_poll: Callable[[], Awaitable[None]]
) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]]:
    """Poll while elected; stop polling gracefully when asked (cancelled when the
    election is lost)."""

    async def job(job_stop: asyncio.Event) -> None:
        polling = asyncio.create_task(_guard(poll()))
        asked = asyncio.create_task(job_stop.wait())
        try:
            await asyncio.wait({polling, asked}, return_when=asyncio.FIRST_COMPLETED)
            if not polling.done():
                await stop_poll()
            await polling
        finally:
            asked.cancel()
            if not polling.done():
                polling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await polling

    return job


async def _guard(awaitable: Awaitable[None]) -> None:
    try:
        await awaitable
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("a channel stopped with an error")
        raise


def _healthz(services: Services) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(_: web.Request) -> web.Response:
        try:
            async with services.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception:
            return web.json_response({"status": "error", "database": "unreachable"}, status=503)
        return web.json_response({"status": "ok", "entries": len(services.knowledge.base.entries)})

    return handler
