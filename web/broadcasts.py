"""«Thông báo»: compose an announcement, choose who gets it, preview (the exact number of
people per channel, when delivery starts, the text as they will see it), confirm; the list
of broadcasts with their progress, a page per broadcast that follows it live, stopping it,
and its final report.

The rules are the chat's (``/thongbao``) and the command line's (``troly broadcast send``),
all in :mod:`handlers.broadcast`: the audiences and a unit admin's scope
(``recipients``), the preview (``preview_broadcast``), quiet hours (the push policy's
``next_allowed``), creating the broadcast once (``send_once``), who may follow and stop one
(``may_manage``), stopping (``stop_broadcast``). Delivery is the outbox sender's, as for
every push: this page only creates outbox rows and reads them.

Nothing is created by the preview. The preview page carries the text, the audience and the
moment of the preview in hidden fields; confirming sends them back with the CSRF token, and
``send_once`` turns a second submission of the same form (a double click, a reload of the
answer) into the broadcast the first one created.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage.models import Broadcast, Unit
from handlers.accounts import creator_names
from handlers.audit import Actor
from handlers.broadcast import (
    MAX_TEXT,
    STATUS_NAMES,
    Audience,
    AudienceError,
    Preview,
    describe_spec,
    first_pending_at,
    late_tasks,
    level_counts,
    list_broadcasts,
    may_manage,
    parse_audience,
    preview_broadcast,
    send_once,
    sender_of,
    status_counts,
    stop_broadcast,
)
from handlers.formatting import channel_name, vn_datetime, vn_number
from handlers.people import Identity, can_manage
from handlers.units import LEVEL_NAMES, unit_by_code
from scheduler.outbox import BroadcastStatus, broadcast_status
from web.auth import COOKIE, SECURITY_HEADERS, SignedIn, csrf_ok

if TYPE_CHECKING:
    from web.app import Console

__all__ = ["BroadcastPages", "register"]

SHOWN = 30  # broadcasts listed
KINDS = ("all", "level", "unit", "late")


@dataclass
class ComposeForm:
    """What the compose form holds (as typed, shown again with a problem)."""

    text: str = ""
    kind: str = "all"
    level: str = ""
    unit: str = ""
    task: str = ""
    problems: list[str] = field(default_factory=list)

    def audience(self) -> Audience:
        if self.kind == "level":
            return parse_audience(f"level:{self.level}")
        if self.kind in {"unit", "late"}:
            value = self.unit if self.kind == "unit" else self.task
            if not value.strip():
                raise AudienceError(
                    "Đồng chí vui lòng gõ mã đơn vị."
                    if self.kind == "unit"
                    else "Đồng chí vui lòng chọn nhiệm vụ."
                )
            return parse_audience(f"{self.kind}:{value}")
        return Audience("all")


@dataclass(frozen=True, slots=True)
class Counts:
    """A broadcast's rows by outcome, as the list and the detail page show them."""

    total: int
    sent: int
    failed: int
    blocked: int
    cancelled: int
    waiting: int  # pending or being sent

    @classmethod
    def of(cls, total: int, rows: dict[str, int]) -> Counts:
        return cls(
            total=total,
            sent=rows.get("sent", 0),
            failed=rows.get("failed", 0),
            blocked=rows.get("blocked", 0),
            cancelled=rows.get("cancelled", 0),
            waiting=rows.get("pending", 0) + rows.get("sending", 0),
        )

    @property
    def settled(self) -> int:
        return self.sent + self.failed + self.blocked + self.cancelled


def _scope(identity: Identity) -> Unit | None:
    return None if identity.role == "admin" else identity.unit


def _text(value: object) -> str:
    """The announcement as typed, line ends normalised (a browser sends CR LF)."""
    return str(value or "").replace("\r\n", "\n").replace("\r", "\n").strip()


def _text_problem(text: str) -> str | None:
    if not text:
        return "Nội dung thông báo đang trống. Đồng chí gõ nội dung cần gửi."
    if len(text) > MAX_TEXT:
        return (
            f"Nội dung dài {vn_number(len(text))} ký tự, tối đa {vn_number(MAX_TEXT)} ký tự "
            "(để mỗi người nhận trọn thông báo trong một tin). Đồng chí rút gọn rồi xem lại."
        )
    return None


