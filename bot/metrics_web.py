"""``GET /metrics`` for Prometheus: on the webhook server, and on a small server of its own
when ``METRICS_PORT`` is set (the only one in polling mode)."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bot.metrics import METRICS, Metrics
from bot.storage.db import SessionFactory

__all__ = ["metrics_app", "metrics_handler", "start_metrics_server"]

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.Response]]


def metrics_handler(
    sessions: SessionFactory, *, token: str | None = None, metrics: Metrics = METRICS
) -> Handler:
    """The scrape: the outbox counts refreshed (at most every few seconds), then every
    metric in the text format. With ``token``, a request without ``Authorization: Bearer
    <token>`` gets 401."""
    expected = f"Bearer {token}".encode() if token else None

    async def handler(request: web.Request) -> web.Response:
        if expected is not None:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                return web.Response(
                    status=401, text="unauthorized\n", headers={"WWW-Authenticate": "Bearer"}
                )
        await metrics.outbox.refresh(sessions)
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return handler


def metrics_app(
    sessions: SessionFactory, *, token: str | None = None, metrics: Metrics = METRICS
) -> web.Application:
    """An application serving only ``/metrics``."""
    app = web.Application()
    app.router.add_get("/metrics", metrics_handler(sessions, token=token, metrics=metrics))
    return app


async def start_metrics_server(
    host: str,
    port: int,
    sessions: SessionFactory,
    *,
    token: str | None = None,
    metrics: Metrics = METRICS,
) -> web.AppRunner:
    """Listen on ``host:port``; the caller stops it with ``await runner.cleanup()``."""
    runner = web.AppRunner(metrics_app(sessions, token=token, metrics=metrics), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    log.info("metrics server on %s:%s", host, port)
    return runner
