"""«Nhắc việc»: the reminder schedule in force; per task, the next reminder rounds and the
rounds already fired (pushes delivered, failed, still waiting), and the outbox backlog. The
figures come from :func:`scheduler.overview.reminder_overview` (also ``troly reminders
status``); this module only checks who asks and renders.

A root admin changes the schedule here («Đổi lịch nhắc»: the form of ``.env``'s
REMINDER_OFFSETS_DAYS, REMINDER_TIME, OVERDUE_*, QUIET_HOURS, NON_WORKING_DAYS and
WEEKLY_DIGEST, checked by the same model) or goes back to ``.env``'s; ``scheduler.schedule``
stores it, and this process applies it at once (re-planning the reminders when it is the
leader; other processes within ``REFRESH_SECONDS``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from aiohttp import web
from pydantic import ValidationError

from bot.settings import WEEKDAYS, PushSchedule, validation_messages
from handlers.audit import Actor
from handlers.formatting import WEEKDAY_NAMES, channel_name
from scheduler.overview import MISSED_ROUNDS, age_text, reminder_overview, vn_moment
from scheduler.schedule import (
    REFRESH_SECONDS,
    describe,
    reset_schedule,
    save_schedule,
    schedule_source,
)
from web.auth import COOKIE, SECURITY_HEADERS, SignedIn, csrf_ok

if TYPE_CHECKING:
    from web.app import Console

__all__ = ["ScheduleForm", "clock_time", "register"]

SCHEDULE_PATH = "/nhac-viec/lich"
# the form's field of each setting (where its message is shown)
FIELD_OF = {
    "reminder_offsets_days": "truoc_han",
    "reminder_time": "gio_nhac",
    "overdue_every_days": "qua_han_moi",
    "overdue_max_reminders": "qua_han_toi_da",
    "quiet_hours": "yen_lang",
    "non_working_days": "ngay_nghi",
    "weekly_digest": "tong_hop",
}
NOTICES = {
    "da-luu": "Đã lưu lịch nhắc mới. Các đợt nhắc chưa gửi đã được xếp lại theo lịch này "
    "(nếu trợ lý chạy trên nhiều máy chủ: trong vòng nửa phút); đợt nào theo lịch mới đã qua "
    "giờ thì không gửi bù.",
    "khong-doi": "Lịch nhắc không thay đổi.",
    "mac-dinh": "Đã trở về lịch nhắc theo cấu hình máy chủ (tệp .env).",
}
_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
# a time as officials type it: 8, 8h, 8h30, 8:30, 08.30, 8 giờ 30, 20g
_CLOCK = re.compile(r"^(\d{1,2})\s*(?:[:.hg]|giờ)?\s*(\d{2})?\s*(?:phút|p)?$", re.IGNORECASE)


def clock_time(text: str) -> str:
    """``HH:MM`` of a time typed loosely (see ``_CLOCK``); anything else as typed, for the
    schedule's check to name."""
    match = _CLOCK.match(text.strip())
    if match is None:
        return text
    hours, minutes = int(match.group(1)), int(match.group(2) or 0)
    return f"{hours:02d}:{minutes:02d}" if hours < 24 and minutes < 60 else text


