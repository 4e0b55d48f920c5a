"""Any order and any duplication of a run's events gives the same stored items.

A whole run's events, in AWS's shapes (execution RUNNING and its end; Batch jobs
RUNNABLE..SUCCEEDED/FAILED with retries; task started/finished/failed with the
artifact index), are shuffled and partly duplicated by hypothesis and delivered
one by one through the recording handlers into moto DynamoDB. The items left
are compared with those of the in-order delivery, byte for byte; after every
event the run's status is checked never to return from a final one.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib import keys
from chalicelib.recording import run_records
from chalicelib.recording.merge import FINAL_RUN_STATUSES
from tests.support.recording_events import Attempt, TaskPlan, artifact, deliver, run_events

pytestmark = pytest.mark.aws

FLOW = "ForeachFlow"
RECORD_TYPES = {run_records.RUN, run_records.TAG, run_records.TASK, run_records.STEP, run_records.ARTIFACTS, run_records.FLOW_ENTRY}

SCENARIOS = {
    # A split whose first attempt fails, three foreach tasks (one retried), join, end.
    "succeeded": (
        [
            TaskPlan("start", "1", [Attempt(False), Attempt(True, {"items": artifact("1" * 64)})]),
            TaskPlan("square", "1.0", [Attempt(True, {"x": artifact("2" * 64)})]),
            TaskPlan("square", "1.1", [Attempt(False), Attempt(True, {"x": artifact("3" * 64)})]),
            TaskPlan("square", "1.2", [Attempt(True, {"x": artifact("4" * 64)})]),
            TaskPlan("join", "1", [Attempt(True, {"total": artifact("5" * 64)})]),
            TaskPlan("end", "1", [Attempt(True, {"total": artifact("5" * 64)})]),
        ],
        "SUCCEEDED",
    ),
    # A task that fails every attempt ends the run FAILED.
    "failed": (
        [
            TaskPlan("start", "1", [Attempt(True, {"items": artifact("1" * 64)})]),
            TaskPlan("square", "1.0", [Attempt(False), Attempt(False), Attempt(False)]),
        ],
        "FAILED",
    ),
}


def record_items(cp) -> list[str]:
    """Every item the recorder writes (deployment items and the lease left out), canonical."""
    ddb = cp.aws.session.client("dynamodb", region_name=cp.settings.region)
    out, kwargs = [], {"TableName": cp.settings.table}
    while True:
        page = ddb.scan(**kwargs)
        out += [json.dumps(i, sort_keys=True) for i in page["Items"] if i.get("type", {}).get("S") in RECORD_TYPES]
        if "LastEvaluatedKey" not in page:
            return sorted(out)
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def clear_records(cp) -> None:
    for raw in record_items(cp):
        item = json.loads(raw)
        key = {"PK": item["PK"]["S"], "SK": item["SK"]["S"]}
        if item["type"]["S"] == run_records.FLOW_ENTRY:
            # The flow entry's deployment sets are the deploy's; the recorder's part is its first run.
            cp.aws.table.t.update_item(Key=key, UpdateExpression="REMOVE created_at")
        else:
            cp.aws.table.t.delete_item(Key=key)


def run_status(cp, run_id: str) -> str | None:
    item = cp.aws.table.t.get_item(Key={"PK": keys.flow_pk(FLOW), "SK": keys.run_sk(run_id)}).get("Item")
    return run_records.decode(item)["status"] if item else None


@pytest.fixture(params=sorted(SCENARIOS))
def scenario(request, control_plane):
    cp = control_plane
    assert cp.deploy("foreach_flow.py")["status"] == "DEPLOYED"
    plan, final = SCENARIOS[request.param]
    events = run_events(FLOW, FLOW, "prop", plan, final=final)
    for event in events:
        assert deliver(cp.client, event)["recorded"] is True
    reference = record_items(cp)
    # Sanity: the reference holds what the run should (so "identical" means something).
    assert run_status(cp, "sfn-prop") == final
    kinds = sorted(json.loads(i)["type"]["S"] for i in reference)
    assert kinds.count(run_records.TASK) == len(plan) and kinds.count(run_records.RUN) == 1
    return cp, events, reference, final


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_shuffled_and_duplicated_events_give_identical_items(scenario, data):
    cp, events, reference, final = scenario
    order = data.draw(st.permutations(range(len(events))), label="order")
    duplicates = data.draw(st.lists(st.integers(0, len(events) - 1), max_size=8), label="duplicates")
    stream = list(order)
    for n, i in enumerate(duplicates):
        position = data.draw(st.integers(0, len(stream)), label=f"where duplicate {n} goes")
        stream.insert(position, i)
    clear_records(cp)
    seen_final = None
    for i in stream:
        deliver(cp.client, events[i])
        status = run_status(cp, "sfn-prop")
        if seen_final is not None:
            assert status == seen_final, f"after {seen_final} the run went to {status}"
        elif status in FINAL_RUN_STATUSES:
            seen_final = status
    assert seen_final == final
    assert record_items(cp) == reference
