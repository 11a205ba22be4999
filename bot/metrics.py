"""Prometheus metrics: what the assistant handled, answered and delivered.

Everything lives in one :class:`~prometheus_client.CollectorRegistry` of its own
(:data:`METRICS`), not in the library's global one: a test reads exact values from it, and
nothing a library registers globally leaks into the scrape.

No label ever holds personal data: channels, routes, outcomes, statuses and kinds are small
fixed sets; lock names are ``troly:scheduler`` or ``troly:poll:<channel>:<digest>`` (a digest
of the token, never the token). User ids, chat ids, names and message text stay out.

Served on ``/metrics`` by :mod:`bot.metrics_web`. This module imports no web framework (the
scheduler, which the handlers import, records its deliveries here).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlmodel import select

from bot.storage.db import SessionFactory
from bot.storage.models import OutboxMessage

__all__ = ["LATENCY_BUCKETS", "METRICS", "Metrics", "OutboxCollector", "answer_outcome"]

log = logging.getLogger(__name__)

# Seconds, from 1 ms (a throttled or ignored message) to 10 s (a database in trouble).
LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
OUTBOX = OutboxMessage.__table__  # type: ignore[attr-defined]


def answer_outcome(route: str | None, matched: bool | None, offered: bool) -> str | None:
    """What a question got, from its log entry: ``answered`` (an entry matched, or a
    suggestion was picked), ``suggestions`` (no match, related questions offered) or
    ``out_of_scope`` (no match, nothing to offer); ``None`` for a message that was not a
    question."""
    if route not in ("qa", "qa_pick"):
        return None
    if matched:
        return "answered"
    return "suggestions" if offered else "out_of_scope"


class OutboxCollector(Collector):
    """``troly_outbox_messages{status,kind}``: outbox rows now, counted by one grouped query.

    :meth:`collect` (called by the registry, synchronously) only reads the last counts;
    :meth:`refresh` (awaited by the ``/metrics`` handler before it renders) runs the query
    at most every ``max_age`` seconds, with a timeout, so a scrape never holds the event loop
    or hammers the database. A pair seen once stays, at 0 when its rows are gone."""

    def __init__(self, *, max_age: float = 5.0, timeout: float = 3.0) -> None:
        self.max_age = max_age
        self.timeout = timeout
        self.counts: dict[tuple[str, str], int] = {}
        self.refreshed_at: float | None = None  # time.monotonic() of the last good query

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield self._family()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = self._family()
        for (status, kind), count in sorted(self.counts.items()):
            family.add_metric([status, kind], count)
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "troly_outbox_messages",
            "Outbox rows by status and kind (refreshed at most every few seconds)",
            labels=["status", "kind"],
        )

    async def refresh(self, sessions: SessionFactory, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and self.refreshed_at is not None and now - self.refreshed_at < self.max_age:
            return
        try:
            async with asyncio.timeout(self.timeout), sessions() as session:
                rows = (
                    await session.exec(
                        select(OUTBOX.c.status, OUTBOX.c.kind, func.count()).group_by(
                            OUTBOX.c.status, OUTBOX.c.kind
                        )
                    )
                ).all()
        except Exception as exc:  # the last counts stay; the next scrape tries again
            log.warning("metrics: could not count the outbox (%s)", type(exc).__name__)
            return
        counts = dict.fromkeys(self.counts, 0)
        counts.update({(str(status), str(kind)): int(n) for status, kind, n in rows})
        self.counts = counts
        self.refreshed_at = time.monotonic()


class Metrics:
    """The assistant's metrics, registered in a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.messages = Counter(
            "troly_messages",
            "Incoming messages by channel and the route dispatch gave them",
            ["channel", "route"],
            registry=r,
        )
        self.answers = Counter(
            "troly_answers",
            "Questions by outcome: answered, suggestions, out_of_scope",
            ["channel", "outcome"],
            registry=r,
        )
        self.dispatch_seconds = Histogram(
            "troly_dispatch_seconds",
            "Time to handle one incoming message, in seconds",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.deliveries = Counter(
            "troly_deliveries",
            "Push delivery results: sent, failed, blocked, retried, rate_limited, cancelled",
            ["channel", "result"],
            registry=r,
        )
        self.rate_limit_pauses = Counter(
            "troly_rate_limit_pauses",
            "Sending paused by a 429 (retry_after) from the platform",
            ["channel"],
            registry=r,
        )
        self.rate_limit_pause_seconds = Counter(
            "troly_rate_limit_pause_seconds",
            "Seconds sending was paused by 429s",
            ["channel"],
            registry=r,
        )
        self.leader = Gauge(
            "troly_leader",
            "1 while this process holds the lock (scheduler and sender, or polling a bot)",
            ["lock"],
            registry=r,
        )
        self.reminder_rounds = Counter(
            "troly_reminder_rounds",
            "Reminder rounds fired (before the deadline, overdue)",
            ["kind"],
            registry=r,
        )
        self.outbox = OutboxCollector()
        r.register(self.outbox)

    def observe_message(
        self, channel: str, route: str | None, seconds: float, answer: str | None = None
    ) -> None:
        self.messages.labels(channel, route or "none").inc()
        self.dispatch_seconds.labels(channel).observe(seconds)
        if answer is not None:
            self.answers.labels(channel, answer).inc()

    def value(self, name: str, **labels: str) -> float:
        """One sample's value (0 when absent): for tests and ``troly doctor``-like checks."""
        return self.registry.get_sample_value(name, labels) or 0.0

    def render(self) -> bytes:
        return generate_latest(self.registry)


METRICS = Metrics()
