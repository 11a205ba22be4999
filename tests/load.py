"""Several `troly run` workers in webhook mode on one PostgreSQL database, under load, with
one of them killed (``kill -9``) mid-run. Used by ``tests/test_workers.py`` (small) and
``make bench`` (20,000 updates from 5,000 people).

The load generator plays Telegram: it posts each update to the workers' webhook endpoints in
round-robin, one person's next update only once the previous one was acknowledged (Telegram
keeps one chat's updates in order), and posts again, to the next live worker, an update whose
worker did not acknowledge it (connection reset, timeout, 5xx). The workers send their
replies to a fake Bot API in this process (:class:`tests.fakes.botapi_server.FakeBotAPI`),
which records when each arrived, so every reply can be tied to the update it answers: a
worker handles an update and sends its replies *before* acknowledging it, so the replies to
update ``u`` arrive between its first post and its acknowledgement.

People are of three kinds: officials asking one question, officials asking several in a
burst, and officials reporting progress with buttons (/baocao, a task, a status, a note,
«Lưu báo cáo»). Before the load, a broadcast is queued for the leader to push meanwhile; the
worker killed is the leader, so the pushes must survive the failover as well.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import re
import signal
import socket
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from aiogram.types import CallbackQuery, Chat, Message, Update, User
from sqlalchemy import func
from sqlmodel import col, select

from bot.channels.telegram import WEBHOOK_PATH, render
from bot.core import utcnow
from bot.services import sync_task_definitions
from bot.storage.db import create_engine, make_session_factory
from bot.storage.models import (
    Broadcast,
    MessageLog,
    OutboxMessage,
    Person,
    PersonChannel,
    ProgressEvent,
    Unit,
)
from handlers.units import UnitRow, apply_rows
from knowledge import Knowledge
from knowledge.evaluation import load_items
from scheduler.outbox import Recipient, enqueue_broadcast
from tests.fakes.botapi_server import FakeBotAPI
from tests.fakes.telegram import _entities, plain

ROOT = Path(__file__).resolve().parents[1]
SECRET = "load-test-secret_0123456789"
BROADCAST_TEXT = "Thông báo: hội nghị trực tuyến lúc 8 giờ sáng mai"
STATUS = "Gặp vướng mắc"
NOTE = "Thiếu nhân sự"
_LEADER_RE = re.compile(r"leader: holding lock 'troly:scheduler'")


def _questions() -> list[str]:
    shared = ROOT.parent / "shared" / "eval"
    folder = shared if shared.is_dir() else ROOT / "tests" / "data" / "shared-eval"
    items = load_items(folder / "dev_qa.jsonl") + load_items(ROOT / "tests/data/holdout_qa.jsonl")
    return [item.question for item in items]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --------------------------------------------------------------------------- workers


class Worker:
    """One `troly run` process in webhook mode; its log lines are kept in a file."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"{name}.log"
        self.env = {**env, "WEBHOOK_PORT": str(self.port), "WEBHOOK_HOST": "127.0.0.1"}
        self.process: asyncio.subprocess.Process | None = None
        self.alive = False

    async def start(self) -> None:
        log = self.log_path.open("wb")
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=log,
        )
        log.close()
        self.alive = True

    async def ready(self, http: aiohttp.ClientSession, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.returncode is not None:
                raise RuntimeError(f"{self.name} exited: {self.log()[-2000:]}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with http.get(f"{self.url}/healthz") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} did not start: {self.log()[-2000:]}")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def leads(self) -> bool:
        return bool(_LEADER_RE.search(self.log()))

    async def kill(self) -> None:
        assert self.process is not None
        self.alive = False
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        self.alive = False
        if self.process is None or self.process.returncode is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 30)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


# --------------------------------------------------------------------------- the run


@dataclass
class Sent:
    """One update as the generator posted it."""

    key: str  # the message log's update_key: u<update_id> or q<callback id>
    chat: str
    first_post: float = 0.0
    acked: float = 0.0
    attempts: int = 0
    first_worker: str = ""


