"""Administrator commands: units, invitations, tasks and progress reports."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.tree import Tree

from bot.cli_common import (
    database,
    err,
    fail,
    get_settings,
    load_knowledge_or_exit,
    out,
    run_db,
)
from bot.core import utcnow

if TYPE_CHECKING:
    from bot.settings import Settings
    from bot.storage.models import Task

__all__ = ["register"]

units_app = typer.Typer(help="The party hierarchy.", no_args_is_help=True)
invite_app = typer.Typer(help="Invitation codes.", no_args_is_help=True)
tasks_app = typer.Typer(help="Tasks with deadlines.", no_args_is_help=True)
broadcast_app = typer.Typer(help="Announcements to officials.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(units_app, name="units")
    app.add_typer(invite_app, name="invite")
    app.add_typer(tasks_app, name="tasks")
    app.add_typer(broadcast_app, name="broadcast")
    app.command("report")(report)


def _spinner(text: str) -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn(text), TimeElapsedColumn(), console=err, transient=True
    )


# --------------------------------------------------------------------------- units


@units_app.command("import")
def units_import(
    file: Annotated[Path, typer.Argument(help="CSV (UTF-8) or XLSX: code,name,level,parent_code")],
) -> None:
    """Import or update units; any bad row rejects the whole file (nothing changes)."""
    from handlers.units import UnitImportError, apply_rows, read_rows

    settings = get_settings()
    if not file.is_file():
        fail(f"{file}: no such file")
    try:
        rows = read_rows(file)
    except UnitImportError as exc:
        for problem in exc.problems:
            sys.stdout.write(problem + "\n")
        fail(f"{file.name} rejected, nothing was changed")

    async def apply() -> tuple[int, int]:
        async with database(settings) as sessions, sessions() as session:
            created, updated = await apply_rows(session, rows, utcnow())
            await session.commit()
            return created, updated

    try:
        with _spinner(f"Importing {len(rows)} units…") as progress:
            progress.add_task("import", total=None)
            created, updated = run_db(apply())
    except UnitImportError as exc:
        for problem in exc.problems:
            sys.stdout.write(problem + "\n")
        fail(f"{file.name} rejected, nothing was changed")
    out.print(
        f"{len(rows)} rows: {created} units created, {updated} updated, "
        f"{len(rows) - created - updated} unchanged.",
        markup=False,
    )


@units_app.command("list")
def units_list(
    root: Annotated[str | None, typer.Option(help="Show only this unit's subtree.")] = None,
    depth: Annotated[int, typer.Option(help="Levels below the root to show.")] = 3,
) -> None:
    """Show the tree of units."""
    from sqlmodel import col, select

    from bot.storage.models import Unit
    from handlers.units import LEVEL_NAMES

    settings = get_settings()

    async def fetch() -> list[Unit]:
        async with database(settings) as sessions, sessions() as session:
            return list((await session.exec(select(Unit).order_by(col(Unit.path)))).all())

    units = run_db(fetch())
    if not units:
        out.print("No units yet: `troly units import FILE`.", markup=False)
        return
    by_parent: dict[int | None, list[Unit]] = {}
    for unit in units:
        by_parent.setdefault(unit.parent_id, []).append(unit)
    starts = [u for u in units if u.code == root] if root else by_parent.get(None, [])
    if root and not starts:
        fail(f"no unit with code {root}")

    def label(unit: Unit) -> str:
        count = len(by_parent.get(unit.id, []))
        more = f" — {count} đơn vị trực thuộc" if count else ""
        return f"{unit.name} [{unit.code}] ({LEVEL_NAMES.get(unit.level, unit.level)}){more}"

    for start in starts:
        tree = Tree(label(start))
        stack = [(start, tree, 0)]
        while stack:
            unit, node, level = stack.pop()
            if level >= depth:
                continue
            kids = sorted(by_parent.get(unit.id, []), key=lambda u: u.name)
            added = [(child, node.add(label(child)), level + 1) for child in kids]
            stack.extend(reversed(added))
        out.print(tree, markup=False)
    out.print(f"{len(units)} units in all.", markup=False)


# --------------------------------------------------------------------------- invitations


@invite_app.command("create")
def invite_create(
    unit: Annotated[str, typer.Option("--unit", help="The unit's code.")],
    role: Annotated[str, typer.Option("--role", help="official, unit_admin or admin.")],
    uses: Annotated[int, typer.Option("--uses", help="How many people may use it.")] = 1,
    expires: Annotated[int, typer.Option("--expires", help="Valid for this many days.")] = 14,
) -> None:
    """Create an invitation code (shown once; only its hash is stored)."""
    from handlers.admin import invite_text
    from handlers.context import UserError
    from handlers.people import create_invite
    from handlers.units import unit_by_code

    settings = get_settings()

    async def create() -> tuple[str, str]:
        async with database(settings) as sessions, sessions() as session:
            found = await unit_by_code(session, unit)
            if found is None:
                fail(f"no unit with code {unit} (troly units list)")
            code = await create_invite(
                session,
                unit=found,
                role=role,
                uses=uses,
                days=expires,
                created_by="cli",
                now=utcnow(),
            )
            await session.commit()
            return code, found.name

    try:
        code, name = run_db(create())
    except UserError as exc:
        fail(exc.message)
    username = settings.telegram_bot_username or _telegram_username(settings)
    out.print(invite_text(code, name, role, username, expires), markup=False)
    if username is None:
        err.print(
            "(Set TELEGRAM_BOT_USERNAME, or TELEGRAM_BOT_TOKEN, to print the Telegram link.)",
            markup=False,
        )


def _telegram_username(settings: Settings) -> str | None:
    """Ask Telegram for the bot's username when only the token is configured."""
    import asyncio

    token = settings.telegram_bot_token
    if token is None:
        return None

    async def ask() -> str | None:
        from aiogram import Bot
        from aiogram.client.session.aiohttp import AiohttpSession
        from aiogram.client.telegram import TelegramAPIServer

        session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_base_url))
        bot = Bot(token.get_secret_value(), session=session)
        try:
            return (await asyncio.wait_for(bot.get_me(), timeout=10)).username
        except Exception:
            return None
        finally:
            await session.close()

    return asyncio.run(ask())


