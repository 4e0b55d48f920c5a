"""AWS cron in a time zone (flowplane/schedule_times.py): pyawscron's AWS syntax over the zone's
wall clock, with EventBridge Scheduler's daylight-saving rules."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from flowplane.schedule_times import (
    ScheduleTimeError, check_zone, iso, next_times, previous_time, times_between,
)

UTC = timezone.utc


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def isos(times) -> list[str]:
    return [iso(t) for t in times]


def test_utc_without_a_zone():
    assert isos(next_times("cron(0 10 * * ? *)", None, at(2026, 3, 1, 10), 2)) == [
        "2026-03-02T10:00:00Z", "2026-03-03T10:00:00Z"]  # strictly after


@pytest.mark.parametrize("expression, first", [
    ("cron(0 10 L * ? *)", "2026-02-28T10:00:00Z"),  # the month's last day
    ("cron(0 10 15W * ? *)", "2026-02-16T10:00:00Z"),  # the 15th is a Sunday: Monday the 16th
    ("cron(0 10 ? * 2#1 *)", "2026-02-02T10:00:00Z"),  # the first Monday (AWS: SUN=1)
    ("cron(0 10 ? * 6L *)", "2026-02-27T10:00:00Z"),  # the last Friday
    ("cron(0 10 ? * MON-FRI 2026)", "2026-02-02T10:00:00Z"),
])
def test_aws_cron_syntax(expression, first):
    assert isos(next_times(expression, None, at(2026, 2, 1), 1)) == [first]


def test_spring_forward_skips_the_missing_local_time():
    # Europe/Amsterdam, 29 March 2026: 02:00 CET becomes 03:00 CEST.
    assert isos(next_times("cron(30 2 * * ? *)", "Europe/Amsterdam", at(2026, 3, 27, 12), 3)) == [
        "2026-03-28T01:30:00Z", "2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z"]
    # Half-hourly through the change: 02:00 and 02:30 local never happen.
    assert isos(next_times("cron(0/30 1-3 * * ? *)", "Europe/Amsterdam", at(2026, 3, 28, 23, 59), 4)) == [
        "2026-03-29T00:00:00Z", "2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z"]


def test_fall_back_fires_a_repeated_local_time_once_at_its_first_occurrence():
    # 25 October 2026: 03:00 CEST becomes 02:00 CET, so 02:00-02:59 happens twice.
    assert isos(next_times("cron(30 2 * * ? *)", "Europe/Amsterdam", at(2026, 10, 24, 12), 2)) == [
        "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]
    every_half_hour = next_times("cron(0/30 * * * ? *)", "Europe/Amsterdam", at(2026, 10, 24, 23, 45), 5)
    assert isos(every_half_hour) == ["2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z",
                                     "2026-10-25T02:00:00Z", "2026-10-25T02:30:00Z", "2026-10-25T03:00:00Z"]
    # Asked from inside the repeated hour, nothing of the first pass comes back.
    assert isos(next_times("cron(45 2 * * ? *)", "Europe/Amsterdam", at(2026, 10, 25, 1, 10), 1)) == [
        "2026-10-26T01:45:00Z"]


def test_new_york_and_a_zone_without_dst():
    assert isos(next_times("cron(0 6 * * ? *)", "America/New_York", at(2026, 3, 7, 12), 3)) == [
        "2026-03-08T10:00:00Z", "2026-03-09T10:00:00Z", "2026-03-10T10:00:00Z"]  # EDT from 8 March
    assert isos(next_times("cron(0 6 * * ? *)", "Asia/Kolkata", at(2026, 3, 7, 12), 1)) == ["2026-03-08T00:30:00Z"]


def test_times_between_is_inclusive_and_capped():
    times = times_between("cron(0 * * * ? *)", None, at(2026, 1, 1, 0), at(2026, 1, 1, 3), 10)
    assert isos(times) == ["2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z", "2026-01-01T03:00:00Z"]
    assert len(times_between("cron(0 * * * ? *)", None, at(2026, 1, 1), at(2026, 2, 1), 5)) == 6  # limit + 1
    assert times_between("cron(0 0 1 1 ? 2020)", None, at(2026, 1, 1), at(2027, 1, 1), 5) == []


def test_previous_time():
    assert previous_time("cron(30 2 * * ? *)", "Europe/Amsterdam", at(2026, 3, 30, 12), timedelta(days=3)) == at(2026, 3, 30, 0, 30)
    assert previous_time("cron(0 0 1 1 ? *)", None, at(2026, 3, 30), timedelta(days=3)) is None


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../etc/passwd"])
def test_an_unknown_zone_is_refused_naming_it(zone):
    with pytest.raises(ScheduleTimeError, match="unknown time zone"):
        check_zone(zone)


def test_a_bad_expression_is_refused():
    with pytest.raises(ScheduleTimeError):
        next_times("rate(5 minutes)", None, at(2026, 1, 1), 1)
    with pytest.raises(ScheduleTimeError):
        next_times("cron(0 10 * *)", None, at(2026, 1, 1), 1)
