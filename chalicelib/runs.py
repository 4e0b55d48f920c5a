"""Production runs: trigger, list, terminate; deleting a flow; the schedule's launcher.

Executions start on the state machine ARN (or the production alias when the
stage says so, see Settings.execution_target). The deploy keeps the state
machine's current definition equal to the production version's — a failed
deploy puts the old definition back — so both start the production version;
the ARN form is the one moto can run. A run's id is `sfn-<execution name>`.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any, Optional

from flowplane import limits
from flowplane.datastore.records import PRODUCTION_RUN_PREFIX, is_production_run_id, production_run_id
from flowplane.manifest import ParameterSpec
from flowplane.parameters import ParameterError, convert

from . import deployments as dp
from .aws import Aws, execution_arn
from .errors import BadRequest, Conflict, NotFound
from .names import rule_name
from .schedules import execution_name, parse_time
from .settings import Settings
from .sizes import check_limit, json_size

log = logging.getLogger("flowplane.runs")

def execution_for(run_id: str) -> str:
    if not is_production_run_id(run_id) or len(run_id) == len(PRODUCTION_RUN_PREFIX):
        raise BadRequest(
            f"run id {run_id!r} is not a production run id ({PRODUCTION_RUN_PREFIX}<execution name>)", field="run_id"
        )
    return run_id[len(PRODUCTION_RUN_PREFIX) :]


def _target(head: dict[str, Any], settings: Settings) -> str:
    if settings.execution_target == "alias":
        return f"{head['state_machine_arn']}:production"
    return head["state_machine_arn"]


def convert_parameters(specs: list[ParameterSpec], given: Any) -> dict[str, Any]:
    """Values in their deployed types; unknown or mistyped ones are a 400 naming the parameter."""
    if given is None:
        given = {}
    if not isinstance(given, dict):
        raise BadRequest("parameters must be an object of name -> value", field="parameters")
    by_name = {p.name: p for p in specs}
    out: dict[str, Any] = {}
    for name, value in given.items():
        spec = by_name.get(name)
        if spec is None:
            known = ", ".join(sorted(by_name)) or "none"
            raise BadRequest(
                f"unknown parameter {name!r}; the deployed flow's parameters are: {known}",
                field=f"parameters.{name}",
                parameter=name,
            )
        try:
            out[name] = convert(spec.type, value, name)
        except ParameterError as e:
            raise BadRequest(str(e), field=f"parameters.{name}", parameter=name) from None
    for spec in specs:
        if spec.required and spec.name not in out and not spec.has_default:
            raise BadRequest(
                f"parameter {spec.name!r} is required and has no default", field=f"parameters.{spec.name}",
                parameter=spec.name,
            )
    return out


def execution_input(values: dict[str, Any]) -> dict[str, Any]:
    """The seed's shape: parameters as a JSON string; missing ones take the deployed defaults."""
    return {"Parameters": json.dumps(values, sort_keys=True)}


def check_input_size(values: dict[str, Any]) -> None:
    """Refuse now what every task's Batch job could not carry (flowplane/limits.py): the run
    would start, be recorded, and fail at its first task."""
    limit = limits.MAX_EXECUTION_INPUT_BYTES
    why = "a run's input travels in each task's AWS Batch job, which holds 30 KiB"
    for name, value in values.items():
        size = json_size(execution_input({name: value}))
        check_limit(size, limit, f"parameter {name!r} as the run's input", why, field=f"parameters.{name}", parameter=name)
    check_limit(json_size(execution_input(values)), limit, "the run's parameters as its input", why, field="parameters")