@dataclass
class ScheduleForm:
    """The form's values as typed (shown back with the problems) and their problems."""

    truoc_han: str = ""
    gio_nhac: str = ""
    qua_han_moi: str = ""
    qua_han_toi_da: str = ""
    co_yen_lang: bool = False
    yen_tu: str = ""
    yen_den: str = ""
    thu_nghi: list[str] = field(default_factory=list)
    ngay_nghi: str = ""
    tong_hop_thu: str = ""  # "" : no digest
    tong_hop_gio: str = ""
    problems: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, schedule: PushSchedule) -> ScheduleForm:
        """The form filled with ``schedule``."""
        start, _, end = schedule.quiet_hours.partition("-")
        days = [p for p in schedule.non_working_days.split(",") if p]
        day, _, at = schedule.weekly_digest.partition(" ")
        return cls(
            truoc_han=", ".join(schedule.reminder_offsets_days.split(",")),
            gio_nhac=schedule.reminder_time,
            qua_han_moi=str(schedule.overdue_every_days),
            qua_han_toi_da=str(schedule.overdue_max_reminders),
            co_yen_lang=bool(schedule.quiet_hours),
            yen_tu=start or "21:00",
            yen_den=end or "07:00",
            thu_nghi=[d for d in days if d in WEEKDAYS],
            ngay_nghi=", ".join(
                f"{date.fromisoformat(d):%d/%m/%Y}" for d in days if d not in WEEKDAYS
            ),
            tong_hop_thu=day,
            tong_hop_gio=at or "08:00",
        )

    @classmethod
    def read(cls, data: Any) -> ScheduleForm:
        def text(name: str) -> str:
            value = data.get(name)
            return " ".join(value.split()) if isinstance(value, str) else ""

        return cls(
            truoc_han=text("truoc_han"),
            gio_nhac=text("gio_nhac"),
            qua_han_moi=text("qua_han_moi"),
            qua_han_toi_da=text("qua_han_toi_da"),
            co_yen_lang=data.get("co_yen_lang") == "1",
            yen_tu=text("yen_tu"),
            yen_den=text("yen_den"),
            thu_nghi=[d for d in data.getall("thu_nghi", []) if d in WEEKDAYS],
            ngay_nghi=text("ngay_nghi"),
            tong_hop_thu=text("tong_hop_thu"),
            tong_hop_gio=text("tong_hop_gio"),
        )

    def _dates(self) -> list[str]:
        """The days off typed as ``2/9/2025`` (or ``2025-09-02``), as ISO dates."""
        found = []
        for part in re.split(r"[,;\s]+", self.ngay_nghi):
            if not part:
                continue
            match = _DATE.match(part)
            try:
                if match:
                    day, month, year = (int(g) for g in match.groups())
                    found.append(date(year, month, day).isoformat())
                else:
                    found.append(date.fromisoformat(part).isoformat())
            except ValueError:
                self.problems["ngay_nghi"] = (
                    f"«{part}» không phải một ngày có thật; ghi ngày dạng 02/09/2026, các ngày "
                    "cách nhau bằng dấu phẩy"
                )
        return found

    def schedule(self) -> PushSchedule | None:
        """The schedule typed, or None with :attr:`problems` filled."""
        self.problems = {}
        days = self._dates()
        if self.tong_hop_thu and self.tong_hop_thu not in WEEKDAYS:
            self.problems["tong_hop"] = "chọn một ngày trong tuần hoặc «Không gửi»"
        values: dict[str, object] = {
            "reminder_offsets_days": self.truoc_han.replace(" ", ""),
            "reminder_time": clock_time(self.gio_nhac),
            "overdue_every_days": self.qua_han_moi,
            "overdue_max_reminders": self.qua_han_toi_da,
            "quiet_hours": (
                f"{clock_time(self.yen_tu)}-{clock_time(self.yen_den)}" if self.co_yen_lang else ""
            ),
            "non_working_days": ",".join([*self.thu_nghi, *days]),
            "weekly_digest": (
                f"{self.tong_hop_thu} {clock_time(self.tong_hop_gio)}" if self.tong_hop_thu else ""
            ),
        }
        try:
            schedule = PushSchedule.model_validate(values)
        except ValidationError as exc:
            for name, message in validation_messages(exc):
                self.problems.setdefault(FIELD_OF.get(name, name), message)
            return None
        return None if self.problems else schedule


