"""Helpers shared by the command-line modules."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from bot.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from pathlib import Path

    from bot.storage.db import SessionFactory
    from knowledge import Knowledge, KnowledgeBase, Problem

T = TypeVar("T")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


DATABASE_ERROR = (
    "Cơ sở dữ liệu báo lỗi: {problem}. Có thể cơ sở dữ liệu chưa được nâng cấp: "
    "chạy `troly db upgrade`."
)


def fail(message: str, code: int = 1) -> NoReturn:
    """A clear message on stderr (never read as rich markup) and a non-zero exit."""
    err.print(f"[bold red]Lỗi:[/] {escape(message)}", markup=True)
    raise typer.Exit(code)


def get_settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(2) from None


def secrets_of(settings: Settings) -> list[str]:
    return [
        s.get_secret_value()
        for s in (
            settings.telegram_bot_token,
            settings.zalo_bot_token,
            settings.webhook_secret,
            settings.metrics_token,
        )
        if s is not None
    ]


def load_knowledge_or_exit(settings: Settings) -> Knowledge:
    from knowledge import KnowledgeError, load_knowledge

    try:
        return load_knowledge(settings.knowledge_dir, cache_dir=settings.knowledge_cache_dir)
    except KnowledgeError as exc:
        for problem in exc.problems:
            err.print(str(problem), markup=False)
        fail(
            "Kho kiến thức có lỗi (các dòng trên), trợ lý không khởi động với kho này. "
            "Xem lại: troly kb check"
        )


def check_knowledge(directory: Path) -> tuple[list[Problem], KnowledgeBase | None]:
    """What `troly kb check` checks: every knowledge file in ``directory`` and the lexicon.
    The problems found, and the loaded base when there are none."""
    from knowledge import KnowledgeError, check_directory
    from knowledge.base import load_knowledge_base
    from knowledge.search import load_lexicon

    problems = check_directory(directory)
    try:
        load_lexicon()
    except KnowledgeError as exc:
        problems.extend(exc.problems)
    if problems:
        return problems, None
    return [], load_knowledge_base(directory)


def run_db(
    coro: Coroutine[Any, Any, T],
    *,
    runner: Callable[[Coroutine[Any, Any, T]], T] = asyncio.run,
) -> T:
    from sqlalchemy.exc import OperationalError, ProgrammingError

    try:
        return runner(coro)
    except (OperationalError, ProgrammingError) as exc:
        fail(DATABASE_ERROR.format(problem=exc.orig))


@contextlib.asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[SessionFactory]:
    """A session factory on the configured database, disposed at the end."""
    from bot.storage.db import create_engine, make_session_factory

    engine = create_engine(settings.database_url)
    try:
        yield make_session_factory(engine)
    finally:
        await engine.dispose()
