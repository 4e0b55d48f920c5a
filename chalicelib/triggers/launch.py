"""The launcher's other half: an event a triggered flow's rule heard, and the run it starts.

The rule's input (chalicelib/triggers/rules.py) names the deployment and carries
the event. The event becomes a `TriggerCause`; the deployment's waiting events
decide (chalicelib/triggers/conjunction.py) under a revision check
(chalicelib/triggers/store.py); a decided run is started under a name made from
its events' ids, so a duplicate delivery or a retry after a crash meets the
execution already there.

Parameters come from the events' payloads through `@trigger`'s mappings; a field
missing from the payload keeps the parameter's deployed default. A value the
parameter cannot take refuses the run: the refusal is recorded with its reason
(GET /flows/{flow}/triggers/refused, `step-functions list-runs`), never a silent
drop, never a run with a wrong value.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from typing import Any, Optional

from pydantic import ValidationError

from flowplane.event_types import PUBLISHED_EVENT_SOURCE, RUN_FINISHED_SOURCE
from flowplane.manifest import ParameterSpec, TriggerOnFinishSpec, TriggerSpec, describe_errors
from flowplane.trigger_events import EXECUTION_INPUT_KEY, PublishedEvent, RunFinished, TriggerCause

from .. import keys
from ..aws import Aws
from ..deploy.records import Deployments, live, now_iso
from ..errors import ApiError, BadRequest
from ..settings import Settings
from .conjunction import State, conditions_of, offer, started
from .store import TriggerStates

log = logging.getLogger("flowplane.triggers")

# Refused triggers are kept this long (the table's TTL), then forgotten.
REFUSED_TTL_SECONDS = 30 * 24 * 3600
# Several runs decided in a row (their events all waiting) are started in one invocation.
MAX_STARTS = 10


def trigger_specs(head: dict[str, Any]) -> tuple[Optional[TriggerSpec], Optional[TriggerOnFinishSpec]]:
    """The deployed decorators, as the head keeps them (a JSON string)."""
    doc = json.loads(head.get("triggers") or "{}")
    trigger = TriggerSpec.model_validate(doc["trigger"]) if doc.get("trigger") else None
    finish = TriggerOnFinishSpec.model_validate(doc["trigger_on_finish"]) if doc.get("trigger_on_finish") else None
    return trigger, finish


def cause_of(event: dict[str, Any], stage: str) -> Optional[TriggerCause]:
    """The cause an event stands for, or None for one that starts nothing (a failed upstream
    run, another stage's, a detail that is not the contract's)."""
    source, detail = event.get("source"), event.get("detail")
    try:
        if source == PUBLISHED_EVENT_SOURCE:
            return TriggerCause.from_published(PublishedEvent.model_validate(detail))
        if source == RUN_FINISHED_SOURCE:
            finished = RunFinished.model_validate(detail)
            if finished.status != "SUCCEEDED" or (finished.stage is not None and finished.stage != stage):
                return None
            return TriggerCause.from_run(finished, _epoch(event.get("time")))
    except ValidationError as e:
        log.warning("an event of %s that is not the contract's shape: %s", source, describe_errors(e))
    return None


def _epoch(when: Any) -> int:
    try:
        return int(datetime.fromisoformat(str(when).replace("Z", "+00:00")).timestamp())
    except ValueError:
        return int(time.time())


def mapped_values(trigger: Optional[TriggerSpec], causes: list[TriggerCause]) -> dict[str, Any]:
    """Parameter -> payload value, by each event's mapping; fields not in a payload are left out."""
    mappings = {e.name: e.parameters for e in trigger.events} if trigger else {}
    values: dict[str, Any] = {}
    for cause in causes:
        if cause.type != "event":
            continue
        for parameter, field in mappings.get(cause.name, {}).items():
            if field in cause.payload:
                values[parameter] = cause.payload[field]
    return values


