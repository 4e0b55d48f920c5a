"""The recording handlers driven through chalice.test.Client into moto DynamoDB.

Events have AWS's documented shapes (tests/support/recording_events.py). The flows
are deployed through the control plane itself, so a run finds its deployment
(production token, deployer, --tag) the way it will on AWS.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from chalicelib import http
from chalicelib import keys
from chalicelib.recording import run_records
from tests.support.metric_logs import json_lines, metric_totals
from tests.support.recording_events import (
    T0,
    Attempt,
    Event,
    TaskPlan,
    artifact,
    deliver,
    execution_detail,
    execution_event,
    iso,
    job_detail,
    job_event,
    run_events,
    task_detail,
    task_event,
)

pytestmark = pytest.mark.aws

FLOW = "ParameterFlow"


@pytest.fixture
def deployed(control_plane):
    cp = control_plane
    record = cp.deploy("parameter_flow.py", tags=["team:ml"])
    assert record["status"] == "DEPLOYED", record
    cp.token = record["production_token"]
    return cp


def run_doc(cp, run_id: str, flow: str = FLOW) -> dict:
    item = cp.aws.table.t.get_item(Key={"PK": keys.flow_pk(flow), "SK": keys.run_sk(run_id)}).get("Item")
    return run_records.decode(item) if item else {}


class DynamoCalls:
    """DynamoDB operations made through the handlers' own client."""

    def __init__(self) -> None:
        self.ops: Counter = Counter()
        http.aws().table.client.meta.events.register("before-call.dynamodb", self._count)

    def _count(self, model, **kwargs) -> None:
        self.ops[model.name] += 1

    def writes(self) -> int:
        return sum(n for op, n in self.ops.items() if op in ("PutItem", "UpdateItem", "TransactWriteItems", "DeleteItem"))


# --- runs ------------------------------------------------------------------------------------


def test_a_run_is_recorded_with_its_deployments_token_user_and_tags(deployed):
    cp = deployed
    r = deliver(cp.client, execution_event(execution_detail(FLOW, "e1", "RUNNING", T0, parameters={"alpha": 0.5})))
    assert r == {"recorded": True, "kind": "execution", "pathspec": f"{FLOW}/sfn-e1", "changed": True}
    doc = run_doc(cp, "sfn-e1")
    assert doc["status"] == "RUNNING" and doc["started_at"] == iso(T0)
    # As Metaflow's Step Functions runs: the production user's, owned by the deployer.
    assert doc["user"] == "SFN" and doc["owner"] == "alice" and doc["tags"] == ["team:ml"]
    assert doc["system_tags"] == sorted([f"production:{cp.token}", "runtime:step-functions", "user:SFN"])
    assert doc["parameters"] == {"alpha": 0.5} and doc["version"] == 1 and doc["deployment"] == FLOW
    deliver(cp.client, execution_event(execution_detail(FLOW, "e1", "SUCCEEDED", T0, T0 + 9000, {"alpha": 0.5})))
    doc = run_doc(cp, "sfn-e1")
    assert doc["status"] == "SUCCEEDED" and doc["stopped_at"] == iso(T0 + 9000)


def test_each_tag_gets_a_copy_of_the_run_that_moves_with_it(deployed):
    cp = deployed
    deliver(cp.client, execution_event(execution_detail(FLOW, "e1", "RUNNING", T0)))
    deliver(cp.client, execution_event(execution_detail(FLOW, "e1", "FAILED", T0, T0 + 5, error="States.TaskFailed", cause="x")))
    tags = ["team:ml", f"production:{cp.token}", "runtime:step-functions", "user:SFN"]
    for tag in tags:
        copies = cp.aws.table.t.query(
            KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": keys.tag_pk(FLOW, tag)}
        )["Items"]
        assert len(copies) == 1
        assert run_records.decode(copies[0]) == run_doc(cp, "sfn-e1")
        assert copies[0]["GSI2PK"] == keys.status_pk(FLOW, "failed", tag)


def test_a_run_belongs_to_the_version_live_when_it_started(deployed):
    cp = deployed
    first = cp.token
    time.sleep(0.01)
    between = int(time.time() * 1000)
    time.sleep(0.01)
    second = cp.deploy("parameter_flow.py", new_token=True)
    assert second["status"] == "DEPLOYED" and second["production_token"] != first
    deliver(cp.client, execution_event(execution_detail(FLOW, "old", "RUNNING", between)))
    deliver(cp.client, execution_event(execution_detail(FLOW, "new", "RUNNING", int(time.time() * 1000) + 1000)))
    assert f"production:{first}" in run_doc(cp, "sfn-old")["system_tags"]
    assert run_doc(cp, "sfn-old")["version"] == 1
    assert f"production:{second['production_token']}" in run_doc(cp, "sfn-new")["system_tags"]
    assert run_doc(cp, "sfn-new")["version"] == 2


