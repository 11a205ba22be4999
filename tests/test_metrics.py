"""Metrics and JSON logs: real messages through the App, real pushes through the sender, the
real ``/metrics`` endpoint scraped over HTTP and parsed like Prometheus does. Nothing
personal (user ids, chat ids, message text) and no secret appears in a scrape or a log line.

The registry is the process's own (:data:`bot.metrics.METRICS`), shared by every test in
the session: assertions compare a scrape before with one after."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import App
from bot.core import Button, IncomingMessage, PermanentFailure, RecipientBlocked, RetryLater
from bot.logs import JsonFormatter, RedactingFilter, log_context, setup_logging
from bot.metrics import METRICS, Metrics
from bot.metrics_web import metrics_app, start_metrics_server
from bot.settings import SettingsError, load_settings
from bot.storage.db import SessionFactory, create_engine, make_session_factory
from handlers import ROUTES, Route
from knowledge import Knowledge
from scheduler.leader import LeaderElection
from scheduler.outbox import enqueue
from scheduler.reminders import fire_reminder
from tests.conftest import Chat, make_app
from tests.progress.conftest import Enrol, enrol, tree
from tests.scheduler.conftest import make_sender, run_until

__all__ = ["enrol", "tree"]  # fixtures

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

USER = "987654321"  # a Telegram user id: must never appear in a scrape
GROUP = "-1001234567890"
BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"
INVITE = "TL-ABCDE-FGHJK"
METRICS_TOKEN = "scrape-token-0123456789abcdef"


def parse(text: str) -> Samples:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.fixture
async def scrape(engine: AsyncEngine) -> AsyncIterator[TestClient]:
    async with TestClient(TestServer(metrics_app(make_session_factory(engine)))) as client:
        yield client


async def get_metrics(client: TestClient, **headers: str) -> tuple[Samples, str]:
    response = await client.get("/metrics", headers=headers)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    return parse(text), text


def message(text: str, *, chat_id: str = USER, chat_type: str = "private") -> IncomingMessage:
    return IncomingMessage(
        channel="telegram",
        user_id=USER,
        chat_id=chat_id,
        text=text,
        chat_type=chat_type,  # type: ignore[arg-type]
        addressed=chat_type == "private",
    )


async def add_pushes(sessions: SessionFactory, chats: Sequence[str], kind: str) -> None:
    async with sessions() as session:
        for index, chat in enumerate(chats):
            await enqueue(
                session,
                kind=kind,
                channel="telegram",
                chat_id=chat,
                text=f"Nhắc việc số {index} cho đồng chí {chat}",
                idempotency_key=f"{kind}:{chat}:{index}",
            )
        await session.commit()


# --------------------------------------------------------------------------- messages


async def test_messages_routes_answers_and_latency_are_scraped(
    knowledge: Knowledge, engine: AsyncEngine, scrape: TestClient
) -> None:
    app = make_app(knowledge, engine)
    before, _ = await get_metrics(scrape)

    chat = Chat(app, channel="telegram", user_id=USER, buttons=True)
    # (a question right after another may be read as its follow-up: this order avoids it)
    for question in ("Công thức làm bánh chưng", "dai hoi dang bo xa xong khi nao", "kết luận 185"):
        await chat.say(question)
    await chat.say("/help")
    await app.dispatch(
        message("chuyện phiếm trong nhóm", chat_id=GROUP, chat_type="group"), buttons=True
    )

    after, text = await get_metrics(scrape)
    assert delta(before, after, "troly_messages_total", channel="telegram", route="qa") == 3
    assert delta(before, after, "troly_messages_total", channel="telegram", route="help") == 1
    assert (
        delta(before, after, "troly_messages_total", channel="telegram", route="group_ignored") == 1
    )
    for outcome in ("answered", "suggestions", "out_of_scope"):
        assert delta(before, after, "troly_answers_total", channel="telegram", outcome=outcome) == 1
    assert delta(before, after, "troly_dispatch_seconds_count", channel="telegram") == 5
    assert delta(before, after, "troly_dispatch_seconds_sum", channel="telegram") > 0
    # the buckets run from 1 ms to 10 s
    assert ("troly_dispatch_seconds_bucket", (("channel", "telegram"), ("le", "0.001"))) in after
    assert ("troly_dispatch_seconds_bucket", (("channel", "telegram"), ("le", "10.0"))) in after

    for secret in (USER, GROUP, "bánh chưng", "banh chung", "dai hoi dang bo", "chuyện phiếm"):
        assert secret not in text


async def test_numbered_suggestions_count_as_suggestions_and_a_pick_as_answered(
    knowledge: Knowledge, engine: AsyncEngine
) -> None:
    """On a channel without buttons the suggestions become a numbered list: still counted."""
    chat = Chat(make_app(knowledge, engine), channel="zalo", user_id="zalo-user-1")
    suggestions = METRICS.value("troly_answers_total", channel="zalo", outcome="suggestions")
    answered = METRICS.value("troly_answers_total", channel="zalo", outcome="answered")
    assert "Có phải đồng chí muốn hỏi:" in await chat.say("kết luận 185")
    assert "Nguồn:" in await chat.say("2")
    assert METRICS.value("troly_answers_total", channel="zalo", outcome="suggestions") == (
        suggestions + 1
    )
    assert METRICS.value("troly_answers_total", channel="zalo", outcome="answered") == answered + 1
    assert METRICS.value("troly_messages_total", channel="zalo", route="qa_pick") >= 1


async def test_throttled_and_failed_messages_are_counted(
    knowledge: Knowledge, engine: AsyncEngine
) -> None:
    async def broken(msg: IncomingMessage, ctx: object) -> None:
        raise RuntimeError(f"boom with {BOT_TOKEN}")

    failing = Route("broken", broken, when=lambda msg, _: msg.text == "hỏng")
    app = make_app(knowledge, engine, flood_limit=2, routes=(failing, *ROUTES))
    chat = Chat(app, channel="console", user_id="c-1")
    throttled = METRICS.value("troly_messages_total", channel="console", route="throttled")
    errors = METRICS.value("troly_messages_total", channel="console", route="error")
    for _ in range(3):
        await chat.say("/help")
    await chat.say("hỏng")  # throttled too: over the limit
    assert (
        METRICS.value("troly_messages_total", channel="console", route="throttled") == throttled + 2
    )
    other = Chat(make_app(knowledge, engine, routes=(failing, *ROUTES)), "console", "c-2")
    await other.say("hỏng")
    assert METRICS.value("troly_messages_total", channel="console", route="error") == errors + 1


# --------------------------------------------------------------------------- outbox


async def test_outbox_gauge_counts_rows_by_status_and_kind(db_url: str) -> None:
    """A fresh registry on either database: the gauge is the query's counts, refreshed at
    most every ``max_age`` seconds."""
    engine = create_engine(db_url)
    sessions = make_session_factory(engine)
    metrics = Metrics()
    try:
        async with TestClient(TestServer(metrics_app(sessions, metrics=metrics))) as client:
            samples, _ = await get_metrics(client)
            assert value(samples, "troly_outbox_messages", status="pending", kind="reminder") == 0
            await add_pushes(sessions, ["1001", "1002", "1003"], "reminder")
            await add_pushes(sessions, ["1004"], "digest")
            samples, _ = await get_metrics(client)  # within max_age: the cached counts
            assert value(samples, "troly_outbox_messages", status="pending", kind="reminder") == 0
            metrics.outbox.refreshed_at = None  # as if max_age had passed
            samples, text = await get_metrics(client)
            assert value(samples, "troly_outbox_messages", status="pending", kind="reminder") == 3
            assert value(samples, "troly_outbox_messages", status="pending", kind="digest") == 1
            for chat in ("1001", "1004", "Nhắc việc"):
                assert chat not in text
    finally:
        await engine.dispose()


async def test_outbox_refresh_keeps_the_last_counts_when_the_database_fails(
    engine: AsyncEngine,
) -> None:
    metrics = Metrics()
    metrics.outbox.counts = {("pending", "reminder"): 5}

    def unavailable() -> object:
        raise OSError("database unreachable")

    await metrics.outbox.refresh(unavailable)  # type: ignore[arg-type]
    assert metrics.value("troly_outbox_messages", status="pending", kind="reminder") == 5


# --------------------------------------------------------------------------- pushes


class ScriptedTransport:
    """A Telegram-like transport: the first request gets a 429, chat "blocked" has blocked
    the bot, chat "refused" is refused for good; the rest are delivered."""

    channel = "telegram"
    buttons = True

    def __init__(self) -> None:
        self.limited = False
        self.delivered: list[str] = []

    async def deliver(self, chat_id: str, text: str, buttons: Sequence[Sequence[Button]]) -> None:
        if not self.limited:
            self.limited = True
            raise RetryLater(0.2)
        if chat_id == "blocked":
            raise RecipientBlocked("Forbidden: bot was blocked by the user")
        if chat_id == "refused":
            raise PermanentFailure("Bad Request: chat not found")
        self.delivered.append(chat_id)


async def test_deliveries_and_429_pauses_are_counted(engine: AsyncEngine) -> None:
    sessions = make_session_factory(engine)
    await add_pushes(sessions, ["2001", "2002", "blocked", "refused"], "broadcast")
    transport = ScriptedTransport()
    before = {
        result: METRICS.value("troly_deliveries_total", channel="telegram", result=result)
        for result in ("sent", "blocked", "failed", "rate_limited")
    }
    pauses = METRICS.value("troly_rate_limit_pauses_total", channel="telegram")
    paused = METRICS.value("troly_rate_limit_pause_seconds_total", channel="telegram")
    sender = make_sender(sessions, transport)  # type: ignore[arg-type]
    await run_until(
        sender, lambda: sender.stats.sent + sender.stats.failed + sender.stats.blocked == 4
    )

    def grew(result: str) -> float:
        now = METRICS.value("troly_deliveries_total", channel="telegram", result=result)
        return now - before[result]

    assert (grew("sent"), grew("blocked"), grew("failed"), grew("rate_limited")) == (2, 1, 1, 1)
    assert METRICS.value("troly_rate_limit_pauses_total", channel="telegram") == pauses + 1
    seconds = METRICS.value("troly_rate_limit_pause_seconds_total", channel="telegram") - paused
    assert seconds == pytest.approx(0.2, abs=0.01)


# --------------------------------------------------------------------------- leader, rounds


async def test_leader_gauge_follows_the_election(engine: AsyncEngine) -> None:
    name = "troly:poll:telegram:0123456789abcdef"
    election = LeaderElection(engine, name=name)
    assert METRICS.value("troly_leader", lock=name) == 0
    assert await election.try_acquire()
    assert METRICS.value("troly_leader", lock=name) == 1
    await election.release()
    assert METRICS.value("troly_leader", lock=name) == 0


async def test_reminder_rounds_are_counted(tree: AsyncEngine, enrol: Enrol) -> None:
    from scheduler.policy import PushPolicy
    from tests.conftest import ZONE

    await enrol("HN.SS", "official", user_id="ss", channel="telegram", buttons=True)
    before = METRICS.value("troly_reminder_rounds_total", kind="before")
    async with make_session_factory(tree)() as session:
        planned, _ = await fire_reminder(
            session,
            task_code="dai-hoi-thang-8",
            kind="before",
            number=3,
            now=datetime(2025, 8, 28, 1, 0, tzinfo=UTC),
            policy=PushPolicy(zone=ZONE),
        )
        await session.commit()
    assert planned == 1
    assert METRICS.value("troly_reminder_rounds_total", kind="before") == before + 1


# --------------------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_metrics_server_of_its_own_wants_the_token(engine: AsyncEngine) -> None:
    port = free_port()
    runner = await start_metrics_server(
        "127.0.0.1", port, make_session_factory(engine), token=METRICS_TOKEN
    )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        async with ClientSession() as http:
            async with http.get(url) as response:
                assert response.status == 401
                assert response.headers["WWW-Authenticate"] == "Bearer"
            async with http.get(url, headers={"Authorization": "Bearer wrong"}) as response:
                assert response.status == 401
            headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
            async with http.get(url, headers=headers) as response:
                assert response.status == 200
                text = await response.text()
            async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 404  # nothing else is served
    finally:
        await runner.cleanup()
    assert "troly_messages_total" in text or "# HELP troly_messages" in text
    assert METRICS_TOKEN not in text


async def test_polling_mode_serves_metrics_on_metrics_port(
    knowledge: Knowledge, sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``troly run`` on Zalo by long polling, METRICS_PORT set: a message polled and
    answered shows on the metrics server, and the process is the scheduler's leader."""
    from bot import runner
    from tests.fakes.zalo_server import TOKEN, FakeZaloServer

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(runner, "freeze_startup_heap", lambda: None)
    for name in ("TELEGRAM_BOT_TOKEN", "WEBHOOK_BASE_URL", "WEBHOOK_SECRET", "METRICS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    port = free_port()
    async with FakeZaloServer.start(TOKEN) as zalo:
        settings = load_settings(
            database_url=sqlite_url,
            zalo_bot_token=TOKEN,
            zalo_api_base_url=zalo.base_url,
            zalo_poll_timeout=1,
            metrics_port=port,
            weekly_digest="",
        )
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run_assistant(settings, knowledge, stop=stop))
        try:
            user = "zalo-user-0123456789"
            zalo.queue_text("dai hoi dang bo xa xong khi nao", user_id=user)
            await zalo.wait_for_messages(1, chat_id=user)
            async with ClientSession() as http:
                for _ in range(100):  # the scheduler's election may take a moment
                    async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
                        assert response.status == 200
                        text = await response.text()
                    samples = parse(text)
                    if value(samples, "troly_leader", lock="troly:scheduler") == 1:
                        break
                    await asyncio.sleep(0.05)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
    assert value(samples, "troly_messages_total", channel="zalo", route="qa") >= 1
    assert value(samples, "troly_leader", lock="troly:scheduler") == 1
    assert user not in text and TOKEN not in text


