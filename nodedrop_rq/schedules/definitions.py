"""What a schedule is, and the checks that refuse a bad one before anything is stored."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

CRON, AT, EVERY = "cron", "at", "every"
_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


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
        return self.next_fire(now)

    def next_fire(self, after: datetime) -> datetime | None:
        """The firing after ``after`` (UTC); None for a one-off. Cron times are computed in the schedule's
        time zone, so they follow its daylight saving changes."""
        if self.kind == AT:
            return None
        if self.kind == EVERY:
            assert self.every is not None
            return after + timedelta(seconds=self.every)
        zone = ZoneInfo(self.tz)
        local = after.astimezone(zone)
        upcoming = croniter(self.cron, local).get_next(datetime)
        if upcoming.replace(tzinfo=None) == local.replace(tzinfo=None):
            # The same wall-clock time again (the hour repeated when clocks go back): fire it once.
            upcoming = croniter(self.cron, upcoming).get_next(datetime)
        return upcoming.astimezone(timezone.utc)

    def to_meta(self) -> dict[str, Any]:
        return {"nd_kind": self.kind, "nd_cron": self.cron, "nd_tz": self.tz, "nd_every": self.every,
                "nd_at": self.at.isoformat() if self.at else None, "nd_name": self.name}

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Schedule:
        at = meta.get("nd_at")
        return cls(kind=meta["nd_kind"], cron=meta.get("nd_cron"), tz=meta.get("nd_tz") or "UTC",
                   at=datetime.fromisoformat(at) if at else None, every=meta.get("nd_every"),
                   name=meta.get("nd_name"))


def cron_schedule(expression: str, tz: str = "UTC", name: str | None = None) -> Schedule:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleInvalid(f"unknown time zone {tz!r} (use an IANA name such as Europe/Berlin)") from None
    if not croniter.is_valid(expression):
        raise ScheduleInvalid(f"invalid cron expression {expression!r} (five fields: minute hour day month weekday)")
    return Schedule(kind=CRON, cron=expression, tz=tz, name=name)


def at_schedule(moment: str | datetime, now: datetime, name: str | None = None) -> Schedule:
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment.replace("Z", "+00:00"))
        except ValueError:
            raise ScheduleInvalid(f"invalid time {moment!r}: use ISO 8601, e.g. 2026-12-01T09:00:00+01:00") from None
    if moment.tzinfo is None:
        raise ScheduleInvalid(f"time {moment.isoformat()} has no UTC offset: add one, e.g. +00:00 or Z")
    moment = moment.astimezone(timezone.utc)
    if moment <= now:
        raise ScheduleInvalid(f"time {moment.isoformat()} is in the past")
    return Schedule(kind=AT, at=moment, name=name)


def parse_delay(text: str) -> float:
    match = _DELAY.match(text)
    if not match or float(match.group(1)) <= 0:
        raise ScheduleInvalid(f"invalid delay {text!r}: use a positive number with s, m, h or d, e.g. 30s or 5m")
    return float(match.group(1)) * _UNITS[match.group(2)]


def every_schedule(text: str, name: str | None = None) -> Schedule:
    return Schedule(kind=EVERY, every=parse_delay(text), name=name)