@dataclass
class BroadcastPages:
    console: Console

    # ------------------------------------------------------------------ helpers

    def _local(self, moment: datetime) -> str:
        return vn_datetime(moment.astimezone(self.console.services.settings.zone))

    def _forbidden(self, text: str) -> web.HTTPForbidden:
        return web.HTTPForbidden(
            text=self.console._render_message("Không có quyền truy cập", text),
            content_type="text/html",
            headers=SECURITY_HEADERS,
        )

    def _not_found(self) -> web.HTTPNotFound:
        return web.HTTPNotFound(
            text=self.console._render_message(
                "Không tìm thấy thông báo", "Không có thông báo này."
            ),
            content_type="text/html",
            headers=SECURITY_HEADERS,
        )

    async def _mine(self, db: AsyncSession, identity: Identity, value: str) -> Broadcast:
        broadcast = await db.get(Broadcast, int(value)) if len(value) < 12 else None
        if broadcast is None:
            raise self._not_found()
        if not may_manage(identity, broadcast):
            raise self._forbidden(
                "Đồng chí chỉ theo dõi và dừng được thông báo do mình gửi (quản trị hệ thống "
                "theo dõi được mọi thông báo)."
            )
        return broadcast

    async def _unit_allowed(self, db: AsyncSession, identity: Identity, audience: Audience) -> None:
        """A unit outside the person's scope is refused outright (403), as on «Mã mời»."""
        if audience.kind != "unit":
            return
        unit = await unit_by_code(db, audience.value)
        if unit is not None and not can_manage(identity, unit):
            raise self._forbidden(
                f"Đơn vị {unit.name} ({unit.code}) không thuộc phạm vi đồng chí quản lý: đồng "
                "chí chỉ gửi được thông báo cho các đơn vị mình quản lý."
            )

    async def _page(
        self,
        db: AsyncSession,
        request: web.Request,
        signed_in: SignedIn,
        form: ComposeForm,
        *,
        status: int = 200,
        preview: Preview | None = None,
    ) -> web.Response:
        identity = signed_in.identity
        scope = _scope(identity)
        now = self.console.now()
        local_now = now.astimezone(self.console.services.settings.zone)
        levels = await level_counts(db, scope)
        late = await late_tasks(db, scope, local_now.date())
        broadcasts = await list_broadcasts(db, identity, limit=SHOWN)
        counts = await status_counts(db, [b.id for b in broadcasts if b.id is not None])
        creators = await creator_names(db, (b.created_by for b in broadcasts))
        rows = [
            {
                "broadcast": b,
                "created": self._local(b.created_at),
                "creator": creators.get(b.created_by, b.created_by),
                "audience": await describe_spec(db, b.audience),
                "state": STATUS_NAMES.get(b.status, b.status),
                "counts": Counts.of(b.total, counts.get(b.id or 0, {})),
            }
            for b in broadcasts
        ]
        shown: dict[str, Any] = {}
        if preview is not None:
            shown = {
                "channels": [
                    (channel_name(channel, capitalised=True), n)
                    for channel, n in preview.channels.items()
                ],
                "start": self._local(preview.start_at),
                "previewed_at": now.isoformat(),
            }
        return self.console.page(
            "broadcasts.html",
            status=status,
            signed_in=signed_in,
            raw=request.cookies.get(COOKIE),
            title="Thông báo",
            scope=scope,
            form=form,
            total=sum(levels.values()),
            levels=[(key, LEVEL_NAMES[key], n) for key, n in levels.items()],
            late=late,
            max_text=MAX_TEXT,
            rows=rows,
            preview=preview,
            shown=shown,
        )

    # ------------------------------------------------------------------ pages

    async def show(self, request: web.Request) -> web.StreamResponse:
        """``GET /thong-bao``: the compose form and the broadcasts one may follow."""
        async with self.console.services.sessions() as db:
            signed_in = await self.console._signed_in(db, request)
            return await self._page(
                db, request, signed_in, ComposeForm(unit=signed_in.identity.unit.code)
            )

    async def preview(self, request: web.Request) -> web.StreamResponse:
        """``POST /thong-bao/xem-truoc``: who would get it, from when, as what. Creates
        nothing."""
        raw = request.cookies.get(COOKIE)
        data = await request.post()
        if not csrf_ok(raw, data.get("csrf")):
            return self.console._forbidden_form()
        kind = str(data.get("doi_tuong", "all"))
        form = ComposeForm(
            text=_text(data.get("noi_dung")),
            kind=kind if kind in KINDS else "all",
            level=str(data.get("cap", ""))[:32],
            unit=str(data.get("don_vi", "")).strip()[:64],
            task=str(data.get("nhiem_vu", "")).strip()[:100],
        )
        async with self.console.services.sessions() as db:
            signed_in = await self.console._signed_in(db, request)
            identity = signed_in.identity
            if (problem := _text_problem(form.text)) is not None:
                form.problems.append(problem)
            try:
                audience = form.audience()
            except AudienceError as exc:
                form.problems.append(str(exc))
            if form.problems:
                return await self._page(db, request, signed_in, form, status=400)
            await self._unit_allowed(db, identity, audience)
            now = self.console.now()
            try:
                preview = await preview_broadcast(
                    db,
                    audience,
                    text=form.text,
                    sender=sender_of(identity),
                    scope=_scope(identity),
                    today=now.astimezone(self.console.services.settings.zone),
                    now=now,
                    next_allowed=self.console.services.policy.next_allowed,
                )
            except AudienceError as exc:
                form.problems.append(str(exc))
                return await self._page(db, request, signed_in, form, status=400)
            return await self._page(db, request, signed_in, form, preview=preview)

    async def send(self, request: web.Request) -> web.StreamResponse:
        """``POST /thong-bao/gui``: create the broadcast previewed (once), then follow it."""
        raw = request.cookies.get(COOKIE)
        data = await request.post()
        if not csrf_ok(raw, data.get("csrf")):
            return self.console._forbidden_form()
        text = _text(data.get("noi_dung"))
        try:
            audience = parse_audience(str(data.get("doi_tuong", "")))
            previewed_at = datetime.fromisoformat(str(data.get("phien", "")))
            if previewed_at.tzinfo is None or _text_problem(text) is not None:
                raise ValueError(previewed_at)
        except ValueError:
            return self.console.message(
                "Yêu cầu không hợp lệ",
                "Biểu mẫu xác nhận thiếu nội dung hoặc đối tượng nhận. Đồng chí vui lòng soạn "
                "và xem trước lại thông báo.",
                status=400,
            )
        async with self.console.services.sessions() as db:
            signed_in = await self.console._signed_in(db, request)
            identity = signed_in.identity
            await self._unit_allowed(db, identity, audience)
            now = self.console.now()
            try:
                broadcast, created = await send_once(
                    db,
                    identity=identity,
                    text=text,
                    audience=audience,
                    previewed_at=previewed_at,
                    today=now.astimezone(self.console.services.settings.zone),
                    now=now,
                    next_allowed=self.console.services.policy.next_allowed,
                    urgent=data.get("khan") == "1",
                    actor=Actor("web", identity.person.id),
                )
            except AudienceError as exc:
                return self.console.message(
                    "Chưa gửi thông báo", str(exc), status=400, signed_in=signed_in
                )
            await db.commit()
        note = "da-xep" if created else "da-gui-truoc"
        raise web.HTTPSeeOther(f"/thong-bao/{broadcast.id}?{note}=1", headers=SECURITY_HEADERS)

    async def _state(
        self, db: AsyncSession, broadcast: Broadcast
    ) -> tuple[BroadcastStatus, Counts, datetime | None]:
        assert broadcast.id is not None
        status = await broadcast_status(db, broadcast.id)
        assert status is not None
        counts = Counts.of(status.total, status.counts)
        starts = await first_pending_at(db, broadcast.id) if status.status == "sending" else None
        return status, counts, starts

    async def detail(self, request: web.Request) -> web.StreamResponse:
        """``GET /thong-bao/{id}``: progress while sending (followed live by a few lines of
        script, or a refresh every few seconds without it); the final report when done."""
        raw = request.cookies.get(COOKIE)
        async with self.console.services.sessions() as db:
            signed_in = await self.console._signed_in(db, request)
            broadcast = await self._mine(db, signed_in.identity, request.match_info["id"])
            status, counts, starts = await self._state(db, broadcast)
            creators = await creator_names(db, [broadcast.created_by])
            audience = await describe_spec(db, broadcast.audience)
        now = self.console.now()
        notice = None
        if "da-xep" in request.query:
            notice = f"Đã xếp thông báo #{broadcast.id} vào hàng gửi."
        elif "da-gui-truoc" in request.query:
            notice = f"Thông báo #{broadcast.id} đã được tạo trước đó, không gửi lại lần nữa."
        elif "da-dung" in request.query:
            notice = f"Đã dừng thông báo #{broadcast.id}: các tin chưa gửi đã được hủy."
        return self.console.page(
            "broadcast.html",
            signed_in=signed_in,
            raw=raw,
            title=f"Thông báo #{broadcast.id}",
            broadcast=broadcast,
            report=status,
            counts=counts,
            state=STATUS_NAMES.get(broadcast.status, broadcast.status),
            creator=creators.get(broadcast.created_by, broadcast.created_by),
            audience=audience,
            created=self._local(broadcast.created_at),
            finished_at=self._local(status.finished_at) if status.finished_at else None,
            starts=self._local(starts) if starts is not None and starts > now else None,
            finished=status.finished,
            notice=notice,
        )

    async def progress(self, request: web.Request) -> web.StreamResponse:
        """``GET /thong-bao/{id}/tien-do``: the figures the detail page's script shows."""
        async with self.console.services.sessions() as db:
            signed_in = await self.console._signed_in(db, request)
            broadcast = await self._mine(db, signed_in.identity, request.match_info["id"])
            status, counts, _ = await self._state(db, broadcast)
        figures = {
            "total": counts.total,
            "sent": counts.sent,
            "failed": counts.failed,
            "blocked": counts.blocked,
            "cancelled": counts.cancelled,
            "waiting": counts.waiting,
            "settled": counts.settled,
        }
        return web.json_response(
            {
                "id": broadcast.id,
                "status": status.status,
                "state": STATUS_NAMES.get(status.status, status.status),
                "finished": status.finished,
                **figures,
                "shown": {key: vn_number(value) for key, value in figures.items()},
            },
            headers=SECURITY_HEADERS,
        )

    async def cancel(self, request: web.Request) -> web.StreamResponse:
        """``POST /thong-bao/{id}/huy``: the pushes not sent yet are cancelled."""
        raw = request.cookies.get(COOKIE)
        data = await request.post()
        if not csrf_ok(raw, data.get("csrf")):
            return self.console._forbidden_form()
        async with self.console.services.sessions() as db:
            signed_in = await self.console._signed_in(db, request)
            broadcast = await self._mine(db, signed_in.identity, request.match_info["id"])
            assert broadcast.id is not None
            await stop_broadcast(
                db,
                broadcast,
                now=self.console.now(),
                actor=Actor("web", signed_in.identity.person.id),
            )
            await db.commit()
        raise web.HTTPSeeOther(f"/thong-bao/{broadcast.id}?da-dung=1", headers=SECURITY_HEADERS)


def register(app: web.Application, console: Console) -> None:
    pages = BroadcastPages(console)
    router = app.router
    router.add_get("/thong-bao", pages.show)
    router.add_post("/thong-bao/xem-truoc", pages.preview)
    router.add_post("/thong-bao/gui", pages.send)
    router.add_get(r"/thong-bao/{id:\d+}", pages.detail)
    router.add_get(r"/thong-bao/{id:\d+}/tien-do", pages.progress)
    router.add_post(r"/thong-bao/{id:\d+}/huy", pages.cancel)
