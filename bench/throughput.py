"""The message path: how many messages a second `troly run` answers, against a bare aiogram
echo bot measured in the same run, on the same fake Bot API.

Each run starts the process, waits until it polls and its start-up work is done (its CPU
quiet for half a second), then has ``MESSAGES`` people send one text message each
(questions officials ask, the clean ones, in turn: 92 different ones, so most are answered
from the answer cache, ``knowledge.AnswerCache``) and times until every one of them has had
a reply. getUpdates hands out at most 100 updates at a time, as Telegram does. Two fake Bot
APIs, each measured in its own rounds:

* the project's Telegram Bot API emulator (tests/e2e/emulator: Node.js, telegram-test-api),
  the one the end-to-end tests use; the people write through its client API;
* a minimal stand-in (bench.run.StandInBotAPI, aiohttp in this process) that does almost
  nothing per request: the harshest yardstick, where the echo bot's cost is close to
  aiogram's own.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time

from bench.run import ROOT, TOKEN, StandInBotAPI
from knowledge.evaluation import load_items
from tests.e2e.telegram_emulator import TelegramEmulator
from tests.load import cpu_seconds

MESSAGES = 2000
ROUNDS = 2  # each target measured this many times, interleaved; the best is kept
TARGET_RATIO = 0.5
QUIET_CPU_S = 0.05  # a process is done starting once half a second costs it less than this
_SHARED = ROOT.parent / "shared" / "eval"
_EVAL = _SHARED if _SHARED.is_dir() else ROOT / "tests" / "data" / "shared-eval"


def _questions() -> list[str]:
    items = load_items(_EVAL / "dev_qa.jsonl") + load_items(ROOT / "tests/data/holdout_qa.jsonl")
    return [item.question for item in items]


async def _measure_emulator(
    emulator: TelegramEmulator, command: list[str], env: dict[str, str], run: int
) -> float:
    """The same against the emulator; each run has its own bot token (its own updates)."""
    token = f"{700_000 + run}:AAThroughputBenchmarkToken_{run:04d}"
    command = [*command[:-2], emulator.base_url, token] if "bench.echo_bot" in command else command
    env = {**env, "TELEGRAM_BOT_TOKEN": token, "TELEGRAM_API_BASE_URL": emulator.base_url}
    process = subprocess.Popen(  # noqa: ASYNC220 - spawned once, stopped below
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        # Timed from its first getUpdates, as with the stand-in: a PostgreSQL process that
        # wins the polling lock waits a few seconds more before it polls (takeover_delay).
        while (await emulator.call_counts(token))["polls"] == 0:  # no event to wait on here
            if process.poll() is not None:
                raise RuntimeError(f"{command} ended before it polled")
            await asyncio.sleep(0.1)
        await _settled(process)
        questions = _questions()
        gate = asyncio.Semaphore(32)

        async def write(number: int) -> None:
            async with gate:
                user = emulator.client(token, user_id=_person(run, number), first_name="Cán bộ")
                await user.send_text(questions[number % len(questions)])

        start = time.monotonic()
        writers = asyncio.gather(*(write(number) for number in range(MESSAGES)))
        while True:
            if (await emulator.call_counts(token))["chats"] >= MESSAGES:
                break
            await asyncio.sleep(0.1)
        elapsed = time.monotonic() - start
        await writers
        return MESSAGES / elapsed
    finally:
        _stop(process)


async def _settled(process: subprocess.Popen[bytes]) -> None:
    """Wait until the process has finished starting (at most a minute): what follows is
    timed as the message path, for the echo bot and troly alike. Polling is not enough: a
    troly leader starts its scheduler and loads its job store just after its first poll."""
    deadline = time.monotonic() + 60
    before = cpu_seconds(process.pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        now = cpu_seconds(process.pid)
        if now - before < QUIET_CPU_S:
            return
        before = now


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        _, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
    if process.returncode not in (0, -15):
        sys.stderr.write(stderr.decode(errors="replace")[-2000:])


def _person(run: int, number: int) -> int:
    """Each run has people of its own: every run measures the same thing (first contacts),
    whatever the runs before it left in the database."""
    return 10_000 + run * MESSAGES + number


async def _measure(api: StandInBotAPI, command: list[str], env: dict[str, str], run: int) -> float:
    """Messages per second from the first update queued to the last person answered."""
    api.reset()
    process = subprocess.Popen(  # noqa: ASYNC220 - spawned once, stopped below
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        await asyncio.wait_for(api.first_poll.wait(), 300)
        await _settled(process)
        questions = _questions()
        start = time.monotonic()
        for number in range(MESSAGES):
            api.send(_person(run, number), questions[number % len(questions)])
        await api.wait_replies(MESSAGES, 600)
        return MESSAGES / (time.monotonic() - start)
    finally:
        _stop(process)


def _postgres_url() -> str | None:
    url = os.environ.get("BENCH_POSTGRES_URL") or os.environ.get("TEST_POSTGRES_URL")
    if url:
        return url
    try:  # the development machine's server, when there is one
        import socket

        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
    except OSError:
        return None


async def _fresh_postgres(url: str, name: str = "troly_bench") -> str:
    """An empty database for the benchmark, next to the one ``url`` names (which is left
    alone)."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from bot.storage.db import create_engine

    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _migrate(env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr.decode(errors="replace")[-2000:])


