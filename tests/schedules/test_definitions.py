"""Schedule rules without Redis: validation, next firings, daylight saving, the missed-firing policy."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from nodedrop_rq.schedules import (
    ScheduleInvalid,
    at_schedule,
    cron_schedule,
    every_schedule,
    firing_key,
    in_schedule,
    parse_delay,
)

UTC = timezone.utc


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def firings(plan, start: datetime, count: int) -> list[datetime]:
    out, moment = [], start
    for _ in range(count):
        moment = plan.next_fire(moment)
        out.append(moment)
    return out


def test_cron_in_a_time_zone_follows_its_local_time():
    berlin = cron_schedule("0 9 * * *", "Europe/Berlin")
    assert firings(berlin, utc(2026, 3, 28, 12, 0), 2) == [utc(2026, 3, 29, 7, 0), utc(2026, 3, 30, 7, 0)]
    assert berlin.next_fire(utc(2026, 12, 1, 12, 0)) == utc(2026, 12, 2, 8, 0)  # 09:00 CET
    assert cron_schedule("0 9 * * *").next_fire(utc(2026, 12, 1, 12, 0)) == utc(2026, 12, 2, 9, 0)  # UTC default


def test_a_local_time_that_does_not_exist_fires_once_after_the_gap():
    plan = cron_schedule("30 2 * * *", "Europe/Berlin")
    # 02:30 does not exist on 29 March 2026: it fires at 03:00 CEST (01:00 UTC), not skipped.
    assert firings(plan, utc(2026, 3, 28, 12, 0), 2) == [utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 30)]
    two = cron_schedule("0,30 2 * * *", "Europe/Berlin")
    assert firings(two, utc(2026, 3, 28, 12, 0), 2) == [utc(2026, 3, 29, 1, 0), utc(2026, 3, 30, 0, 0)]


def test_a_repeated_local_time_fires_once_for_fixed_hours():
    plan = cron_schedule("30 2 * * *", "Europe/Berlin")
    # 02:30 happens twice on 25 October 2026 (00:30 and 01:30 UTC): it fires once.
    assert firings(plan, utc(2026, 10, 24, 12, 0), 2) == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    two = cron_schedule("0,30 2 * * *", "Europe/Berlin")
    assert firings(two, utc(2026, 10, 24, 12, 0), 3) == [utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 0, 30),
                                                         utc(2026, 10, 26, 1, 0)]
    # A scheduler that looks while the hour repeats (01:10 UTC = 02:10 CET) does not fire 02:30 again.
    assert plan.next_fire(utc(2026, 10, 25, 1, 10)) == utc(2026, 10, 26, 1, 30)


def test_schedules_running_every_hour_follow_real_time_through_the_repeated_hour():
    hourly = cron_schedule("0 * * * *", "Europe/Berlin")
    assert firings(hourly, utc(2026, 10, 24, 23, 30), 4) == [utc(2026, 10, 25, h, 0) for h in (0, 1, 2, 3)]
    five = firings(cron_schedule("*/5 * * * *", "Europe/Berlin"), utc(2026, 10, 24, 23, 58), 40)
    assert all(b - a == timedelta(minutes=5) for a, b in zip(five, five[1:], strict=False))
    spring = firings(hourly, utc(2026, 3, 28, 23, 30), 3)
    assert spring == [utc(2026, 3, 29, 0, 0), utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 2, 0)]


def test_missed_firings_fire_once_and_the_next_comes_after_now():
    cron = cron_schedule("*/5 * * * *")
    missed, now = utc(2026, 5, 1, 10, 0), utc(2026, 5, 1, 13, 2, 7)  # three hours without a scheduler
    assert cron.following(missed, now) == utc(2026, 5, 1, 13, 5)
    every = every_schedule("10s")
    assert every.following(missed, now) == utc(2026, 5, 1, 13, 2, 10)  # stays on its 10 s grid
    assert every.following(missed, missed + timedelta(seconds=0.4)) == missed + timedelta(seconds=10)  # no drift
    once = at_schedule("2026-05-01T10:00:00Z", utc(2026, 4, 1))
    assert once.following(missed, now) is None


def test_upcoming_lists_the_next_runs():
    plan = cron_schedule("0 */6 * * *", "UTC")
    assert plan.upcoming(utc(2026, 1, 1, 0, 0), 3) == [utc(2026, 1, 1, h, 0) for h in (0, 6, 12)]
    assert at_schedule("2099-01-01T00:00:00Z", utc(2026, 1, 1)).upcoming(utc(2099, 1, 1), 3) == [utc(2099, 1, 1)]


@pytest.mark.parametrize(("build", "message"), [
    (lambda: cron_schedule("61 * * * *"), "invalid cron expression"),
    (lambda: cron_schedule("* * * *"), "invalid cron expression"),
    (lambda: cron_schedule("* * * * * *"), "invalid cron expression"),  # no seconds field
    (lambda: cron_schedule("@reboot"), "invalid cron expression"),
    (lambda: cron_schedule("0 0 31 2 *"), "never fires"),
    (lambda: cron_schedule("*/5 * * * *", "Mars/Olympus"), "unknown time zone"),
    (lambda: cron_schedule("*/5 * * * *", ""), "unknown time zone"),
    (lambda: at_schedule("2001-01-01T00:00:00+00:00", datetime.now(UTC)), "is in the past"),
    (lambda: at_schedule("2099-01-01T00:00:00", datetime.now(UTC)), "no UTC offset"),
    (lambda: at_schedule("tomorrow", datetime.now(UTC)), "invalid time"),
    (lambda: at_schedule("2099-01-01T00:00:00", datetime.now(UTC), tz="Nowhere/Land"), "unknown time zone"),
    (lambda: in_schedule("soon", datetime.now(UTC)), "invalid delay"),
    (lambda: in_schedule("0s", datetime.now(UTC)), "invalid delay"),
    (lambda: every_schedule("0.5s"), "whole number of seconds"),
])
def test_bad_rules_are_refused_with_a_clear_message(build, message):
    with pytest.raises(ScheduleInvalid, match=message):
        build()


def test_delays_times_and_keys():
    assert [parse_delay(t) for t in ("30s", "5m", "2h", "1d", "45")] == [30, 300, 7200, 86400, 45]
    assert at_schedule("2099-06-01T09:00:00", utc(2026, 1, 1), tz="Europe/Berlin").at == utc(2099, 6, 1, 7, 0)
    assert at_schedule("2099-06-01T09:00:00Z", utc(2026, 1, 1)).at == utc(2099, 6, 1, 9, 0)
    assert firing_key("abc", 1700000000) == "schedule:abc:1700000000"
