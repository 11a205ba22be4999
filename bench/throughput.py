"""The message path: how many messages a second `troly run` answers, against a bare aiogram
echo bot measured in the same run, on the same stand-in Bot API.

Each run starts the process, waits for its first ``getUpdates``, then queues ``MESSAGES``
text messages from as many different people (questions officials ask, the clean ones: the
lexical path, no embedding model) and times until every person has had a reply. getUpdates
hands out at most 100 updates at a time, as Telegram does; the stand-in runs in this process,
the bot in another.
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

MESSAGES = 2000
ROUNDS = 2  # each target measured this many times, interleaved; the best is kept
TARGET_RATIO = 0.5
_SHARED = ROOT.parent / "shared" / "eval"
_EVAL = _SHARED if _SHARED.is_dir() else ROOT / "tests" / "data" / "shared-eval"


def _questions() -> list[str]:
    items = load_items(_EVAL / "dev_qa.jsonl") + load_items(ROOT / "tests/data/holdout_qa.jsonl")
    return [item.question for item in items]


async def _measure(api: StandInBotAPI, command: list[str], env: dict[str, str]) -> float:
    """Messages per second from the first update queued to the last person answered."""
    api.reset()
    process = subprocess.Popen(  # noqa: ASYNC220 - spawned once, stopped below
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        await asyncio.wait_for(api.first_poll.wait(), 300)
        questions = _questions()
        start = time.monotonic()
        for number in range(MESSAGES):
            api.send(10_000 + number, questions[number % len(questions)])
        await api.wait_replies(MESSAGES, 600)
        return MESSAGES / (time.monotonic() - start)
    finally:
        process.terminate()
        try:
            _, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        if process.returncode not in (0, -15):
            sys.stderr.write(stderr.decode(errors="replace")[-2000:])


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
        targets: dict[str, tuple[list[str], dict[str, str]]] = {}
        sqlite = {**base, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/troly.db"}
        _migrate(sqlite)
        targets["troly run, SQLite"] = ([sys.executable, "-m", "bot", "run"], sqlite)
        postgres_url = _postgres_url()
        if postgres_url is not None:
            postgres = {**base, "DATABASE_URL": await _fresh_postgres(postgres_url)}
            await asyncio.to_thread(_migrate, postgres)
            targets["troly run, PostgreSQL"] = ([sys.executable, "-m", "bot", "run"], postgres)
        async with StandInBotAPI() as api:
            echo = [sys.executable, "-m", "bench.echo_bot", api.url, TOKEN]
            rates: dict[str, list[float]] = {"aiogram echo bot": []}
            rates.update({name: [] for name in targets})
            for _ in range(ROUNDS):
                rates["aiogram echo bot"].append(await _measure(api, echo, base))
                for name, (command, env) in targets.items():
                    env = {**env, "TELEGRAM_API_BASE_URL": api.url}
                    rates[name].append(await _measure(api, command, env))
    echo_rate = max(rates["aiogram echo bot"])
    print(
        f"{MESSAGES} messages from {MESSAGES} people through getUpdates (100 a batch), best of "
        f"{ROUNDS}:"
    )
    print(f"  aiogram echo bot: {echo_rate:.0f}/s")
    for name in targets:
        best = max(rates[name])
        ratio = best / echo_rate
        print(
            f"  {name}: {best:.0f}/s = {ratio:.2f} of the echo bot (target >= {TARGET_RATIO}: "
            f"{'met' if ratio >= TARGET_RATIO else 'NOT MET'})"
        )
    if postgres_url is None:
        print("  (no PostgreSQL reachable: BENCH_POSTGRES_URL or TEST_POSTGRES_URL to measure it)")


def main() -> None:
    asyncio.run(_main())
