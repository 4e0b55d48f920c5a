"""@schedule -> EventBridge rule -> launcher -> exactly one execution per tick."""

from __future__ import annotations

import json

import pytest

from chalicelib.errors import BadRequest
from chalicelib.resource_names import rule_name as stage_rule_name
from chalicelib.deploy.schedules import execution_name, input_transformer, schedule_expression
from chalicelib.aws_events import apply_input_transformer, scheduled_event
from flowplane.manifest import ScheduleSpec
from tests.support.control_plane import EXAMPLES, project_copy

pytestmark = pytest.mark.aws

PREFIX = "flowplane-local"  # the local stage's (chalicelib/settings.py)


def rule_name(deployment: str) -> str:
    return stage_rule_name(PREFIX, deployment)


RULE = rule_name("HourlyFlow")


# --- the expression -------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, expression",
    [
        (ScheduleSpec(), "cron(0 0 * * ? *)"),
        (ScheduleSpec(hourly=True), "cron(0 * * * ? *)"),
        (ScheduleSpec(weekly=True), "cron(0 0 ? * SUN *)"),
        (ScheduleSpec(cron="0 10 * * ? *"), "cron(0 10 * * ? *)"),
        (ScheduleSpec(cron="0 10 * * ? *", hourly=True), "cron(0 10 * * ? *)"),
        (ScheduleSpec(cron="*/15 9-17 ? * MON-FRI *"), "cron(*/15 9-17 ? * MON-FRI *)"),
    ],
)
def test_schedules_map_as_metaflow_maps_them(spec, expression):
    assert schedule_expression(spec) == expression


def test_no_schedule_means_no_rule():
    assert schedule_expression(None) is None


@pytest.mark.parametrize(
    "cron, fragment",
    [
        ("0 25 * * ? *", "hour"),
        ("99 * * * ? *", "minute"),
        ("0 10 * * *", "6 required"),
        ("0 10 * * * *", "One must be a question mark"),
        ("0 10 ? * FUNDAY *", "day-of-week"),
        ("cron(0 10 * * ? *)", "minute"),
    ],
)
def test_bad_cron_is_refused_naming_the_expression(cron, fragment):
    with pytest.raises(BadRequest) as e:
        schedule_expression(ScheduleSpec(cron=cron))
    assert e.value.field == "schedule.cron"
    assert f"cron({cron})" in e.value.message and fragment in e.value.message
    assert e.value.extra["expression"] == f"cron({cron})"


def test_an_unknown_timezone_is_refused_naming_it():
    """Metaflow refuses any zone on Step Functions; here a known one goes to EventBridge Scheduler."""
    assert schedule_expression(ScheduleSpec(hourly=True, timezone="America/New_York")) == "cron(0 * * * ? *)"
    with pytest.raises(BadRequest, match="unknown time zone 'Mars/Olympus'") as e:
        schedule_expression(ScheduleSpec(hourly=True, timezone="Mars/Olympus"))
    assert e.value.field == "schedule.timezone"


def test_rule_and_execution_names_fit_aws_limits():
    assert rule_name("HourlyFlow") == "flowplane-local-schedule-HourlyFlow"
    long = "F" * 80
    assert len(rule_name(long)) == 64 and rule_name(long) != rule_name(long[:-1] + "G")
    name = execution_name("arn:aws:events:us-east-1:1:rule/" + rule_name(long), "2026-11-24T10:00:00Z")
    assert len(name) <= 80 and name.endswith("-20261124T100000Z")
    assert name == execution_name(rule_name(long), "2026-11-24T10:00:00+00:00")


# --- the rule --------------------------------------------------------------------------


def test_hourly_flow_gets_an_hourly_rule_targeting_the_launcher(control_plane):
    cp = control_plane
    record = cp.deploy("hourly_flow.py")
    assert record["status"] == "DEPLOYED"
    rule = cp.aws.schedules.get(RULE)
    assert rule["expression"] == "cron(0 * * * ? *)" and rule["state"] == "ENABLED"
    [target] = rule["targets"]
    assert target["Arn"] == "arn:aws:lambda:us-east-1:123456789012:function:flowplane-local-launch"
    assert target["InputTransformer"] == input_transformer("HourlyFlow")
    head = cp.get("/deployments?flow=HourlyFlow").json_body["flow"]
    assert head["schedule"] == "cron(0 * * * ? *)" and head["rule_name"] == RULE


def test_flows_without_schedule_get_no_rule(control_plane):
    cp = control_plane
    cp.deploy("parameter_flow.py")
    assert cp.aws.schedules.get(rule_name("ParameterFlow")) is None


