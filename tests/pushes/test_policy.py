"""When pushes go out: reminder times, quiet hours, days off, the grace window."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.settings import load_settings
from scheduler.policy import FireTime, PushPolicy

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
POLICY = PushPolicy(zone=ZONE)


def local(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=ZONE)


def test_default_reminder_times_for_an_august_deadline() -> None:
    times = POLICY.fire_times(date(2025, 8, 31))
    assert [(f.kind, f.number, f.at.astimezone(ZONE)) for f in times] == [
        ("before", 7, local(2025, 8, 24, 8)),
        ("before", 3, local(2025, 8, 28, 8)),
        ("before", 1, local(2025, 8, 30, 8)),
        ("before", 0, local(2025, 8, 31, 8)),  # the morning of the deadline
        ("overdue", 1, local(2025, 9, 3, 8)),
        ("overdue", 2, local(2025, 9, 6, 8)),
        ("overdue", 3, local(2025, 9, 9, 8)),
    ]
    assert all(f.at.tzinfo == UTC for f in times)


def test_settings_shape_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMINDER_OFFSETS_DAYS", "3, 0")
    monkeypatch.setenv("REMINDER_TIME", "07:30")
    monkeypatch.setenv("OVERDUE_EVERY_DAYS", "2")
    monkeypatch.setenv("OVERDUE_MAX_REMINDERS", "1")
    monkeypatch.setenv("NON_WORKING_DAYS", "sun,2025-09-02")
    monkeypatch.setenv("QUIET_HOURS", "")
    policy = PushPolicy.from_settings(load_settings())
    times = policy.fire_times(date(2025, 8, 31))
    assert [(f.kind, f.number) for f in times] == [("before", 3), ("before", 0), ("overdue", 1)]
    assert times[0].at.astimezone(ZONE).time() == time(7, 30)
    assert policy.quiet_start is None
    assert policy.is_quiet(local(2025, 9, 2, 10))  # a date off
    assert policy.is_quiet(local(2025, 8, 31, 10))  # a Sunday


def test_old_deadlines_are_not_planned() -> None:
    now = local(2026, 11, 23, 10).astimezone(UTC)
    fire = FireTime("overdue", 3, local(2025, 9, 9, 8).astimezone(UTC))
    assert not POLICY.worth_planning(fire, now)
    recent = FireTime("before", 0, now - timedelta(hours=11))
    assert POLICY.worth_planning(recent, now)  # within the 12-hour grace window
    assert not POLICY.worth_planning(FireTime("before", 0, now - timedelta(hours=13)), now)


def test_a_schedule_changed_never_fires_its_past_rounds() -> None:
    changed = local(2025, 8, 28, 10).astimezone(UTC)
    policy = PushPolicy(zone=ZONE, since=changed)
    now = changed + timedelta(minutes=5)
    this_morning = FireTime("before", 3, local(2025, 8, 28, 8).astimezone(UTC))
    assert POLICY.worth_planning(this_morning, now)  # within the grace window...
    assert not policy.worth_planning(this_morning, now)  # ...but before the change
    assert policy.worth_planning(FireTime("before", 1, local(2025, 8, 30, 8)), now)


@pytest.mark.parametrize(
    ("moment", "allowed"),
    [
        (local(2025, 8, 20, 10), local(2025, 8, 20, 10)),  # daytime: now
        (local(2025, 8, 20, 21), local(2025, 8, 21, 7)),  # quiet from 21:00
        (local(2025, 8, 20, 23, 59), local(2025, 8, 21, 7)),
        (local(2025, 8, 21, 2), local(2025, 8, 21, 7)),  # 2 a.m.: wait for the morning
        (local(2025, 8, 21, 6, 59), local(2025, 8, 21, 7)),
        (local(2025, 8, 21, 7), local(2025, 8, 21, 7)),
    ],
)
def test_quiet_hours_defer_never_drop(moment: datetime, allowed: datetime) -> None:
    assert POLICY.next_allowed(moment.astimezone(UTC)) == allowed.astimezone(UTC)


def test_days_off_defer_to_the_next_working_morning() -> None:
    policy = PushPolicy(
        zone=ZONE, weekdays_off=frozenset({5, 6}), dates_off=frozenset({date(2025, 9, 1)})
    )
    saturday_noon = local(2025, 8, 30, 12)
    assert policy.next_allowed(saturday_noon) == local(2025, 9, 2, 7).astimezone(UTC)
    friday_night = local(2025, 8, 29, 22)
    assert policy.next_allowed(friday_night) == local(2025, 9, 2, 7).astimezone(UTC)


def test_a_daytime_quiet_window() -> None:
    policy = PushPolicy(zone=ZONE, quiet_start=time(11, 30), quiet_end=time(13, 30))
    assert policy.next_allowed(local(2025, 8, 20, 12)) == local(2025, 8, 20, 13, 30).astimezone(UTC)
    assert policy.next_allowed(local(2025, 8, 20, 22)) == local(2025, 8, 20, 22).astimezone(UTC)
