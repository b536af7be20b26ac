"""What a schedule is, when it fires, and the checks that refuse a bad one before anything is stored.

Time zones and daylight saving (cron schedules; ``--tz``, default UTC)
---------------------------------------------------------------------
Cron fields are matched against the wall-clock time in the schedule's zone (croniter on zone-aware times),
so ``0 9 * * *`` in Europe/Berlin fires at 09:00 local time all year (07:00 UTC in summer, 08:00 in winter).

* A local time that does not exist (clocks go forward, e.g. 02:30 on the last Sunday of March in Berlin)
  fires **once, at the first valid time after the gap** (03:00 local), never skipped silently.
* A local time that happens twice (clocks go back, 02:00-02:59 on the last Sunday of October in Berlin)
  fires **once**, at its first occurrence, for schedules with fixed hours (``30 2 * * *``, ``0 */2 * * *``).
  Schedules whose hour field is ``*`` (``*/5 * * * *``, ``0 * * * *``) follow real time instead, as
  classic cron does: they keep firing through the repeated hour, so they never pause for an hour.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

CRON, AT, EVERY = "cron", "at", "every"
KINDS = (CRON, AT, EVERY)
_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
def _croniter():  # noqa: ANN202 - croniter's own class
    """croniter, imported on first use: worker processes, which never parse a schedule, need not carry it."""
    from croniter import croniter

    return croniter


# Bounds croniter's search through skipped repeated-hour occurrences (a handful at most per DST change).
_MAX_SKIPS = 100
# Longest delay or interval accepted (about 100 years): far beyond any real schedule, well within what
# datetime and timedelta can represent.
MAX_DELAY_SECONDS = 100 * 365.25 * 86400


class ScheduleInvalid(ValueError):
    """A schedule was refused; the message says why."""


@dataclass(frozen=True)
class Schedule:
    kind: str                 # cron | at | every
    cron: str | None = None
    tz: str = "UTC"
    at: datetime | None = None
    every: float | None = None
    name: str | None = None

    def first_fire(self, now: datetime) -> datetime:
        if self.kind == AT:
            assert self.at is not None
            return self.at
        upcoming = self.next_fire(now)
        assert upcoming is not None
        return upcoming

    def next_fire(self, after: datetime) -> datetime | None:
        """The first firing strictly after ``after`` (aware), in UTC; None for a one-off."""
        if self.kind == AT:
            return None
        if self.kind == EVERY:
            assert self.every is not None
            return after.astimezone(timezone.utc) + timedelta(seconds=self.every)
        return _cron_after(self.cron or "", ZoneInfo(self.tz), after)

    def following(self, fired: datetime, now: datetime) -> datetime | None:
        """The firing to schedule after the one due at ``fired`` was handled at ``now``.

        Missed-firing policy: firings that fell due while no scheduler ran are not replayed. The overdue
        one fires once (the caller did that) and the next is the first one after ``now``, so a scheduler
        returning after an outage fires each schedule once, not a burst. Interval schedules stay on their
        grid (``fired + k * every``), so the handling delay does not make them drift.
        """
        if self.kind == AT:
            return None
        if self.kind == EVERY:
            assert self.every is not None
            steps = max(1, math.floor((now - fired).total_seconds() / self.every) + 1)
            return (fired + timedelta(seconds=steps * self.every)).astimezone(timezone.utc)
        return self.next_fire(max(fired, now))

    def upcoming(self, first: datetime | None, count: int = 3) -> list[datetime]:
        """``first`` (the stored next firing) and the ones after it, as long as no firing is missed."""
        out: list[datetime] = []
        moment = first
        while moment is not None and len(out) < count:
            out.append(moment)
            moment = self.next_fire(moment)
        return out

    def describe(self) -> str:
        if self.kind == CRON:
            return f"cron {self.cron!r} {self.tz}"
        if self.kind == EVERY:
            return f"every {self.every:g} s"
        return "once"

    def to_meta(self) -> dict[str, Any]:
        return {"nd_kind": self.kind, "nd_cron": self.cron, "nd_tz": self.tz, "nd_every": self.every,
                "nd_at": self.at.isoformat() if self.at else None, "nd_name": self.name}

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Schedule:
        at = meta.get("nd_at")
        return cls(kind=meta["nd_kind"], cron=meta.get("nd_cron"), tz=meta.get("nd_tz") or "UTC",
                   at=datetime.fromisoformat(at) if at else None, every=meta.get("nd_every"),
                   name=meta.get("nd_name"))


def _cron_after(expression: str, zone: ZoneInfo, after: datetime) -> datetime:
    follows_real_time = _every_hour(expression)
    it = _croniter()(expression, after.astimezone(zone))
    for _ in range(_MAX_SKIPS):
        instant = it.get_next(datetime).astimezone(timezone.utc)
        if follows_real_time or not _repeated_wall_time(instant, zone):
            return instant
    raise ScheduleInvalid(f"cron expression {expression!r} found no firing time")  # pragma: no cover


def _every_hour(expression: str) -> bool:
    hours = _croniter()(expression).expanded[1]
    return hours == ["*"] or len(set(hours)) >= 24


def _repeated_wall_time(instant: datetime, zone: ZoneInfo) -> bool:
    """True when ``instant`` is the second occurrence of its local wall-clock time (clocks went back)."""
    local = instant.astimezone(zone)
    return local.replace(fold=0).astimezone(timezone.utc) != instant


def check_time_zone(tz: str) -> ZoneInfo:
    try:
        if not tz or not tz.strip():
            raise ValueError(tz)
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleInvalid(f"unknown time zone {tz!r} (use an IANA name such as Europe/Berlin or UTC)") from None


def cron_schedule(expression: str, tz: str = "UTC", name: str | None = None) -> Schedule:
    """A cron schedule (five fields, or @hourly/@daily/@weekly/@monthly/@yearly), evaluated in ``tz``."""
    zone = check_time_zone(tz)
    expression = " ".join((expression or "").split())
    usage = "five fields: minute hour day-of-month month day-of-week, e.g. \"*/5 * * * *\""
    fields = expression.split(" ")
    if not ((len(fields) == 5 or (len(fields) == 1 and fields[0].lower() in _MACROS))
            and _croniter().is_valid(expression)):
        raise ScheduleInvalid(f"invalid cron expression {expression!r} ({usage})")
    try:
        _cron_after(expression, zone, datetime.now(timezone.utc))
    except Exception:  # croniter gives up on dates that never come (e.g. 31 February)
        raise ScheduleInvalid(f"cron expression {expression!r} never fires") from None
    return Schedule(kind=CRON, cron=expression, tz=tz, name=name)


def at_schedule(moment: str | datetime, now: datetime, name: str | None = None, tz: str | None = None) -> Schedule:
    """A one-off run at ``moment``: ISO 8601 with a UTC offset, or without one when ``tz`` names the zone."""
    if isinstance(moment, str):
        text = moment.strip()
        try:
            moment = datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in "Zz" and text else text)
        except ValueError:
            raise ScheduleInvalid(f"invalid time {text!r}: use ISO 8601, e.g. 2026-12-01T09:00:00+01:00") from None
    if moment.tzinfo is None:
        if tz is None:
            raise ScheduleInvalid(f"time {moment.isoformat()} has no UTC offset: add one (e.g. +01:00 or Z) "
                                  "or give a time zone")
        moment = moment.replace(tzinfo=check_time_zone(tz))
    try:
        moment = moment.astimezone(timezone.utc)
    except (OverflowError, ValueError):
        raise ScheduleInvalid(f"time {moment.isoformat()} is outside the years 1 to 9999 in UTC") from None
    if moment <= now:
        raise ScheduleInvalid(f"time {moment.isoformat()} is in the past "
                              f"(now {now.replace(microsecond=0).isoformat()})")
    return Schedule(kind=AT, at=moment, tz=tz or "UTC", name=name)


def in_schedule(delay: str, now: datetime, name: str | None = None) -> Schedule:
    """A one-off run ``delay`` (30s, 5m, 2h, 1d) after ``now``."""
    return at_schedule(now + timedelta(seconds=parse_delay(delay)), now, name)


def parse_delay(text: str) -> float:
    match = _DELAY.match(text or "")
    if not match or float(match.group(1)) <= 0:
        raise ScheduleInvalid(f"invalid delay {text!r}: use a positive number with s, m, h or d, e.g. 30s or 5m")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not seconds <= MAX_DELAY_SECONDS:  # also catches inf, from a number with hundreds of digits
        raise ScheduleInvalid(f"invalid delay {text[:40]!r}: at most {MAX_DELAY_SECONDS / 86400:.0f}d (100 years)")
    return seconds


def every_schedule(text: str, name: str | None = None) -> Schedule:
    """A fixed-interval schedule (whole seconds, at least 1; rq-scheduler's scores are whole seconds)."""
    seconds = parse_delay(text)
    if seconds < 1 or seconds != int(seconds):
        raise ScheduleInvalid(f"invalid interval {text!r}: use a whole number of seconds, at least 1")
    return Schedule(kind=EVERY, every=float(seconds), name=name)
