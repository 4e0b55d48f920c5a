"""`@schedule` as an EventBridge rule, and the launcher it fires.

The expression is checked with a real parser of AWS's six-field cron (moto
accepts nonsense; AWS does not). The rule (named in chalicelib/resource_names.py)
targets the launcher Lambda through an input transformer that hands it the flow's name, the rule and the
scheduled time; the launcher names the execution from the rule and that time,
so a second delivery of the same tick finds the execution already there.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from typing import Any, Optional

from aws_cron_expression_validator.validator import AWSCronExpressionError, AWSCronExpressionValidator

from flowplane.manifest import ScheduleSpec

from ..errors import BadRequest

_EXEC_NAME_MAX = 80


def schedule_expression(spec: Optional[ScheduleSpec]) -> Optional[str]:
    """The validated EventBridge expression, or None for a flow without @schedule."""
    if spec is None:
        return None
    if spec.timezone:
        # As Metaflow: EventBridge rules fire in UTC; only EventBridge Scheduler takes a timezone.
        raise BadRequest(
            f"@schedule(timezone={spec.timezone!r}): AWS Step Functions does not support scheduling "
            "with a timezone; EventBridge rules run in UTC, so write the cron in UTC",
            field="schedule.timezone",
        )
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