# --------------------------------------------------------------------------- tasks


@tasks_app.command("list")
def tasks_list() -> None:
    """Synchronise tasks from the knowledge base and TASKS_DIR, then list them."""
    from sqlmodel import col, select

    from bot.services import sync_task_definitions
    from bot.storage.models import Task
    from knowledge import KnowledgeError

    settings = get_settings()
    knowledge = load_knowledge_or_exit(settings)

    async def sync() -> list[Task]:
        async with database(settings) as sessions, sessions() as session:
            await sync_task_definitions(session, knowledge, settings.tasks_dir)
            await session.commit()
            rows = await session.exec(select(Task).order_by(col(Task.due), col(Task.id)))
            return list(rows.all())

    try:
        tasks = run_db(sync())
    except KnowledgeError as exc:
        for problem in exc.problems:
            sys.stdout.write(f"{problem}\n")
        fail("the task definitions are invalid; nothing was changed")
    table = Table(title="Tasks")
    for column in ("Code", "Task", "Levels", "Due", "Source", "Active"):
        table.add_column(column)
    for task in tasks:
        table.add_row(
            task.code,
            task.title,
            ", ".join(task.levels),
            f"{task.due:%d/%m/%Y}",
            task.origin,
            "yes" if task.active else "no",
        )
    out.print(table)


# --------------------------------------------------------------------------- reports