# --------------------------------------------------------------------------- settings


def test_metrics_and_log_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("METRICS_PORT", "METRICS_HOST", "METRICS_TOKEN", "LOG_FORMAT", "WEBHOOK_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    defaults = load_settings()
    assert (defaults.metrics_port, defaults.metrics_host, defaults.metrics_token) == (
        None,
        "127.0.0.1",
        None,
    )
    assert defaults.log_format == "text"
    monkeypatch.setenv("METRICS_PORT", "")
    monkeypatch.setenv("LOG_FORMAT", "JSON")
    settings = load_settings()
    assert settings.metrics_port is None and settings.log_format == "json"
    monkeypatch.setenv("METRICS_PORT", "9464")
    assert load_settings().metrics_port == 9464

    def error(**overrides: object) -> str:
        with pytest.raises(SettingsError) as info:
            load_settings(**overrides)
        return str(info.value)

    assert "METRICS_PORT" in error(metrics_port=0)
    assert "METRICS_PORT" in error(metrics_port="nine")
    assert "LOG_FORMAT" in error(log_format="xml")
    assert "METRICS_HOST" in error(metrics_host="http://x/")
    short = "tooshort"
    message = error(metrics_token=short)
    assert "METRICS_TOKEN" in message and short not in message
    assert "METRICS_PORT phải khác WEBHOOK_PORT" in error(
        webhook_base_url="https://troly.example.vn",
        webhook_secret="s3cret-webhook",
        webhook_port=8080,
        metrics_port=8080,
    )


# --------------------------------------------------------------------------- JSON logs


def json_logger(stream: io.StringIO, secrets: Sequence[str] = ()) -> logging.Logger:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter(secrets))
    handler.addFilter(RedactingFilter(secrets))
    logger = logging.getLogger(f"troly.test.{id(stream)}")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return logger


