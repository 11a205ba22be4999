"""Administrator commands: units, invitations, people, tasks, progress reports, broadcasts.

Everything printed for the administrator is Vietnamese; the ``--help`` texts are bilingual.
Domain work lives in ``handlers`` (``handlers.accounts`` for invitations and people); a
:class:`UserError` raised there becomes a clear message and a non-zero exit here.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from bot.cli_common import (
    DATABASE_ERROR,
    database,
    err,
    fail,
    get_settings,
    load_knowledge_or_exit,
    out,
)
from bot.core import utcnow

if TYPE_CHECKING:
    from datetime import datetime

    from sqlmodel.ext.asyncio.session import AsyncSession

    from bot.settings import Settings
    from bot.storage.models import Broadcast, Task, Unit

__all__ = ["register"]

T = TypeVar("T")

units_app = typer.Typer(help="Đơn vị — the party hierarchy.", no_args_is_help=True)
invite_app = typer.Typer(help="Mã mời — invitation codes.", no_args_is_help=True)
people_app = typer.Typer(help="Người dùng — enrolled officials.", no_args_is_help=True)
tasks_app = typer.Typer(help="Nhiệm vụ — tasks with deadlines.", no_args_is_help=True)
broadcast_app = typer.Typer(help="Thông báo — announcements to officials.", no_args_is_help=True)
web_app = typer.Typer(help="Trang quản trị — the web console.", no_args_is_help=True)
reminders_app = typer.Typer(
    help="Nhắc việc — reminder rounds and the outbox.", no_args_is_help=True
)

GETME_TIMEOUT = 3.0  # seconds: the invitation is printed even when Telegram does not answer
BROADCAST_STATES = {"sending": "đang gửi", "done": "đã gửi xong", "cancelled": "đã dừng"}


def register(app: typer.Typer) -> None:
    app.add_typer(units_app, name="units")
    app.add_typer(invite_app, name="invite")
    app.add_typer(people_app, name="people")
    app.add_typer(tasks_app, name="tasks")
    app.add_typer(broadcast_app, name="broadcast")
    app.add_typer(web_app, name="web")
    app.add_typer(reminders_app, name="reminders")
    app.command("report")(report)


# --------------------------------------------------------------------------- helpers


def say(message: str) -> None:
    out.print(message, markup=False)


def note(message: str) -> None:
    """Remarks beside the result (stderr: stdout stays the result itself)."""
    err.print(message, markup=False)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run database work; a refusal or a database problem becomes a clear error."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from handlers.context import UserError

    try:
        return asyncio.run(coro)
    except UserError as exc:
        fail(exc.message)
    except (OperationalError, ProgrammingError) as exc:
        fail(DATABASE_ERROR.format(problem=exc.orig))


def in_session(
    settings: Settings, work: Callable[[AsyncSession], Awaitable[T]], *, commit: bool = False
) -> T:
    """``work`` in one session (committed when ``commit``)."""

    async def go() -> T:
        async with database(settings) as sessions, sessions() as session:
            result = await work(session)
            if commit:
                await session.commit()
            return result

    return run(go())


def cell(value: object) -> Text:
    """A table cell shown as it is (names typed by officials are never rich markup)."""
    return Text("" if value is None else str(value))


def local(value: datetime, settings: Settings, *, lines: bool = False) -> str:
    """``dd/mm/yyyy HH:MM`` in local time (``lines``: the time on a line of its own)."""
    moment = value.astimezone(settings.zone)
    return f"{moment:%d/%m/%Y}" + ("\n" if lines else " ") + f"{moment:%H:%M}"


def _spinner(text: str) -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn(text), TimeElapsedColumn(), console=err, transient=True
    )


def _number(value: int) -> str:
    from handlers.formatting import vn_number

    return vn_number(value)


# --------------------------------------------------------------------------- units


@units_app.command("import")
def units_import(
    file: Annotated[Path, typer.Argument(help="CSV (UTF-8) or XLSX: code,name,level,parent_code")],
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Chỉ xem trước, không ghi gì / check and show the plan only."
        ),
    ] = False,
) -> None:
    """Nhập hoặc cập nhật đơn vị; một dòng sai thì cả tệp bị từ chối (không thay đổi gì).

    Import or update units; any bad row rejects the whole file (nothing changes). The rules
    are the web console's («Đơn vị»): both use handlers.units.
    """
    from handlers.audit import CLI
    from handlers.units import (
        UnitImportError,
        apply_rows,
        import_summary,
        plan_rows,
        read_data,
    )

    settings = get_settings()
    if not file.is_file():
        fail(f"Không tìm thấy tệp {file}.")
    rejected = f"Tệp {file.name} bị từ chối, chưa thay đổi gì. Sửa các dòng trên rồi nhập lại."
    try:
        rows = read_data(file.read_bytes(), file.name)
    except UnitImportError as exc:
        for problem in exc.problems:
            sys.stdout.write(problem + "\n")
        fail(rejected)

    if dry_run:
        plan = in_session(settings, lambda session: plan_rows(session, rows))
        for problem in plan.problems:
            sys.stdout.write(problem + "\n")
        if plan.problems:
            fail(rejected)
        for change in plan.updated:
            row = change.row
            sys.stdout.write(f"dòng {row.row}: cập nhật {row.code} ({change.name})\n")
        summary = import_summary(len(rows), len(plan.created), len(plan.updated), planned=True)
        say(f"{summary} Chỉ xem trước: chưa ghi gì.")
        return

    async def apply(session: AsyncSession) -> tuple[int, int]:
        return await apply_rows(session, rows, utcnow(), actor=CLI)

    try:
        with _spinner(f"Đang nhập {_number(len(rows))} đơn vị…") as progress:
            progress.add_task("import", total=None)
            created, updated = in_session(settings, apply, commit=True)
    except UnitImportError as exc:
        for problem in exc.problems:
            sys.stdout.write(problem + "\n")
        fail(rejected)
    say(import_summary(len(rows), created, updated))


@units_app.command("list")
def units_list(
    root: Annotated[
        str | None, typer.Option(help="Chỉ cây của đơn vị này / only this unit's subtree.")
    ] = None,
    depth: Annotated[
        int, typer.Option(help="Số cấp hiển thị dưới gốc / levels below the root to show.")
    ] = 3,
) -> None:
    """Cây đơn vị (mã đơn vị không phân biệt chữ hoa, thường). Show the tree of units."""
    from sqlmodel import col, select

    from bot.storage.models import Unit
    from handlers.accounts import get_unit
    from handlers.units import LEVEL_NAMES, path_range

    settings = get_settings()

    async def fetch(session: AsyncSession) -> tuple[Unit | None, list[Unit]]:
        statement = select(Unit).order_by(col(Unit.path))
        start = None
        if root is not None:
            start = await get_unit(session, root)
            low, high = path_range(start)
            statement = statement.where(col(Unit.path) >= low, col(Unit.path) < high)
        return start, list((await session.exec(statement)).all())

    start, units = in_session(settings, fetch)
    if not units:
        say("Chưa có đơn vị nào. Nhập danh sách đơn vị: troly units import TỆP")
        return
    by_parent: dict[int | None, list[Unit]] = {}
    for unit in units:
        by_parent.setdefault(unit.parent_id, []).append(unit)
    starts = [start] if start is not None else by_parent.get(None, [])

    def label(unit: Unit) -> Text:
        count = len(by_parent.get(unit.id, []))
        more = f" — {count} đơn vị trực thuộc" if count else ""
        level = LEVEL_NAMES.get(unit.level, unit.level)
        return Text(f"{unit.name} [{unit.code}] ({level}){more}")

    hidden = False
    for first in starts:
        tree = Tree(label(first))
        stack = [(first, tree, 0)]
        while stack:
            unit, node, level = stack.pop()
            kids = sorted(by_parent.get(unit.id, []), key=lambda u: u.name)
            if level >= depth:
                hidden = hidden or bool(kids)
                continue
            added = [(child, node.add(label(child)), level + 1) for child in kids]
            stack.extend(reversed(added))
        out.print(tree, soft_wrap=False)  # long names wrap instead of being cut
    if start is not None:
        say(f"{start.name} ({start.code}) và các đơn vị trực thuộc: {_number(len(units))} đơn vị.")
    else:
        say(f"Tổng cộng {_number(len(units))} đơn vị.")
    if hidden:
        say(f"(Đang hiển thị {depth} cấp dưới gốc; xem sâu hơn: --depth {depth + 1}.)")


# --------------------------------------------------------------------------- invitations


@invite_app.command("create")
def invite_create(
    unit: Annotated[str, typer.Option("--unit", help="Mã đơn vị / the unit's code.")],
    role: Annotated[str, typer.Option("--role", help="official, unit_admin hoặc/or admin.")],
    uses: Annotated[
        int, typer.Option("--uses", help="Số người được dùng / how many people may use it.")
    ] = 1,
    expires: Annotated[
        int, typer.Option("--expires", help="Hiệu lực (ngày) / valid for this many days.")
    ] = 14,
) -> None:
    """Tạo mã mời (chỉ hiện một lần; trợ lý chỉ lưu bản băm).

    Create an invitation code (shown once; only its hash is stored).
    """
    from handlers.accounts import get_unit, invitation_text
    from handlers.audit import CLI
    from handlers.people import create_invite

    settings = get_settings()
    telegram = settings.telegram_bot_token is not None or bool(settings.telegram_bot_username)
    zalo = settings.zalo_bot_token is not None

    async def create() -> tuple[str, Unit, datetime, tuple[str | None, str | None]]:
        # The bot's username is looked up while the database works (a few seconds at most).
        lookup = None
        if settings.telegram_bot_username is None and settings.telegram_bot_token is not None:
            lookup = asyncio.create_task(_telegram_username(settings))
        try:
            now = utcnow()
            async with database(settings) as sessions, sessions() as session:
                found = await get_unit(session, unit)
                code = await create_invite(
                    session,
                    unit=found,
                    role=role,
                    uses=uses,
                    days=expires,
                    created_by="cli",
                    now=now,
                    actor=CLI,
                )
                await session.commit()
            username = (settings.telegram_bot_username, None) if lookup is None else await lookup
            return code, found, now, username
        finally:
            if lookup is not None and not lookup.done():
                lookup.cancel()
                await asyncio.gather(lookup, return_exceptions=True)

    code, found, now, (username, problem) = run(create())
    say(
        invitation_text(
            code,
            found.name,
            role,
            telegram_username=username,
            telegram=telegram,
            zalo=zalo,
            uses=uses,
            days=expires,
            expires_at=(now + timedelta(days=expires)).astimezone(settings.zone),
        )
    )
    if problem is not None:
        note(problem)
    note("Mã chỉ hiện lần này (trợ lý chỉ lưu bản băm): hãy sao chép và gửi cho người được mời.")


async def _telegram_username(settings: Settings) -> tuple[str | None, str | None]:
    """The bot's username from the Bot API's getMe, or why it could not be had. Plain
    aiohttp: importing aiogram alone takes seconds, and this is one GET."""
    import aiohttp

    token = settings.telegram_bot_token
    assert token is not None
    hint = "Để luôn in được liên kết, đặt TELEGRAM_BOT_USERNAME=<tên bot> trong tệp .env."
    url = f"{settings.telegram_api_base_url}/bot{token.get_secret_value()}/getMe"
    try:
        timeout = aiohttp.ClientTimeout(total=GETME_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as http, http.get(url) as response:
            status = response.status
            data = await response.json(content_type=None)
        username = data["result"]["username"] if data.get("ok") else None
    except Exception:  # unreachable, timed out, not a Bot API server (never show the URL)
        status, username = 0, None
    if username:
        return str(username), None
    if status in (401, 404):  # Telegram answers 404 Not Found to a token it does not know
        return None, (
            "Telegram không chấp nhận TELEGRAM_BOT_TOKEN nên chưa tạo được liên kết Telegram. "
            f"Kiểm tra lại mã truy cập của bot. {hint}"
        )
    return None, (
        "Không kết nối được Telegram Bot API nên chưa tạo được liên kết Telegram "
        f"(mã mời vẫn dùng được: nhắn mã cho trợ lý trên Telegram). {hint}"
    )


@invite_app.command("list")
def invite_list(
    unit: Annotated[
        str | None,
        typer.Option("--unit", help="Đơn vị và cấp dưới / this unit and the units below it."),
    ] = None,
    everything: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Cả mã hết hạn, đã dùng hết, đã thu hồi / also expired, used-up, revoked.",
        ),
    ] = False,
) -> None:
    """Các mã mời còn hiệu lực (--all: tất cả). Bản thân mã không được lưu (chỉ lưu bản băm)
    nên không xem lại được; mã bị mất thì thu hồi và tạo mã mới.

    Invitations (usable ones unless --all). Codes themselves are never stored (only a
    SHA-256 hash), so they cannot be shown: revoke a lost code and create a new one.
    """
    from handlers.accounts import InviteInfo, get_unit, list_invites

    settings = get_settings()
    now = utcnow()

    async def fetch(session: AsyncSession) -> list[InviteInfo]:
        within = await get_unit(session, unit) if unit is not None else None
        return await list_invites(session, scope=None, unit=within, everything=everything, now=now)

    invites = in_session(settings, fetch)
    if not invites:
        say(
            "Không có mã mời nào."
            if everything
            else "Không có mã mời nào còn hiệu lực. Xem cả mã đã hết hạn, đã dùng hết, "
            "đã thu hồi: troly invite list --all"
        )
        return
    table = Table(title="Mã mời" if everything else "Mã mời còn hiệu lực")
    table.add_column("Số", justify="right", no_wrap=True)
    for title in ("Đơn vị", "Vai trò", "Đã dùng"):
        table.add_column(title)
    table.add_column("Tạo lúc", no_wrap=True)
    table.add_column("Hết hạn", no_wrap=True)
    table.add_column("Người tạo")
    if everything:
        table.add_column("Tình trạng")
    for item in invites:
        row = [
            cell(item.id),
            cell(f"{item.unit_name} ({item.unit_code})"),
            cell(item.role_name),
            cell(f"{item.uses}/{item.max_uses}"),
            cell(local(item.created_at, settings, lines=True)),
            cell(local(item.expires_at, settings, lines=True)),
            cell(item.created_by),
        ]
        if everything:
            row.append(cell(item.state))
        table.add_row(*row)
    out.print(table)
    say(
        f"{_number(len(invites))} mã mời. Mã chỉ được lưu dưới dạng băm nên không xem lại được; "
        "thu hồi: troly invite revoke SỐ"
    )


@invite_app.command("revoke")
def invite_revoke(
    invite_id: Annotated[
        int, typer.Argument(metavar="SỐ", help="Số của mã mời (troly invite list).")
    ],
) -> None:
    """Thu hồi một mã mời: ai nhập mã đó sẽ được báo mã không hợp lệ.

    Revoke an invitation: its code is then refused like a wrong one.
    """
    from handlers.accounts import InviteInfo, revoke_invite
    from handlers.audit import CLI

    settings = get_settings()

    async def revoke(session: AsyncSession) -> tuple[InviteInfo, bool]:
        return await revoke_invite(
            session, invite_id=invite_id, scope=None, now=utcnow(), actor=CLI
        )

    info, was_usable = in_session(settings, revoke, commit=True)
    what = f"mã mời số {info.id} ({info.unit_name}, {info.role_name})"
    if was_usable:
        say(f"Đã thu hồi {what}. Ai nhập mã này sẽ được báo mã không hợp lệ.")
    else:
        say(f"Đã thu hồi {what}; mã này vốn không còn dùng được.")


# --------------------------------------------------------------------------- web console


@web_app.command("link")
def web_link(
    person_id: Annotated[
        int,
        typer.Option(
            "--person", metavar="SỐ", help="Số của người dùng (troly people list) / person id."
        ),
    ],
) -> None:
    """In một liên kết đăng nhập trang quản trị (dùng một lần, hiệu lực 10 phút).

    Print a one-time sign-in link to the web console (valid 10 minutes), for bootstrapping.
    """
    from bot.storage.models import Person
    from handlers.weblogin import LINK_MINUTES, create_login_link

    settings = get_settings()
    base_url = settings.console_base_url
    if base_url is None:
        fail("Chưa đặt địa chỉ trang quản trị: đặt WEB_BASE_URL (hoặc WEBHOOK_BASE_URL).")

    async def create(session: AsyncSession) -> tuple[str, str]:
        person = await session.get(Person, person_id)
        if person is None:
            fail(f"Không có người dùng số {person_id} (xem troly people list).")
        link = await create_login_link(
            session, person=person, base_url=base_url, via="cli", now=utcnow()
        )
        return link, person.name

    link, name = in_session(settings, create, commit=True)
    note(f"Liên kết đăng nhập cho {name} (dùng một lần, hiệu lực {LINK_MINUTES} phút):")
    say(link)


# --------------------------------------------------------------------------- people


@people_app.command("list")
def people_list(
    unit: Annotated[
        str | None,
        typer.Option("--unit", help="Đơn vị và cấp dưới / this unit and the units below it."),
    ] = None,
    inactive: Annotated[
        bool,
        typer.Option("--inactive", help="Cả người đã ngừng hoạt động / also deactivated people."),
    ] = False,
) -> None:
    """Người dùng: đơn vị, vai trò, kênh, lần nhắn cuối. List enrolled people."""
    from handlers.accounts import PersonInfo, get_unit, list_people

    settings = get_settings()

    async def fetch(session: AsyncSession) -> list[PersonInfo]:
        within = await get_unit(session, unit) if unit is not None else None
        return await list_people(session, scope=None, unit=within, inactive=inactive)

    people = in_session(settings, fetch)
    if not people:
        where = "" if unit is None else " ở đơn vị này và các đơn vị trực thuộc"
        if inactive:
            say(f"Không có người dùng nào{where}.")
        else:
            say(
                f"Không có người dùng nào đang hoạt động{where}. "
                "Xem cả người đã ngừng hoạt động: --inactive"
            )
        return
    table = Table(title="Người dùng")
    table.add_column("Số", justify="right", no_wrap=True)
    for title in ("Họ tên", "Đơn vị", "Vai trò", "Kênh", "Nhắn lần cuối"):
        table.add_column(title)
    if inactive:
        table.add_column("Tình trạng")
    for person in people:
        channels = ", ".join(c.label for c in person.channels) or "—"
        last = local(person.last_message_at, settings) if person.last_message_at else "chưa nhắn"
        row = [
            cell(person.id),
            cell(person.name),
            cell(f"{person.unit_name} ({person.unit_code})"),
            cell(person.role_name),
            cell(channels),
            cell(last),
        ]
        if inactive:
            row.append(cell("đang hoạt động" if person.active else "đã ngừng hoạt động"))
        table.add_row(*row)
    out.print(table)
    blocked = sum(1 for p in people if p.blocked and p.active)
    summary = f"{_number(len(people))} người"
    stopped = sum(1 for p in people if not p.active)
    if stopped:
        summary += f", trong đó {_number(stopped)} người đã ngừng hoạt động"
    if blocked:
        summary += f"; {_number(blocked)} người đã chặn trợ lý (không nhận được tin)"
    say(summary + ".")


PersonId = Annotated[int, typer.Argument(metavar="SỐ", help="Số người dùng (troly people list).")]


@people_app.command("deactivate")
def people_deactivate(person_id: PersonId) -> None:
    """Ngừng hoạt động: không còn được nhận diện, không nhận nhắc việc, thông báo.

    Deactivate: no longer recognised, receives no pushes (history stays).
    """
    from handlers.accounts import PersonChange, deactivate_person
    from handlers.audit import CLI

    settings = get_settings()

    async def deactivate(session: AsyncSession) -> PersonChange:
        return await deactivate_person(
            session, person_id=person_id, scope=None, now=utcnow(), actor=CLI
        )

    change = in_session(settings, deactivate, commit=True)
    who = f"{change.person.name} ({change.unit.name})"
    if not change.changed:
        say(f"Tài khoản của {who} đã ngừng hoạt động từ trước.")
        return
    message = (
        f"Đã ngừng hoạt động tài khoản của {who}: trợ lý không còn nhận diện người này, "
        "không gửi nhắc việc, thông báo nữa."
    )
    if change.cancelled_pushes:
        message += f" Đã hủy {_number(change.cancelled_pushes)} tin đang chờ gửi cho người này."
    say(message)
    say(f"Mở lại khi cần: troly people activate {person_id}")


@people_app.command("activate")
def people_activate(person_id: PersonId) -> None:
    """Mở lại tài khoản đã ngừng hoạt động. Reactivate a person."""
    from handlers.accounts import PersonChange, activate_person
    from handlers.audit import CLI

    settings = get_settings()

    async def activate(session: AsyncSession) -> PersonChange:
        return await activate_person(
            session, person_id=person_id, scope=None, actor=CLI, now=utcnow()
        )

    change = in_session(settings, activate, commit=True)
    who = f"{change.person.name} ({change.unit.name})"
    if change.changed:
        say(f"Đã mở lại tài khoản của {who}.")
    else:
        say(f"Tài khoản của {who} vẫn đang hoạt động, không có gì thay đổi.")


@people_app.command("move")
def people_move(
    person_id: PersonId,
    unit: Annotated[str, typer.Option("--unit", help="Mã đơn vị mới / the new unit's code.")],
    role: Annotated[
        str | None,
        typer.Option(
            "--role",
            help="official, unit_admin hoặc/or admin (mặc định giữ nguyên / default: same).",
        ),
    ] = None,
) -> None:
    """Chuyển người dùng sang đơn vị khác (và đổi vai trò nếu cần).

    Move a person to another unit, optionally with another role.
    """
    from handlers.accounts import PersonChange, get_unit, move_person
    from handlers.audit import CLI
    from handlers.people import ROLE_NAMES

    settings = get_settings()

    async def move(session: AsyncSession) -> PersonChange:
        target = await get_unit(session, unit)
        return await move_person(
            session,
            person_id=person_id,
            unit=target,
            role=role,
            scope=None,
            actor=CLI,
            now=utcnow(),
        )

    change = in_session(settings, move, commit=True)
    person, target = change.person, change.unit
    role_name = ROLE_NAMES.get(person.role, person.role)
    if not change.changed:
        say(f"{person.name} đã là {role_name} của {target.name} ({target.code}), không đổi gì.")
        return
    say(f"Đã chuyển {person.name} sang {target.name} ({target.code}), vai trò: {role_name}.")
    if not person.active:
        say(f"Tài khoản này đang ngừng hoạt động; mở lại: troly people activate {person_id}")


# --------------------------------------------------------------------------- tasks


@tasks_app.command("list")
def tasks_list() -> None:
    """Đồng bộ nhiệm vụ từ cơ sở tri thức và TASKS_DIR rồi liệt kê.

    Synchronise tasks from the knowledge base and TASKS_DIR, then list them.
    """
    from sqlmodel import col, select

    from bot.services import sync_task_definitions
    from bot.storage.models import Task
    from handlers.units import LEVEL_NAMES
    from knowledge import KnowledgeError

    settings = get_settings()
    knowledge = load_knowledge_or_exit(settings)

    async def sync(session: AsyncSession) -> list[Task]:
        await sync_task_definitions(session, knowledge, settings.tasks_dir)
        rows = await session.exec(select(Task).order_by(col(Task.due), col(Task.id)))
        return list(rows.all())

    try:
        tasks = in_session(settings, sync, commit=True)
    except KnowledgeError as exc:
        for problem in exc.problems:
            sys.stdout.write(f"{problem}\n")
        fail("Định nghĩa nhiệm vụ không hợp lệ, chưa thay đổi gì.")
    if not tasks:
        say("Chưa có nhiệm vụ nào.")
        return
    # The administrators copy task codes from here (troly broadcast send --to late:CODE):
    # a code is never cut or wrapped; the description wraps instead.
    widest = max(len(task.code) for task in tasks)
    table = Table(title="Nhiệm vụ")
    table.add_column("Mã nhiệm vụ", no_wrap=True, min_width=widest)
    table.add_column("Hạn", no_wrap=True)
    table.add_column("Nhiệm vụ", ratio=1, min_width=16)
    blocks: list[tuple[Text, Text]] = []  # when a code is too long for a table here
    for task in tasks:
        levels = ", ".join(LEVEL_NAMES.get(level, level) for level in task.levels)
        origin = "cơ sở tri thức" if task.origin == "knowledge" else Path(task.origin).name
        description = Text(task.title)
        description.append(f"\nÁp dụng: {levels}. Nguồn: {origin}.", style="dim")
        if not task.active:
            description.append("\nĐã ngừng theo dõi (không còn trong dữ liệu).", style="bold")
        table.add_row(cell(task.code), cell(f"{task.due:%d/%m/%Y}"), description)
        blocks.append((cell(task.code), Text(f"Hạn {task.due:%d/%m/%Y}. ") + description))
    if widest + 40 <= out.width:  # the due date, 20 for the title, borders and padding
        out.print(table)
    else:
        for code, text in blocks:
            out.print(code, style="bold")  # never wrapped: copied as it is
            out.print(text, soft_wrap=False)
            out.print()
    stopped = sum(1 for task in tasks if not task.active)
    tail = f", trong đó {_number(stopped)} nhiệm vụ đã ngừng theo dõi" if stopped else ""
    say(f"{_number(len(tasks))} nhiệm vụ{tail}.")


# --------------------------------------------------------------------------- reports


def report(
    unit: Annotated[
        str | None, typer.Option("--unit", help="Mặc định: đơn vị gốc / default: the root unit.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Cho phần mềm khác / machine-readable output.")
    ] = False,
    xlsx: Annotated[
        Path | None, typer.Option("--xlsx", help="Ghi tệp Excel / write an Excel workbook.")
    ] = None,
) -> None:
    """Tiến độ tổng hợp theo cây đơn vị (như /tiendo).

    Progress rolled up for a unit's subtree (like /tiendo).
    """
    from sqlmodel import select

    from bot.storage.models import Unit
    from handlers.accounts import get_unit
    from handlers.reports import write_workbook
    from handlers.rollup import all_late_units, compute, render_text, to_json

    settings = get_settings()
    now = utcnow().astimezone(settings.zone)

    async def build(session: AsyncSession) -> tuple[str, dict[str, object] | None]:
        if unit:
            root = await get_unit(session, unit)
        else:
            roots = (await session.exec(select(Unit).where(Unit.parent_id == None))).all()  # noqa: E711
            if not roots:
                fail("Chưa có đơn vị nào: nhập danh sách bằng troly units import TỆP.")
            if len(roots) > 1:
                fail("Có nhiều đơn vị gốc: chọn một bằng --unit MÃ.")
            root = roots[0]
        rollup = await compute(session, root, now.date())
        if xlsx is not None:
            await write_workbook(session, rollup, xlsx, settings.zone, now)
        data = to_json(rollup, await all_late_units(session, rollup)) if as_json else None
        return render_text(rollup, now), data

    with _spinner("Đang tính báo cáo…") as progress:
        progress.add_task("report", total=None)
        text, data = in_session(settings, build)
    if data is not None:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    else:
        say(text)
    if xlsx is not None:
        note(f"Đã ghi tệp Excel: {xlsx}")


# --------------------------------------------------------------------------- broadcasts


def _read_text(path: Path) -> str:
    """The announcement, from a UTF-8 file (a byte order mark, as Notepad writes, is not part
    of the text)."""
    from handlers.broadcast import MAX_TEXT

    if not path.is_file():
        fail(f"Không tìm thấy tệp {path}.")
    try:
        text = path.read_text(encoding="utf-8-sig").lstrip("\ufeff").strip()
    except UnicodeDecodeError:
        fail(f"Tệp {path} không phải văn bản UTF-8 (lưu lại tệp với bảng mã UTF-8).")
    if not text:
        fail(f"Tệp {path} không có nội dung.")
    if len(text) > MAX_TEXT:
        fail(f"Nội dung dài {_number(len(text))} ký tự, tối đa {_number(MAX_TEXT)} ký tự.")
    return text


@broadcast_app.command("send")
def broadcast_send(
    to: Annotated[
        str,
        typer.Option(
            "--to", help="all | level:CẤP | unit:MÃ_ĐƠN_VỊ | late:MÃ_NHIỆM_VỤ (người nhận)"
        ),
    ],
    text_file: Annotated[
        Path, typer.Option("--text-file", help="Tệp nội dung (UTF-8) / the text file.")
    ],
    yes: Annotated[
        bool, typer.Option("--yes", help="Gửi không hỏi lại / send without confirming.")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Chờ gửi xong / follow the delivery until done.")
    ] = False,
    sender: Annotated[
        str,
        typer.Option(
            "--sender",
            help="Tên cơ quan gửi, in ở đầu thông báo / who sends it (the header recipients see).",
        ),
    ] = "",
    urgent: Annotated[
        bool,
        typer.Option(
            "--urgent", help="Gửi ngay, kể cả trong giờ yên lặng / send now, even in quiet hours."
        ),
    ] = False,
) -> None:
    """Xem trước người nhận, xác nhận, rồi xếp thông báo vào hàng gửi.

    Preview the recipients, confirm, and queue the announcement for the sender.
    """
    from handlers.audit import CLI
    from handlers.broadcast import (
        DEFAULT_SENDER,
        AudienceError,
        Preview,
        count_by_channel,
        create_broadcast,
        parse_audience,
        preview_broadcast,
        recipients,
    )
    from handlers.formatting import vn_datetime
    from scheduler.schedule import LiveSchedule

    settings = get_settings()
    text = _read_text(text_file)
    try:
        audience = parse_audience(to)
    except AudienceError as exc:
        fail(str(exc))
    schedule = LiveSchedule(settings)  # quiet hours: the schedule in force (.env or console)
    now = utcnow()
    today = now.astimezone(settings.zone)

    sender = " ".join(sender.split()) or DEFAULT_SENDER

    async def preview(session: AsyncSession) -> Preview:
        await schedule.refresh(session)
        try:
            return await preview_broadcast(
                session,
                audience,
                text=text,
                sender=sender,
                scope=None,
                today=today,
                now=now,
                next_allowed=None if urgent else schedule.next_allowed,
            )
        except AudienceError as exc:
            fail(str(exc))

    seen = in_session(settings, preview)
    audience, count = seen.audience, seen.count
    per_channel = count_by_channel(seen.targets)
    say(f"Người nhận ({audience.spec}): {_number(count)} người ({per_channel or 'không có ai'}).")
    if seen.unreachable:
        say(f"Ngoài ra {_number(seen.unreachable)} người đã chặn trợ lý nên sẽ không nhận được.")
    say(f"Người nhận sẽ thấy:\n———\n{seen.message}\n———")
    start_at = seen.start_at
    if start_at > now:
        say(
            f"Đang trong giờ yên lặng: thông báo sẽ bắt đầu được gửi lúc "
            f"{vn_datetime(start_at.astimezone(settings.zone))} (gửi ngay: thêm --urgent)."
        )
    elif urgent and schedule.next_allowed(now) > now:
        say("Gửi ngay (khẩn), không chờ hết giờ yên lặng.")
    if count == 0:
        fail("Không có ai để gửi.")
    if not yes and not typer.confirm(
        f"Gửi cho {_number(count)} người? (y: gửi, n: không gửi)", show_default=False
    ):
        note("Đã hủy, chưa gửi gì.")
        raise typer.Exit(1)

    async def send(session: AsyncSession) -> int:
        targets, _ = await recipients(session, audience, scope=None, today=today)
        broadcast = await create_broadcast(
            session,
            text=text,
            audience=audience,
            targets=targets,
            created_by="cli",
            now=now,
            not_before=start_at,
            sender=sender,
            actor=CLI,
        )
        assert broadcast.id is not None
        return broadcast.id

    broadcast_id = in_session(settings, send, commit=True)
    say(
        f"Đã xếp thông báo #{broadcast_id} vào hàng gửi cho {_number(count)} người; trợ lý "
        f"đang chạy (troly run) sẽ gửi đi. Theo dõi: troly broadcast status {broadcast_id}"
    )
    if wait:
        _follow(settings, broadcast_id)


def _follow(settings: Settings, broadcast_id: int) -> None:
    """A progress bar until the broadcast is done or cancelled."""
    import time

    from scheduler.outbox import BroadcastStatus, broadcast_status

    async def poll(session: AsyncSession) -> BroadcastStatus | None:
        return await broadcast_status(session, broadcast_id)

    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err
    ) as progress:
        bar = progress.add_task("đang gửi", total=None)
        while True:
            status = in_session(settings, poll)
            if status is None:
                fail(f"Không có thông báo số {broadcast_id}.")
            done = status.sent + status.failed + status.blocked + status.cancelled
            progress.update(
                bar,
                total=status.total,
                completed=done,
                description=f"#{broadcast_id}: đã gửi {status.sent}, lỗi {status.failed}, "
                f"đã chặn trợ lý {status.blocked}",
            )
            if status.status != "sending":
                break
            time.sleep(1)
    _print_status(broadcast_id, settings)


@broadcast_app.command("status")
def broadcast_status_command(
    broadcast_id: Annotated[
        int | None,
        typer.Argument(metavar="[SỐ]", help="Mặc định: các thông báo gần đây / the latest ones."),
    ] = None,
) -> None:
    """Tiến độ và báo cáo cuối của một thông báo (hoặc danh sách gần đây).

    Progress and the final report of a broadcast (or a list of the latest).
    """
    settings = get_settings()
    if broadcast_id is not None:
        _print_status(broadcast_id, settings)
        return
    from sqlmodel import col, select

    from bot.storage.models import Broadcast
    from handlers.accounts import creator_names

    async def latest(session: AsyncSession) -> tuple[list[Broadcast], dict[str, str]]:
        rows = await session.exec(select(Broadcast).order_by(col(Broadcast.id).desc()).limit(20))
        broadcasts = list(rows.all())
        return broadcasts, await creator_names(session, (b.created_by for b in broadcasts))

    broadcasts, creators = in_session(settings, latest)
    if not broadcasts:
        say("Chưa có thông báo nào.")
        return
    table = Table(title="Thông báo gần đây")
    table.add_column("Số", justify="right", no_wrap=True)
    for title in ("Tạo lúc", "Người nhận", "Người gửi", "Số người", "Tình trạng"):
        table.add_column(title)
    for b in broadcasts:
        table.add_row(
            cell(b.id),
            cell(local(b.created_at, settings)),
            cell(b.audience),
            cell(creators.get(b.created_by, b.created_by)),
            cell(_number(b.total)),
            cell(BROADCAST_STATES.get(b.status, b.status)),
        )
    out.print(table)


def _print_status(broadcast_id: int, settings: Settings) -> None:
    from bot.storage.models import Broadcast
    from handlers.accounts import creator_names
    from scheduler.broadcasts import final_report
    from scheduler.outbox import BroadcastStatus, broadcast_status

    async def fetch(
        session: AsyncSession,
    ) -> tuple[Broadcast | None, BroadcastStatus | None, dict[str, str]]:
        broadcast = await session.get(Broadcast, broadcast_id)
        if broadcast is None:
            return None, None, {}
        return (
            broadcast,
            await broadcast_status(session, broadcast_id),
            await creator_names(session, [broadcast.created_by]),
        )

    broadcast, status, creators = in_session(settings, fetch)
    if broadcast is None or status is None:
        fail(f"Không có thông báo số {broadcast_id} (xem: troly broadcast status).")
    say(
        f"Thông báo #{broadcast_id} ({broadcast.audience}), người gửi: "
        f"{creators.get(broadcast.created_by, broadcast.created_by)}, "
        f"tạo lúc {local(broadcast.created_at, settings)}."
    )
    if broadcast.status == "sending":
        say(
            f"Đang gửi: đã gửi {_number(status.sent)}, "
            f"chờ gửi {_number(status.pending + status.sending)}, lỗi {_number(status.failed)}, "
            f"đã chặn trợ lý {_number(status.blocked)}, trên tổng số {_number(status.total)} người."
        )
    else:
        say(final_report(broadcast, status))


@broadcast_app.command("cancel")
def broadcast_cancel(
    broadcast_id: Annotated[int, typer.Argument(metavar="SỐ", help="Số của thông báo.")],
) -> None:
    """Dừng một thông báo: các tin chưa gửi bị hủy (trong vòng một giây).

    Stop a broadcast: what has not gone out yet is cancelled (within a second).
    """
    from bot.storage.models import Broadcast
    from handlers.audit import CLI
    from handlers.broadcast import stop_broadcast

    settings = get_settings()

    async def cancel(session: AsyncSession) -> tuple[str, int] | None:
        broadcast = await session.get(Broadcast, broadcast_id)
        if broadcast is None:
            return None
        before = broadcast.status
        stopped, _ = await stop_broadcast(session, broadcast, now=utcnow(), actor=CLI)
        return before, stopped

    result = in_session(settings, cancel, commit=True)
    if result is None:
        fail(f"Không có thông báo số {broadcast_id} (xem: troly broadcast status).")
    before, stopped = result
    if before != "sending":
        say(f"Thông báo #{broadcast_id} đã kết thúc trước đó, không còn tin nào để dừng.")
    else:
        say(f"Đã dừng thông báo #{broadcast_id}: hủy {_number(stopped)} tin đang chờ gửi.")
    _print_status(broadcast_id, settings)


# --------------------------------------------------------------------------- reminders


@reminders_app.command("status")
def reminders_status(
    unit: Annotated[
        str | None,
        typer.Option(
            "--unit",
            help="Chỉ tính tin gửi cho cán bộ thuộc đơn vị này / count only pushes to this "
            "unit's subtree.",
        ),
    ] = None,
) -> None:
    """Đợt nhắc sắp tới, đợt đã gửi và hàng đợi gửi tin (như trang «Nhắc việc»).

    The next reminder rounds, the rounds fired and the outbox backlog (the web console's
    «Nhắc việc»).
    """
    from handlers.formatting import vn_date
    from handlers.units import require_unit
    from scheduler.overview import (
        MISSED_ROUNDS,
        ReminderOverview,
        age_text,
        reminder_overview,
        vn_moment,
    )
    from scheduler.schedule import LiveSchedule, describe, schedule_source

    settings = get_settings()
    schedule = LiveSchedule(settings)

    async def fetch(session: AsyncSession) -> ReminderOverview:
        scope = await require_unit(session, unit) if unit else None
        await schedule.refresh(session)
        return await reminder_overview(session, policy=schedule.policy, now=utcnow(), scope=scope)

    overview = in_session(settings, fetch)
    backlog = overview.backlog
    say(f"Lịch nhắc {schedule_source(schedule)}:")
    for line in describe(schedule.schedule):
        say(f"  {line.label}: {line.value}")
    if overview.scope is not None:
        say(
            f"Số tin tính cho cán bộ thuộc {overview.scope.name} ({overview.scope.code}) và các "
            "đơn vị trực thuộc."
        )
    oldest = (
        f", tin chờ lâu nhất {age_text(backlog.oldest_waiting, overview.now)}"
        if backlog.oldest_waiting is not None
        else ""
    )
    held = f" ({_number(backlog.held)} tin hẹn gửi sau)" if backlog.held else ""
    say(
        f"Hàng đợi: {_number(backlog.waiting)} tin đang chờ gửi{held}{oldest}; "
        f"{_number(backlog.failed)} tin không gửi được."
    )
    for failure in backlog.recent_failures[:3]:
        say(f"  Lỗi {vn_moment(failure.at)} · {failure.kind}: {failure.error}")
    if not overview.tasks:
        say("Chưa có nhiệm vụ nào đang theo dõi.")
        return
    for item in overview.tasks:
        out.print()
        out.print(cell(f"{item.task.title}"), style="bold")
        say(f"Mã {item.task.code}, hạn {vn_date(item.task.due)}.")
        if item.next_rounds:
            for next_round in item.next_rounds:
                later = (
                    f" (trùng giờ nghỉ, gửi lúc {vn_moment(next_round.deferred_to)})"
                    if next_round.deferred_to is not None
                    else ""
                )
                late = " — đã đến giờ nhưng chưa chạy" if next_round.late else ""
                say(f"  Sắp tới: {next_round.label}, {vn_moment(next_round.at)}{later}{late}")
        else:
            say("  Không còn đợt nhắc nào.")
        if item.missed:
            say(f"  {item.missed} {MISSED_ROUNDS}.")
        if not item.fired:
            say("  Chưa gửi đợt nào.")
            continue
        table = Table(show_edge=False)
        table.add_column("Đợt đã gửi", no_wrap=True)
        table.add_column("Lúc", no_wrap=True)
        table.add_column("Đã gửi", justify="right")
        table.add_column("Không gửi được", justify="right")
        table.add_column("Đang chờ", justify="right")
        for fired in item.fired:
            table.add_row(
                fired.label,
                vn_moment(fired.fired_at),
                _number(fired.reminders.sent),
                _number(fired.reminders.failed),
                _number(fired.reminders.waiting),
            )
        out.print(table)
