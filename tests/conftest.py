"""Shared fixtures: the real knowledge base, migrated databases (SQLite and PostgreSQL), an
App wired like production, and a console-style helper to talk to it."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.app import App
from bot.core import IncomingMessage, Reply
from bot.render import plain_text
from bot.storage.db import create_engine, make_session_factory, upgrade_database
from knowledge import Knowledge, load_knowledge

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
# The public evaluation sample: ../shared/eval beside the checkout, else the copy kept in the
# repository (a fresh clone elsewhere, as in CI).
EVAL_DIR = (
    SHARED / "eval" if (SHARED / "eval").is_dir() else ROOT / "tests" / "data" / "shared-eval"
)
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# One knowledge cache for the whole test session, this process and the ones it starts
# (`troly ask`, `troly run`): the entries' embeddings are computed once, not per test.
TEST_CACHE = ROOT / "var" / "test-cache"
os.environ.setdefault("KNOWLEDGE_CACHE_DIR", str(TEST_CACHE))
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")


def require(condition: bool, reason: str) -> None:
    """Skip on a developer machine; fail under CI, where everything must run."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required under CI=true: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def knowledge() -> Knowledge:
    return load_knowledge(cache_dir=Path(os.environ["KNOWLEDGE_CACHE_DIR"]))


# --------------------------------------------------------------------------- databases


def _postgres_admin_url() -> str | None:
    return os.environ.get("TEST_POSTGRES_URL")


async def _pg_execute(url: str, statement: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A throw-away PostgreSQL database for this test session, migrated to head."""
    admin = _postgres_admin_url()
    require(admin is not None, "TEST_POSTGRES_URL is not set (PostgreSQL tests)")
    assert admin is not None
    name = f"troly_test_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_pg_execute(admin, f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # unreachable server, bad credentials
        require(False, f"PostgreSQL at TEST_POSTGRES_URL is unreachable: {exc}")
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)

    asyncio.run(_migrate(url))
    yield url
    asyncio.run(_pg_execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _truncate_all(engine: AsyncEngine) -> None:
    from sqlmodel import SQLModel

    async with engine.begin() as connection:
        names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
        await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade_database(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'troly.db'}"
    asyncio.run(_migrate(url))
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Storage tests run on both databases (PostgreSQL: a clean, migrated database)."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'troly.db'}"
        asyncio.run(_migrate(url))
        return url
    url = str(request.getfixturevalue("postgres_database"))

    async def clean() -> None:
        engine = create_engine(url)
        try:
            await _truncate_all(engine)
        finally:
            await engine.dispose()

    asyncio.run(clean())
    return url


@pytest.fixture
async def engine(sqlite_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(sqlite_url)
    yield engine
    await flush_apps()
    await engine.dispose()


# --------------------------------------------------------------------------- the app


class Clock:
    """A settable clock for code that takes ``now``."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2025, 8, 20, 3, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        from datetime import timedelta

        self.now += timedelta(**delta)


@dataclass
class Chat:
    """A person talking to the App through the dispatch path, like an adapter would."""

    app: App
    channel: str = "console"
    user_id: str = "u1"
    buttons: bool = False
    history: list[Reply] = field(default_factory=list)

    async def send(self, text: str | None, *, kind: str = "text") -> list[Reply]:
        msg = IncomingMessage(
            channel=self.channel,
            user_id=self.user_id,
            chat_id=self.user_id,
            text=text,
            kind=kind,  # type: ignore[arg-type]
        )
        replies = await self.app.dispatch(msg, buttons=self.buttons)
        self.history.extend(replies)
        return replies

    async def press(self, payload: str) -> list[Reply]:
        msg = IncomingMessage(
            channel=self.channel,
            user_id=self.user_id,
            chat_id=self.user_id,
            kind="button",
            payload=payload,
        )
        replies = await self.app.dispatch(msg, buttons=self.buttons)
        self.history.extend(replies)
        return replies

    async def say(self, text: str) -> str:
        """Send and return everything shown, as one plain text."""
        return "\n\n".join(plain_text(r) for r in await self.send(text))


# The apps made by the running test. An app records sent replies in the background
# (App.confirm): those writes must end before the test's engine closes and its event loop
# with it — a write still in aiosqlite's thread then fails in that thread ("Event loop is
# closed"), which pytest reports at the next test's set-up.
_apps: list[App] = []


@pytest.fixture(autouse=True)
def _forget_apps() -> None:
    _apps.clear()  # those of an earlier test belong to a closed loop


async def flush_apps() -> None:
    """Wait for the background writes of every app the running test made."""
    while _apps:
        await _apps.pop().flush_confirmations()


def make_app(knowledge: Knowledge, engine: AsyncEngine, **kwargs: object) -> App:
    app = App(
        knowledge=knowledge,
        sessions=make_session_factory(engine),
        zone=ZONE,
        **kwargs,  # type: ignore[arg-type]
    )
    _apps.append(app)
    return app


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(knowledge: Knowledge, engine: AsyncEngine, clock: Clock) -> App:
    return make_app(knowledge, engine, clock=clock)


@pytest.fixture
def chat(app: App) -> Chat:
    return Chat(app)