def test_an_execution_started_on_a_version_belongs_to_that_version(deployed):
    cp = deployed
    second = cp.deploy("parameter_flow.py", new_token=True)
    v1_arn = cp.get(f"/deployments?flow={FLOW}").json_body["versions"][0]["version_arn"]
    detail = execution_detail(FLOW, "pinned", "RUNNING", int(time.time() * 1000) + 1000)
    detail["stateMachineVersionArn"] = v1_arn
    deliver(cp.client, execution_event(detail))
    doc = run_doc(cp, "sfn-pinned")
    assert doc["version"] == 1 and f"production:{cp.token}" in doc["system_tags"]
    assert f"production:{second['production_token']}" not in doc["system_tags"]


def test_duplicates_cost_one_read_and_no_write(deployed):
    cp = deployed
    event = execution_event(execution_detail(FLOW, "e1", "RUNNING", T0))
    deliver(cp.client, event)
    calls = DynamoCalls()
    again = deliver(cp.client, event)
    assert again["changed"] is False
    assert calls.writes() == 0 and calls.ops["GetItem"] == 1


def test_a_final_status_is_not_undone_by_a_late_running_event(deployed):
    cp = deployed
    deliver(cp.client, execution_event(execution_detail(FLOW, "e1", "SUCCEEDED", T0, T0 + 10)))
    deliver(cp.client, execution_event(execution_detail(FLOW, "e1", "RUNNING", T0)))
    doc = run_doc(cp, "sfn-e1")
    assert doc["status"] == "SUCCEEDED" and doc["stopped_at"] == iso(T0 + 10)


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (3, 2, 1, 0), (2, 0, 3, 1), (1, 3, 0, 2)])
def test_a_redriven_execution_runs_again_and_ends_as_its_redrive_does(deployed, order):
    cp = deployed
    error = dict(error="States.TaskFailed", cause="x")
    events = [
        execution_detail(FLOW, "e1", "RUNNING", T0),
        execution_detail(FLOW, "e1", "FAILED", T0, T0 + 5, **error),
        # Redriven from the console: the same execution runs again from its failed step.
        execution_detail(FLOW, "e1", "RUNNING", T0, redrive_count=1),
        execution_detail(FLOW, "e1", "SUCCEEDED", T0, T0 + 90, redrive_count=1),
    ]
    for i in order:
        assert deliver(cp.client, execution_event(events[i]))["recorded"] is True
    run = cp.get(f"/flows/{FLOW}/runs/sfn-e1").json_body
    assert run["status"] == "succeeded" and run.get("error") is None and run["finished_at"] == iso(T0 + 90)
    assert [r["run_id"] for r in cp.get(f"/flows/{FLOW}/runs?status=succeeded").json_body["runs"]] == ["sfn-e1"]
    assert cp.get(f"/flows/{FLOW}/runs?status=failed").json_body["runs"] == []


def test_while_its_redrive_runs_the_run_is_running(deployed):
    cp = deployed
    deliver(cp.client, execution_event(execution_detail(FLOW, "e1", "FAILED", T0, T0 + 5, error="States.TaskFailed", cause="x")))
    deliver(cp.client, execution_event(execution_detail(FLOW, "e1", "RUNNING", T0, redrive_count=1)))
    run = cp.get(f"/flows/{FLOW}/runs/sfn-e1").json_body
    assert run["status"] == "running" and run.get("error") is None and run.get("finished_at") is None
    # A late event of the first try does not end the redrive.
    deliver(cp.client, execution_event(execution_detail(FLOW, "e1", "FAILED", T0, T0 + 5, error="States.TaskFailed", cause="x")))
    assert cp.get(f"/flows/{FLOW}/runs/sfn-e1").json_body["status"] == "running"


# --- tasks and attempts -----------------------------------------------------------------------


