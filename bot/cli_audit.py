"""``troly audit list``: the audit log («Nhật ký») in the terminal, newest first.

Reading only: entries are written by the actions themselves (``handlers.audit``) and can be
neither changed nor deleted. The operator of the command line sees every entry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from bot.cli_admin import cell, in_session, local, say
from bot.cli_common import fail, get_settings, out

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

    from handlers.audit import EntryView

__all__ = ["audit_app", "register"]

audit_app = typer.Typer(help="Nhật ký — the audit log (append-only).", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")


@audit_app.command("list")
def audit_list(
    unit: Annotated[
        str | None, typer.Option("--unit", help="Chỉ cây của đơn vị này / only this subtree.")
    ] = None,
    action: Annotated[
        str | None,
        typer.Option("--action", help="Chỉ một việc, ví dụ invite.create / only this action."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="Số mục / how many entries.")] = 50,
    before: Annotated[
        int | None, typer.Option("--before", help="Cũ hơn mục số này / older than this entry.")
    ] = None,
) -> None:
    """Nhật ký: ai làm gì, lúc nào, qua kênh nào (mới nhất trước).

    The audit log: who did what, when, from which channel (newest first).
    """
    from handlers.accounts import get_unit
    from handlers.audit import ACTION_NAMES, list_entries

    if action is not None and action not in ACTION_NAMES:
        fail(f"Không có việc «{action}». Chọn một trong: {', '.join(ACTION_NAMES)}.")
    if not 1 <= limit <= 1000:
        fail("Số mục phải từ 1 đến 1000.")
    settings = get_settings()

    async def fetch(session: AsyncSession) -> list[EntryView]:
        found = await get_unit(session, unit) if unit else None
        return await list_entries(
            session, scope=None, unit=found, action=action, before=before, limit=limit
        )

    entries = in_session(settings, fetch)
    if not entries:
        say("Chưa có mục nào trong nhật ký" + (" khớp bộ lọc." if unit or action else "."))
        return
    table = Table(title="Nhật ký")
    table.add_column("Số", justify="right", no_wrap=True)
    for title in ("Lúc", "Người thực hiện", "Kênh", "Việc", "Đơn vị", "Nội dung"):
        table.add_column(title)
    for entry in entries:
        table.add_row(
            cell(entry.id),
            cell(local(entry.at, settings)),
            cell(entry.who),
            cell(entry.via_name),
            cell(entry.action_name),
            cell(entry.unit_code or "—"),
            cell(entry.summary),
        )
    out.print(table)
    if len(entries) == limit:
        say(f"Xem các mục cũ hơn: troly audit list --before {entries[-1].id}")