@dataclass
class ReminderPage:
    console: Console

    async def show(self, request: web.Request) -> web.StreamResponse:
        """``GET /nhac-viec``: the root admin sees everything; a unit admin, the pushes to
        people of their subtree."""
        services = self.console.services
        async with services.sessions() as db:
            signed_in = await self.console._signed_in(db, request)
            identity = signed_in.identity
            scope = None if identity.role == "admin" else identity.unit
            now = self.console.now()
            await services.schedule.refresh(db)
            overview = await reminder_overview(db, policy=services.policy, now=now, scope=scope)
        live = services.schedule
        return self.console.page(
            "reminders.html",
            signed_in=signed_in,
            raw=request.cookies.get(COOKIE),
            title="Nhắc việc",
            overview=overview,
            scope=scope,
            moment=vn_moment,
            age=lambda since: age_text(since, overview.now),
            channel=lambda name: channel_name(name, capitalised=True),
            schedule_lines=describe(live.schedule),
            schedule_source=schedule_source(live),
            may_change=identity.role == "admin",
            notice=NOTICES.get(request.query.get("lich", "")),
            missed_rounds=MISSED_ROUNDS,
        )

    # ------------------------------------------------------------------ the schedule

    def _forbidden(self) -> web.HTTPForbidden:
        return web.HTTPForbidden(
            text=self.console._render_message(
                "Không có quyền truy cập",
                "Chỉ quản trị hệ thống đổi được lịch nhắc (lịch chung cho mọi đơn vị). Đồng chí "
                "vẫn xem được lịch và các đợt nhắc ở trang «Nhắc việc».",
            ),
            content_type="text/html",
            headers=SECURITY_HEADERS,
        )

    async def _root_admin(self, request: web.Request) -> SignedIn:
        async with self.console.services.sessions() as db:
            signed_in = await self.console._signed_in(db, request)
        if signed_in.identity.role != "admin":
            raise self._forbidden()
        return signed_in

    def _form_page(
        self, request: web.Request, signed_in: SignedIn, form: ScheduleForm, *, status: int = 200
    ) -> web.Response:
        live = self.console.services.schedule
        return self.console.page(
            "schedule.html",
            status=status,
            signed_in=signed_in,
            raw=request.cookies.get(COOKIE),
            title="Đổi lịch nhắc",
            form=form,
            weekdays=list(zip(WEEKDAYS, WEEKDAY_NAMES, strict=True)),
            schedule_source=schedule_source(live),
            from_console=live.from_console,
            env_lines=describe(self.console.services.settings.push_schedule),
            refresh_seconds=int(REFRESH_SECONDS),
        )

    async def schedule_form(self, request: web.Request) -> web.StreamResponse:
        """``GET /nhac-viec/lich``: the form, filled with the schedule in force."""
        signed_in = await self._root_admin(request)
        live = self.console.services.schedule
        async with self.console.services.sessions() as db:
            await live.refresh(db)
        return self._form_page(request, signed_in, ScheduleForm.of(live.schedule))

    async def _checked(self, request: web.Request) -> tuple[Any, SignedIn]:
        data = await request.post()
        if not csrf_ok(request.cookies.get(COOKIE), data.get("csrf")):
            raise web.HTTPForbidden(
                text=self.console._forbidden_form().text,
                content_type="text/html",
                headers=SECURITY_HEADERS,
            )
        return data, await self._root_admin(request)

    async def _applied(self, notice: str) -> web.HTTPSeeOther:
        services = self.console.services
        await services.schedule.reload(services.sessions)  # here at once (and re-planned)
        return web.HTTPSeeOther(f"/nhac-viec?lich={notice}", headers=SECURITY_HEADERS)

    async def save(self, request: web.Request) -> web.StreamResponse:
        """``POST /nhac-viec/lich``: the schedule typed, checked, stored and applied."""
        data, signed_in = await self._checked(request)
        form = ScheduleForm.read(data)
        schedule = form.schedule()
        if schedule is None:
            return self._form_page(request, signed_in, form, status=400)
        async with self.console.services.sessions() as db:
            changed = await save_schedule(
                db,
                schedule,
                actor=Actor("web", signed_in.identity.person.id),
                now=self.console.now(),
            )
            await db.commit()
        raise await self._applied("da-luu" if changed else "khong-doi")

    async def reset(self, request: web.Request) -> web.StreamResponse:
        """``POST /nhac-viec/lich/mac-dinh``: back to the schedule of ``.env``."""
        _, signed_in = await self._checked(request)
        services = self.console.services
        async with services.sessions() as db:
            changed = await reset_schedule(
                db,
                services.settings,
                actor=Actor("web", signed_in.identity.person.id),
                now=self.console.now(),
            )
            await db.commit()
        raise await self._applied("mac-dinh" if changed else "khong-doi")


def register(app: web.Application, console: Console) -> None:
    page = ReminderPage(console)
    app.router.add_get("/nhac-viec", page.show)
    app.router.add_get(SCHEDULE_PATH, page.schedule_form)
    app.router.add_post(SCHEDULE_PATH, page.save)
    app.router.add_post(SCHEDULE_PATH + "/mac-dinh", page.reset)
