"""moto patches 16-18: a failed item of a Distributed Map fails the Map, as on AWS (threshold 0); a run stopped the moment it starts is aborted; `.sync` Batch tasks poll the backend in-process."""

from __future__ import annotations

import json
import time

import boto3
import pytest
from moto import mock_aws

from flowplane.local.moto_patches import install_distributed_map_failures

pytestmark = pytest.mark.aws

CONFIG = {"stepfunctions": {"execute_state_machine": True}}


def _definition(child_fails_at: int | None, extra: dict | None = None) -> dict:
    choices = ([{"Variable": "$.idx", "NumericEquals": child_fails_at, "Next": "F"}]
               if child_fails_at is not None else [{"Variable": "$.idx", "NumericEquals": -1, "Next": "F"}])
    return {"StartAt": "M", "States": {"M": {
        "Type": "Map",
        "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "JSON"},
                       "Parameters": {"Bucket": "items", "Key": "items.json"}},
        "ItemSelector": {"idx.$": "$$.Map.Item.Index"},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
                          "StartAt": "C", "States": {
                              "C": {"Type": "Choice", "Choices": choices, "Default": "OK"},
                              "F": {"Type": "Fail", "Error": "ItemFailed", "Cause": "this item failed"},
                              "OK": {"Type": "Pass", "End": True}}},
        "MaxConcurrency": 2,
        "ResultSelector": {"n.$": "States.ArrayLength($)"},
        "End": True, **(extra or {})}}}


def _start(definition: dict, items: int = 6) -> str:
    s3, sfn = boto3.client("s3"), boto3.client("stepfunctions")
    s3.create_bucket(Bucket="items")
    s3.put_object(Bucket="items", Key="items.json", Body=json.dumps(list(range(items))).encode())
    role = boto3.client("iam").create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    machine = sfn.create_state_machine(name="m", definition=json.dumps(definition), roleArn=role)["stateMachineArn"]
    return sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]


def _ended(arn: str, timeout: float = 60) -> dict:
    sfn = boto3.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while (found := sfn.describe_execution(executionArn=arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, f"{arn} still RUNNING after {timeout} s"
        time.sleep(0.05)
    return found


def _run(definition: dict, items: int = 6) -> dict:
    return _ended(_start(definition, items))


@pytest.fixture()
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws(config=CONFIG):
        yield


def test_moto_alone_lets_a_failed_item_pass_which_the_patch_mends(aws) -> None:
    # The difference the patch exists for: without it the run succeeds.
    assert _run(_definition(child_fails_at=3))["status"] == "SUCCEEDED"


def test_one_failed_item_fails_the_map_and_the_run(aws) -> None:
    undo = install_distributed_map_failures()
    try:
        found = _run(_definition(child_fails_at=3))
        assert found["status"] == "FAILED"
        assert found["error"] == "States.ExceedToleratedFailureThreshold"
        assert "1 of 6 items failed" in found["cause"]
    finally:
        undo()


def test_items_that_all_succeed_still_succeed(aws) -> None:
    undo = install_distributed_map_failures()
    try:
        assert _run(_definition(child_fails_at=None))["status"] == "SUCCEEDED"
    finally:
        undo()


def test_a_catch_on_the_map_sees_the_threshold_error(aws) -> None:
    undo = install_distributed_map_failures()
    definition = _definition(child_fails_at=0, extra={
        "Catch": [{"ErrorEquals": ["States.ExceedToleratedFailureThreshold"], "Next": "Caught"}]})
    definition["States"]["M"].pop("End")
    definition["States"]["M"]["Catch"][0]["ResultPath"] = "$.error"
    definition["States"]["Caught"] = {"Type": "Pass", "End": True}
    try:
        assert _run(definition)["status"] == "SUCCEEDED"
    finally:
        undo()


def test_a_run_stopped_while_its_items_run_is_aborted_not_failed_by_their_count(aws) -> None:
    # `terminate` of a wide foreach: the stop aborts the children, which must not count as
    # failed items (the run would end FAILED instead of ABORTED).
    undo = install_distributed_map_failures()
    definition = _definition(child_fails_at=None)
    definition["States"]["M"]["ItemProcessor"]["States"]["OK"] = {"Type": "Wait", "Seconds": 5, "End": True}
    try:
        arn = _start(definition)
        time.sleep(1)
        boto3.client("stepfunctions").stop_execution(executionArn=arn, cause="terminated")
        assert _ended(arn, timeout=20)["status"] == "ABORTED"
    finally:
        undo()


def test_a_run_stopped_the_moment_it_starts_is_aborted_not_an_error(aws) -> None:
    """moto patch 17: StopExecution before moto's worker has parsed the definition."""
    from flowplane.local.moto_patches import moto_early_stop_fix
    from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker

    sfn = boto3.client("stepfunctions")
    role = boto3.client("iam").create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    definition = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 30, "End": True}}}
    machine = sfn.create_state_machine(name="w", definition=json.dumps(definition), roleArn=role)["stateMachineArn"]
    slow = ExecutionWorker._get_evaluation_entrypoint

    def parse_slowly(self):  # the worker still parsing when the stop arrives, every time
        time.sleep(0.3)
        return slow(self)

    with moto_early_stop_fix():
        ExecutionWorker._get_evaluation_entrypoint = parse_slowly
        try:
            arn = sfn.start_execution(stateMachineArn=machine, input="{}")["executionArn"]
            sfn.stop_execution(executionArn=arn, cause="stopped at once")
            assert _ended(arn, timeout=10)["status"] == "ABORTED"
        finally:
            ExecutionWorker._get_evaluation_entrypoint = slow


