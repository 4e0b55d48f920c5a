"""When a schedule fires: AWS's six-field cron evaluated in a time zone, as EventBridge Scheduler does.

pyawscron reads AWS's cron (`?`, `L`, `W`, `#`, the year field) but only in UTC. A
zoned schedule is the same cron over the zone's wall clock, so this adapter walks
the wall clock with pyawscron and maps each wall time to the instant it names,
with EventBridge Scheduler's daylight-saving rules: a wall time the spring change
skips does not fire, and a wall time the autumn change repeats fires once, at its
first occurrence. The SDK (preview), the control plane (backfill) and the embedded
plane (firing) all ask here, so what the preview shows is what fires.

A leaf module: the Lambda imports it (pyawscron and zoneinfo only).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterator, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = timezone.utc
# A cron that matches nothing for this many wall-clock years is treated as never firing
# (pyawscron walks year by year; AWS's year field ends at 2199).
_HORIZON_YEARS = 200


class ScheduleTimeError(ValueError):
    """An expression or a time zone the schedule cannot be evaluated with."""


def zone(name: Optional[str]) -> ZoneInfo | timezone:
    """The IANA zone `name` (None: UTC); a ScheduleTimeError naming an unknown one."""
    if name is None:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleTimeError(
            f"unknown time zone {name!r}: use an IANA name such as 'Europe/Amsterdam' or 'America/New_York'"
        ) from None


def check_zone(name: str) -> str:
    """`name` if it is a time zone EventBridge Scheduler and this machine both know, else a ScheduleTimeError."""
    zone(name)
    return name


def cron_body(expression: str) -> str:
    if not (expression.startswith("cron(") and expression.endswith(")")):
        raise ScheduleTimeError(f"{expression!r} is not a cron(...) expression")
    return expression[len("cron(") : -1].strip()


def _wall_cron(expression: str) -> object:
    from pyawscron import AWSCron

    try:
        return AWSCron(cron_body(expression))
    except ScheduleTimeError:
        raise
    except Exception as e:
        raise ScheduleTimeError(f"cannot read {expression!r}: {e}") from None


def _instant(wall: datetime, tz: ZoneInfo | timezone) -> Optional[datetime]:
    """The UTC instant a naive wall time names in `tz`; None when the zone skips it.

    A repeated wall time (fold 0 and 1 both exist) names its first occurrence.
    """
    local = wall.replace(tzinfo=tz, fold=0)
    instant = local.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) != wall:
        return None  # in the gap of a spring change: this wall time does not exist
    return instant


def fire_times(expression: str, timezone_name: Optional[str], after: datetime) -> Iterator[datetime]:
    """The instants (UTC, ascending) strictly after `after` at which the cron fires in the zone."""
    tz = zone(timezone_name)
    cron = _wall_cron(expression)
    after = after.astimezone(UTC) if after.tzinfo else after.replace(tzinfo=UTC)
    # Start a little before `after` on the wall clock: an autumn change can put the next
    # instant at a wall time earlier than `after`'s own (the clock went back).
    wall = after.astimezone(tz).replace(tzinfo=None, fold=0) - timedelta(hours=3)
    limit = wall.year + _HORIZON_YEARS
    while True:
        try:
            nxt = cron.occurrence(wall.replace(tzinfo=UTC)).next()  # type: ignore[attr-defined]
        except Exception as e:
            raise ScheduleTimeError(f"cannot evaluate {expression!r} after {wall}: {e}") from None
        if nxt is None:
            return
        wall = nxt.replace(tzinfo=None)
        if wall.year > limit:
            return
        instant = _instant(wall, tz)
        if instant is not None and instant > after:
            yield instant


def next_times(expression: str, timezone_name: Optional[str], after: datetime, count: int) -> list[datetime]:
    """The next `count` fire instants after `after`."""
    out: list[datetime] = []
    for t in fire_times(expression, timezone_name, after):
        if len(out) >= count:
            break
        out.append(t)
    return out


def times_between(
    expression: str, timezone_name: Optional[str], start: datetime, end: datetime, limit: int
) -> list[datetime]:
    """The fire instants in [start, end], at most `limit` + 1 of them (so a caller sees "more than limit")."""
    out: list[datetime] = []
    for t in fire_times(expression, timezone_name, start - timedelta(microseconds=1)):
        if t > end or len(out) > limit:
            break
        out.append(t)
    return out


def previous_time(expression: str, timezone_name: Optional[str], before: datetime, lookback: timedelta) -> Optional[datetime]:
    """The latest fire instant at or before `before`, looking back at most `lookback`; None if none."""
    latest = None
    for t in fire_times(expression, timezone_name, before - lookback):
        if t > before:
            break
        latest = t
    return latest


def iso(t: datetime) -> str:
    """A fire instant as AWS writes scheduled times: `2026-03-29T01:00:00Z`."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
