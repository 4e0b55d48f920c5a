"""`@schedule` as an EventBridge rule (UTC) or an EventBridge Scheduler schedule (a time zone),
and the launcher both fire.

The expression is checked with a real parser of AWS's six-field cron (moto
accepts nonsense; AWS does not), the zone against the IANA database. A flow
without a zone keeps its EventBridge rule, as every deployment before zones had;
one with a zone gets a Scheduler schedule (`ScheduleExpressionTimezone`) of the
same name (chalicelib/resource_names.py). Both target the launcher with the
flow's name, the schedule's name and the scheduled time; the launcher names the
execution from that name and time, so a second delivery of the same tick, the
same tick fired by the other kind while a deploy switches kinds, or a backfill of
that time all find the execution already there.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Optional

from aws_cron_expression_validator.validator import AWSCronExpressionError, AWSCronExpressionValidator

from flowplane.manifest import ScheduleSpec
from flowplane.schedule_times import ScheduleTimeError, check_zone

from ..errors import BadRequest

if TYPE_CHECKING:
    from ..aws import Aws

_EXEC_NAME_MAX = 80


def schedule_expression(spec: Optional[ScheduleSpec]) -> Optional[str]:
    """The validated EventBridge expression, or None for a flow without @schedule."""
    if spec is None:
        return None
    schedule_timezone(spec)
    expression = spec.expression
    if expression is None:
        return None
    inner = expression[len("cron(") : -1] if expression.startswith("cron(") and expression.endswith(")") else ""
    try:
        AWSCronExpressionValidator.validate(inner)
    except AWSCronExpressionError as e:
        raise BadRequest(
            f"invalid schedule expression {expression!r}: {e} (AWS cron has six fields: "
            "minutes hours day-of-month month day-of-week year, one of the day fields '?')",
            field="schedule.cron" if spec.cron else "schedule",
            expression=expression,
        ) from None
    return expression


def schedule_timezone(spec: Optional[ScheduleSpec]) -> Optional[str]:
    """The checked IANA zone of `@schedule(timezone=...)`, or None (a UTC rule)."""
    if spec is None or not spec.timezone:
        return None
    try:
        return check_zone(spec.timezone)
    except ScheduleTimeError as e:
        raise BadRequest(f"@schedule(timezone=...): {e}", field="schedule.timezone") from None


def scheduler_input(name: str) -> str:
    """The Scheduler target's Input: the launcher's event, filled by EventBridge Scheduler's
    context attributes (the scheduled time, in UTC, and the schedule's ARN)."""
    return json.dumps({"flow": name, "time": SCHEDULED_TIME_ATTRIBUTE, "rule": SCHEDULE_ARN_ATTRIBUTE})


SCHEDULED_TIME_ATTRIBUTE = "<aws.scheduler.scheduled-time>"
SCHEDULE_ARN_ATTRIBUTE = "<aws.scheduler.schedule-arn>"


def input_transformer(name: str) -> dict[str, Any]:
    """What the launcher receives: {"flow": name, "time": scheduled time, "rule": rule ARN}.

    Unquoted placeholders in a JSON template are filled with JSON strings by EventBridge.
    """
    return {
        "InputPathsMap": {"time": "$.time", "rule": "$.resources[0]"},
        "InputTemplate": '{"flow": %s, "time": <time>, "rule": <rule>}' % json.dumps(name),
    }


def execution_name(rule: str, scheduled_time: str) -> str:
    """Deterministic from the rule and the tick: a duplicate delivery names the same execution."""
    when = parse_time(scheduled_time).strftime("%Y%m%dT%H%M%SZ")
    rule_part = re.sub(r"[^A-Za-z0-9_-]", "-", rule.rsplit("/", 1)[-1])
    room = _EXEC_NAME_MAX - len(when) - 1
    if len(rule_part) > room:
        digest = hashlib.sha256(rule_part.encode()).hexdigest()[:8]
        rule_part = f"{rule_part[: room - 9]}-{digest}"
    return f"{rule_part}-{when}"


def parse_time(value: str) -> datetime:
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (TypeError, ValueError, AttributeError):
        raise BadRequest(f"scheduled time {value!r} is not an ISO-8601 time", field="time") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc)


def apply_schedule(aws: "Aws", name: str, rule: str, expression: Optional[str], timezone: Optional[str],
                   paused: bool, had_timezone: bool) -> None:
    """Put the deployment's schedule as a rule (UTC) or a Scheduler schedule (zoned), disabled when
    paused, and remove the other kind. The new one is put first: a tick both fire while
    they overlap names one execution."""
    description = f"flowplane schedule of {name}"
    if expression and timezone:
        aws.zoned_schedules.put(rule, expression, timezone, description, aws.launcher_arn, aws.scheduler_role_arn,
                                scheduler_input(name), enabled=not paused)
        aws.schedules.remove(rule)
        return
    if expression:
        aws.schedules.put(rule, expression, description, aws.launcher_arn, input_transformer(name), enabled=not paused)
    else:
        # Redeploying without @schedule removes it.
        aws.schedules.remove(rule)
    if had_timezone:
        aws.zoned_schedules.remove(rule)
