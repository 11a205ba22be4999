"""The one sender: delivers outbox rows through a :class:`~bot.core.Transport` per channel.

Per channel, a worker claims small batches of due rows (``pending`` -> ``sending``, committed
before anything is sent), then starts deliveries one by one as the channel's token bucket,
the per-chat interval and the in-flight limit allow. Each delivery holds one of the channel's
``max_in_flight`` slots from before its request is sent until its outcome is *committed*;
outcomes are written by one writer task in group commits.

Crash bound: after ``kill -9`` the next sender puts every ``sending`` row back to ``pending``
(:func:`~scheduler.outbox.recover_claims`). Rows that were only claimed were never sent, so
the only messages that can go out twice are those whose request had started and whose
outcome was not committed: at most ``max_in_flight`` per channel (default 10).

Failures (from the transport's :class:`~bot.core.DeliveryError`):

* ``RetryLater`` (429): the whole channel pauses for ``retry_after``; the row is retried
  after it (a 429 does not count as a failed attempt), and so are deliveries started just
  before whose request had not gone out yet: nothing is sent during a pause;
* ``TemporaryFailure`` (5xx, network, timeout): retried with bounded exponential back-off
  and jitter (:class:`~scheduler.limits.RetryPolicy`), then ``failed`` with the reason;
* ``RecipientBlocked``: the row is ``blocked``, the person's ``PersonChannel.blocked_at`` is
  set, and no further row for that chat is attempted until they write again (``unblock``);
* ``PermanentFailure``: ``failed`` at once.

A broadcast cancelled while some of its rows are claimed: the sender looks for cancelled
broadcasts among the rows it holds every ``cancel_check_interval`` (0.25 s) and drops them;
a row is also checked against the known cancellations right before its request starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import re
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import select

from bot.core import (
    PermanentFailure,
    RecipientBlocked,
    RetryLater,
    TemporaryFailure,
    Transport,
    utcnow,
    wait_event,
)
from bot.metrics import METRICS
from bot.storage.db import SessionFactory
from scheduler.limits import (
    DEFAULT_LIMITS,
    FALLBACK_LIMITS,
    ChannelLimits,
    RetryPolicy,
    TokenBucket,
)
from scheduler.outbox import (
    ACTIVE,
    BROADCAST,
    Claimed,
    Outcome,
    buttons_from_json,
    claim_due,
    has_pending,
    next_due,
    record_outcomes,
    recover_claims,
)

__all__ = ["Sender", "SenderStats", "redact"]

log = logging.getLogger(__name__)

# Bot tokens look like "123456789:AAE..." (Telegram; Zalo's are alike): never stored/logged.
_TOKEN_RE = re.compile(r"\d{5,}:[A-Za-z0-9_-]{20,}")
_MAX_HOLD_FACTOR = 4
# Seconds before the end of a 429 pause: fetch rows, look for cancellations, stop using timers.
_TOP_UP_AHEAD = 0.3
_CANCEL_CHECK_AHEAD = 0.05
_RESUME_AHEAD = 0.002


def redact(text: str) -> str:
    """``text`` without anything that looks like a bot token."""
    return _TOKEN_RE.sub("<token>", text)


@dataclass
class SenderStats:
    """Counters, for logs and the benchmark."""

    requests: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    blocked: int = 0
    cancelled: int = 0
    rate_limited: int = 0
    pauses: int = 0
    paused_seconds: float = 0.0
    claims: int = 0
    commits: int = 0
    # (channel, start, end) of the latest 429 pauses, in time.monotonic()
    pause_log: deque[tuple[str, float, float]] = field(default_factory=lambda: deque(maxlen=10_000))


@dataclass(eq=False)
class _Held:
    row: Claimed
    claimed_at: float  # monotonic time the claim that fetched it started


@dataclass(eq=False)
class _Channel:
    transport: Transport
    limits: ChannelLimits
    bucket: TokenBucket
    slots: asyncio.Semaphore
    batch: int
    held: list[_Held] = field(default_factory=list)
    chat_next: dict[str, float] = field(default_factory=dict)  # chat -> may send again at
    busy: set[str] = field(default_factory=set)  # chats with a request on the wire
    in_flight: int = 0
    paused_until: float = 0.0
    next_claim_at: float = 0.0
    # chat -> monotonic time its block was committed (None: not yet); see _is_blocked
    blocks: dict[str, float | None] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    claiming: asyncio.Task[None] | None = None  # a claim fetching more rows meanwhile

    @property
    def name(self) -> str:
        return self.transport.channel


class _Writer:
    """Commits outcomes in groups: what accumulated during the previous commit and up to
    ``window`` seconds more, or sooner once ``group`` outcomes wait (each holds an in-flight
    slot until it is committed: waiting for a full window would starve the channel)."""

    def __init__(self, sender: Sender, *, window: float, group: int = 500) -> None:
        self._sender = sender
        self._window = window
        self._group = max(1, group)
        self._queue: list[tuple[Outcome, asyncio.Future[None]]] = []
        self._ready = asyncio.Event()
        self._full = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def submit(self, outcome: Outcome) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((outcome, future))
        self._idle.clear()
        self._ready.set()
        if len(self._queue) >= self._group:
            self._full.set()
        return future

    async def flushed(self) -> None:
        await self._idle.wait()

    async def run(self) -> None:
        delay = 0.05
        while True:
            await self._ready.wait()
            if self._window > 0 and len(self._queue) < self._group:
                # let more outcomes join this commit
                await wait_event(self._full, self._window)
            batch, self._queue = self._queue, []
            self._ready.clear()
            self._full.clear()
            while True:
                try:
                    await self._sender._commit([o for o, _ in batch])
                    break
                except Exception as exc:  # database unavailable: keep the outcomes, retry
                    log.warning("could not record push outcomes (%s); retrying", redact(str(exc)))
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
            delay = 0.05
            for _, future in batch:
                if not future.done():
                    future.set_result(None)
            if not self._queue:
                self._idle.set()


class Sender:
    """Deliver the outbox. Run exactly one (see :mod:`scheduler.leader`).

    ``transports``: one per channel; rows of other channels stay pending. ``limits``: per
    channel name, defaulting to :data:`~scheduler.limits.DEFAULT_LIMITS`. ``clock`` gives the
    UTC time written to the database; pacing uses the monotonic clock.
    """

    def __init__(
        self,
        sessions: SessionFactory,
        transports: Iterable[Transport],
        *,
        limits: Mapping[str, ChannelLimits] | None = None,
        retry: RetryPolicy | None = None,
        batch_size: int | None = None,
        poll_interval: float = 1.0,
        cancel_check_interval: float = 0.25,
        delivery_timeout: float = 60.0,
        commit_window: float = 0.05,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self._sessions = sessions
        self.retry = retry or RetryPolicy()
        self.poll_interval = poll_interval
        self.cancel_check_interval = cancel_check_interval
        self.delivery_timeout = delivery_timeout
        self.commit_window = commit_window
        self._clock = clock
        self._rng = rng or random.Random()
        self._transports = list(transports)
        names = [t.channel for t in self._transports]
        if len(set(names)) != len(names):
            raise ValueError(f"one transport per channel, got {names}")
        self._limits = {**DEFAULT_LIMITS, **(limits or {})}
        self._batch_size = batch_size
        self._channels: dict[str, _Channel] = {}
        self._cancelled: set[int] = set()
        self._open: Counter[int] = Counter()  # broadcast -> rows held or in flight here
        self._deliveries: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._writer: _Writer | None = None
        self.stats = SenderStats()

    # ------------------------------------------------------------------ public

    def wake(self) -> None:
        """New rows were enqueued in this process: look at once rather than at the next poll."""
        for channel in self._channels.values():
            channel.next_claim_at = 0.0
            channel.wake.set()

    async def run(self, stop: asyncio.Event | None = None, *, until_idle: bool = False) -> None:
        """Deliver until ``stop`` is set (or, with ``until_idle``, until no row of these
        channels is pending). A stop lets requests on the wire finish, records them and puts
        the claimed rest back to ``pending``; cancelling the task instead just stops (the next
        sender's recovery puts claimed rows back)."""
        stop = stop or asyncio.Event()
        self._stopping = False
        self._channels = {t.channel: self._make_channel(t) for t in self._transports}
        async with self._sessions() as session:
            recovered = await recover_claims(session, now=self._clock())
            await session.commit()
        if recovered:
            log.info("sender: %d claimed push(es) from a previous run back to pending", recovered)
        self._open.clear()
        # Commit once half of the slots wait for it (or after the window).
        group = min((c.limits.max_in_flight for c in self._channels.values()), default=2) // 2
        writer = self._writer = _Writer(self, window=self.commit_window, group=group)
        helpers = [
            asyncio.create_task(writer.run(), name="outbox-writer"),
            asyncio.create_task(self._watch_cancellations(), name="outbox-cancel-watch"),
        ]
        workers = [
            asyncio.create_task(self._work(channel, until_idle), name=f"outbox-{name}")
            for name, channel in self._channels.items()
        ]
        stopper = asyncio.create_task(stop.wait())
        try:
            waiting: set[asyncio.Future[Any]] = {*workers, stopper}
            while not stop.is_set() and any(not w.done() for w in workers):
                done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task is not stopper and (error := task.exception()) is not None:
                        raise error
            await self._shutdown(workers)
        finally:
            claims = [c.claiming for c in self._channels.values() if c.claiming is not None]
            for task in [*workers, *helpers, stopper, *self._deliveries, *claims]:
                task.cancel()
            await asyncio.gather(
                *workers, *helpers, stopper, *self._deliveries, *claims, return_exceptions=True
            )
            self._writer = None

    # ------------------------------------------------------------------ set-up

    def _make_channel(self, transport: Transport) -> _Channel:
        limits = self._limits.get(transport.channel, FALLBACK_LIMITS)
        batch = self._batch_size or min(500, max(10, math.ceil(limits.rate / 2)))
        return _Channel(
            transport=transport,
            limits=limits,
            bucket=TokenBucket(limits.rate, limits.capacity),
            slots=asyncio.Semaphore(limits.max_in_flight),
            batch=batch,
        )

    async def _shutdown(self, workers: list[asyncio.Task[None]]) -> None:
        self._stopping = True
        for channel in self._channels.values():
            channel.wake.set()
        await asyncio.gather(*workers, return_exceptions=True)
        claims = [c.claiming for c in self._channels.values() if c.claiming is not None]
        await asyncio.gather(*claims, return_exceptions=True)  # their rows are put back below
        if self._deliveries:
            await asyncio.wait(set(self._deliveries), timeout=self.delivery_timeout + 1)
        assert self._writer is not None
        for channel in self._channels.values():
            for held in channel.held:
                self._submit(Outcome(held.row.id, "pending"))
            channel.held.clear()
        await asyncio.wait_for(self._writer.flushed(), timeout=60)

    # ------------------------------------------------------------------ worker

    async def _work(self, channel: _Channel, until_idle: bool) -> None:
        while not self._stopping:
            now = time.monotonic()
            if channel.paused_until > now:
                await self._wait_for_resume(channel, now)
                continue
            try:
                if self._should_claim(channel, now):
                    if channel.held:  # fetch more while sending what is held
                        channel.claiming = asyncio.create_task(self._prefetch(channel))
                    else:
                        await self._claim(channel)
                held = self._pick(channel)
                if held is None and until_idle and await self._idle(channel):
                    return
            except Exception as exc:  # database unavailable: try again later
                log.warning("%s: could not claim pushes (%s)", channel.name, redact(str(exc)))
                channel.next_claim_at = time.monotonic() + self.poll_interval
                await self._sleep(channel, self.poll_interval)
                continue
            if held is None:
                await self._sleep(channel, self._idle_wait(channel))
                continue
            delay = channel.bucket.reserve()
            if delay > 0:
                await asyncio.sleep(delay)
            await channel.slots.acquire()
            if self._stopping or channel.paused_until > time.monotonic() + 0.0005:
                self._give_back(channel, held)
                continue
            self._start(channel, held)

    async def _wait_for_resume(self, channel: _Channel, now: float) -> None:
        """One step of waiting for the end of a 429 pause. Before it ends, top up the rows
        held to a full batch (the database work is done while nothing may be sent, not
        between requests afterwards), then look for cancellations. In its last moments,
        yield to the loop until it is over rather than trust a timer (they fire up to a
        millisecond late), so the first request leaves on time."""
        left = channel.paused_until - now
        if left > _TOP_UP_AHEAD:
            reached = await self._sleep_until(channel, channel.paused_until - _TOP_UP_AHEAD)
            if reached and self._should_claim(channel, time.monotonic(), low=channel.batch):
                with contextlib.suppress(Exception):  # retried after the pause
                    await self._claim(channel)
        elif left > _CANCEL_CHECK_AHEAD:
            if await self._sleep_until(channel, channel.paused_until - _CANCEL_CHECK_AHEAD):
                await self._check_cancellations([channel])
        elif left > _RESUME_AHEAD:
            await self._sleep(channel, left - _RESUME_AHEAD)
        else:
            await asyncio.sleep(0)

    async def _sleep_until(self, channel: _Channel, moment: float) -> bool:
        """Sleep until ``moment`` (monotonic); False when woken before it."""
        await self._sleep(channel, moment - time.monotonic())
        return time.monotonic() >= moment

    def _should_claim(self, channel: _Channel, now: float, *, low: int | None = None) -> bool:
        """Whether to fetch more rows: fewer than ``low`` held (default half a batch)."""
        if channel.claiming is not None or now < channel.next_claim_at:
            return False
        if len(channel.held) < max(1, channel.batch // 2 if low is None else low):
            return True
        # Everything held waits for its chat: fetch more, up to a bound.
        return len(channel.held) < channel.batch * _MAX_HOLD_FACTOR and not any(
            self._ready(channel, h, now) for h in channel.held
        )

    async def _prefetch(self, channel: _Channel) -> None:
        try:
            await self._claim(channel)
        except Exception as exc:  # database unavailable: try again later
            log.warning("%s: could not claim pushes (%s)", channel.name, redact(str(exc)))
            channel.next_claim_at = time.monotonic() + self.poll_interval
        finally:
            channel.claiming = None
            channel.wake.set()

    async def _claim(self, channel: _Channel) -> None:
        started = time.monotonic()
        self._prune(channel, started)
        limit = min(channel.batch, channel.batch * _MAX_HOLD_FACTOR - len(channel.held))
        now = self._clock()
        async with self._sessions() as session:
            rows = await claim_due(session, channel=channel.name, limit=limit, now=now)
            upcoming = None if len(rows) == limit else await next_due(session, channel=channel.name)
            await session.commit()
        self.stats.claims += 1
        channel.held.extend(_Held(row, started) for row in rows)
        self._open.update(row.broadcast_id for row in rows if row.broadcast_id is not None)
        if len(rows) == limit:
            channel.next_claim_at = 0.0
        else:
            wait = self.poll_interval
            if upcoming is not None:
                wait = min(wait, max(0.0, (upcoming - self._clock()).total_seconds()))
            channel.next_claim_at = time.monotonic() + wait

    def _prune(self, channel: _Channel, now: float) -> None:
        oldest = min((h.claimed_at for h in channel.held), default=now)
        for chat, committed in list(channel.blocks.items()):
            if committed is not None and committed < oldest:
                del channel.blocks[chat]
        if len(channel.chat_next) > 10_000:
            channel.chat_next = {c: t for c, t in channel.chat_next.items() if t > now}

    def _is_cancelled(self, row: Claimed) -> bool:
        return row.broadcast_id is not None and row.broadcast_id in self._cancelled

    def _is_blocked(self, channel: _Channel, held: _Held) -> bool:
        """Blocked by a 403 seen in this run that the claim of ``held`` may not have seen:
        rows claimed after the block was committed were checked against the database."""
        if held.row.chat_id not in channel.blocks:
            return False
        committed = channel.blocks[held.row.chat_id]
        return committed is None or held.claimed_at < committed

    def _ready(self, channel: _Channel, held: _Held, now: float) -> bool:
        chat = held.row.chat_id
        return chat not in channel.busy and channel.chat_next.get(chat, 0.0) <= now

    def _pick(self, channel: _Channel) -> _Held | None:
        """The first held row whose chat may receive now (rows to one chat keep their order);
        rows of cancelled broadcasts and blocked chats are settled on the way."""
        now = time.monotonic()
        waiting: set[str] = set()
        index = 0
        while index < len(channel.held):
            held = channel.held[index]
            row = held.row
            if self._is_cancelled(row):
                del channel.held[index]
                self._settle(row.cancelled())
                continue
            if self._is_blocked(channel, held):
                del channel.held[index]
                self._settle(row.skipped_blocked())
                continue
            if row.chat_id in waiting or not self._ready(channel, held, now):
                waiting.add(row.chat_id)
                index += 1
                continue
            return channel.held.pop(index)
        return None

    def _idle_wait(self, channel: _Channel) -> float:
        """How long nothing can be done (a finished delivery or :meth:`wake` ends it early)."""
        now = time.monotonic()
        wait = self.poll_interval
        # A claim under way wakes the worker when it ends: no need to poll for it meanwhile.
        if channel.claiming is None and len(channel.held) < channel.batch * _MAX_HOLD_FACTOR:
            wait = min(wait, max(0.0, channel.next_claim_at - now))
        free = [
            channel.chat_next.get(h.row.chat_id, 0.0) - now
            for h in channel.held
            if h.row.chat_id not in channel.busy
        ]
        if free:
            wait = min(wait, max(0.0, min(free)))
        return wait

    async def _idle(self, channel: _Channel) -> bool:
        if channel.held or channel.in_flight or channel.claiming is not None:
            return False
        async with self._sessions() as session:
            return not await has_pending(session, channels=[channel.name])

    async def _sleep(self, channel: _Channel, seconds: float) -> None:
        channel.wake.clear()
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        await wait_event(channel.wake, seconds)

    def _submit(self, outcome: Outcome) -> asyncio.Future[None]:
        """Hand an outcome to the writer; the future is done once it is committed."""
        assert self._writer is not None
        if outcome.broadcast_id is not None:
            self._open[outcome.broadcast_id] -= 1
        return self._writer.submit(outcome)

    def _settle(self, outcome: Outcome) -> None:
        """An outcome of a row that was not attempted: no slot to give back."""
        assert self._writer is not None
        if outcome.status == "cancelled":
            self.stats.cancelled += 1
        elif outcome.status == "blocked":
            self.stats.blocked += 1
        _count(outcome.channel, outcome.status)
        self._submit(outcome)

    # ------------------------------------------------------------------ delivery

    def _start(self, channel: _Channel, held: _Held) -> None:
        row = held.row
        if self._is_cancelled(row):
            channel.slots.release()
            self._settle(row.cancelled())
            return
        channel.in_flight += 1
        channel.busy.add(row.chat_id)
        previous = channel.chat_next.get(row.chat_id, 0.0)
        channel.chat_next[row.chat_id] = time.monotonic() + channel.limits.per_chat_interval
        task = asyncio.create_task(self._deliver(channel, held, previous))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    @staticmethod
    def _give_back(channel: _Channel, held: _Held) -> None:
        """A row that got a slot and a token but was not sent: held again, first in line."""
        channel.held.insert(0, held)
        channel.slots.release()
        channel.bucket.refund()

    def _put_back(self, channel: _Channel, held: _Held, chat_next: float) -> None:
        """A started delivery whose request has not gone out, because a 429 paused the
        channel in the meantime: undo the start; nothing is recorded."""
        chat = held.row.chat_id
        channel.chat_next[chat] = chat_next
        channel.busy.discard(chat)
        channel.in_flight -= 1
        self._give_back(channel, held)
        channel.wake.set()

    async def _deliver(self, channel: _Channel, held: _Held, chat_next: float) -> None:
        if channel.paused_until > time.monotonic():
            self._put_back(channel, held, chat_next)
            return
        row = held.row
        try:
            outcome = await self._attempt(channel, row)
        finally:
            # Space from the end of this request, not its start: the platform counts arrivals,
            # and this request may have reached it late.
            channel.chat_next[row.chat_id] = time.monotonic() + channel.limits.per_chat_interval
            channel.busy.discard(row.chat_id)
            channel.wake.set()
        assert self._writer is not None
        try:
            await self._submit(outcome)  # committed: only now may another request start
        finally:
            channel.in_flight -= 1
            channel.slots.release()
        if outcome.block_chat:
            channel.blocks[row.chat_id] = time.monotonic()
        if outcome.status == "pending" and outcome.next_attempt_at is not None:
            due = (outcome.next_attempt_at - self._clock()).total_seconds()
            channel.next_claim_at = min(channel.next_claim_at, time.monotonic() + max(0.0, due))
        channel.wake.set()

    async def _attempt(self, channel: _Channel, row: Claimed) -> Outcome:
        common: dict[str, Any] = {
            "broadcast_id": row.broadcast_id,
            "channel": row.channel,
            "chat_id": row.chat_id,
            "person_id": row.person_id,
        }
        try:
            buttons = buttons_from_json(row.buttons) if channel.transport.buttons else ()
        except ValueError as exc:
            self.stats.failed += 1
            _count(row.channel, "failed")
            return Outcome(row.id, "failed", error=f"bad buttons: {exc}", **common)
        self.stats.requests += 1
        try:
            async with asyncio.timeout(self.delivery_timeout):
                await channel.transport.deliver(row.chat_id, row.text, buttons)
        except RetryLater as exc:
            retry_after = max(0.0, float(exc.retry_after))
            self._pause(channel, retry_after)
            self.stats.rate_limited += 1
            _count(row.channel, "rate_limited")
            return Outcome(
                row.id,
                "pending",
                error=redact(f"rate limited ({retry_after:g} s): {exc}"),
                next_attempt_at=self._clock() + timedelta(seconds=retry_after),
                **common,
            )
        except RecipientBlocked as exc:
            channel.blocks[row.chat_id] = None
            self.stats.blocked += 1
            _count(row.channel, "blocked")
            log.info("push %d: the recipient has blocked the bot on %s", row.id, row.channel)
            return Outcome(
                row.id,
                "blocked",
                attempted=True,
                error=redact(f"blocked: {exc}"),
                block_chat=True,
                **common,
            )
        except PermanentFailure as exc:
            self.stats.failed += 1
            _count(row.channel, "failed")
            reason = redact(f"refused: {exc}")
            log.warning("push %d failed: %s", row.id, reason)
            return Outcome(row.id, "failed", attempted=True, error=reason, **common)
        except TemporaryFailure as exc:
            return self._temporary(row, redact(f"temporary: {exc}"), common)
        except TimeoutError:
            return self._temporary(row, f"timed out after {self.delivery_timeout:g} s", common)
        except Exception as exc:  # a transport bug: retried like a temporary failure
            log.exception("push %d: unexpected error from the %s transport", row.id, row.channel)
            return self._temporary(row, redact(f"error: {type(exc).__name__}: {exc}"), common)
        self.stats.sent += 1
        _count(row.channel, "sent")
        return Outcome(row.id, "sent", attempted=True, **common)

    def _temporary(self, row: Claimed, reason: str, common: dict[str, Any]) -> Outcome:
        failures = row.attempts + 1
        if failures >= self.retry.max_attempts:
            self.stats.failed += 1
            _count(row.channel, "failed")
            reason = f"gave up after {failures} attempts: {reason}"
            log.warning("push %d failed: %s", row.id, reason)
            return Outcome(row.id, "failed", attempted=True, error=reason, **common)
        self.stats.retried += 1
        _count(row.channel, "retried")
        delay = self.retry.delay(failures, self._rng)
        return Outcome(
            row.id,
            "pending",
            attempted=True,
            error=reason,
            next_attempt_at=self._clock() + timedelta(seconds=delay),
            **common,
        )

    def _pause(self, channel: _Channel, seconds: float) -> None:
        now = time.monotonic()
        until = now + seconds
        if until <= channel.paused_until:
            return
        log_ = self.stats.pause_log
        if channel.paused_until <= now:
            self.stats.pauses += 1
            METRICS.rate_limit_pauses.labels(channel.name).inc()
            log_.append((channel.name, now, until))
            log.warning("%s rate limited: pausing for %g s", channel.name, seconds)
        else:  # a longer retry_after during the pause: extend this channel's entry
            for index in range(len(log_) - 1, -1, -1):
                if log_[index][0] == channel.name:
                    log_[index] = (channel.name, log_[index][1], until)
                    break
        paused = until - max(now, channel.paused_until)
        self.stats.paused_seconds += paused
        METRICS.rate_limit_pause_seconds.labels(channel.name).inc(paused)
        channel.paused_until = until
        channel.bucket.hold(until)

    # ------------------------------------------------------------------ bookkeeping

    async def _commit(self, outcomes: list[Outcome]) -> None:
        # A broadcast can only be finished once this sender holds none of its rows.
        finish = {
            o.broadcast_id
            for o in outcomes
            if o.broadcast_id is not None
            and o.status not in ACTIVE
            and self._open[o.broadcast_id] <= 0
        }
        async with self._sessions() as session:
            finished = await record_outcomes(session, outcomes, now=self._clock(), finish=finish)
            await session.commit()
        self.stats.commits += 1
        for broadcast_id in finished:
            log.info("broadcast %d: every message settled", broadcast_id)
            self._open.pop(broadcast_id, None)

    async def _watch_cancellations(self) -> None:
        while True:
            await asyncio.sleep(self.cancel_check_interval)
            now = time.monotonic()
            # A paused channel sends nothing; it checks when its pause ends (_work).
            await self._check_cancellations(
                [c for c in self._channels.values() if c.paused_until <= now]
            )

    async def _check_cancellations(self, channels: list[_Channel]) -> None:
        """Drop the held rows of broadcasts cancelled since they were claimed."""
        ids = {
            h.row.broadcast_id
            for channel in channels
            for h in channel.held
            if h.row.broadcast_id is not None
        } - self._cancelled
        if not ids:
            return
        try:
            async with self._sessions() as session:
                result = await session.exec(
                    select(BROADCAST.c.id).where(
                        BROADCAST.c.id.in_(sorted(ids)), BROADCAST.c.status == "cancelled"
                    )
                )
                cancelled = set(result.all())
        except Exception as exc:
            log.warning("could not check for cancelled broadcasts: %s", redact(str(exc)))
            return
        if cancelled:
            self._cancelled |= cancelled
            log.info(
                "broadcast(s) %s cancelled: dropping their claimed messages", sorted(cancelled)
            )
            for channel in self._channels.values():
                keep = []
                for held in channel.held:
                    if held.row.broadcast_id in cancelled:
                        self._settle(held.row.cancelled())
                    else:
                        keep.append(held)
                channel.held = keep


def _count(channel: str | None, result: str) -> None:
    """One delivery result in the metrics (``troly_deliveries_total``)."""
    METRICS.deliveries.labels(channel or "unknown", result).inc()