@dataclass
class Result:
    updates: int = 0
    people: int = 0
    reporters: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # post -> acknowledgement
    reposted: int = 0  # updates posted again after a worker did not acknowledge them
    killed_at: float | None = None  # seconds into the run
    unanswered: list[str] = field(default_factory=list)  # updates without their replies
    doubled: list[str] = field(default_factory=list)  # updates answered twice
    # updates the killed worker had taken and not acknowledged when it was killed: the only
    # ones whose replies may go out twice (sent, then the worker died before acknowledging)
    in_flight_at_kill: set[str] = field(default_factory=set)
    out_of_order: list[str] = field(default_factory=list)  # chats with a stray reply
    failures: list[str] = field(default_factory=list)  # flows that went wrong
    reports_expected: int = 0
    reports_recorded: int = 0
    reports_doubled: int = 0
    log_rows: int = 0
    broadcast_total: int = 0
    broadcast_delivered: int = 0  # recipients who got the broadcast
    broadcast_doubled: int = 0  # recipients who got it twice (a push in flight at the kill)
    failover_s: float | None = None  # the leader's death to the next broadcast delivery
    cpu_s: float = 0.0  # the surviving workers' CPU time (user + system) during the load

    @property
    def throughput(self) -> float:
        return self.updates / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0

    def summary(self) -> str:
        return (
            f"{self.updates} updates from {self.people} people in {self.seconds:.1f} s: "
            f"{self.throughput:.0f}/s, p50 {self.percentile(0.5) * 1000:.0f} ms, "
            f"p99 {self.percentile(0.99) * 1000:.0f} ms; reposted {self.reposted}; "
            f"unanswered {len(self.unanswered)}, doubled {len(self.doubled)} "
            f"(of {len(self.in_flight_at_kill)} in flight at the kill), "
            f"out of order {len(self.out_of_order)}, flow failures {len(self.failures)}; "
            f"reports {self.reports_recorded}/{self.reports_expected} "
            f"(doubled {self.reports_doubled}); broadcast {self.broadcast_delivered}/"
            f"{self.broadcast_total} (doubled {self.broadcast_doubled}); "
            f"failover {'-' if self.failover_s is None else f'{self.failover_s:.1f}'} s"
        )


async def seed(db_url: str, knowledge: Knowledge, *, reporters: int, recipients: int) -> None:
    """A province with one commune per reporter, each reporter enrolled on Telegram
    (chat 2_000_000 + i), and a broadcast queued to ``recipients`` other chats."""
    engine = create_engine(db_url)
    try:
        async with make_session_factory(engine)() as session:
            rows = [
                UnitRow(2, "TW", "Ban Chấp hành Trung ương", "trung_uong", ""),
                UnitRow(3, "T1", "Đảng bộ tỉnh Thử nghiệm", "truc_thuoc_tw", "TW"),
            ]
            rows += [
                UnitRow(4 + i, f"T1.X{i}", f"Đảng ủy xã Số {i}", "xa", "T1")
                for i in range(reporters)
            ]
            await apply_rows(session, rows, utcnow())
            await sync_task_definitions(session, knowledge, None)
            units = {
                u.code: u.id
                for u in (await session.exec(select(Unit).where(col(Unit.code).like("T1.X%"))))
            }
            for i in range(reporters):
                person = Person(name=f"Cán bộ {i}", unit_id=units[f"T1.X{i}"], role="official")
                session.add(person)
                await session.flush()
                assert person.id is not None
                chat = str(2_000_000 + i)
                session.add(
                    PersonChannel(
                        person_id=person.id, channel="telegram", user_id=chat, chat_id=chat
                    )
                )
            broadcast = Broadcast(text=BROADCAST_TEXT, audience="all", created_by="load")
            session.add(broadcast)
            await session.flush()
            chats = [Recipient("telegram", str(9_000_000 + i)) for i in range(recipients)]
            await enqueue_broadcast(session, broadcast, chats)
            await session.commit()
    finally:
        await engine.dispose()


