"""The async engine (and a sync one with the same settings), the session factory and schema
migrations."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

__all__ = [
    "AsyncSession",
    "SessionFactory",
    "alembic_config",
    "create_engine",
    "create_sync_engine",
    "current_revision",
    "make_session_factory",
    "sync_url",
    "upgrade_database",
]

SessionFactory = async_sessionmaker[AsyncSession]
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


SQLITE_BUSY_TIMEOUT_MS = 30_000  # a writer waits this long for another one to finish
_SYNC_DRIVERS = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg"}


def _sqlite_folder(url: URL) -> None:
    database = url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL (readers never wait for the writer), foreign keys, and a writer that waits for
    another one instead of failing with "database is locked"."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


IDLE_PING_SECONDS = 10.0  # a pooled connection unused this long is pinged before use
# PostgreSQL connections a process keeps open, and how many more it may open for a burst
# (closed again when returned). A new connection costs a TCP and TLS handshake and a server
# process; bursts of messages are kept within the kept ones (bot.message_tx).
POOL_SIZE, POOL_OVERFLOW = 10, 10


def _check_liveness(engine: Engine) -> None:
    """``pool_pre_ping`` without a round trip on every checkout. A connection the server
    closed (PostgreSQL restarted, an idle timeout) is known to the driver already: it is
    replaced without asking the server. One that sat unused in the pool for more than
    ``IDLE_PING_SECONDS`` is pinged first, as ``pool_pre_ping`` would. A connection that
    dies while in use fails its statement: SQLAlchemy then drops every pooled connection as
    old as it, and the message gets the polite error reply."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        driver = getattr(dbapi_connection, "driver_connection", dbapi_connection)
        is_closed = getattr(driver, "is_closed", None)
        if is_closed is not None and is_closed():
            raise DisconnectionError("the server closed this connection")
        idle_since = record.info.get("idle_since")
        if idle_since is not None and time.monotonic() - idle_since > IDLE_PING_SECONDS:
            try:
                engine.dialect.do_ping(dbapi_connection)
            except Exception as exc:
                raise DisconnectionError("the connection did not answer a ping") from exc


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine; for SQLite the folder is created and WAL + foreign keys are on;
    for PostgreSQL a dead pooled connection is replaced before use (:func:`_check_liveness`)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        _sqlite_folder(parsed)
        kwargs.setdefault("connect_args", {"timeout": SQLITE_BUSY_TIMEOUT_MS // 1000})
        # Every connection comes back with its transaction ended (SQLAlchemy's connections
        # and sessions end theirs, bot.message_tx its own): no extra ROLLBACK, each a trip
        # to aiosqlite's thread, when the pool takes one back.
        kwargs.setdefault("pool_reset_on_return", None)
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_size", POOL_SIZE)
    kwargs.setdefault("max_overflow", POOL_OVERFLOW)
    engine = create_async_engine(url, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _check_liveness(engine.sync_engine)
    return engine


def sync_url(url: str) -> str:
    """The same database through a synchronous driver (sqlite3, psycopg)."""
    parsed = make_url(url)
    driver = _SYNC_DRIVERS[parsed.get_backend_name()]
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


def create_sync_engine(url: str, **kwargs: Any) -> Engine:
    """A synchronous engine on the database of ``url`` (async or sync driver) with the
    settings of :func:`create_engine`, for libraries that need one (APScheduler's job store)."""
    parsed = make_url(sync_url(url))
    if parsed.get_backend_name() == "sqlite":
        _sqlite_folder(parsed)
        kwargs.setdefault("connect_args", {"timeout": SQLITE_BUSY_TIMEOUT_MS // 1000})
        engine = sa_create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return sa_create_engine(parsed, **kwargs)


def make_session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _upgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


async def upgrade_database(engine: AsyncEngine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (idempotent)."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade, revision)


def _current(connection: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(_current)
