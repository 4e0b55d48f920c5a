"""The reconciler: runs whose events were missed are repaired, console runs adopted.

Executions stay RUNNING in these moto worlds (no state machine execution), so a
test ends one the way AWS would, by setting its status on moto's execution, and
delivers no event for it: only the reconciler can learn of it.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from chalicelib import http
from chalicelib import keys
from chalicelib.recording import run_records
from chalicelib.keys import LEASE_PK, LEASE_SK
from chalicelib.recording.reconcile import Limits
from chalicelib.recording.service import reconcile

pytestmark = pytest.mark.aws

FLOW = "ParameterFlow"
static = pytest.mark.parametrize("control_plane", [{"execute": False}], indirect=True)


def end_in_moto(execution_arn: str, status: str, error: str | None = None, cause: str | None = None) -> None:
    """What AWS does when an execution ends; its status change event is then lost."""
    from moto.core.utils import utcnow
    from moto.stepfunctions.models import stepfunctions_backends

    account, region = execution_arn.split(":")[4], execution_arn.split(":")[3]
    execution = stepfunctions_backends[account][region].describe_execution(execution_arn)
    execution.status, execution.stop_date = status, utcnow()
    execution.error, execution.cause = error, cause


def run_doc(cp, run_id: str) -> dict:
    item = cp.aws.table.t.get_item(Key={"PK": keys.flow_pk(FLOW), "SK": keys.run_sk(run_id)}).get("Item")
    return run_records.decode(item) if item else {}


def invoke_reconciler(cp) -> dict:
    event = cp.client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=["arn:aws:events:us-east-1:123456789012:rule/x"]
    )
    return cp.client.lambda_.invoke("reconcile", event).payload


@pytest.fixture
def deployed(control_plane):
    cp = control_plane
    record = cp.deploy("parameter_flow.py", tags=["team:ml"])
    assert record["status"] == "DEPLOYED"
    cp.token = record["production_token"]
    cp.machine = cp.aws.state_machine_arn(FLOW)
    return cp


@static
def test_a_missed_succeeded_event_is_repaired(deployed):
    cp = deployed
    started = cp.post_json(f"/flows/{FLOW}/runs", {"parameters": {"alpha": "0.5"}}).json_body
    run_id = started["run_id"]
    assert run_doc(cp, run_id)["status"] == "RUNNING"  # recorded when triggered
    end_in_moto(started["execution_arn"], "SUCCEEDED")
    report = invoke_reconciler(cp)
    assert report["repaired"] == [f"{FLOW}/{run_id}"] and report["adopted"] == []
    run = cp.get(f"/flows/{FLOW}/runs/{run_id}").json_body
    assert run["status"] == "succeeded" and run["finished_at"] and run["parameters"] == {"alpha": 0.5}
    assert cp.get(f"/flows/{FLOW}/runs?status=running").json_body["runs"] == []


@static
def test_a_missed_failure_is_repaired_with_its_error(deployed):
    cp = deployed
    started = cp.post_json(f"/flows/{FLOW}/runs", {}).json_body
    end_in_moto(started["execution_arn"], "FAILED", error="States.TaskFailed", cause="the job failed")
    invoke_reconciler(cp)
    run = cp.get(f"/flows/{FLOW}/runs/{started['run_id']}").json_body
    assert run["status"] == "failed" and run["error"] == {"type": "States.TaskFailed", "message": "the job failed", "traceback": None}


@static
def test_a_console_started_execution_is_adopted(deployed):
    cp = deployed
    sfn = cp.aws.state_machines.client
    arn = sfn.start_execution(
        stateMachineArn=cp.machine, name="from-the-console", input=json.dumps({"Parameters": json.dumps({"alpha": 0.3})})
    )["executionArn"]
    assert run_doc(cp, "sfn-from-the-console") == {}
    report = invoke_reconciler(cp)
    assert report["adopted"] == [f"{FLOW}/sfn-from-the-console"]
    doc = run_doc(cp, "sfn-from-the-console")
    assert doc["execution_arn"] == arn and doc["status"] == "RUNNING" and doc["parameters"] == {"alpha": 0.3}
    # Adopted the same way as a run of the deployment: its token, deployer and tags.
    assert f"production:{cp.token}" in doc["system_tags"] and doc["user"] == "SFN" and doc["owner"] == "alice" and doc["tags"] == ["team:ml"]
    listed = cp.get(f"/flows/{FLOW}/runs?namespace=production:{cp.token}").json_body["runs"]
    assert [r["run_id"] for r in listed] == ["sfn-from-the-console"]


@static
def test_a_second_pass_finds_nothing_to_do_and_writes_nothing_but_its_lease(deployed):
    cp = deployed
    started = cp.post_json(f"/flows/{FLOW}/runs", {}).json_body
    end_in_moto(started["execution_arn"], "SUCCEEDED")
    invoke_reconciler(cp)
    ops: Counter = Counter()
    http.aws().table.client.meta.events.register("before-call.dynamodb", lambda model, **kw: ops.update([model.name]))
    report = invoke_reconciler(cp)
    assert report["repaired"] == [] and report["adopted"] == [] and report["machines"] == 1
    assert ops["Scan"] == 0
    assert ops["TransactWriteItems"] == 0 and ops["UpdateItem"] == 0
    assert ops["PutItem"] == 1 and ops["DeleteItem"] == 1  # the lease, taken and given back


@static
def test_running_runs_beyond_the_listing_are_asked_about_one_by_one(deployed):
    cp = deployed
    runs = [cp.post_json(f"/flows/{FLOW}/runs", {}).json_body for _ in range(3)]
    for r in runs:
        end_in_moto(r["execution_arn"], "SUCCEEDED")
    report = reconcile(http.aws(), Limits(executions_per_machine=1))
    assert sorted(report["repaired"]) == sorted(f"{FLOW}/{r['run_id']}" for r in runs)
    assert all(run_doc(cp, r["run_id"])["status"] == "SUCCEEDED" for r in runs)


@static
def test_state_machines_flowplane_did_not_deploy_are_left_alone(deployed):
    cp = deployed
    sfn = cp.aws.state_machines.client
    other = sfn.create_state_machine(
        name="SomeoneElses",
        definition=json.dumps({"StartAt": "a", "States": {"a": {"Type": "Pass", "End": True}}}),
        roleArn="arn:aws:iam::123456789012:role/x",
    )["stateMachineArn"]
    sfn.start_execution(stateMachineArn=other, name="theirs")
    before = cp.snapshot()
    report = invoke_reconciler(cp)
    assert report["machines"] == 1 and report["adopted"] == []
    assert cp.snapshot()["items"] == before["items"]


@static
def test_the_lease_keeps_a_second_reconciler_out_until_it_expires(deployed):
    cp = deployed
    started = cp.post_json(f"/flows/{FLOW}/runs", {}).json_body
    end_in_moto(started["execution_arn"], "SUCCEEDED")
    import time

    table = cp.aws.table.t
    table.put_item(Item={"PK": LEASE_PK, "SK": LEASE_SK, "type": "lease", "ttl": int(time.time()) + 100})
    busy = invoke_reconciler(cp)
    assert busy["stopped_early"] is True and busy["repaired"] == []
    assert run_doc(cp, started["run_id"])["status"] == "RUNNING"
    table.put_item(Item={"PK": LEASE_PK, "SK": LEASE_SK, "type": "lease", "ttl": int(time.time()) - 1})
    assert invoke_reconciler(cp)["repaired"] == [f"{FLOW}/{started['run_id']}"]
    assert "Item" not in table.get_item(Key={"PK": LEASE_PK, "SK": LEASE_SK})