class Generator:
    """Telegram's side: posts updates, redelivers what was not acknowledged."""

    def __init__(self, api: FakeBotAPI, workers: list[Worker], http: aiohttp.ClientSession) -> None:
        self.api = api
        self.workers = workers
        self.http = http
        self.sent: list[Sent] = []
        self.result = Result()
        self._turn = itertools.count()
        self._ids = itertools.count(1)
        self.acked = 0

    def _next_worker(self) -> Worker:
        for _ in range(len(self.workers) * 2):
            worker = self.workers[next(self._turn) % len(self.workers)]
            if worker.alive:
                return worker
        raise RuntimeError("no worker alive")

    async def post(self, update: Update, key: str, chat: str) -> None:
        body = update.model_dump_json(exclude_none=True)
        record = Sent(key=key, chat=chat)
        self.sent.append(record)
        record.first_post = time.monotonic()
        while True:
            record.attempts += 1
            worker = self._next_worker()
            record.first_worker = record.first_worker or worker.name
            try:
                async with self.http.post(
                    f"{worker.url}{WEBHOOK_PATH}",
                    data=body,
                    headers={
                        "Content-Type": "application/json",
                        "X-Telegram-Bot-Api-Secret-Token": SECRET,
                    },
                    timeout=aiohttp.ClientTimeout(total=60),
                ) as response:
                    await response.read()
                    if response.status == 200:
                        break
            except (aiohttp.ClientError, OSError, TimeoutError):
                pass
            self.result.reposted += 1
            await asyncio.sleep(0.05)  # Telegram waits before delivering again
        record.acked = time.monotonic()
        self.result.latencies.append(record.acked - record.first_post)
        self.acked += 1

    def _user(self, chat: int) -> User:
        return User(id=chat, is_bot=False, first_name="Cán bộ", last_name=str(chat))

    async def text(self, chat: int, text: str) -> None:
        update_id = next(self._ids)
        message = Message(
            message_id=update_id,
            date=datetime.now(UTC),
            chat=Chat(id=chat, type="private"),
            from_user=self._user(chat),
            text=text,
            entities=_entities(text) or None,
        )
        await self.post(Update(update_id=update_id, message=message), f"u{update_id}", str(chat))

    async def press(self, chat: int, label: Callable[[str], bool], what: str) -> bool:
        """Press the newest button whose label ``label`` accepts; False when none."""
        for request in reversed(self.api.by_chat.get(str(chat), [])):
            rows = (request.reply_markup or {}).get("inline_keyboard", [])
            for button in (b for row in rows for b in row):
                if label(button["text"]):
                    update_id = next(self._ids)
                    query = CallbackQuery(
                        id=str(update_id),
                        from_user=self._user(chat),
                        chat_instance="load",
                        data=button["callback_data"],
                        message=Message(
                            message_id=1,
                            date=datetime.now(UTC),
                            chat=Chat(id=chat, type="private"),
                            text=plain(request.text),
                        ),
                    )
                    update = Update(update_id=update_id, callback_query=query)
                    await self.post(update, f"q{update_id}", str(chat))
                    return True
        self.result.failures.append(f"chat {chat}: no button for {what}")
        return False

    async def reporter(self, chat: int) -> None:
        await self.text(chat, "/baocao")
        if not await self.press(chat, lambda t: t != "Hủy", "a task"):
            return
        if not await self.press(chat, lambda t: t == STATUS, STATUS):
            return
        await self.text(chat, NOTE)
        await self.press(chat, lambda t: t == "Lưu báo cáo", "Lưu báo cáo")

    async def asker(self, chat: int, questions: list[str]) -> None:
        for question in questions:
            await self.text(chat, question)


async def _reply_counts(db_url: str) -> tuple[dict[str, int], int]:
    """update_key -> the number of Bot API messages its stored replies make; log rows."""
    from bot.app import replies_from_json

    engine = create_engine(db_url)
    try:
        async with make_session_factory(engine)() as session:
            rows = (
                await session.exec(
                    select(MessageLog.update_key, MessageLog.replies).where(
                        col(MessageLog.update_key).is_not(None)
                    )
                )
            ).all()
    finally:
        await engine.dispose()
    counts = {
        key: sum(len(render(reply)) for reply in replies_from_json(replies or []))
        for key, replies in rows
        if key is not None
    }
    return counts, len(rows)


async def _reports(db_url: str) -> Counter[int]:
    engine = create_engine(db_url)
    try:
        async with make_session_factory(engine)() as session:
            rows = await session.exec(
                select(ProgressEvent.unit_id, func.count()).group_by(col(ProgressEvent.unit_id))
            )
            return Counter({unit: n for unit, n in rows.all()})
    finally:
        await engine.dispose()