def on_event(aws: Aws, settings: Settings, event: dict[str, Any]) -> dict[str, Any]:
    name, raw = event.get("flow"), event.get("event")
    if not isinstance(name, str) or not isinstance(raw, dict):
        raise BadRequest("a trigger's launch event needs flow and event (the rule's input transformer)", field="event")
    head = Deployments(aws.table).head(name)
    if not live(head) or not head or not head.get("triggers"):
        log.warning("an event for %s, which has no live triggers; ignored", name)
        return {"flow": name, "started": [], "reason": "the flow has no live triggers"}
    trigger, finish = trigger_specs(head)
    stage = str(settings.resource_prefix)
    cause = cause_of(raw, stage)
    if cause is None:
        return {"flow": name, "started": [], "reason": "the event starts nothing"}
    conditions = conditions_of(trigger, finish)
    states = TriggerStates(aws.table, lambda d: (keys.trigger_state_pk(d), keys.TRIGGER_STATE_SK))
    now = int(time.time())

    def arrive(state: State) -> Optional[State]:
        new, changed = offer(state, cause, conditions, name, now)
        # Unchanged but a run decided earlier is still to start (its starter died): start it.
        return new if changed else None

    state = states.change(name, arrive)
    out: dict[str, Any] = {"flow": name, "started": [], "refused": []}
    for _ in range(MAX_STARTS):
        if state.starting is None:
            break
        execution, causes = state.starting
        outcome = _start(aws, settings, name, head, trigger, execution, causes)
        out["refused" if "reason" in outcome else "started"].append(outcome)

        def done(current: State, execution: str = execution) -> Optional[State]:
            if current.starting is None or current.starting[0] != execution:
                return None  # another invocation finished it already
            return started(current, conditions, name)

        state = states.change(name, done)
    return out


def _start(aws: Aws, settings: Settings, name: str, head: dict[str, Any], trigger: Optional[TriggerSpec],
           execution: str, causes: list[TriggerCause]) -> dict[str, Any]:
    from flowplane.datastore.records import production_run_id

    from ..runs.inputs import check_input_size, convert_parameters, execution_input
    from ..runs.production import execution_target, record_started

    specs = [ParameterSpec.model_validate(p) for p in head.get("parameters") or []]
    try:
        values = convert_parameters(specs, mapped_values(trigger, causes))
        check_input_size({**values, EXECUTION_INPUT_KEY: [c.model_dump(mode="json") for c in causes]})
    except ApiError as e:
        return _refuse(aws, name, causes, e.message)
    payload = {**execution_input(values), EXECUTION_INPUT_KEY: [c.model_dump(mode="json") for c in causes]}
    arn = aws.state_machines.start(execution_target(head, settings), execution, payload)
    record_started(aws, arn)
    log.info("started %s of %s for %s", execution, name, ", ".join(c.id for c in causes))
    return {"run_id": production_run_id(execution), "execution_arn": arn, "causes": [c.id for c in causes]}


def _refuse(aws: Aws, name: str, causes: list[TriggerCause], reason: str) -> dict[str, Any]:
    at = now_iso()
    first = causes[0].id if causes else "-"
    aws.table.put({
        "PK": keys.flow_pk(name), "SK": keys.refused_trigger_sk(at, first), "type": "refused_trigger",
        "deployment": name, "at": at, "reason": reason,
        "causes": json.dumps([c.model_dump(mode="json") for c in causes], sort_keys=True),
        "ttl": int(time.time()) + REFUSED_TTL_SECONDS,
    })
    log.warning("refused a trigger of %s (%s): %s", name, ", ".join(c.id for c in causes), reason)
    return {"reason": reason, "causes": [c.id for c in causes], "at": at}


def refused(aws: Aws, name: str, limit: int = 20) -> list[dict[str, Any]]:
    """The deployment's latest refused triggers, newest first."""
    items = aws.table.query(keys.flow_pk(name), keys.REFUSED_TRIGGER_PREFIX, ascending=False, limit=limit)
    return [{"at": i["at"], "reason": i["reason"], "causes": json.loads(i["causes"])} for i in items]