def test_batch_and_task_events_make_one_task_with_its_attempts(deployed):
    cp = deployed
    plan = [TaskPlan("start", "1", [Attempt(False), Attempt(True, {"alpha": artifact("a" * 64)})])]
    for event in run_events(FLOW, FLOW, "e1", plan):
        assert deliver(cp.client, event)["recorded"] is True
    item = cp.aws.table.t.get_item(Key={"PK": keys.run_records_pk(FLOW, "sfn-e1"), "SK": keys.task_sk("start", "1")})["Item"]
    doc = run_records.decode(item)
    assert sorted(doc["attempts"]) == ["0", "1"]
    first, second = doc["attempts"]["0"], doc["attempts"]["1"]
    assert first["status"] == "FAILED" and first["exit_code"] == 1 and first["error"]["message"] == "boom 0"
    assert first["status_reason"] == "Essential container in task exited" and first["log_stream"]
    assert second["status"] == "SUCCEEDED" and second["exit_code"] == 0 and second["log_stream"] != first["log_stream"]
    step = cp.aws.table.t.get_item(Key={"PK": keys.run_records_pk(FLOW, "sfn-e1"), "SK": keys.step_sk("start")})["Item"]
    assert step["name"] == "start" and step["created_at"] == first["created_at"]
    index = cp.aws.table.t.get_item(
        Key={"PK": keys.run_records_pk(FLOW, "sfn-e1"), "SK": keys.artifacts_sk("start", "1", 1)}
    )["Item"]
    assert run_records.decode(index) == {"attempt": 1, "artifacts": {"alpha": artifact("a" * 64)}}


def test_a_failed_attempts_artifacts_are_kept_when_its_event_carries_them(deployed):
    cp = deployed
    ids = dict(flow=FLOW, run_id="sfn-e1", step="start", task_id="1")
    error = {"type": "ValueError", "message": "boom"}
    deliver(cp.client, task_event(task_detail("failed", attempt=0, at=T0, error=error, artifacts={"x": artifact("c" * 64)}, **ids)))
    deliver(cp.client, task_event(task_detail("started", attempt=1, at=T0 + 5, **ids)))
    base = f"/flows/{FLOW}/runs/sfn-e1/steps/start/tasks/1/artifacts"
    assert cp.get(base + "?attempt=0").json_body == {"attempt": 0, "artifacts": {"x": artifact("c" * 64)}}
    # The task is retrying: the last index so far is the failed attempt's.
    assert cp.get(base).json_body["attempt"] == 0
    deliver(cp.client, task_event(task_detail("finished", attempt=1, at=T0 + 9, artifacts={"x": artifact("d" * 64)}, **ids)))
    assert cp.get(base).json_body == {"attempt": 1, "artifacts": {"x": artifact("d" * 64)}}


def test_task_events_need_no_run_record_first(deployed):
    cp = deployed
    ids = dict(flow="AnyFlow", run_id="sfn-x", step="start", task_id="1", attempt=0)
    deliver(cp.client, task_event(task_detail("finished", at=T0 + 5, artifacts={}, **ids)))
    deliver(cp.client, task_event(task_detail("started", at=T0, **ids)))
    item = cp.aws.table.t.get_item(Key={"PK": keys.run_records_pk("AnyFlow", "sfn-x"), "SK": keys.task_sk("start", "1")})["Item"]
    assert run_records.decode(item)["attempts"]["0"] == {
        "attempt": 0, "status": "SUCCEEDED", "started_at": iso(T0), "stopped_at": iso(T0 + 5),
    }


# --- what is refused: logged, counted, never raised, nothing written ------------------------------


def _bad_events(cp) -> list[Event]:
    ours = job_detail(FLOW, "sfn-e1", "start", "1", 0, "RUNNING", "j", T0)
    not_ours = json.loads(json.dumps(ours))
    not_ours["container"]["command"] = ["sleep", "600"]
    bad_task_id = task_detail("started", FLOW, "sfn-e1", "start", "1", 0, T0)
    bad_task_id["task_id"] = "1.01"
    bad_step = task_detail("started", FLOW, "sfn-e1", "start", "1", 0, T0)
    bad_step["step"] = "no/such#step"
    malformed = execution_detail(FLOW, "e1", "RUNNING", T0)
    del malformed["executionArn"]
    no_start = execution_detail(FLOW, "e1", "RUNNING", T0)
    no_start["startDate"] = None
    return [
        execution_event(execution_detail("SomeoneElsesMachine", "e1", "RUNNING", T0)),
        Event("aws.states", "Step Functions Execution Status Change", malformed, ("x",)),
        Event("aws.states", "Step Functions Execution Status Change", no_start, ("x",)),
        job_event(not_ours),
        Event("aws.batch", "Batch Job State Change", {"jobId": "j", "status": "RUNNING"}, ("x",)),
        task_event(bad_task_id),
        task_event(bad_step),
        Event("flowplane.task", "Flowplane Task Started", {"kind": "started", "flow": FLOW}, ()),
    ]