def trigger(
    aws: Aws, settings: Settings, name: str, body: dict[str, Any], execution: Optional[str] = None
) -> dict[str, Any]:
    """Start a production run; `execution` names it (from the request's idempotency key, so a
    repeat of the request meets the existing execution), else a random name."""
    head = dp.Deployments(aws.table).live_head(name)
    specs = [ParameterSpec.model_validate(p) for p in head.get("parameters") or []]
    values = convert_parameters(specs, body.get("parameters"))
    check_input_size(values)
    if any(s.type == "include" for s in specs):
        from .includes import check_included

        check_included(aws, settings, head.get("flow_name") or name, specs, values)
    execution = execution or str(uuid.uuid4())
    arn = aws.state_machines.start(_target(head, settings), execution, execution_input(values))
    _record(aws, arn)
    return {
        "run_id": production_run_id(execution),
        "execution_arn": arn,
        # The Client API files runs under the flow's class name, whatever the deployment's.
        "flow": head.get("flow_name") or name,
        "deployment": name,
        "version": head["production_version"],
        "parameters": values,
        "namespace": f"{dp.TOKEN_PREFIX}{head['production_token']}",
    }


def terminate(aws: Aws, name: str, run_id: str) -> dict[str, Any]:
    execution = execution_for(run_id)
    head = dp.Deployments(aws.table).live_head(name)
    arn = execution_arn(head["state_machine_arn"], execution)
    found = aws.state_machines.execution(arn)
    if found is None:
        raise NotFound(f"no run {run_id!r} of {name!r}", field="run_id")
    if found["status"] != "RUNNING":
        raise Conflict(f"run {run_id!r} is {found['status']}, not RUNNING", field="run_id", status=found["status"])
    aws.state_machines.stop(arn, f"terminated through flowplane ({run_id})")
    _record(aws, arn)
    return {"run_id": run_id, "status": "ABORTED", "execution_arn": arn}


def delete_flow(aws: Aws, name: str, body: dict[str, Any], caller: Optional[str] = None) -> dict[str, Any]:
    """Remove the state machine and the rule; the records and runs stay readable.

    `caller` is the signed identity (chalicelib/identity.py); it wins over the body's user.
    """
    user = caller or body.get("user")
    if not isinstance(user, str) or not user:
        raise BadRequest("user must name who deletes the flow", field="user")
    records = dp.Deployments(aws.table)
    head = records.live_head(name)
    # As Metaflow's `step-functions delete`: the same authorization as a deploy.
    dp.check_authorized(name, head, user, body.get("authorize"))
    rule = rule_name(str(aws.settings.resource_prefix), name)
    aws.schedules.remove(rule)
    if head.get("rule_name") not in (None, rule):  # a head from before rules carried the stage's prefix
        aws.schedules.remove(head["rule_name"])
    if aws.state_machines.find(head["state_machine_arn"]) is not None:
        aws.state_machines.delete(head["state_machine_arn"])
    records.mark_deleted(head, user)
    return {"flow": name, "deleted": True, "state_machine_arn": head["state_machine_arn"]}


def launch(aws: Aws, settings: Settings, event: dict[str, Any]) -> dict[str, Any]:
    """The schedule's target: start the production version with its default parameters, once per tick."""
    name, when, rule = event.get("flow"), event.get("time"), event.get("rule")
    if not isinstance(name, str) or not isinstance(when, str) or not isinstance(rule, str):
        raise BadRequest("a launch event needs flow, time and rule (the rule's input transformer)", field="event")
    parse_time(when)
    head = dp.Deployments(aws.table).head(name)
    if not dp.live(head) or not head or not head.get("schedule"):
        # A rule firing for a flow deleted or redeployed without @schedule: nothing to start.
        log.warning("schedule %s fired for %s, which has no live schedule; ignored", rule, name)
        return {"flow": name, "started": False, "reason": "the flow has no live schedule"}
    if rule.rsplit("/", 1)[-1] != rule_name(str(settings.resource_prefix), name):
        log.warning("rule %s is not %s's rule; ignored", rule, name)
        return {"flow": name, "started": False, "reason": "the rule is not this flow's"}
    execution = execution_name(rule, when)
    arn = aws.state_machines.start(_target(head, settings), execution, execution_input({}))
    _record(aws, arn)
    return {"flow": name, "started": True, "run_id": production_run_id(execution), "execution_arn": arn}


def _record(aws: Aws, execution_arn: str) -> None:
    """The run's record now, so a listing right after shows it (its events follow)."""
    from .recording.service import note_execution

    note_execution(aws, execution_arn)