async def _main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = {
            **os.environ,
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "KNOWLEDGE_CACHE_DIR": str(ROOT / "var" / "cache"),
            "LOG_LEVEL": "WARNING",
            "FLOOD_LIMIT_PER_MINUTE": "1000",
        }
        for name in ("ZALO_BOT_TOKEN", "WEBHOOK_BASE_URL"):
            base.pop(name, None)
        postgres_url = _postgres_url()

        async def fresh_targets(api: str) -> dict[str, tuple[list[str], dict[str, str]]]:
            """New databases for each fake Bot API: update ids start again with each API,
            and one seen before in a database is taken for a redelivery (not answered)."""
            found: dict[str, tuple[list[str], dict[str, str]]] = {}
            sqlite = {**base, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/{api}.db"}
            await asyncio.to_thread(_migrate, sqlite)
            found["troly run, SQLite"] = ([sys.executable, "-m", "bot", "run"], sqlite)
            if postgres_url is not None:
                postgres = {**base, "DATABASE_URL": await _fresh_postgres(postgres_url)}
                await asyncio.to_thread(_migrate, postgres)
                found["troly run, PostgreSQL"] = ([sys.executable, "-m", "bot", "run"], postgres)
            return found

        echo = [sys.executable, "-m", "bench.echo_bot", "API", TOKEN]
        targets = await fresh_targets("emulator")
        names = ["aiogram echo bot", *targets]
        by_api: dict[str, dict[str, list[float]]] = {}
        run = 0
        if TelegramEmulator.available():
            rates = by_api.setdefault("the Bot API emulator (Node.js)", {n: [] for n in names})
            async with TelegramEmulator.start() as emulator:
                for _ in range(ROUNDS):
                    for name in names:
                        command, env = (echo, base) if name == names[0] else targets[name]
                        run += 1
                        rates[name].append(await _measure_emulator(emulator, command, env, run))
        targets = await fresh_targets("stand-in")
        async with StandInBotAPI() as api:
            rates = by_api.setdefault("a minimal stand-in (aiohttp)", {n: [] for n in names})
            for _ in range(ROUNDS):
                for name in names:
                    command, env = (echo, base) if name == names[0] else targets[name]
                    if name == names[0]:
                        command = [*echo[:-2], api.url, TOKEN]
                    env = {**env, "TELEGRAM_API_BASE_URL": api.url}
                    run += 1
                    rates[name].append(await _measure(api, command, env, run))
    distinct = len(set(_questions()))
    print(
        f"{MESSAGES} messages from {MESSAGES} people through getUpdates (100 a batch), best of "
        f"{ROUNDS}, against:"
    )
    print(
        f"  ({distinct} different questions among them: a question met before is answered "
        "from troly's answer cache; every message is a first contact, so a conversation row "
        "is created for each)"
    )
    for api_name, rates in by_api.items():
        echo_rate = max(rates[names[0]])
        print(f"  {api_name}: aiogram echo bot {echo_rate:.0f}/s")
        for name in targets:
            best = max(rates[name])
            ratio = best / echo_rate
            print(
                f"    {name}: {best:.0f}/s = {ratio:.2f} of the echo bot (target >= "
                f"{TARGET_RATIO}: {'met' if ratio >= TARGET_RATIO else 'NOT MET'})"
            )
    if postgres_url is None:
        print("  (no PostgreSQL reachable: BENCH_POSTGRES_URL or TEST_POSTGRES_URL to measure it)")


def main() -> None:
    asyncio.run(_main())
