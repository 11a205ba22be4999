"""When pushes may go out: reminder times per deadline, quiet hours, non-working days.

Pure functions of their arguments (no clock, no database), so every rule is tested with fixed
dates. Times are computed in the local zone and returned in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.settings import WEEKDAYS, PushSchedule, Settings

__all__ = ["FireTime", "PushPolicy"]


@dataclass(frozen=True, slots=True)
class FireTime:
    kind: str  # "before" (number = days before the deadline) or "overdue" (number = 1, 2, ...)
    number: int
    at: datetime  # UTC


def _time(text: str) -> time:
    hours, minutes = text.strip().split(":")
    return time(int(hours), int(minutes))


@dataclass(frozen=True)
class PushPolicy:
    zone: ZoneInfo
    offsets_days: tuple[int, ...] = (7, 3, 1, 0)
    at: time = time(8, 0)
    overdue_every_days: int = 3
    overdue_max: int = 3
    quiet_start: time | None = time(21, 0)
    quiet_end: time | None = time(7, 0)
    weekdays_off: frozenset[int] = frozenset()  # 0 = Monday
    dates_off: frozenset[date] = frozenset()
    grace: timedelta = timedelta(hours=12)
    digest_weekday: int | None = 0
    digest_at: time = time(8, 0)
    # When the schedule was last changed on the console: rounds timed before it are not
    # planned, so saving a new schedule never fires its past rounds at once.
    since: datetime | None = None

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        schedule: PushSchedule | None = None,
        *,
        since: datetime | None = None,
    ) -> PushPolicy:
        """The policy of ``schedule`` (default: the one in ``settings``, from ``.env``) in
        the zone and with the grace window of ``settings``; ``since``: when it was set."""
        schedule = schedule or settings.push_schedule
        quiet_start = quiet_end = None
        if schedule.quiet_hours:
            start, _, end = schedule.quiet_hours.partition("-")
            quiet_start, quiet_end = _time(start), _time(end)
        weekdays: set[int] = set()
        dates: set[date] = set()
        for part in (p.strip().lower() for p in schedule.non_working_days.split(",")):
            if part in WEEKDAYS:
                weekdays.add(WEEKDAYS.index(part))
            elif part:
                dates.add(date.fromisoformat(part))
        digest_weekday, digest_at = None, time(8, 0)
        if schedule.weekly_digest:
            day, _, at = schedule.weekly_digest.partition(" ")
            digest_weekday, digest_at = WEEKDAYS.index(day), _time(at)
        offsets = schedule.reminder_offsets_days.split(",")
        return cls(
            zone=settings.zone,
            offsets_days=tuple(sorted({int(p) for p in offsets if p}, reverse=True)),
            at=_time(schedule.reminder_time),
            overdue_every_days=schedule.overdue_every_days,
            overdue_max=schedule.overdue_max_reminders,
            quiet_start=quiet_start,
            quiet_end=quiet_end,
            weekdays_off=frozenset(weekdays),
            dates_off=frozenset(dates),
            grace=timedelta(hours=settings.misfire_grace_hours),
            digest_weekday=digest_weekday,
            digest_at=digest_at,
            since=since,
        )

    # ------------------------------------------------------------------ reminder times

    def local(self, day: date, at: time | None = None) -> datetime:
        """``day`` at ``at`` (default: the reminder time) in the local zone, as UTC."""
        return datetime.combine(day, at or self.at, tzinfo=self.zone).astimezone(UTC)

    def fire_times(self, due: date) -> list[FireTime]:
        """Reminders before a deadline (and on its morning), then overdue reminders."""
        times = [
            FireTime("before", days, self.local(due - timedelta(days=days)))
            for days in self.offsets_days
        ]
        times.extend(
            FireTime("overdue", n, self.local(due + timedelta(days=n * self.overdue_every_days)))
            for n in range(1, self.overdue_max + 1)
        )
        return times

    def worth_planning(self, fire: FireTime, now: datetime) -> bool:
        """Only what is due within the grace window or later: an old deadline on a fresh
        install (or after a long outage) never fires a burst of stale reminders, and none
        timed before the schedule was changed (``since``)."""
        return fire.at >= now - self.grace and (self.since is None or fire.at >= self.since)

    # ------------------------------------------------------------------ quiet hours

    def is_quiet(self, moment: datetime) -> bool:
        local = moment.astimezone(self.zone)
        if local.weekday() in self.weekdays_off or local.date() in self.dates_off:
            return True
        if self.quiet_start is None or self.quiet_end is None:
            return False
        now = local.time()
        if self.quiet_start <= self.quiet_end:
            return self.quiet_start <= now < self.quiet_end
        return now >= self.quiet_start or now < self.quiet_end

    def next_allowed(self, moment: datetime) -> datetime:
        """``moment`` itself, or the first moment after it outside quiet hours and
        non-working days (a deferred push is never dropped)."""
        local = moment.astimezone(self.zone)
        for _ in range(400):  # at most a year of days off
            if not self.is_quiet(local):
                return local.astimezone(UTC)
            day_off = local.weekday() in self.weekdays_off or local.date() in self.dates_off
            wake = self.quiet_end or time(0, 0)
            if day_off:
                local = datetime.combine(local.date() + timedelta(days=1), wake, tzinfo=self.zone)
                continue
            candidate = datetime.combine(local.date(), wake, tzinfo=self.zone)
            if candidate <= local:
                candidate += timedelta(days=1)
            local = candidate
        raise ValueError("no allowed time within a year: check NON_WORKING_DAYS")