def lines(stream: io.StringIO) -> list[dict[str, str]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_have_the_fields_and_no_secrets() -> None:
    stream = io.StringIO()
    logger = json_logger(stream, secrets=["webhook-secret-value"])
    with log_context(channel="telegram", user=USER) as context:
        logger.info("polling with %s, code %s", BOT_TOKEN, INVITE)
        context["route"] = "qa"
        try:
            raise RuntimeError(
                f"GET https://api.telegram.org/bot{BOT_TOKEN}/getMe webhook-secret-value"
            )
        except RuntimeError:
            logger.exception("request failed\nsecond line")
    logger.warning("outside", extra={"channel": "zalo", "route": "help"})

    first, second, third = lines(stream)
    assert set(first) == {"time", "level", "logger", "message", "channel", "user"}
    assert first["level"] == "INFO" and first["logger"] == logger.name
    assert first["channel"] == "telegram" and first["user"] == "…4321"
    parsed = datetime.fromisoformat(first["time"].replace("Z", "+00:00"))
    assert parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert first["message"] == "polling with ***, code TL-*****-*****"
    assert second["route"] == "qa" and second["message"] == "request failed\nsecond line"
    assert "RuntimeError" in second["exception"] and "Traceback" in second["exception"]
    assert (third["channel"], third["route"]) == ("zalo", "help") and "user" not in third
    raw = stream.getvalue()
    for secret in (
        BOT_TOKEN,
        "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0",
        INVITE,
        USER,
        "webhook-secret-value",
    ):
        assert secret not in raw
    assert len(raw.splitlines()) == 3  # one line per record


def test_json_formatter_redacts_without_the_filter() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("troly.test.nofilter")
    logger.handlers, logger.propagate = [handler], False
    logger.error("token %s code %s", BOT_TOKEN, "tl abcde 23456", extra={"user": "1234567"})
    [line] = lines(stream)
    assert BOT_TOKEN not in line["message"] and "TL-*****-*****" in line["message"]
    assert line["user"] == "…4567"


async def test_a_failing_message_logs_channel_and_redacted_user(
    knowledge: Knowledge, engine: AsyncEngine
) -> None:
    async def broken(msg: IncomingMessage, ctx: object) -> None:
        raise RuntimeError(f"boom with {BOT_TOKEN}")

    app: App = make_app(
        knowledge, engine, routes=(Route("broken", broken, when=lambda m, _: True), *ROUTES)
    )
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactingFilter([BOT_TOKEN]))
    app_logger = logging.getLogger("bot.app")
    app_logger.addHandler(handler)
    try:
        await Chat(app, channel="telegram", user_id=USER).say("bất kỳ")
    finally:
        app_logger.removeHandler(handler)
    [line] = lines(stream)
    assert line["level"] == "ERROR" and line["channel"] == "telegram" and line["user"] == "…4321"
    assert "boom with ***" in line["exception"]
    assert USER not in stream.getvalue() and BOT_TOKEN not in stream.getvalue()


def test_setup_logging_json_installs_the_formatter() -> None:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    try:
        setup_logging("INFO", [BOT_TOKEN], "json")
        [handler] = root.handlers
        assert isinstance(handler.formatter, JsonFormatter)
        assert any(isinstance(f, RedactingFilter) for f in handler.filters)
        setup_logging("INFO", [], "text")
        assert not isinstance(root.handlers[0].formatter, JsonFormatter)
    finally:
        for existing in list(root.handlers):
            root.removeHandler(existing)
        for existing in saved:
            root.addHandler(existing)
        root.setLevel(level)
