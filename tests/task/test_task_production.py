"""The task on Batch: a deployed package from S3, parameters from the execution input,
the S3 datastore, the foreach item list in S3 (and, for state machines compiled before,
the cardinality in DynamoDB). In-process against moto."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import boto3
import pytest

from flowplane.datastore.storage import S3Storage
from flowplane.foreach_cardinality import read_cardinality
from flowplane.foreach_items import items_key
from flowplane.manifest import DeployOptions
from flowplane.package import build_package, manifest_for
from flowplane.task.command import main as task_main
from flowplane.task.loader import load_flow_file
from tests.support.local_runs import RunView
from tests.support.shared_flows import SHARED_FLOWS
from tests.support.task_aws import task_aws

pytestmark = pytest.mark.aws

BUCKET = "flowplane-test"
ROOT = f"s3://{BUCKET}/datastore"
TABLE = "flowplane-foreach"
TOKEN = "tok-123"


@pytest.fixture()
def aws(monkeypatch):
    with task_aws(monkeypatch, BUCKET, ROOT, TOKEN, FLOWPLANE_FOREACH_TABLE=TABLE, FLOWPLANE_USER="deployer"):
        boto3.client("dynamodb").create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pathspec", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pathspec", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield


def deploy(tmp_path: Path, flow_name: str, version: str | None = None) -> str:
    """Package a shared flow as `step-functions create` would, upload it, return its URL."""
    folder = tmp_path / f"src_{flow_name}"
    folder.mkdir()
    shutil.copy(SHARED_FLOWS / flow_name, folder / flow_name)
    ctx, _ = load_flow_file(str(folder / flow_name)).context([])
    manifest = manifest_for(ctx, DeployOptions(), flowplane_version=version)
    package = build_package(str(folder), manifest)
    boto3.client("s3").put_object(Bucket=BUCKET, Key=package.key, Body=package.data)
    return f"s3://{BUCKET}/{package.key}"


def batch_task(url: str, run_id: str, step: str, task_id: str = "1", retry: int = 0) -> int:
    return task_main(["--package", url, "--run-id", run_id, "--step", step, "--task-id", task_id,
                      "--retry-count", str(retry)])


def s3_run(flow: str, run_id: str) -> RunView:
    return RunView(S3Storage(ROOT), flow, run_id)


def test_foreach_flow_on_batch_total_285(aws, tmp_path, monkeypatch):
    url = deploy(tmp_path, "foreach_flow.py")
    monkeypatch.setenv("FLOWPLANE_EXECUTION_INPUT", json.dumps({"Parameters": "{}"}))
    run_id = "sfn-exec-1"
    assert batch_task(url, run_id, "start") == 0
    # What the Distributed Map's ItemReader reads: the indices, under the datastore's prefix.
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key="datastore/" + items_key("ForeachFlow", run_id, "start", "1"))
    assert json.loads(body["Body"].read()) == list(range(10))
    # And, while FLOWPLANE_FOREACH_TABLE is set (definitions compiled before), the DynamoDB item.
    n = read_cardinality(TABLE, "ForeachFlow", run_id, "start", "1")
    assert n == 10
    for i in range(n):
        assert batch_task(url, run_id, "square", f"1.{i}") == 0
    assert batch_task(url, run_id, "join") == 0
    assert batch_task(url, run_id, "end") == 0

    run = s3_run("ForeachFlow", run_id)
    assert run.data("join")["total"] == 285
    assert run.data("end")["total"] == 285
    assert run.task_ids("square") == [f"1.{i}" for i in range(10)]
    assert [run.data("square", f"1.{i}")["value"] for i in range(10)] == [i * i for i in range(10)]
    assert run.foreach("start") == {"num_splits": 10}
    assert run.log("end") == "sum of squares is 285\n"
    record = run.record
    assert record.status == "succeeded" and record.finished_at
    assert f"production:{TOKEN}" in record.system_tags and "runtime:step-functions" in record.system_tags
    assert record.user == "SFN" and "user:SFN" in record.system_tags and record.owner == "deployer"
    assert "user:deployer" not in record.system_tags


def test_without_flowplane_user_the_run_is_owned_by_the_deployer(aws, tmp_path, monkeypatch):
    url = deploy(tmp_path, "parameter_flow.py")  # deployed by FLOWPLANE_USER=deployer
    monkeypatch.delenv("FLOWPLANE_USER")
    monkeypatch.setenv("USER", "root")  # what a container says
    monkeypatch.setenv("FLOWPLANE_EXECUTION_INPUT", json.dumps({"Parameters": "{}"}))
    assert batch_task(url, "sfn-u", "start") == 0
    record = s3_run("ParameterFlow", "sfn-u").record
    assert (record.user, record.owner) == ("SFN", "deployer")


def test_parameters_from_the_execution_input(aws, tmp_path, monkeypatch):
    url = deploy(tmp_path, "parameter_flow.py")
    monkeypatch.setenv("FLOWPLANE_EXECUTION_INPUT", json.dumps({"Parameters": json.dumps({"alpha": 0.5})}))
    assert batch_task(url, "sfn-a", "start") == 0
    assert batch_task(url, "sfn-a", "end") == 0
    assert s3_run("ParameterFlow", "sfn-a").data("end")["alpha"] == 0.5
    assert s3_run("ParameterFlow", "sfn-a").log("start") == "alpha is 0.500000\n"
    # Left out: the deployed default.
    monkeypatch.setenv("FLOWPLANE_EXECUTION_INPUT", json.dumps({"Parameters": "{}"}))
    assert batch_task(url, "sfn-b", "start") == 0
    assert s3_run("ParameterFlow", "sfn-b").data("start")["alpha"] == 0.01


def test_deploy_time_defaults_come_from_the_manifest(aws, tmp_path, monkeypatch):
    url = deploy(tmp_path, "deployment_info_flow.py")
    monkeypatch.setenv("FLOWPLANE_EXECUTION_INPUT", json.dumps({"Parameters": "{}"}))
    monkeypatch.setenv("FLOWPLANE_USER", "batch-runner")  # whoever the job runs as
    for run_id in ("sfn-1", "sfn-2"):
        assert batch_task(url, run_id, "start") == 0
    first, second = (s3_run("DeploymentInfoFlow", r).data("start")["info"] for r in ("sfn-1", "sfn-2"))  # the attribute
    assert first["who"] == "deployer"
    assert first == second  # evaluated once, at deploy


def test_unknown_or_mistyped_parameters_stop_the_task_before_anything_is_written(aws, tmp_path, monkeypatch, capsys):
    url = deploy(tmp_path, "parameter_flow.py")
    monkeypatch.setenv("FLOWPLANE_EXECUTION_INPUT", json.dumps({"Parameters": json.dumps({"alpha": 1, "beta": 2})}))
    assert batch_task(url, "sfn-x", "start") == 1
    assert "unknown parameter(s) 'beta'; the flow's parameters are: alpha" in capsys.readouterr().err
    monkeypatch.setenv("FLOWPLANE_EXECUTION_INPUT", json.dumps({"Parameters": json.dumps({"alpha": "fast"})}))
    assert batch_task(url, "sfn-x", "start") == 1
    assert "'fast' is not a valid float" in capsys.readouterr().err
    monkeypatch.setenv("FLOWPLANE_EXECUTION_INPUT", "{not json")
    assert batch_task(url, "sfn-x", "start") == 1
    assert "FLOWPLANE_EXECUTION_INPUT is not JSON" in capsys.readouterr().err
    assert S3Storage(ROOT).list_dir("ParameterFlow/runs") == []


def test_an_incompatible_package_version_is_refused(aws, tmp_path, capsys):
    url = deploy(tmp_path, "parameter_flow.py", version="9.4.0")
    assert batch_task(url, "sfn-v", "start") == 1
    err = capsys.readouterr().err
    assert "this package was built with flowplane '9.4.0' but the task runtime is flowplane 0.1.0" in err
    assert S3Storage(ROOT).list_dir("ParameterFlow") == []


def test_a_missing_package_is_a_clear_error(aws, capsys):
    assert batch_task(f"s3://{BUCKET}/packages/{'0' * 64}.tar.gz", "sfn-m", "start") == 1
    assert "no such object" in capsys.readouterr().err
    boto3.client("s3").put_object(Bucket=BUCKET, Key="packages/junk.tar.gz", Body=b"not a tarball")
    assert batch_task(f"s3://{BUCKET}/packages/junk.tar.gz", "sfn-m", "start") == 1
    assert "not a readable tar.gz package" in capsys.readouterr().err


def test_arguments_from_the_batch_environment_and_the_attempt_number(aws, tmp_path, monkeypatch):
    url = deploy(tmp_path, "parameter_flow.py")
    for var, value in {
        "FLOWPLANE_PACKAGE_URL": url,
        "FLOWPLANE_RUN_ID": "sfn-env",
        "FLOWPLANE_STEP": "start",
        "FLOWPLANE_TASK_ID": "1",
        "FLOWPLANE_RETRY_COUNT": "2",
        "FLOWPLANE_EXECUTION_INPUT": json.dumps({"Parameters": json.dumps({"alpha": 0.25})}),
    }.items():
        monkeypatch.setenv(var, value)
    assert task_main([]) == 0
    run = s3_run("ParameterFlow", "sfn-env")
    assert run.task("start").final_attempt == 2 and run.task("start").attempts == 3
    assert run.data("start")["alpha"] == 0.25


def test_task_events_go_to_the_bus_for_the_recorder(aws, tmp_path, monkeypatch):
    from chalicelib.recording.events import parse_event  # the recorder's own parser

    events, sqs = boto3.client("events"), boto3.client("sqs")
    events.create_event_bus(Name="fp-bus")
    queue = sqs.create_queue(QueueName="fp-events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="all", EventBusName="fp-bus", EventPattern=json.dumps({"source": ["flowplane.task"]}))
    events.put_targets(Rule="all", EventBusName="fp-bus", Targets=[{"Id": "q", "Arn": arn}])
    monkeypatch.setenv("FLOWPLANE_EVENT_BUS", "fp-bus")
    monkeypatch.setenv("AWS_BATCH_JOB_ID", "job-42")
    monkeypatch.setenv("FLOWPLANE_RESOURCE_PREFIX", "flowplane-prod")  # the compiled state machine sets it
    url = deploy(tmp_path, "parameter_flow.py")
    monkeypatch.setenv("FLOWPLANE_EXECUTION_INPUT", json.dumps({"Parameters": "{}"}))
    assert batch_task(url, "sfn-ev", "start") == 0

    received = []
    while True:
        msgs = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        if not msgs:
            break
        received += [json.loads(m["Body"]) for m in msgs]
    parsed = sorted((parse_event(e) for e in received), key=lambda e: e.kind != "started")
    assert [e.kind for e in parsed] == ["started", "finished"]
    started, finished = parsed
    assert (started.flow, started.run_id, started.step, started.task_id, started.attempt) == (
        "ParameterFlow", "sfn-ev", "start", "1", 0)
    assert finished.batch_job_id == "job-42"
    assert started.stage == finished.stage == "flowplane-prod"
    # The run's graph travels as the internal artifact every task carries (Task.parent_tasks reads it).
    assert set(finished.artifacts) == {"alpha", "_graph_info"}
    assert finished.artifacts["alpha"].sha == s3_run("ParameterFlow", "sfn-ev").index("start")["alpha"].sha


def test_a_bus_that_cannot_be_reached_does_not_fail_the_task(aws, tmp_path, monkeypatch, capsys):
    url = deploy(tmp_path, "parameter_flow.py")
    monkeypatch.setenv("FLOWPLANE_EVENT_BUS", "no-such-bus")
    monkeypatch.setenv("FLOWPLANE_EXECUTION_INPUT", json.dumps({"Parameters": "{}"}))
    assert batch_task(url, "sfn-nb", "start") == 0
    assert "could not send the started event of ParameterFlow/sfn-nb/start/1 to no-such-bus" in capsys.readouterr().err
