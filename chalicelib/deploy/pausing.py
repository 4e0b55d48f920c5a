"""Pausing a deployment's schedule: the switch, and the rule or Scheduler schedule it disables.

The switch is its own item (chalicelib/keys.py: SCHEDULE_STATE), the truth: the
launcher starts nothing while it says paused, and every deploy puts the schedule
disabled while it does, so a redeploy keeps the pause. Disabling the rule or
schedule itself only saves AWS the firing. Changing it takes the same
authorization as a deploy (the last deployer, or the production token).
"""

from __future__ import annotations

from typing import Any, Optional

from .. import keys
from ..aws import Aws
from ..errors import BadRequest, Conflict
from ..resource_names import rule_name
from .records import Deployments, now_iso
from .tokens import check_authorized


def is_paused(aws: Aws, name: str) -> bool:
    item = aws.table.get(keys.flow_pk(name), keys.SCHEDULE_STATE_SK)
    return bool(item and item.get("paused"))


def pause_state(aws: Aws, name: str) -> dict[str, Any]:
    """{"paused", "changed_by", "changed_at"} (never paused: False and None)."""
    item = aws.table.get(keys.flow_pk(name), keys.SCHEDULE_STATE_SK) or {}
    return {"paused": bool(item.get("paused")), "changed_by": item.get("changed_by"), "changed_at": item.get("changed_at")}


def set_paused(aws: Aws, name: str, paused: bool, body: dict[str, Any], caller: Optional[str]) -> dict[str, Any]:
    """POST /flows/{flow}/schedule/pause|unpause: a 4xx and no change for an unknown, unscheduled
    or not-yours deployment; repeating it changes nothing more."""
    user = caller or body.get("user")
    if not isinstance(user, str) or not user:
        raise BadRequest("user must name who pauses the schedule", field="user")
    head = Deployments(aws.table).live_head(name)
    check_authorized(name, head, user, body.get("authorize"))
    if not head.get("schedule"):
        raise Conflict(f"{name!r} has no @schedule: there is nothing to pause or unpause", field="flow")
    aws.table.put({"PK": keys.flow_pk(name), "SK": keys.SCHEDULE_STATE_SK, "type": "schedule_state",
                   "paused": paused, "changed_by": user, "changed_at": now_iso()})
    apply_state(aws, name, head, paused)
    return {"flow": name, "paused": paused, "schedule": head["schedule"], "timezone": head.get("timezone")}


def apply_state(aws: Aws, name: str, head: dict[str, Any], paused: bool) -> None:
    """Enable or disable whichever of the rule or the Scheduler schedule the head deployed."""
    rule = head.get("rule_name") or rule_name(str(aws.settings.resource_prefix), name)
    if head.get("timezone"):
        aws.zoned_schedules.set_enabled(rule, not paused)
    else:
        aws.schedules.set_enabled(rule, not paused)
