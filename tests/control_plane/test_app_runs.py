"""Production runs: trigger, list-runs, terminate; deleting a flow."""

from __future__ import annotations

import json

import pytest

from chalicelib.runs.inputs import convert_parameters, execution_input
from chalicelib.errors import BadRequest
from flowplane.manifest import ParameterSpec

pytestmark = pytest.mark.aws

def _input(cp, execution_arn):
    return json.loads(cp.aws.state_machines.client.describe_execution(executionArn=execution_arn)["input"])


def test_trigger_with_alpha_starts_an_execution_with_that_input(control_plane):
    cp = control_plane
    deployed = cp.deploy("parameter_flow.py")
    r = cp.post_json("/flows/ParameterFlow/runs", {"parameters": {"alpha": "0.5"}})
    assert r.status_code == 201, r.json_body
    body = r.json_body
    assert body["run_id"].startswith("sfn-")
    execution = body["run_id"][len("sfn-") :]
    assert body["execution_arn"].endswith(f":execution:flowplane-local-ParameterFlow:{execution}")
    assert body["parameters"] == {"alpha": 0.5} and body["version"] == 1
    assert body["namespace"] == f"production:{deployed['production_token']}"
    payload = _input(cp, body["execution_arn"])
    assert payload == {"Parameters": '{"alpha": 0.5}'}
    assert json.loads(payload["Parameters"]) == {"alpha": 0.5}


def test_trigger_without_parameters_leaves_defaults_to_the_deployment(control_plane):
    cp = control_plane
    cp.deploy("parameter_flow.py")
    r = cp.post_json("/flows/ParameterFlow/runs", {})
    assert r.status_code == 201
    assert _input(cp, r.json_body["execution_arn"]) == {"Parameters": "{}"}


def test_two_triggers_are_two_runs(control_plane):
    cp = control_plane
    cp.deploy("deployment_info_flow.py")
    ids = {cp.post_json("/flows/DeploymentInfoFlow/runs", {}).json_body["run_id"] for _ in range(2)}
    assert len(ids) == 2 and len(cp.executions("DeploymentInfoFlow")) == 2


def test_json_parameters_are_parsed_to_their_type(control_plane):
    cp = control_plane
    cp.deploy("deployment_info_flow.py")
    value = {"who": "dave", "when": "now"}
    r = cp.post_json("/flows/DeploymentInfoFlow/runs", {"parameters": {"deployment_info": json.dumps(value)}})
    assert r.status_code == 201, r.json_body
    assert json.loads(_input(cp, r.json_body["execution_arn"])["Parameters"]) == {"deployment_info": value}


@pytest.mark.parametrize(
    "type_, raw, value",
    [("int", "3", 3), ("float", "1e-3", 0.001), ("bool", "false", False), ("str", "x", "x"), ("json", "[1, 2]", [1, 2]),
     ("int", 7, 7), ("bool", True, True)],
)
def test_parameter_values_take_the_deployed_types(type_, raw, value):
    spec = ParameterSpec(name="p", attribute="p", type=type_)
    assert convert_parameters([spec], {"p": raw}) == {"p": value}
    assert json.loads(execution_input({"p": value})["Parameters"]) == {"p": value}


def test_a_required_parameter_without_default_must_be_given():
    spec = ParameterSpec(name="day", attribute="day", type="str", required=True)
    with pytest.raises(BadRequest, match="'day' is required") as e:
        convert_parameters([spec], {})
    assert e.value.field == "parameters.day"


def test_list_runs_filters_by_status(control_plane):
    cp = control_plane
    cp.deploy("parameter_flow.py")
    started = [cp.post_json("/flows/ParameterFlow/runs", {}).json_body["run_id"] for _ in range(2)]
    everything = cp.get("/flows/ParameterFlow/runs").json_body
    assert sorted(r["run_id"] for r in everything["runs"]) == sorted(started)
    for run in everything["runs"]:
        assert run["started_at"] and run["status"] in ("running", "succeeded", "failed")
    for status in ("running", "succeeded", "failed"):
        listed = cp.get(f"/flows/ParameterFlow/runs?status={status}").json_body["runs"]
        assert all(r["status"] == status for r in listed)
        assert {r["run_id"] for r in listed} == {r["run_id"] for r in everything["runs"] if r["status"] == status}


# Executions that stay RUNNING: moto without execute_state_machine never finishes them.
static = pytest.mark.parametrize("control_plane", [{"execute": False}], indirect=True)