def test_unknown_and_malformed_events_are_counted_and_change_nothing(deployed, capsys):
    cp = deployed
    before = cp.snapshot()
    capsys.readouterr()
    bad = _bad_events(cp)
    for event in bad:
        answer = deliver(cp.client, event)
        assert answer["recorded"] is False and answer["kind"] == "rejected" and answer["reason"]
    assert cp.snapshot() == before
    docs = json_lines(capsys.readouterr().out)
    assert metric_totals(docs)[("EventsRejected", ())] == len(bad)
    assert metric_totals(docs)[("EventsRecorded", ())] == 0
    warnings = [d for d in docs if d.get("message") == "event rejected"]
    assert len(warnings) == len(bad) and all(w["level"] == "WARNING" and w["reason"] for w in warnings)


def test_an_event_from_another_handlers_source_is_refused_too(deployed):
    # The rules route by source; a handler given another's event still says no politely.
    cp = deployed
    event = execution_event(execution_detail(FLOW, "e1", "RUNNING", T0)).envelope(cp.client)
    event["source"] = "aws.ec2"
    assert cp.client.lambda_.invoke("record_job", event).payload["recorded"] is False


# --- metrics and logs ------------------------------------------------------------------------------


def test_metrics_count_runs_per_flow_once_and_events_recorded(deployed, capsys):
    cp = deployed
    capsys.readouterr()
    events = run_events(FLOW, FLOW, "e1", [TaskPlan("start", "1", [Attempt(True)]), TaskPlan("end", "1", [Attempt(True)])])
    failed = [execution_event(execution_detail(FLOW, "e2", "FAILED", T0, T0 + 5, error="E", cause="c"))]
    for event in events + events + failed:  # every event twice
        deliver(cp.client, event)
    totals = metric_totals(json_lines(capsys.readouterr().out))
    flow = (("flow", FLOW),)
    assert totals[("RunsStarted", flow)] == 2
    assert totals[("RunsSucceeded", flow)] == 1 and totals[("RunsFailed", flow)] == 1
    assert totals[("EventsRecorded", ())] == 2 * len(events) + 1


def test_log_lines_carry_the_run_id_as_correlation_id(deployed, capsys):
    cp = deployed
    capsys.readouterr()
    deliver(cp.client, execution_event(execution_detail(FLOW, "e1", "RUNNING", T0)))
    deliver(cp.client, job_event(job_detail(FLOW, "sfn-e2", "start", "1", 0, "RUNNING", "j", T0)))
    recorded = [d for d in json_lines(capsys.readouterr().out) if d.get("message") == "recorded"]
    assert [(d["correlation_id"], d["pathspec"]) for d in recorded] == [
        ("sfn-e1", f"{FLOW}/sfn-e1"),
        ("sfn-e2", f"{FLOW}/sfn-e2/start/1"),
    ]
    assert all(d["service"] == "flowplane-recorder" for d in recorded)


def test_a_write_conflict_is_retried_with_a_fresh_read(deployed):
    """Another writer between our read and our write: we read theirs and merge again."""
    from chalicelib.recording.service import recorder_for

    cp = deployed
    deliver(cp.client, execution_event(execution_detail(FLOW, "e1", "RUNNING", T0)))
    rec = recorder_for(http.aws())
    store = rec.store
    real_get = store.get
    raced = []

    def get_then_race(pk, sk):
        item = real_get(pk, sk)
        if not raced and sk == keys.run_sk("sfn-e1"):
            raced.append(1)
            # Someone records the run's end right after our read.
            deliver(cp.client, execution_event(execution_detail(FLOW, "e1", "SUCCEEDED", T0, T0 + 7)))
        return item

    store.get = get_then_race
    failed = execution_event(execution_detail(FLOW, "e1", "FAILED", T0, T0 + 3, error="E", cause="c"))
    try:
        deliver(cp.client, failed)
    finally:
        store.get = real_get
    assert raced
    # Our write lost the race and was merged again, so nothing the other writer wrote
    # is lost: between two final statuses the merge's tie-break keeps SUCCEEDED.
    doc = run_doc(cp, "sfn-e1")
    assert doc["status"] == "SUCCEEDED" and doc["stopped_at"] == iso(T0 + 7)
    succeeded = execution_event(execution_detail(FLOW, "e1", "SUCCEEDED", T0, T0 + 7))
    for event in (failed, succeeded):
        assert deliver(cp.client, event)["changed"] is False
