"""The terminal channel (``troly chat``): one local person, numbered choices."""

from __future__ import annotations

import asyncio
import getpass
import sys
from datetime import datetime
from pathlib import Path
from typing import TextIO

from bot.app import App
from bot.core import Image, IncomingMessage
from bot.render import plain_text

__all__ = ["CHANNEL", "run_console"]

CHANNEL = "console"
EXIT_WORDS = frozenset({"/exit", "/quit", "/thoat", "exit", "quit", "thoát"})


async def run_console(
    app: App,
    *,
    user_id: str | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    greet: bool = True,
    charts_dir: Path = Path("var/charts"),
) -> None:
    """Read lines until end of input (or /thoat) and print the replies."""
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    user = user_id or _local_user()
    interactive = stdin.isatty()

    def show(text: str) -> None:
        stdout.write(text.rstrip() + "\n\n")
        stdout.flush()

    if greet:
        for reply in await app.dispatch(_message(user, "/start"), buttons=False):
            show(plain_text(reply))
        if interactive:
            show("(Gõ câu hỏi rồi nhấn Enter; /thoat để thoát.)")
    while True:
        if interactive:
            stdout.write("› ")
            stdout.flush()
        line = await asyncio.to_thread(stdin.readline)
        if not line:
            break
        text = line.rstrip("\n")
        if text.strip().lower() in EXIT_WORDS:
            break
        if not text.strip():
            continue
        for reply in await app.dispatch(_message(user, text), buttons=False):
            if reply.image is not None:
                saved = _save_image(reply.image, charts_dir)
                show(f"[{reply.image.caption or 'Hình ảnh'}: đã lưu tại {saved}]")
            if reply.text or reply.footer:
                show(plain_text(reply))


def _save_image(image: Image, directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{datetime.now():%Y%m%d-%H%M%S}-{image.filename}"
    path.write_bytes(image.data)
    return path


def _message(user: str, text: str) -> IncomingMessage:
    return IncomingMessage(channel=CHANNEL, user_id=user, chat_id=user, text=text)


def _local_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "local"
