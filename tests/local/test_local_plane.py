"""The embedded control plane itself: the stack it creates, its local Batch (commands,
exit codes, signals, timeouts, vCPUs, logs, environment), event routing, Lambda logs,
the lock and URL file of its state folder, and how the SDK finds it."""

from __future__ import annotations

import json
import sys
import time
import uuid
import urllib.request

import pytest

from flowplane.api_client import ApiClient
from flowplane.local import discover
from flowplane.local.batch import EXITED, TIMED_OUT
from flowplane.local.priority import TASK_NICENESS
from flowplane.local.plane import LocalPlane, PlaneConfig, PlaneError, read_url_file
from flowplane.user_config import ConfigError
from tests.support.embedded_plane import embedded_plane, max_overlap
from tests.support.flow_sources import sleepy_flow
from tests.support.local_runs import write_flow
from tests.support.task_processes import task_argv

pytestmark = pytest.mark.slow

plane = embedded_plane(vcpus=2)


def run_machine(plane, states: dict, start: str, timeout: float = 60) -> dict:
    """Create a state machine from `states`, run it once, and return the finished execution."""
    sfn = plane.session.client("stepfunctions")
    name = f"test-{uuid.uuid4().hex[:8]}"
    arn = sfn.create_state_machine(
        name=name,
        definition=json.dumps({"StartAt": start, "States": states}),
        roleArn=f"arn:aws:iam::{plane.account}:role/flowplane-local-states",
    )["stateMachineArn"]
    execution = sfn.start_execution(stateMachineArn=arn, name="e1", input="{}")["executionArn"]
    deadline = time.monotonic() + timeout
    while (found := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{name} still RUNNING"
        time.sleep(0.1)
    return found


def job(plane, code: str, next_state: str | None = None, **parameters) -> dict:
    state = {
        "Type": "Task",
        "Resource": "arn:aws:states:::batch:submitJob.sync",
        "Parameters": {
            "JobName": "test-job",
            "JobQueue": plane.settings.job_queue,
            "JobDefinition": plane.settings.job_definition,
            "ContainerOverrides": {"Command": [sys.executable, "-c", code]},
            **parameters,
        },
        "ResultPath": None,
    }
    state.update({"Next": next_state} if next_state else {"End": True})
    return state


def logs_of(plane, job_id: str) -> list[str]:
    logs = plane.session.client("logs")
    stream = f"{plane.settings.job_definition}/default/{job_id}"
    return [e["message"] for e in logs.get_log_events(logGroupName="/aws/batch/job", logStreamName=stream)["events"]]


def last_job(plane) -> tuple:
    record = plane.batch.history[-1]
    described = plane.session.client("batch").describe_jobs(jobs=[record.job_id])["jobs"][0]
    return record, described


# --- the stack ---------------------------------------------------------------------------------


def test_the_stack_is_in_the_embedded_aws(plane):
    s = plane.settings
    session = plane.session
    assert s.bucket in {b["Name"] for b in session.client("s3").list_buckets()["Buckets"]}
    tables = session.client("dynamodb").list_tables()["TableNames"]
    assert s.table in tables and s.foreach_table in tables
    batch = session.client("batch")
    (queue,) = batch.describe_job_queues(jobQueues=[s.job_queue])["jobQueues"]
    assert queue["state"] == "ENABLED"
    (definition,) = batch.describe_job_definitions(jobDefinitionName=s.job_definition)["jobDefinitions"]
    assert definition["containerProperties"]["command"] == [sys.executable, "-m", "flowplane", "task"]
    roles = {r["RoleName"] for r in session.client("iam").list_roles()["Roles"]}
    assert "flowplane-local-states" in roles
    # One rule per event handler of the app, with the handler's own pattern, as `chalice deploy` makes.
    events = session.client("events")
    from app import app

    for source in app.event_sources:
        rule = events.describe_rule(Name=f"flowplane-local-{source.name}")
        if hasattr(source, "event_pattern"):
            assert json.loads(rule["EventPattern"]) == source.event_pattern
        else:
            assert rule["ScheduleExpression"]
    with urllib.request.urlopen(plane.url + "/health") as r:
        assert json.loads(r.read())["ok"] is True


# --- the local Batch -----------------------------------------------------------------------------


def test_exit_codes_decide_the_job_and_the_output_is_logged(plane):
    code = "import sys; print('to stdout'); print('to stderr', file=sys.stderr); sys.exit(3)"
    found = run_machine(plane, {"A": job(plane, code)}, "A")
    assert found["status"] == "FAILED" and found["error"] == "States.TaskFailed"
    record, described = last_job(plane)
    assert record.exit_code == 3 and record.signal is None
    assert described["status"] == "FAILED" and described["statusReason"] == EXITED
    assert described["container"]["exitCode"] == 3
    assert described["attempts"][0]["container"]["exitCode"] == 3
    assert sorted(logs_of(plane, record.job_id)) == ["to stderr", "to stdout"]
    ok = run_machine(plane, {"A": job(plane, "import os; print('fine', os.nice(0))")}, "A")
    assert ok["status"] == "SUCCEEDED" and last_job(plane)[1]["container"]["exitCode"] == 0
    # Any job's process runs below the plane, as a task does.
    assert logs_of(plane, last_job(plane)[0].job_id) == [f"fine {TASK_NICENESS}"]


def test_a_job_sees_its_environment_and_the_embedded_aws_not_the_planes_settings(plane):
    code = (
        "import json, os; print(json.dumps({k: os.environ.get(k) for k in "
        "('GREETING', 'AWS_ENDPOINT_URL', 'FLOWPLANE_S3_ENDPOINT_URL', 'AWS_BATCH_JOB_ID', 'FLOWPLANE_BUCKET', "
        "'MOTO_PORT')}))"
    )
    overrides = {"Command": [sys.executable, "-c", code], "Environment": [{"Name": "GREETING", "Value": "hi"}]}
    state = job(plane, code)
    state["Parameters"]["ContainerOverrides"] = overrides
    assert run_machine(plane, {"A": state}, "A")["status"] == "SUCCEEDED"
    record, _ = last_job(plane)
    seen = json.loads(logs_of(plane, record.job_id)[0])
    assert seen == {
        "GREETING": "hi",
        "AWS_ENDPOINT_URL": plane.endpoint,
        "FLOWPLANE_S3_ENDPOINT_URL": plane.endpoint,
        "AWS_BATCH_JOB_ID": record.job_id,
        "FLOWPLANE_BUCKET": None,
        "MOTO_PORT": None,
    }


def test_an_attempt_over_its_timeout_is_killed(plane):
    state = job(plane, "import time; print('long', flush=True); time.sleep(60)", Timeout={"AttemptDurationSeconds": 1})
    t0 = time.monotonic()
    found = run_machine(plane, {"A": state}, "A")
    assert found["status"] == "FAILED" and time.monotonic() - t0 < 20
    record, described = last_job(plane)
    assert described["statusReason"] == TIMED_OUT and record.signal == "SIGTERM"
    assert logs_of(plane, record.job_id) == ["long"]


def test_a_flowplane_task_is_forked_by_the_zygote_and_killed_at_its_timeout_as_any_job(plane, tmp_path):
    flow = write_flow(tmp_path, "sleepy_flow", sleepy_flow(60, first='print("pid", os.getpid(), os.getppid(), os.nice(0), flush=True)'))
    state = job(plane, "", Timeout={"AttemptDurationSeconds": 5})
    state["Parameters"]["ContainerOverrides"]["Command"] = ["flowplane", *task_argv(flow, tmp_path / "ds", "start")]
    found = run_machine(plane, {"A": state}, "A")
    record, described = last_job(plane)
    assert found["status"] == "FAILED" and described["statusReason"] == TIMED_OUT and record.signal == "SIGTERM"
    # Its own process, forked by the zygote (the process record's pid is the task's), below the
    # plane in CPU priority (priority.py).
    assert logs_of(plane, record.job_id) == [f"pid {record.pid} {plane.batch._zygote.process.pid} {TASK_NICENESS}"]


def test_at_most_the_vcpus_run_at_once(plane):
    # Four one-second jobs at once (MaxConcurrency 0) on a 2-vCPU compute environment.
    before = len(plane.batch.history)
    item = {"StartAt": "S", "States": {"S": job(plane, "import time; time.sleep(1)")}}
    mapped = {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 0, "Iterator": item, "End": True}
    states = {"Items": {"Type": "Pass", "Result": [1, 2, 3, 4], "ResultPath": "$.items", "Next": "M"}, "M": mapped}
    assert run_machine(plane, states, "Items")["status"] == "SUCCEEDED"
    ran = plane.batch.history[before:]
    assert len(ran) == 4 and max_overlap([(r.started, r.ended) for r in ran]) == 2
    # A job asking for both vCPUs runs alone.
    before = len(plane.batch.history)
    item["States"]["S"]["Parameters"]["ContainerOverrides"]["ResourceRequirements"] = [
        {"Type": "VCPU", "Value": "2"}, {"Type": "MEMORY", "Value": "512"}
    ]
    assert run_machine(plane, states, "Items")["status"] == "SUCCEEDED"
    assert max_overlap([(r.started, r.ended) for r in plane.batch.history[before:]]) == 1


def test_job_state_changes_reach_the_recorder_as_batch_events(plane):
    before = len(plane.router.deliveries)
    found = run_machine(plane, {"A": job(plane, "print(1)")}, "A")
    assert found["status"] == "SUCCEEDED" and plane.settle()
    # The recorder listens to jobs running `flowplane task` only: this one is not for it.
    assert all(d.handler != "record_job" for d in plane.router.deliveries[before:])
    mine = [d for d in plane.router.deliveries[before:] if d.event["detail"].get("executionArn") == found["executionArn"]]
    # Each status once, in AWS's shape, to the recorder of executions.
    assert [(d.handler, d.event["detail"]["status"]) for d in mine] == [
        ("record_execution", "RUNNING"), ("record_execution", "SUCCEEDED")
    ]
    for d in mine:
        assert d.ok and d.event["account"] == plane.account and d.event["region"] == plane.region
        assert d.event["source"] == "aws.states" and d.event["resources"] == [found["executionArn"]]
        assert d.event["detail"]["stateMachineArn"] == found["stateMachineArn"]


def test_what_functions_print_goes_to_their_cloudwatch_logs(plane, capsys):
    # pytest swaps sys.stdout for each test; put the plane's router back in front of it.
    undo = plane.lambda_output.install()
    try:
        print("the terminal's")
        plane.invoke("reconcile", {"version": "0", "id": "x", "detail-type": "Scheduled Event",
                                   "source": "aws.events", "account": plane.account, "time": "2026-11-24T11:00:00Z",
                                   "region": plane.region, "resources": [], "detail": {}})
    finally:
        undo()
    assert capsys.readouterr().out == "the terminal's\n"
    logs = plane.session.client("logs")
    group = "/aws/lambda/flowplane-local-reconcile"
    (stream,) = logs.describe_log_streams(logGroupName=group)["logStreams"]
    lines = [e["message"] for e in logs.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"])["events"]]
    assert any(json.loads(line).get("message") == "reconciled" for line in lines), lines


# --- the state folder, and finding the plane ------------------------------------------------------


def test_the_state_folder_is_locked_and_names_the_url(plane):
    info = read_url_file(plane.config.state_dir)
    assert info["url"] == plane.url and info["endpoint"] == plane.endpoint
    with pytest.raises(PlaneError, match=f"another embedded control plane runs on .* at {plane.url}"):
        LocalPlane(PlaneConfig(state_dir=plane.config.state_dir)).start()
    assert read_url_file(plane.config.state_dir)["url"] == plane.url  # the refused one changed nothing


def test_a_plane_without_the_control_plane_sources_says_where_it_looked(tmp_path):
    with pytest.raises(PlaneError, match="needs the control plane's sources .* FLOWPLANE_CONTROL_PLANE_DIR"):
        LocalPlane(PlaneConfig(state_dir=tmp_path / "s", project_dir=tmp_path)).start()
    assert not (tmp_path / "s").exists()


@pytest.mark.embedded
def test_the_sdk_finds_a_running_plane_when_nothing_is_configured(plane, monkeypatch, capsys):
    monkeypatch.delenv("FLOWPLANE_API_URL")
    monkeypatch.setenv("FLOWPLANE_LOCAL_STATE_DIR", str(plane.config.state_dir))
    discover._announced.clear()
    assert ApiClient().health()["ok"] is True
    assert ApiClient().base_url == plane.url
    # Found, not started: nothing to say (starting one is said once, with how to stop it).
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("FLOWPLANE_EMBEDDED", "0")
    with pytest.raises(ConfigError, match="FLOWPLANE_EMBEDDED=0"):
        ApiClient().base_url


def test_an_idle_keep_alive_connection_does_not_hold_up_other_requests(plane):
    import http.client

    host, port = plane.url.removeprefix("http://").split(":")
    idle = http.client.HTTPConnection(host, int(port), timeout=10)
    idle.request("GET", "/health")
    assert idle.getresponse().read()
    try:
        t0 = time.monotonic()
        with urllib.request.urlopen(plane.url + "/health", timeout=5) as r:
            assert r.status == 200
        assert time.monotonic() - t0 < 4.5  # a server blocked by the idle connection waits out the 5 s
        idle.request("GET", "/health")  # and the kept connection still works
        assert idle.getresponse().status == 200
    finally:
        idle.close()
