"""`troly run` as deployed: start-up time with a warm knowledge cache and resident memory
while it answers questions on Telegram (long polling against a local stand-in for the Bot
API that answers every method the way Telegram does).

Start-up is from spawning the process to its first ``getUpdates`` (the moment it can
receive a message); memory is the process's resident set (VmRSS) and its peak (VmHWM)
after it has answered the questions, so the embedding model is loaded.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from knowledge.evaluation import load_items

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "123456789:AAStandInTokenForTheBenchmarkOnly_xyz"
STARTS = 3  # start-ups measured after the one that warms the cache
QUESTIONS = 40
TARGET_START_S, TARGET_RSS_MB = 3.0, 400.0


class StandInBotAPI:
    """Enough of the Bot API for `troly run`: getMe, getUpdates (long polling from a queue),
    sendMessage (recorded); any other method answers ``true``."""

    def __init__(self) -> None:
        self.updates: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.first_poll: asyncio.Event = asyncio.Event()
        self.first_poll_at = 0.0
        self.replies: list[tuple[int, str]] = []
        self.first_reply: dict[int, float] = {}  # chat -> when its first reply arrived
        self.replied = asyncio.Condition()
        self._update_id = 0
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> StandInBotAPI:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._method)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def reset(self) -> None:
        self.first_poll = asyncio.Event()
        self.replies.clear()
        self.first_reply.clear()

    async def wait_replies(self, chats: int, seconds: float) -> None:
        """Until ``chats`` different chats have had a reply."""
        async with self.replied:
            await asyncio.wait_for(
                self.replied.wait_for(lambda: len(self.first_reply) >= chats), seconds
            )

    def send(self, chat: int, text: str) -> None:
        self._update_id += 1
        self.updates.put_nowait(
            {
                "update_id": self._update_id,
                "message": {
                    "message_id": self._update_id,
                    "date": int(time.time()),
                    "chat": {"id": chat, "type": "private", "first_name": "Cán bộ"},
                    "from": {"id": chat, "is_bot": False, "first_name": "Cán bộ"},
                    "text": text,
                },
            }
        )

    async def _method(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.match_info["token"] != TOKEN:
            return web.json_response({"ok": False, "error_code": 401}, status=401)
        form: dict[str, Any] = dict(await request.post()) if request.can_read_body else {}
        if not form and request.content_type == "application/json":
            form = await request.json()
        if method == "getMe":
            user = {"id": 123456789, "is_bot": True, "first_name": "Trợ lý", "username": "troly"}
            return web.json_response({"ok": True, "result": user})
        if method == "getUpdates":
            if not self.first_poll.is_set():
                self.first_poll_at = time.monotonic()
                self.first_poll.set()
            timeout = float(form.get("timeout") or 0)
            limit = int(form.get("limit") or 100)  # Telegram hands out at most 100
            batch = []
            try:
                batch.append(await asyncio.wait_for(self.updates.get(), min(timeout, 1.0)))
                while not self.updates.empty() and len(batch) < limit:
                    batch.append(self.updates.get_nowait())
            except TimeoutError:
                pass
            return web.json_response({"ok": True, "result": batch})
        if method == "sendMessage":
            chat = int(form.get("chat_id", 0))
            async with self.replied:
                self.replies.append((chat, str(form.get("text", ""))))
                self.first_reply.setdefault(chat, time.monotonic())
                self.replied.notify_all()
            message = {
                "message_id": len(self.replies),
                "date": int(time.time()),
                "chat": {"id": chat, "type": "private"},
                "text": str(form.get("text", "")),
            }
            return web.json_response({"ok": True, "result": message})
        return web.json_response({"ok": True, "result": True})


def _status(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


async def _one_run(api: StandInBotAPI, env: dict[str, str], questions: list[str]) -> dict[str, Any]:
    api.reset()
    started = time.monotonic()
    process = subprocess.Popen(  # noqa: ASYNC220 - spawned once, not waited on here
        [sys.executable, "-m", "bot", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        try:
            await asyncio.wait_for(api.first_poll.wait(), 600)
        except TimeoutError:
            raise RuntimeError("troly run did not start polling") from None
        startup = api.first_poll_at - started
        result: dict[str, Any] = {"startup_s": startup}
        if questions:
            for number, question in enumerate(questions):
                api.send(1000 + number, question)
            async with api.replied:
                await asyncio.wait_for(
                    api.replied.wait_for(
                        lambda: len({chat for chat, _ in api.replies}) >= len(questions)
                    ),
                    300,
                )
            await asyncio.sleep(0.5)
            result.update(_status(process.pid))
            result["answered"] = len({chat for chat, _ in api.replies})
        return result
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            _, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
        if process.returncode not in (0, -signal.SIGTERM):
            sys.stderr.write(stderr.decode(errors="replace")[-2000:])


def _questions() -> list[str]:
    shared = ROOT.parent / "shared" / "eval"
    folder = shared if shared.is_dir() else ROOT / "tests" / "data" / "shared-eval"
    items = load_items(folder / "dev2_qa.jsonl") + load_items(folder / "dev2_oos.jsonl")
    return [item.question for item in items][:QUESTIONS]


async def _main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "TELEGRAM_BOT_TOKEN": TOKEN,
            "DATABASE_URL": f"sqlite+aiosqlite:///{tmp}/troly.db",
            "KNOWLEDGE_CACHE_DIR": str(ROOT / "var" / "cache"),
            "LOG_LEVEL": "WARNING",
        }
        env.pop("ZALO_BOT_TOKEN", None)
        env.pop("WEBHOOK_BASE_URL", None)
        migrate = subprocess.run(  # noqa: ASYNC221 - before the loop has work
            [sys.executable, "-m", "bot", "db", "upgrade"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            check=False,
        )
        if migrate.returncode != 0:
            raise RuntimeError(migrate.stderr.decode(errors="replace")[-2000:])
        async with StandInBotAPI() as api:
            env["TELEGRAM_API_BASE_URL"] = api.url
            first = await _one_run(api, env, [])  # builds or checks the cache
            starts = [(await _one_run(api, env, []))["startup_s"] for _ in range(STARTS)]
            serving = await _one_run(api, env, _questions())
    best = min(starts)
    print(
        f"troly run start-up to the first getUpdates: first {first['startup_s']:.2f} s, "
        f"warm cache {best:.2f} s (best of {STARTS}; median "
        f"{sorted(starts)[len(starts) // 2]:.2f} s; target <= {TARGET_START_S:.0f} s: "
        f"{'met' if best <= TARGET_START_S else 'NOT MET'})"
    )
    rss, peak = serving["VmRSS"], serving["VmHWM"]
    print(
        f"troly run resident memory after answering {serving['answered']} questions: "
        f"{rss:.0f} MB (peak {peak:.0f} MB; target <= {TARGET_RSS_MB:.0f} MB: "
        f"{'met' if peak <= TARGET_RSS_MB else 'NOT MET'})"
    )


def main() -> None:
    asyncio.run(_main())
