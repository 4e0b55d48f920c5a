"""DELETE /flows/{flow}: a deployment's state machine, schedule (rule or Scheduler schedule) and trigger
rules go; its records stay.

The head is marked deleted, so its runs and versions stay readable and a deploy
of the same name starts it again.
"""

from __future__ import annotations

from typing import Any, Optional

from .. import keys
from ..aws import Aws
from ..errors import BadRequest
from ..resource_names import rule_name
from .records import Deployments, now_iso
from .tokens import check_authorized


def delete_flow(aws: Aws, name: str, body: dict[str, Any], caller: Optional[str] = None) -> dict[str, Any]:
    """Remove the state machine and the rule; the records and runs stay readable.

    `caller` is the signed identity (chalicelib/identity.py); it wins over the body's user.
    """
    user = caller or body.get("user")
    if not isinstance(user, str) or not user:
        raise BadRequest("user must name who deletes the flow", field="user")
    records = Deployments(aws.table)
    head = records.live_head(name)
    # As Metaflow's `step-functions delete`: the same authorization as a deploy.
    check_authorized(name, head, user, body.get("authorize"))
    rule = rule_name(str(aws.settings.resource_prefix), name)
    aws.schedules.remove(rule)
    if head.get("timezone"):
        aws.zoned_schedules.remove(rule)
    if head.get("schedule"):
        # A deployment made again under this name starts unpaused.
        aws.table.put({"PK": keys.flow_pk(name), "SK": keys.SCHEDULE_STATE_SK, "type": "schedule_state",
                       "paused": False, "changed_by": user, "changed_at": now_iso()})
    if head.get("rule_name") not in (None, rule):  # a head from before rules carried the stage's prefix
        aws.schedules.remove(head["rule_name"])
    if head.get("triggers"):
        from ..triggers import finish_index
        from ..triggers import rules as trigger_rules

        trigger_rules.remove(aws, name)
        finish_index.remove(aws.table, name)
        # Events waiting for the deleted deployment do not wait for the next one of that name.
        aws.table.t.delete_item(Key={"PK": keys.trigger_state_pk(name), "SK": keys.TRIGGER_STATE_SK})
    from ..notifications.config import clear

    clear(aws, name)
    if aws.state_machines.find(head["state_machine_arn"]) is not None:
        aws.state_machines.delete(head["state_machine_arn"])
    records.mark_deleted(head, user)
    return {"flow": name, "deleted": True, "state_machine_arn": head["state_machine_arn"]}