async def _broadcast_done(db_url: str) -> bool:
    engine = create_engine(db_url)
    try:
        async with make_session_factory(engine)() as session:
            left = (
                await session.exec(
                    select(func.count())
                    .select_from(OutboxMessage)
                    .where(col(OutboxMessage.status).in_(["pending", "sending"]))
                )
            ).one()
            return int(left) == 0
    finally:
        await engine.dispose()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a live process (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run_load(
    db_url: str,
    knowledge: Knowledge,
    *,
    workers: int = 3,
    people: int = 5000,
    updates: int = 20000,
    reporters: int | None = None,
    recipients: int = 300,
    kill_at: float | None = 0.3,
    concurrency: int = 64,
    log_dir: Path,
    seed_value: int = 12,
) -> Result:
    """Run the load against a migrated, empty database ``db_url``; ``kill_at``: the share of
    updates acknowledged when the leader is killed (None: no kill)."""
    reporters = people // 10 if reporters is None else reporters
    await seed(db_url, knowledge, reporters=reporters, recipients=recipients)
    questions = _questions()
    rng = random.Random(seed_value)
    # The askers share what the reporters do not use (five updates each).
    askers = people - reporters
    left = max(askers, updates - 5 * reporters)
    per_asker = [left // askers + (1 if i < left % askers else 0) for i in range(askers)]
    scripts: list[tuple[str, int, list[str]]] = [
        ("report", 2_000_000 + i, []) for i in range(reporters)
    ]
    scripts += [
        ("ask", 3_000_000 + i, [rng.choice(questions) for _ in range(n)])
        for i, n in enumerate(per_asker)
    ]
    rng.shuffle(scripts)

    async with FakeBotAPI(
        other_methods_ok=True, token="123456789:AALoadTestTokenOnly_abcdefgh"
    ) as api:
        env = {
            **os.environ,
            "DATABASE_URL": db_url,
            "TELEGRAM_BOT_TOKEN": api.token,
            "TELEGRAM_API_BASE_URL": api.url,
            "WEBHOOK_BASE_URL": "https://troly.example.org",
            "WEBHOOK_SECRET": SECRET,
            "LOG_LEVEL": "INFO",
            "KNOWLEDGE_CACHE_DIR": str(ROOT / "var" / "cache"),
            "TELEGRAM_RATE": "25",
            "QUIET_HOURS": "",
            "OVERDUE_MAX_REMINDERS": "0",  # no reminders to the reporters meanwhile
            "WEEKLY_DIGEST": "",
        }
        for name in ("ZALO_BOT_TOKEN", "METRICS_PORT"):
            env.pop(name, None)
        pool = [Worker(f"worker{i + 1}", env, log_dir) for i in range(workers)]
        connector = aiohttp.TCPConnector(limit=concurrency * 2)
        async with aiohttp.ClientSession(connector=connector) as http:
            for worker in pool:
                await worker.start()
            try:
                for worker in pool:
                    await worker.ready(http)
                deadline = time.monotonic() + 60
                while not any(w.leads() for w in pool):  # the pushes have started
                    assert time.monotonic() < deadline, "no worker became the leader"
                    await asyncio.sleep(0.2)
                generator = Generator(api, pool, http)
                total = 5 * reporters + sum(per_asker)
                result = generator.result
                result.updates, result.people, result.reporters = total, people, reporters
                result.broadcast_total = recipients
                gate = asyncio.Semaphore(concurrency)

                async def person(kind: str, chat: int, texts: list[str]) -> None:
                    async with gate:
                        if kind == "report":
                            await generator.reporter(chat)
                        else:
                            await generator.asker(chat, texts)

                cpu_before = {w.name: cpu_seconds(w.pid) for w in pool}
                start = time.monotonic()
                people_tasks = [asyncio.create_task(person(*script)) for script in scripts]
                killed_leader: float | None = None
                if kill_at is not None:
                    while generator.acked < kill_at * total:
                        await asyncio.sleep(0.02)
                    leader = next((w for w in pool if w.leads()), None)
                    victim = leader or pool[-1]
                    await victim.kill()
                    killed_leader = time.monotonic()
                    result.killed_at = killed_leader - start
                    result.in_flight_at_kill = {
                        r.key
                        for r in generator.sent
                        if r.first_worker == victim.name and not r.acked
                    }
                await asyncio.gather(*people_tasks)
                result.seconds = time.monotonic() - start
                # CPU of the workers during the load (a killed worker's is not known)
                result.cpu_s = sum(cpu_seconds(w.pid) - cpu_before[w.name] for w in pool if w.alive)
                deadline = time.monotonic() + 120
                while not await _broadcast_done(db_url) and time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
            finally:
                for worker in pool:
                    await worker.stop()

        # Every update's replies, once, between its first post and its acknowledgement.
        expected, result.log_rows = await _reply_counts(db_url)
        for record in generator.sent:
            arrived = [
                r
                for r in api.by_chat.get(record.chat, [])
                if record.first_post <= r.t <= record.acked and r.status == 200
            ]
            want = expected.get(record.key)
            if want is None or len(arrived) < want:
                result.unanswered.append(record.key)
            elif len(arrived) > want:
                result.doubled.append(record.key)
        windows: dict[str, list[tuple[float, float]]] = {}
        for record in generator.sent:
            windows.setdefault(record.chat, []).append((record.first_post, record.acked))
        for chat, spans in windows.items():
            for request in api.by_chat.get(chat, []):
                if not any(a <= request.t <= b for a, b in spans):
                    result.out_of_order.append(chat)
                    break
        reports = await _reports(db_url)
        result.reports_expected = reporters
        result.reports_recorded = len(reports)
        result.reports_doubled = sum(1 for n in reports.values() if n > 1)
        got = Counter(
            r.chat_id for r in api.delivered() if r.text and BROADCAST_TEXT in plain(r.text)
        )
        result.broadcast_delivered = sum(1 for n in got.values() if n >= 1)
        result.broadcast_doubled = sum(1 for n in got.values() if n > 1)
        if killed_leader is not None:
            after = [
                r.t
                for r in api.delivered()
                if r.t > killed_leader and r.text and BROADCAST_TEXT in plain(r.text)
            ]
            result.failover_s = min(after) - killed_leader if after else None
        return result


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0
