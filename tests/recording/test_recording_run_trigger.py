"""A triggered run's causes, read from its execution input, are kept on its record.

The launcher starts a triggered run with `{"Parameters": ..., "Trigger": [causes]}`; the
recorder keeps the causes (`trigger` in the run's document, chalicelib/TABLE.md) as it
keeps the parameters: whatever the order and number of the run's events, and an event
without input leaves them as they are.
"""

from __future__ import annotations

import itertools
import json
from typing import Any, Optional

import pytest

from chalicelib import keys
from chalicelib.recording import run_records
from flowplane.trigger_events import EXECUTION_INPUT_KEY, PublishedEvent, RunFinished, TriggerCause
from tests.support.recording_events import T0, deliver, execution_detail, execution_event

FLOW = "ParameterFlow"
CAUSES = [
    TriggerCause.from_published(PublishedEvent(name="data_updated", id="ev-1", timestamp=1_764_000_000,
                                               payload={"alpha": 0.5, "table": "sales"})),
    TriggerCause.from_run(RunFinished(flow="BranchFlow", run_id="sfn-up", status="SUCCEEDED",
                                      namespace="production:tok"), timestamp=1_764_000_100),
]

pytestmark = pytest.mark.aws


@pytest.fixture
def deployed(control_plane):
    cp = control_plane
    assert cp.deploy("parameter_flow.py")["status"] == "DEPLOYED"
    return cp


def with_input(detail: dict[str, Any], causes: Optional[list[TriggerCause]]) -> dict[str, Any]:
    """The detail with the execution input the launcher gives a triggered run (None: no input)."""
    if causes is None:
        return {**detail, "input": None}
    doc = json.loads(detail["input"])
    doc[EXECUTION_INPUT_KEY] = [json.loads(c.model_dump_json()) for c in causes]
    return {**detail, "input": json.dumps(doc)}


def run_doc(cp, run_id: str) -> dict[str, Any]:
    item = cp.aws.table.t.get_item(Key={"PK": keys.flow_pk(FLOW), "SK": keys.run_sk(run_id)})["Item"]
    return run_records.decode(item)


def test_the_causes_are_kept_with_the_run_and_served_with_it(deployed):
    cp = deployed
    detail = execution_detail(FLOW, "t1", "RUNNING", T0, parameters={"alpha": 0.5})
    deliver(cp.client, execution_event(with_input(detail, CAUSES)))
    stored = run_doc(cp, "sfn-t1")["trigger"]
    assert [TriggerCause.model_validate(c) for c in stored] == CAUSES
    run = cp.get(f"/flows/{FLOW}/runs/sfn-t1").json_body
    assert [TriggerCause.model_validate(c) for c in run["trigger"]] == CAUSES
    assert run["parameters"] == {"alpha": 0.5}


def test_a_run_nobody_triggered_has_no_causes(deployed):
    cp = deployed
    deliver(cp.client, execution_event(execution_detail(FLOW, "plain", "RUNNING", T0)))
    assert "trigger" not in run_doc(cp, "sfn-plain")
    assert cp.get(f"/flows/{FLOW}/runs/sfn-plain").json_body["trigger"] == []


def test_a_stray_trigger_key_of_a_hand_started_execution_is_not_a_cause(deployed):
    cp = deployed
    detail = execution_detail(FLOW, "hand", "RUNNING", T0)
    detail["input"] = json.dumps({"Parameters": "{}", EXECUTION_INPUT_KEY: [{"what": "not a cause"}]})
    deliver(cp.client, execution_event(detail))
    assert "trigger" not in run_doc(cp, "sfn-hand")


@pytest.mark.parametrize("order", list(itertools.permutations(range(3))))
def test_the_causes_survive_any_order_and_events_without_input(deployed, order):
    cp = deployed
    events = [
        with_input(execution_detail(FLOW, "t1", "RUNNING", T0, parameters={"alpha": 0.5}), CAUSES),
        with_input(execution_detail(FLOW, "t1", "SUCCEEDED", T0, T0 + 9000, {"alpha": 0.5}), None),
        with_input(execution_detail(FLOW, "t1", "SUCCEEDED", T0, T0 + 9000, {"alpha": 0.5}), CAUSES),
    ]
    for i in order:
        deliver(cp.client, execution_event(events[i]))
    deliver(cp.client, execution_event(events[order[0]]))  # a duplicate
    doc = run_doc(cp, "sfn-t1")
    assert doc["status"] == "SUCCEEDED"
    assert [TriggerCause.model_validate(c) for c in doc["trigger"]] == CAUSES