def report(
    unit: Annotated[str | None, typer.Option("--unit", help="Default: the root unit.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    xlsx: Annotated[Path | None, typer.Option("--xlsx", help="Write an Excel workbook.")] = None,
) -> None:
    """Progress rolled up for a unit's subtree (like /tiendo)."""
    from sqlmodel import select

    from bot.storage.models import Unit
    from handlers.reports import write_workbook
    from handlers.rollup import all_late_units, compute, render_text, to_json
    from handlers.units import unit_by_code

    settings = get_settings()
    now = utcnow().astimezone(settings.zone)

    async def build() -> tuple[str, dict[str, object] | None]:
        async with database(settings) as sessions, sessions() as session:
            if unit:
                root = await unit_by_code(session, unit)
                if root is None:
                    fail(f"no unit with code {unit}")
            else:
                roots = (await session.exec(select(Unit).where(Unit.parent_id == None))).all()  # noqa: E711
                if not roots:
                    fail("no units yet: troly units import FILE")
                if len(roots) > 1:
                    fail("several root units: choose one with --unit CODE")
                root = roots[0]
            rollup = await compute(session, root, now.date())
            if xlsx is not None:
                await write_workbook(session, rollup, xlsx, settings.zone, now)
            data = to_json(rollup, await all_late_units(session, rollup)) if as_json else None
            return render_text(rollup, now), data

    with _spinner("Computing the report…") as progress:
        progress.add_task("report", total=None)
        text, data = run_db(build())
    if data is not None:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    else:
        out.print(text, markup=False)
    if xlsx is not None:
        err.print(f"Workbook written: {xlsx}", markup=False)


# --------------------------------------------------------------------------- broadcasts


@broadcast_app.command("send")
def broadcast_send(
    to: Annotated[str, typer.Option("--to", help="all | level:LEVEL | unit:CODE | late:TASK")],
    text_file: Annotated[Path, typer.Option("--text-file", help="The text (UTF-8).")],
    yes: Annotated[bool, typer.Option("--yes", help="Send without asking to confirm.")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Follow the delivery until done.")] = False,
) -> None:
    """Preview the recipients, confirm, and queue the announcement for the sender."""
    from handlers.broadcast import (
        MAX_TEXT,
        AudienceError,
        count_by_channel,
        create_broadcast,
        parse_audience,
        recipients,
    )
    from scheduler.policy import PushPolicy

    settings = get_settings()
    if not text_file.is_file():
        fail(f"{text_file}: no such file")
    try:
        text = text_file.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError:
        fail(f"{text_file}: not UTF-8 text")
    if not text:
        fail(f"{text_file}: the text is empty")
    if len(text) > MAX_TEXT:
        fail(f"{text_file}: {len(text)} characters, at most {MAX_TEXT}")
    try:
        audience = parse_audience(to)
    except AudienceError as exc:
        fail(str(exc))
    policy = PushPolicy.from_settings(settings)
    now = utcnow()

    async def preview() -> tuple[int, str, int]:
        async with database(settings) as sessions, sessions() as session:
            targets, unreachable = await recipients(
                session, audience, scope=None, today=now.astimezone(settings.zone)
            )
            return len(targets), count_by_channel(targets), unreachable

    try:
        count, per_channel, unreachable = run_db(preview())
    except AudienceError as exc:
        fail(str(exc))
    out.print(f"Audience {audience.spec}: {count} people ({per_channel or 'none'}).", markup=False)
    if unreachable:
        out.print(f"{unreachable} more blocked the bot and will not receive it.", markup=False)
    start_at = policy.next_allowed(now)
    if start_at > now:
        out.print(
            f"Quiet hours: delivery starts at {start_at.astimezone(settings.zone):%H:%M %d/%m/%Y}.",
            markup=False,
        )
    if count == 0:
        fail("nobody to send to")
    if not yes and not typer.confirm(f"Send to {count} people?"):
        fail("cancelled, nothing was queued", code=1)

    async def send() -> int:
        async with database(settings) as sessions, sessions() as session:
            targets, _ = await recipients(
                session, audience, scope=None, today=now.astimezone(settings.zone)
            )
            broadcast = await create_broadcast(
                session,
                text=text,
                audience=audience,
                targets=targets,
                created_by="cli",
                now=now,
                not_before=start_at,
            )
            await session.commit()
            assert broadcast.id is not None
            return broadcast.id

    broadcast_id = run_db(send())
    out.print(
        f"Broadcast #{broadcast_id} queued for {count} people; the running assistant "
        f"(`troly run`) delivers it. Follow it: troly broadcast status {broadcast_id}",
        markup=False,
    )
    if wait:
        _follow(settings, broadcast_id)


def _follow(settings: Settings, broadcast_id: int) -> None:
    """A progress bar until the broadcast is done or cancelled."""
    import time

    from scheduler.outbox import BroadcastStatus, broadcast_status

    async def poll() -> BroadcastStatus | None:
        async with database(settings) as sessions, sessions() as session:
            return await broadcast_status(session, broadcast_id)

    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err
    ) as progress:
        bar = progress.add_task("sending", total=None)
        while True:
            status = run_db(poll())
            if status is None:
                fail(f"no broadcast #{broadcast_id}")
            done = status.sent + status.failed + status.blocked + status.cancelled
            progress.update(
                bar,
                total=status.total,
                completed=done,
                description=f"#{broadcast_id}: {status.sent} sent, {status.failed} failed, "
                f"{status.blocked} blocked",
            )
            if status.status != "sending":
                break
            time.sleep(1)
    _print_status(broadcast_id, settings)


@broadcast_app.command("status")
def broadcast_status_command(
    broadcast_id: Annotated[int | None, typer.Argument(help="Default: the latest ones.")] = None,
) -> None:
    """Progress and the final report of a broadcast (or a list of the latest)."""
    settings = get_settings()
    if broadcast_id is not None:
        _print_status(broadcast_id, settings)
        return
    from sqlmodel import col, select

    from bot.storage.models import Broadcast

    async def latest() -> list[Broadcast]:
        async with database(settings) as sessions, sessions() as session:
            rows = await session.exec(
                select(Broadcast).order_by(col(Broadcast.id).desc()).limit(20)
            )
            return list(rows.all())

    table = Table(title="Broadcasts")
    for column in ("#", "Created", "Audience", "By", "Recipients", "Status"):
        table.add_column(column)
    for b in run_db(latest()):
        table.add_row(
            str(b.id),
            f"{b.created_at.astimezone(settings.zone):%d/%m/%Y %H:%M}",
            b.audience,
            b.created_by,
            str(b.total),
            b.status,
        )
    out.print(table)


def _print_status(broadcast_id: int, settings: Settings) -> None:
    from bot.storage.models import Broadcast
    from scheduler.broadcasts import final_report
    from scheduler.outbox import BroadcastStatus, broadcast_status

    async def fetch() -> tuple[Broadcast | None, BroadcastStatus | None]:
        async with database(settings) as sessions, sessions() as session:
            return (
                await session.get(Broadcast, broadcast_id),
                await broadcast_status(session, broadcast_id),
            )

    broadcast, status = run_db(fetch())
    if broadcast is None or status is None:
        fail(f"no broadcast #{broadcast_id}")
    if broadcast.status == "sending":
        out.print(
            f"Broadcast #{broadcast_id} ({broadcast.audience}): sending — {status.sent} sent, "
            f"{status.pending + status.sending} waiting, {status.failed} failed, "
            f"{status.blocked} blocked, of {status.total}.",
            markup=False,
        )
    else:
        out.print(final_report(broadcast, status), markup=False)


@broadcast_app.command("cancel")
def broadcast_cancel(broadcast_id: Annotated[int, typer.Argument()]) -> None:
    """Stop a broadcast: what has not gone out yet is cancelled (within a second)."""
    from scheduler.outbox import cancel_broadcast

    settings = get_settings()

    async def cancel() -> int:
        async with database(settings) as sessions, sessions() as session:
            stopped = await cancel_broadcast(session, broadcast_id, now=utcnow())
            await session.commit()
            return stopped

    stopped = run_db(cancel())
    out.print(f"Broadcast #{broadcast_id}: {stopped} queued messages cancelled.", markup=False)
    _print_status(broadcast_id, settings)