# --- patch 18: `.sync` Batch tasks read the job from the backend, not over HTTP -------------------


def _batch_sync_run(monkeypatch, fail: bool) -> tuple[dict, int]:
    """A `batch:submitJob.sync` task run with patch 18; (the execution, DescribeJobs API calls)."""
    from moto.batch.responses import BatchResponse

    from flowplane.local.moto_patches import install_in_process_sync_poll, patched_moto_batch

    calls = []
    original = BatchResponse.describejobs
    monkeypatch.setattr(BatchResponse, "describejobs", lambda self: calls.append(1) or original(self))
    if fail:
        monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")
    iam, batch = boto3.client("iam"), boto3.client("batch")
    role = iam.create_role(RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    ce = batch.create_compute_environment(computeEnvironmentName="fp-ce", type="UNMANAGED", state="ENABLED",
                                          serviceRole=role)["computeEnvironmentArn"]
    queue = batch.create_job_queue(jobQueueName="fp-q", state="ENABLED", priority=1,
                                   computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}])["jobQueueArn"]
    batch.register_job_definition(jobDefinitionName="fp-jd", type="container",
                                  containerProperties={"image": "x", "vcpus": 1, "memory": 128})
    definition = {"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": "arn:aws:states:::batch:submitJob.sync",
        "Parameters": {"JobName": "fp-j", "JobQueue": queue, "JobDefinition": "fp-jd"}, "End": True}}}
    undo = install_in_process_sync_poll()
    try:
        with patched_moto_batch():
            sfn = boto3.client("stepfunctions")
            machine = sfn.create_state_machine(name="b", definition=json.dumps(definition), roleArn=role)
            arn = sfn.start_execution(stateMachineArn=machine["stateMachineArn"], input="{}")["executionArn"]
            found = _ended(arn)
    finally:
        undo()
    return found, len(calls)


@pytest.fixture()
def aws_batch(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws(config={**CONFIG, "batch": {"use_docker": False}}):
        yield


def test_a_sync_batch_task_succeeds_without_polling_the_batch_api(aws_batch, monkeypatch) -> None:
    found, api_calls = _batch_sync_run(monkeypatch, fail=False)
    assert found["status"] == "SUCCEEDED"
    # The task's output is the job's description, as the API would have answered it.
    output = json.loads(found["output"])
    assert output["Status"] == "SUCCEEDED" and output["JobName"] == "fp-j"
    assert api_calls == 0


def test_a_failed_batch_job_still_fails_the_task(aws_batch, monkeypatch) -> None:
    found, api_calls = _batch_sync_run(monkeypatch, fail=True)
    assert (found["status"], found["error"]) == ("FAILED", "States.TaskFailed")
    assert json.loads(found["cause"])["Status"] == "FAILED"
    assert api_calls == 0


def test_the_patch_undoes_cleanly() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service_batch as mod

    from flowplane.local.moto_patches import install_in_process_sync_poll

    before = (mod.boto_client_for, mod.StateTaskServiceBatch.__dict__["_build_sync_resolver"])
    undo = install_in_process_sync_poll()
    assert install_in_process_sync_poll() is not None  # a second install changes nothing
    undo()
    assert (mod.boto_client_for, mod.StateTaskServiceBatch.__dict__["_build_sync_resolver"]) == before
