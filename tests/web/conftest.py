"""Fixtures for the web console: the small party tree of the progress tests with an admin,
a unit admin and an official enrolled by the real invitation path, and the console served
by aiohttp's test server (no pytest-aiohttp needed)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from bot.app import App
from bot.services import Services
from bot.settings import load_settings
from bot.storage.db import make_session_factory
from bot.storage.models import Person, PersonChannel, Unit
from handlers import ROUTES, weblogin
from knowledge import Knowledge
from scheduler.schedule import LiveSchedule
from tests.conftest import Chat, Clock, make_app
from tests.progress.conftest import Enrol, enrol, tree  # noqa: F401 - fixtures

BASE = "http://console.test"
LINK_RE = re.compile(r"(https?://\S+/dang-nhap/(\S+))")


@dataclass
class People:
    admin: Chat  # admin at the root (TW)
    hn_admin: Chat  # unit admin of Hà Nội (HN)
    official: Chat  # official of phường Ba Đình (HN.BD)


async def person_id(engine: AsyncEngine, user_id: str) -> int:
    async with make_session_factory(engine)() as session:
        found = (
            await session.exec(
                select(PersonChannel.person_id).where(PersonChannel.user_id == user_id)
            )
        ).one()
        return int(found)


async def unit_id(engine: AsyncEngine, code: str) -> int:
    async with make_session_factory(engine)() as session:
        unit = (await session.exec(select(Unit).where(col(Unit.code) == code))).one()
        assert unit.id is not None
        return unit.id


async def set_role(engine: AsyncEngine, user_id: str, role: str) -> None:
    pid = await person_id(engine, user_id)
    async with make_session_factory(engine)() as session:
        person = await session.get(Person, pid)
        assert person is not None
        person.role = role
        session.add(person)
        await session.commit()


def token_of(text: str) -> str:
    match = LINK_RE.search(text)
    assert match is not None, text
    return match.group(2)


@pytest.fixture
def console_app(knowledge: Knowledge, tree: AsyncEngine, clock: Clock) -> App:  # noqa: F811
    """The core with /web configured for the console at BASE."""
    return make_app(knowledge, tree, clock=clock, routes=weblogin.configure(ROUTES, BASE))


@pytest.fixture
async def people(enrol: Enrol, console_app: App) -> People:  # noqa: F811
    admin = await enrol("TW", "admin", user_id="admin")
    hn_admin = await enrol("HN", "unit_admin", user_id="hn-admin")
    official = await enrol("HN.BD", "official", user_id="official")
    return People(
        Chat(console_app, user_id=admin.user_id),
        Chat(console_app, user_id=hn_admin.user_id),
        Chat(console_app, user_id=official.user_id),
    )


def make_services(knowledge: Knowledge, engine: AsyncEngine, app: App, base: str) -> Services:
    settings = load_settings(database_url="sqlite+aiosqlite:///unused.db", web_base_url=base)
    return Services(
        settings,
        knowledge,
        engine,
        make_session_factory(engine),
        app,
        LiveSchedule(settings),
    )


@pytest.fixture
async def client(
    knowledge: Knowledge,
    tree: AsyncEngine,  # noqa: F811
    console_app: App,
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    from web.app import create_web_app

    services = make_services(knowledge, tree, console_app, BASE)
    async with TestClient(TestServer(create_web_app(services))) as test_client:
        yield test_client
