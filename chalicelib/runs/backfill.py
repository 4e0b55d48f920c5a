"""POST /flows/{flow}/backfill: one run per scheduled time in a range, at most N running at once.

Each time's run is started by the schedule's own path (production.start_scheduled):
named from the schedule and the time, with the time in its input, so the tick
itself, a repeat of the backfill, or one interrupted and asked again, start no
second run of a time. Progress is one item per deployment and range
(chalicelib/keys.py: BACKFILL#): the next time to start and the runs still going.
Each call advances it: drops the runs that ended, starts times until
`max_parallel` run. The SDK calls again until it is done; calling again after an
interruption resumes where it stopped.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from flowplane.datastore.records import production_run_id
from flowplane.schedule_times import ScheduleTimeError, iso, next_times, times_between

from .. import keys
from ..aws import Aws, execution_arn
from ..deploy.records import now_iso
from ..deploy.schedules import execution_name
from ..deploy.tokens import check_authorized
from ..errors import BadRequest
from ..resource_names import rule_name
from ..settings import Settings
from .production import start_scheduled
from .schedule_view import parse_range_time, scheduled_head

# More runs than this needs `yes` (the SDK's --yes); more than HARD_MAX is refused.
CONFIRM_ABOVE = 1000
HARD_MAX = 10000
MAX_PARALLEL = 100
RUNNING = "RUNNING"
DONE = "DONE"


def _max_parallel(value: Any) -> int:
    if value is None:
        return 1
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_PARALLEL:
        raise BadRequest(f"max_parallel must be a whole number from 1 to {MAX_PARALLEL}", field="max_parallel")
    return value


def backfill(aws: Aws, settings: Settings, name: str, body: dict[str, Any], caller: Optional[str],
             now: Optional[datetime] = None) -> dict[str, Any]:
    user = caller or body.get("user")
    if not isinstance(user, str) or not user:
        raise BadRequest("user must name who backfills", field="user")
    head = scheduled_head(aws, name)
    check_authorized(name, head, user, body.get("authorize"))
    expression, zone = head["schedule"], head.get("timezone")
    start = parse_range_time(body.get("start"), "start", zone)
    end = parse_range_time(body.get("end"), "end", zone)
    parallel = _max_parallel(body.get("max_parallel"))
    now = now or datetime.now(timezone.utc)
    if end < start:
        raise BadRequest(f"end ({iso(end)}) is before start ({iso(start)})", field="end")
    if end > now:
        raise BadRequest(f"end ({iso(end)}) is in the future: the schedule itself starts those runs", field="end")
    try:
        times = times_between(expression, zone, start, end, HARD_MAX)
    except ScheduleTimeError as e:
        raise BadRequest(str(e), field="schedule") from None
    if not times:
        raise BadRequest(f"{expression} ({zone or 'UTC'}) has no scheduled time from {iso(start)} to {iso(end)}",
                         field="start")
    if len(times) > HARD_MAX:
        raise BadRequest(f"the range holds more than {HARD_MAX} scheduled times; backfill it in parts", field="end")
    if len(times) > CONFIRM_ABOVE and body.get("yes") is not True:
        raise BadRequest(f"the range holds {len(times)} scheduled times, more than {CONFIRM_ABOVE}: "
                         "confirm with --yes", field="yes", times=len(times))
    key = {"PK": keys.flow_pk(name), "SK": keys.backfill_sk(iso(start), iso(end))}
    record = aws.table.get(key["PK"], key["SK"]) or {
        **key, "type": "backfill", "times": len(times), "next": iso(times[0]), "started": 0, "in_flight": [],
        "revision": 0, "by": user, "created_at": now_iso(), "status": RUNNING,
    }
    return _advance(aws, settings, name, head, record, parallel, end)


def _advance(aws: Aws, settings: Settings, name: str, head: dict[str, Any], record: dict[str, Any],
             parallel: int, end: datetime) -> dict[str, Any]:
    rule = rule_name(str(settings.resource_prefix), name)
    in_flight = [e for e in record.get("in_flight") or [] if _running(aws, head, e)]
    started_now = []
    nxt: Optional[str] = record.get("next")
    while nxt is not None and len(in_flight) < parallel:
        start_scheduled(aws, settings, name, head, nxt)
        execution = execution_name(rule, nxt)
        in_flight.append(execution)
        started_now.append(production_run_id(execution))
        record["started"] = int(record.get("started", 0)) + 1
        following = next_times(head["schedule"], head.get("timezone"), datetime.fromisoformat(nxt.replace("Z", "+00:00")), 1)
        nxt = iso(following[0]) if following and following[0] <= end else None
    revision = int(record.get("revision", 0))
    record.update({"in_flight": in_flight, "next": nxt, "revision": revision + 1, "max_parallel": parallel,
                   "status": DONE if nxt is None and not in_flight else RUNNING, "updated_at": now_iso()})
    if record["next"] is None:
        record.pop("next")
    # Two advances at once start the same names (one run each); the later write wins harmlessly.
    aws.table.put(record)
    return {
        "flow": name, "start": record["SK"].split("#")[1], "end": record["SK"].split("#")[2],
        "times": int(record["times"]), "started": int(record["started"]),
        "in_flight": [production_run_id(e) for e in in_flight], "started_now": started_now,
        "remaining": int(record["times"]) - int(record["started"]), "status": record["status"],
        "max_parallel": parallel,
    }


def _running(aws: Aws, head: dict[str, Any], execution: str) -> bool:
    found = aws.state_machines.execution(execution_arn(head["state_machine_arn"], execution))
    return found is not None and found.get("status") == "RUNNING"
