"""Several `troly run` workers on one PostgreSQL database (tests/load.py does the work):

* one worker, then three, in webhook mode under the same load (people asking questions,
  some in bursts, some reporting progress with buttons): throughput, post-to-acknowledgement
  latency and the workers' CPU per update;
* three workers under 20,000 updates from 5,000 people with the leader killed (``kill -9``)
  a third of the way: every update answered once and in order, reports recorded once, the
  broadcast the leader was pushing delivered, and how long the pushes stopped;
* polling: two processes on one bot token, the one polling killed; how long until the
  standby polls.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.throughput import _fresh_postgres, _postgres_url
from knowledge import load_knowledge
from tests.fakes.botapi_server import FakeBotAPI
from tests.load import ROOT, Result, Worker, run_load

TARGET_FAILOVER_S = 10.0


def _migrate(url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bot", "db", "upgrade"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr.decode(errors="replace")[-2000:])


async def _fresh(admin_url: str) -> str:
    url = await _fresh_postgres(admin_url, "troly_bench_cluster")
    await asyncio.to_thread(_migrate, url)
    return url


async def _polling_failover(url: str, log_dir: Path) -> float:
    """Seconds from the polling process's death to the standby's first poll."""
    async with FakeBotAPI(other_methods_ok=True) as api:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "TELEGRAM_BOT_TOKEN": api.token,
            "TELEGRAM_API_BASE_URL": api.url,
            "KNOWLEDGE_CACHE_DIR": str(ROOT / "var" / "cache"),
            "LOG_LEVEL": "INFO",
        }
        for name in ("ZALO_BOT_TOKEN", "WEBHOOK_BASE_URL", "METRICS_PORT"):
            env.pop(name, None)
        pair = [Worker(f"poller{i}", env, log_dir) for i in range(2)]
        for process in pair:
            await process.start()
        try:
            while True:  # the fake records polls; it has no event to wait on
                if api.polls:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(6)
            active = next(p for p in pair if "troly:poll:telegram:" in p.log())
            await active.kill()
            killed = time.monotonic()
            while True:
                if any(t > killed and status == 200 for t, status in api.polls):
                    break
                await asyncio.sleep(0.05)
            return min(t for t, status in api.polls if t > killed and status == 200) - killed
        finally:
            for process in pair:
                await process.stop()


def _line(name: str, result: Result, *, cpu: bool = True) -> str:
    per = f", CPU {result.cpu_s / result.updates * 1000:.1f} ms an update" if cpu else ""
    return (
        f"  {name}: {result.throughput:.0f} updates/s, p50 {result.percentile(0.5) * 1000:.0f} ms, "
        f"p99 {result.percentile(0.99) * 1000:.0f} ms{per}"
    )


async def _main() -> None:
    admin = _postgres_url()
    if admin is None:
        print("no PostgreSQL reachable (BENCH_POSTGRES_URL or TEST_POSTGRES_URL): skipped")
        return
    knowledge = load_knowledge()
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        print("Webhook workers on one PostgreSQL database, 6,000 updates from 1,500 people:")
        one = await run_load(
            await _fresh(admin), knowledge, workers=1, people=1500, updates=6000,
            recipients=0, kill_at=None, log_dir=logs,
        )  # fmt: skip
        print(_line("one worker", one))
        three = await run_load(
            await _fresh(admin), knowledge, workers=3, people=1500, updates=6000,
            recipients=0, kill_at=None, log_dir=logs,
        )  # fmt: skip
        print(_line("three workers", three))
        print(f"  three against one: {three.throughput / one.throughput:.2f}x (2 cores)")
        print("Three workers, 20,000 updates from 5,000 people, the leader killed (kill -9):")
        killed = await run_load(
            await _fresh(admin), knowledge, workers=3, people=5000, updates=20000,
            recipients=2000, kill_at=0.3, log_dir=logs,
        )  # fmt: skip
        print(_line("throughput", killed, cpu=False))
        ok = (
            not killed.unanswered
            and set(killed.doubled) <= killed.in_flight_at_kill
            and not killed.out_of_order
            and not killed.failures
            and killed.reports_recorded == killed.reports_expected
            and not killed.reports_doubled
            and killed.broadcast_delivered == killed.broadcast_total
        )
        print(
            f"  killed at {killed.killed_at:.0f} s; updates posted again: {killed.reposted}; "
            f"unanswered {len(killed.unanswered)}; answered twice {len(killed.doubled)} (all "
            f"among the {len(killed.in_flight_at_kill)} the killed worker had taken and not "
            f"acknowledged); out of order {len(killed.out_of_order)}"
        )
        print(
            f"  progress reports {killed.reports_recorded}/{killed.reports_expected}, doubled "
            f"{killed.reports_doubled}; broadcast {killed.broadcast_delivered}/"
            f"{killed.broadcast_total} delivered, {killed.broadcast_doubled} twice (in flight "
            f"at the kill); {'all checks hold' if ok else 'CHECKS FAILED'}"
        )
        pushes = killed.failover_s
        polling = await _polling_failover(await _fresh(admin), logs)
        for name, seconds in (("pushes", pushes), ("polling", polling)):
            verdict = (
                "n/a" if seconds is None else "met" if seconds <= TARGET_FAILOVER_S else "NOT MET"
            )
            shown = "-" if seconds is None else f"{seconds:.1f} s"
            print(f"  failover of {name}: {shown} (target <= {TARGET_FAILOVER_S:.0f} s: {verdict})")


def main() -> None:
    asyncio.run(_main())