def test_redeploying_without_schedule_removes_the_rule(control_plane, tmp_path):
    cp = control_plane
    cp.deploy("hourly_flow.py")
    text = (EXAMPLES / "hourly_flow.py").read_text().replace("@schedule(hourly=True)\n", "")
    record = cp.deploy("hourly_flow.py", folder=project_copy(tmp_path, "hourly_flow.py", text))
    assert record["status"] == "DEPLOYED" and record["version"] == 2
    assert cp.aws.schedules.get(RULE) is None
    assert "schedule" not in cp.get("/deployments?flow=HourlyFlow").json_body["flow"]


def test_redeploying_with_another_schedule_replaces_the_expression(control_plane, tmp_path):
    cp = control_plane
    cp.deploy("hourly_flow.py")
    text = (EXAMPLES / "hourly_flow.py").read_text().replace("@schedule(hourly=True)", "@schedule(cron='0 10 * * ? *')")
    cp.deploy("hourly_flow.py", folder=project_copy(tmp_path, "hourly_flow.py", text))
    rule = cp.aws.schedules.get(RULE)
    assert rule["expression"] == "cron(0 10 * * ? *)" and len(rule["targets"]) == 1


# --- the launcher ----------------------------------------------------------------------


def _tick(cp, name, time):
    """What EventBridge hands the launcher at `time`: the rule's transformer over a Scheduled Event."""
    rule = cp.aws.schedules.get(rule_name(name))
    event = scheduled_event(rule["arn"], time)
    payload = apply_input_transformer(rule["targets"][0]["InputTransformer"], event)
    return cp.client.lambda_.invoke("launch", payload).payload


def test_the_launcher_starts_production_with_default_parameters(control_plane):
    cp = control_plane
    cp.deploy("hourly_flow.py")
    result = _tick(cp, "HourlyFlow", "2026-11-24T10:00:00Z")
    assert result["started"] is True
    assert result["run_id"] == "sfn-flowplane-local-schedule-HourlyFlow-20261124T100000Z"
    [execution] = cp.executions("HourlyFlow")
    assert execution["name"] == "flowplane-local-schedule-HourlyFlow-20261124T100000Z"
    described = cp.aws.state_machines.client.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"]) == {"Parameters": "{}", "ScheduledTime": "2026-11-24T10:00:00Z"}


def test_a_duplicate_delivery_starts_no_second_run(control_plane):
    cp = control_plane
    cp.deploy("hourly_flow.py")
    first = _tick(cp, "HourlyFlow", "2026-11-24T10:00:00Z")
    second = _tick(cp, "HourlyFlow", "2026-11-24T10:00:00Z")
    assert first["run_id"] == second["run_id"]
    assert len(cp.executions("HourlyFlow")) == 1
    # The next tick is another run.
    _tick(cp, "HourlyFlow", "2026-11-24T11:00:00Z")
    assert len(cp.executions("HourlyFlow")) == 2


def test_execution_already_exists_counts_as_started(control_plane, monkeypatch):
    cp = control_plane
    cp.deploy("hourly_flow.py")
    _tick(cp, "HourlyFlow", "2026-11-24T10:00:00Z")

    # Even if AWS answered ExecutionAlreadyExists (another input under the same name), it is success.
    from botocore.exceptions import ClientError

    from chalicelib import aws as aws_module

    def already(self, **kwargs):
        raise ClientError({"Error": {"Code": "ExecutionAlreadyExists", "Message": "exists"}}, "StartExecution")

    client = cp.aws.state_machines.client
    monkeypatch.setattr(type(client), "start_execution", already)
    result = _tick(cp, "HourlyFlow", "2026-11-24T10:00:00Z")
    assert result["started"] is True
    assert result["execution_arn"].endswith(":flowplane-local-HourlyFlow:flowplane-local-schedule-HourlyFlow-20261124T100000Z")
    assert aws_module.execution_arn(cp.aws.state_machine_arn("HourlyFlow"), "x").endswith(":execution:flowplane-local-HourlyFlow:x")


def test_a_rule_firing_for_a_deleted_flow_starts_nothing(control_plane):
    cp = control_plane
    cp.deploy("hourly_flow.py")
    rule = cp.aws.schedules.get(RULE)
    payload = apply_input_transformer(rule["targets"][0]["InputTransformer"], scheduled_event(rule["arn"], "2026-11-24T10:00:00Z"))
    r = cp.client.http.delete("/flows/HourlyFlow", headers={"content-type": "application/json"}, body=json.dumps({"user": "alice"}))
    assert r.status_code == 200
    # A delivery already in flight when the rule was deleted.
    result = cp.client.lambda_.invoke("launch", payload).payload
    assert result["started"] is False
    assert cp.aws.state_machines.client.list_state_machines()["stateMachines"] == []