@static
def test_terminate_stops_a_running_run(control_plane):
    cp = control_plane
    cp.deploy("parameter_flow.py")
    run_id = cp.post_json("/flows/ParameterFlow/runs", {}).json_body["run_id"]
    assert [r["run_id"] for r in cp.get("/flows/ParameterFlow/runs?status=RUNNING").json_body["runs"]] == [run_id]
    r = cp.post_json(f"/flows/ParameterFlow/runs/{run_id}/terminate", {})
    assert r.status_code == 200, r.json_body
    assert r.json_body["status"] == "ABORTED"
    assert cp.get("/flows/ParameterFlow/runs?status=RUNNING").json_body["runs"] == []
    assert [x["run_id"] for x in cp.get("/flows/ParameterFlow/runs?status=ABORTED").json_body["runs"]] == [run_id]
    # A finished run cannot be terminated again; nothing changes.
    before = cp.snapshot()
    again = cp.post_json(f"/flows/ParameterFlow/runs/{run_id}/terminate", {})
    assert again.status_code == 409 and again.json_body["status"] == "ABORTED"
    assert cp.snapshot() == before


@static
def test_terminate_an_unknown_run(control_plane):
    cp = control_plane
    cp.deploy("parameter_flow.py")
    before = cp.snapshot()
    r = cp.post_json("/flows/ParameterFlow/runs/sfn-no-such-execution/terminate", {})
    assert r.status_code == 404 and r.json_body["field"] == "run_id"
    assert cp.snapshot() == before


def test_delete_removes_state_machine_and_rule_and_keeps_the_records(control_plane):
    cp = control_plane
    first = cp.deploy("hourly_flow.py")
    r = cp.client.http.delete(
        "/flows/HourlyFlow", headers={"content-type": "application/json"}, body=json.dumps({"user": "alice"})
    )
    assert r.status_code == 200 and r.json_body["deleted"] is True
    assert cp.aws.state_machines.client.list_state_machines()["stateMachines"] == []
    assert cp.aws.schedules.get("flowplane-local-schedule-HourlyFlow") is None
    listing = cp.get("/deployments?flow=HourlyFlow").json_body
    assert listing["flow"]["deleted"] is True and listing["flow"]["deleted_by"] == "alice"
    assert [v["version"] for v in listing["versions"]] == [1]
    assert cp.get(f"/deployments/{first['deployment_id']}").json_body["status"] == "DEPLOYED"
    # The deleted flow can no longer be triggered or deleted again; its runs stay readable.
    assert cp.post_json("/flows/HourlyFlow/runs", {}).status_code == 404
    assert cp.get("/flows/HourlyFlow/runs").json_body == {"runs": [], "next_token": None}
    again = cp.client.http.delete(
        "/flows/HourlyFlow", headers={"content-type": "application/json"}, body=json.dumps({"user": "alice"})
    )
    assert again.status_code == 404


def test_a_delete_racing_a_deploy_is_a_conflict_and_marks_nothing(control_plane, monkeypatch):
    from chalicelib.deploy.records import Deployments

    cp = control_plane
    cp.deploy("parameter_flow.py")
    stale = Deployments(cp.aws.table).head("ParameterFlow")
    cp.deploy("parameter_flow.py")  # lands between the delete's read and its write
    monkeypatch.setattr(Deployments, "live_head", lambda self, name: stale)
    r = cp.client.http.delete(
        "/flows/ParameterFlow", headers={"content-type": "application/json"}, body=json.dumps({"user": "alice"})
    )
    assert r.status_code == 409 and r.json_body["field"] == "flow", r.json_body
    head = Deployments(cp.aws.table).head("ParameterFlow")
    assert head["deleted"] is False and head["production_version"] == 2
    entry = cp.aws.table.get("FLOWS", "FLOW#ParameterFlow")
    assert entry["live_deployments"] == ["ParameterFlow"]


def test_delete_with_the_token_by_another_user(control_plane):
    cp = control_plane
    token = cp.deploy("parameter_flow.py")["production_token"]
    r = cp.client.http.delete(
        "/flows/ParameterFlow",
        headers={"content-type": "application/json"},
        body=json.dumps({"user": "bob", "authorize": f"production:{token}"}),
    )
    assert r.status_code == 200


def test_deploying_again_after_delete_starts_a_new_namespace(control_plane):
    cp = control_plane
    first = cp.deploy("parameter_flow.py")
    cp.client.http.delete(
        "/flows/ParameterFlow", headers={"content-type": "application/json"}, body=json.dumps({"user": "alice"})
    )
    # After a delete anyone may deploy, as in Metaflow, and gets a fresh token.
    again = cp.deploy("parameter_flow.py", user="bob")
    assert again["status"] == "DEPLOYED" and again["token_minted"] is True
    assert again["production_token"] != first["production_token"]
    # Versions keep counting; the new state machine's own numbering restarted.
    assert again["version"] == 2 and again["version_arn"].endswith(":flowplane-local-ParameterFlow:1")
    head = cp.get("/deployments?flow=ParameterFlow").json_body["flow"]
    assert head["deleted"] is False and head["production_version"] == again["version"]
    assert cp.post_json("/flows/ParameterFlow/runs", {}).status_code == 201


def test_health(control_plane):
    r = control_plane.get("/health")
    assert r.status_code == 200 and r.json_body == {"ok": True, "service": "flowplane"}
