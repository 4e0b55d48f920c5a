"""Production runs: trigger, terminate, and the schedule's launcher.

Executions start on the state machine ARN (or the production alias when the
stage says so, see Settings.execution_target). The deploy keeps the state
machine's current definition equal to the production version's — a failed
deploy puts the old definition back — so both start the production version;
the ARN form is the one moto can run. A run's id is `sfn-<execution name>`.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Optional

from flowplane.datastore.records import PRODUCTION_RUN_PREFIX, is_production_run_id, production_run_id
from flowplane.manifest import ParameterSpec

from ..aws import Aws, execution_arn
from ..deploy.records import Deployments, live
from ..deploy.schedules import execution_name, parse_time
from ..deploy.tokens import TOKEN_PREFIX
from ..errors import BadRequest, Conflict, NotFound
from ..resource_names import rule_name
from ..settings import Settings
from .inputs import check_input_size, convert_parameters, execution_input

log = logging.getLogger("flowplane.runs")


def execution_for(run_id: str) -> str:
    if not is_production_run_id(run_id) or len(run_id) == len(PRODUCTION_RUN_PREFIX):
        raise BadRequest(
            f"run id {run_id!r} is not a production run id ({PRODUCTION_RUN_PREFIX}<execution name>)", field="run_id"
        )
    return run_id[len(PRODUCTION_RUN_PREFIX) :]


def execution_target(head: dict[str, Any], settings: Settings) -> str:
    if settings.execution_target == "alias":
        return f"{head['state_machine_arn']}:production"
    return head["state_machine_arn"]


def trigger(
    aws: Aws, settings: Settings, name: str, body: dict[str, Any], execution: Optional[str] = None
) -> dict[str, Any]:
    """Start a production run; `execution` names it (from the request's idempotency key, so a
    repeat of the request meets the existing execution), else a random name."""
    head = Deployments(aws.table).live_head(name)
    specs = [ParameterSpec.model_validate(p) for p in head.get("parameters") or []]
    values = convert_parameters(specs, body.get("parameters"))
    check_input_size(values)
    if any(s.type == "include" for s in specs):
        from .includes import check_included

        check_included(aws, settings, head.get("flow_name") or name, specs, values)
    execution = execution or str(uuid.uuid4())
    arn = aws.state_machines.start(execution_target(head, settings), execution, execution_input(values))
    record_started(aws, arn)
    return {
        "run_id": production_run_id(execution),
        "execution_arn": arn,
        # The Client API files runs under the flow's class name, whatever the deployment's.
        "flow": head.get("flow_name") or name,
        "deployment": name,
        "version": head["production_version"],
        "parameters": values,
        "namespace": f"{TOKEN_PREFIX}{head['production_token']}",
    }


def terminate(aws: Aws, name: str, run_id: str) -> dict[str, Any]:
    execution = execution_for(run_id)
    head = Deployments(aws.table).live_head(name)
    arn = execution_arn(head["state_machine_arn"], execution)
    found = aws.state_machines.execution(arn)
    if found is None:
        raise NotFound(f"no run {run_id!r} of {name!r}", field="run_id")
    if found["status"] != "RUNNING":
        raise Conflict(f"run {run_id!r} is {found['status']}, not RUNNING", field="run_id", status=found["status"])
    aws.state_machines.stop(arn, f"terminated through flowplane ({run_id})")
    record_started(aws, arn)
    return {"run_id": run_id, "status": "ABORTED", "execution_arn": arn}


def launch(aws: Aws, settings: Settings, event: dict[str, Any]) -> dict[str, Any]:
    """The schedule's target: start the production version with its default parameters, once per tick."""
    name, when, rule = event.get("flow"), event.get("time"), event.get("rule")
    if not isinstance(name, str) or not isinstance(when, str) or not isinstance(rule, str):
        raise BadRequest("a launch event needs flow, time and rule (the rule's input transformer)", field="event")
    parse_time(when)
    head = Deployments(aws.table).head(name)
    if not live(head) or not head or not head.get("schedule"):
        # A rule firing for a flow deleted or redeployed without @schedule: nothing to start.
        log.warning("schedule %s fired for %s, which has no live schedule; ignored", rule, name)
        return {"flow": name, "started": False, "reason": "the flow has no live schedule"}
    if rule.rsplit("/", 1)[-1] != rule_name(str(settings.resource_prefix), name):
        log.warning("rule %s is not %s's rule; ignored", rule, name)
        return {"flow": name, "started": False, "reason": "the rule is not this flow's"}
    from ..deploy.pausing import is_paused

    if is_paused(aws, name):
        log.info("schedule of %s fired at %s while paused; nothing started", name, when)
        return {"flow": name, "started": False, "reason": "the schedule is paused"}
    return start_scheduled(aws, settings, name, head, when)


def start_scheduled(aws: Aws, settings: Settings, name: str, head: dict[str, Any], when: str) -> dict[str, Any]:
    """The run of one scheduled time: named from the schedule and the time, so the tick, a second
    delivery of it and a backfill of that time all start one run."""
    rule = rule_name(str(settings.resource_prefix), name)
    execution = execution_name(rule, when)
    arn = aws.state_machines.start(execution_target(head, settings), execution, scheduled_input(when))
    record_started(aws, arn)
    return {"flow": name, "started": True, "run_id": production_run_id(execution), "execution_arn": arn}


def scheduled_input(when: str) -> dict[str, Any]:
    """A scheduled run's input: the deployed defaults and its scheduled time (the same for every
    start of that time, so Step Functions takes a repeat for the execution already there)."""
    from flowplane.schedule_times import iso
    from flowplane.trigger_events import SCHEDULED_TIME_KEY

    return {**execution_input({}), SCHEDULED_TIME_KEY: iso(parse_time(when))}


def record_started(aws: Aws, execution_arn: str) -> None:
    """The run's record now, so a listing right after shows it (its events follow)."""
    from ..recording.service import note_execution

    note_execution(aws, execution_arn)
