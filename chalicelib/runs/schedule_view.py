"""GET /flows/{flow}/schedule: a deployment's production schedule, its pause state, its last
scheduled runs and its next fire times (flowplane/schedule_times.py: the instants that fire)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from flowplane.datastore.records import production_run_id
from flowplane.schedule_times import ScheduleTimeError, iso, next_times

from ..aws import Aws
from ..deploy.pausing import pause_state
from ..deploy.records import Deployments
from ..deploy.schedules import execution_name
from ..errors import BadRequest, Conflict
from ..resource_names import rule_name

MAX_NEXT = 100
DEFAULT_NEXT = 5
# How many of the deployment's latest runs are searched for the scheduled ones.
RECENT_RUNS = "100"
LAST_SHOWN = 10


def parse_next(value: Optional[str]) -> int:
    if value is None:
        return DEFAULT_NEXT
    try:
        n = int(value)
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_NEXT:
        raise BadRequest(f"next must be a whole number from 1 to {MAX_NEXT}, got {value[:40]!r}", field="next")
    return n


def scheduled_head(aws: Aws, name: str) -> dict[str, Any]:
    """The live head of a deployment with a schedule: a 404 for an unknown one, 409 for one without."""
    head = Deployments(aws.table).live_head(name)
    if not head.get("schedule"):
        raise Conflict(f"{name!r} has no @schedule", field="flow")
    return head


def scheduled_time_of(run_id: str, prefix: str) -> Optional[str]:
    """The scheduled time a run's name carries (`sfn-<schedule>-<YYYYmmddTHHMMSSZ>`), or None."""
    if not run_id.startswith(prefix):
        return None
    try:
        when = datetime.strptime(run_id[len(prefix):], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    except ValueError:
        return None
    return iso(when)


def view(aws: Aws, name: str, count: int, after: Optional[str] = None) -> dict[str, Any]:
    """`after`: the fire times after this time (ISO 8601, in the schedule's zone without an
    offset) instead of after now."""
    from ..query.reads import Reads

    head = scheduled_head(aws, name)
    expression, zone = head["schedule"], head.get("timezone")
    now = datetime.now(timezone.utc)
    since = parse_range_time(after, "after", zone) if after is not None else now
    try:
        upcoming = [iso(t) for t in next_times(expression, zone, since, count)]
    except ScheduleTimeError as e:
        raise BadRequest(str(e), field="schedule") from None
    rule = rule_name(str(aws.settings.resource_prefix), name)
    # The name a run of any time gets, minus the time: what marks a run as scheduled.
    prefix = production_run_id(execution_name(rule, "2000-01-01T00:00:00Z"))[: -len("20000101T000000Z")]
    flow = head.get("flow_name") or name
    runs = Reads(aws.table.t).runs(flow, deployment=name, limit=RECENT_RUNS)["runs"]
    last = []
    for r in runs:
        when = scheduled_time_of(r["run_id"], prefix)
        if when is not None:
            last.append({"run_id": r["run_id"], "scheduled_time": when, "status": r.get("production_status") or r.get("status"),
                         "started_at": r.get("started_at"), "stopped_at": r.get("stopped_at")})
    last.sort(key=lambda r: r["scheduled_time"], reverse=True)
    return {
        "flow": name,
        "schedule": expression,
        "timezone": zone or "UTC",
        "kind": "scheduler" if zone else "rule",
        **pause_state(aws, name),
        "now": iso(now),
        "after": iso(since),
        "next": upcoming,
        "last_runs": last[:LAST_SHOWN],
    }


def parse_range_time(value: Any, field: str, zone: Optional[str]) -> datetime:
    """An ISO 8601 time; without an offset it is read in the schedule's zone (UTC for a rule)."""
    from flowplane.schedule_times import zone as zone_of

    if not isinstance(value, str) or not value:
        raise BadRequest(f"{field} must be an ISO 8601 time, e.g. 2026-03-01 or 2026-03-01T06:00", field=field)
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{field} {value[:60]!r} is not an ISO 8601 time", field=field) from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=zone_of(zone))
    return t.astimezone(timezone.utc)

