"""The recorder's event models and translations, without AWS.

Events are built in the AWS documentation's shapes (tests/support/recording_events.py);
a Batch job's command and environment come from a real compiled state machine.
"""

from __future__ import annotations

import json
import re

import pytest

from chalicelib.compiler import CompileSettings, compile_state_machine
from chalicelib.compiler.asl import CONTEXT_STATE
from chalicelib.recording.events import (
    ExecutionStatusChange,
    JobStateChange,
    UnknownEvent,
    attempt_key,
    attempt_update_from_batch,
    attempt_update_from_task,
    parse_event,
    run_update,
    task_from_command,
)
from chalicelib.keys import task_order
from chalicelib.routes.recording import EXECUTION_PATTERN, JOB_PATTERN, TASK_PATTERN
from flowplane.event_types import TASK_EVENT_DETAIL_TYPES, TASK_EVENT_SOURCE
from flowplane.events import TaskEvent
from tests.support.compiler_shapes import LONG_SETTINGS, PACKAGE_URL, shared_manifest
from tests.support.recording_events import T0, execution_detail, iso, job_detail, task_detail


def envelope(source: str, detail_type: str, detail: dict) -> dict:
    return {
        "version": "0",
        "id": "c8f9c4b5-76e5-d76a-f980-7011e206042b",
        "detail-type": detail_type,
        "source": source,
        "account": "123456789012",
        "time": "2025-11-25T00:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    }


# --- the patterns of the three rules match the events they are for ------------------------


def matches(pattern: dict, event: dict) -> bool:
    """EventBridge's matching for the pattern features used here (exact values, arrays)."""
    for key, want in pattern.items():
        have = event.get(key)
        if isinstance(want, dict):
            if not isinstance(have, dict) or not matches(want, have):
                return False
        elif isinstance(have, list):
            if not set(map(str, have)) & set(map(str, want)):
                return False
        elif have not in want:
            return False
    return True


def test_rule_patterns_match_their_events_and_nothing_else():
    sfn = envelope("aws.states", "Step Functions Execution Status Change", execution_detail("F", "e", "RUNNING", T0))
    ours = envelope("aws.batch", "Batch Job State Change", job_detail("F", "sfn-e", "start", "1", 0, "RUNNING", "j", T0))
    theirs = json.loads(json.dumps(ours))
    theirs["detail"]["container"]["command"] = ["sleep", "600"]
    task = envelope(TASK_EVENT_SOURCE, "Flowplane Task Started", task_detail("started", "F", "sfn-e", "start", "1", 0, T0))
    assert [matches(EXECUTION_PATTERN, e) for e in (sfn, ours, task)] == [True, False, False]
    assert [matches(JOB_PATTERN, e) for e in (sfn, ours, theirs, task)] == [False, True, False, False]
    assert [matches(TASK_PATTERN, e) for e in (sfn, ours, task)] == [False, False, True]
    # The task rule lists exactly the detail types the task runtime sends.
    assert sorted(TASK_PATTERN["detail-type"]) == sorted(TASK_EVENT_DETAIL_TYPES.values())


# --- parsing ------------------------------------------------------------------------------


def test_parse_each_kind_of_event():
    sfn = parse_event(envelope("aws.states", "Step Functions Execution Status Change", execution_detail("F", "e", "RUNNING", T0)))
    assert isinstance(sfn, ExecutionStatusChange) and sfn.state_machine_name == "flowplane-local-F" and sfn.startDate == T0
    job = parse_event(envelope("aws.batch", "Batch Job State Change", job_detail("F", "sfn-e", "s", "1.3", 2, "RUNNING", "j", T0)))
    assert isinstance(job, JobStateChange) and job.container.command[:2] == ["flowplane", "task"]
    task = parse_event(envelope(TASK_EVENT_SOURCE, "Flowplane Task Finished", task_detail("finished", "F", "sfn-e", "s", "1", 0, T0, artifacts={})))
    assert isinstance(task, TaskEvent) and task.kind == "finished"


@pytest.mark.parametrize(
    "event, why",
    [
        (envelope("aws.ec2", "EC2 Instance State-change Notification", {"state": "running"}), "unhandled"),
        (envelope("aws.states", "Step Functions Execution Status Change", {"name": "e", "status": "RUNNING"}), "malformed"),
        (envelope("aws.batch", "Batch Job State Change", {"jobId": "j", "status": "RUNNING"}), "malformed"),
        (envelope(TASK_EVENT_SOURCE, "Flowplane Task Started", {"kind": "exploded"}), "malformed"),
        ({"detail": "not even an envelope"}, "malformed"),
    ],
)
def test_unknown_and_malformed_events_raise_unknown_event(event, why):
    with pytest.raises(UnknownEvent, match=why):
        parse_event(event)


# --- runs ----------------------------------------------------------------------------------


def test_run_update_of_a_running_execution():
    change = ExecutionStatusChange.model_validate(execution_detail("ParameterFlow", "e1", "RUNNING", T0, parameters={"alpha": 0.5}))
    update = run_update(change, "ParameterFlow")
    assert update == {
        "flow": "ParameterFlow",
        "run_id": "sfn-e1",
        "execution_arn": "arn:aws:states:us-east-1:123456789012:execution:flowplane-local-ParameterFlow:e1",
        "state_machine_arn": "arn:aws:states:us-east-1:123456789012:stateMachine:flowplane-local-ParameterFlow",
        "status": "RUNNING",
        "started_at": iso(T0),
        "parameters": {"alpha": 0.5},
    }


def test_a_version_qualified_state_machine_arn_names_the_same_state_machine():
    detail = execution_detail("F", "e", "RUNNING", T0)
    detail["stateMachineArn"] += ":7"
    change = ExecutionStatusChange.model_validate(detail)
    assert change.state_machine_name == "flowplane-local-F"
    assert run_update(change, "F")["state_machine_arn"].endswith(":stateMachine:flowplane-local-F")


@pytest.mark.parametrize("pascal", [False, True])
def test_a_failed_execution_names_the_failed_task_from_the_job_in_its_cause(pascal):
    job = job_detail("F", "sfn-e", "train", "1.4", 2, "FAILED", "j", T0, T0 + 1, T0 + 2, exit_code=3, reason="Essential container in task exited")
    if pascal:  # what Step Functions' Batch integration hands back
        job = {k[0].upper() + k[1:]: v for k, v in job.items()}
        job["Container"] = {k[0].upper() + k[1:]: v for k, v in job["Container"].items()}
    detail = execution_detail("F", "e", "FAILED", T0, T0 + 5, error="States.TaskFailed", cause=json.dumps(job))
    update = run_update(ExecutionStatusChange.model_validate(detail), "F")
    assert update["status"] == "FAILED" and update["stopped_at"] == iso(T0 + 5)
    assert update["failed_task"] == "F/sfn-e/train/1.4"
    assert update["error"] == {
        "type": "States.TaskFailed",
        "message": "task train/1.4 failed: Essential container in task exited (exit code 3)",
    }


def test_a_cause_that_is_not_a_job_is_kept_as_the_message_cut_to_size():
    detail = execution_detail("F", "e", "FAILED", T0, T0 + 5, error="States.Runtime", cause="x" * 10_000)
    update = run_update(ExecutionStatusChange.model_validate(detail), "F")
    assert "failed_task" not in update
    assert update["error"]["type"] == "States.Runtime" and len(update["error"]["message"]) == 2000


@pytest.mark.parametrize("status", ["TIMED_OUT", "ABORTED"])
def test_timed_out_and_aborted_without_error_still_say_what_happened(status):
    update = run_update(ExecutionStatusChange.model_validate(execution_detail("F", "e", status, T0, T0 + 9)), "F")
    assert update["error"]["type"] == status


def test_execution_input_without_parameters_or_not_json_gives_no_parameters():
    for raw in ("{}", "not json", '{"Parameters": "[1]"}', "[]"):
        detail = execution_detail("F", "e", "RUNNING", T0)
        detail["input"] = raw
        assert run_update(ExecutionStatusChange.model_validate(detail), "F")["parameters"] == {}


# --- attempts ------------------------------------------------------------------------------------


def _evaluate(expr: str, tid: str, retry: int, execution: str) -> list[str] | str:
    """The few intrinsics the compiler uses, evaluated as Step Functions would."""
    expr = expr.strip()
    if expr.startswith("States.Array(") and expr.endswith(")"):
        return [_evaluate(a, tid, retry, execution) for a in _args(expr[len("States.Array(") : -1])]  # type: ignore[misc]
    if expr.startswith("States.Format(") and expr.endswith(")"):
        template, *args = _args(expr[len("States.Format(") : -1])
        values = [str(_evaluate(a, tid, retry, execution)) for a in args]
        return _evaluate(template, tid, retry, execution).replace("{}", "%s") % tuple(values)  # type: ignore[union-attr]
    if expr.startswith("'") and expr.endswith("'"):
        return re.sub(r"\\(.)", r"\1", expr[1:-1])
    return {"$.tid": tid, "$$.State.RetryCount": str(retry), "$$.Execution.Name": execution}[expr]


def _args(text: str) -> list[str]:
    out, depth, quote, cur = [], 0, False, ""
    for i, ch in enumerate(text):
        if ch == "'" and (i == 0 or text[i - 1] != "\\"):
            quote = not quote
        if not quote and ch == "(":
            depth += 1
        if not quote and ch == ")":
            depth -= 1
        if ch == "," and not quote and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return out + [cur]


def test_a_compiled_jobs_command_and_environment_give_the_attempt_key():
    manifest = shared_manifest("foreach_flow.py")
    definition = compile_state_machine(manifest, PACKAGE_URL, CompileSettings(**LONG_SETTINGS))
    ctx = definition["States"][CONTEXT_STATE]["Parameters"]["fp"]
    env = [
        {"name": e["Name"], "value": e["Value"] if "Value" in e else _evaluate(e["Value.$"], "", 0, "exec-7")}
        for e in ctx["env"]
        if e["Name"] != "FLOWPLANE_EXECUTION_INPUT"
    ]
    square = definition["States"]["start-foreach"]["ItemProcessor"]["States"]["square"]
    command = _evaluate(square["Parameters"]["ContainerOverrides"]["Command.$"], "1.3", 2, "exec-7")
    detail = job_detail("X", "Y", "s", "1", 0, "RUNNING", "job-1", T0)
    detail["container"]["environment"] = env
    detail["container"]["command"] = command
    assert attempt_key(JobStateChange.model_validate(detail)) == ("ForeachFlow", "sfn-exec-7", "square", "1.3", 2)


def test_environment_variables_win_over_the_command():
    detail = job_detail("F", "sfn-e", "a", "1", 0, "RUNNING", "j", T0)
    detail["container"]["environment"] += [
        {"name": "FLOWPLANE_STEP", "value": "b"},
        {"name": "FLOWPLANE_TASK_ID", "value": "1.2"},
        {"name": "FLOWPLANE_RETRY_COUNT", "value": "4"},
    ]
    assert attempt_key(JobStateChange.model_validate(detail)) == ("F", "sfn-e", "b", "1.2", 4)


@pytest.mark.parametrize(
    "change",
    [
        {"environment": []},  # no flow, no run
        {"command": ["sleep", "600"]},  # not a flowplane task
        {"command": ["flowplane", "task", "--step", "a"]},  # no task id
        {"command": ["flowplane", "task", "--step", "a", "--task-id", "1", "--retry-count", "two"]},
    ],
)
def test_jobs_that_are_not_flowplane_tasks_have_no_attempt_key(change):
    detail = job_detail("F", "sfn-e", "a", "1", 0, "RUNNING", "j", T0)
    detail["container"].update(change)
    assert attempt_key(JobStateChange.model_validate(detail)) is None


def test_task_from_command():
    assert task_from_command(["flowplane", "task", "--step", "s", "--task-id", "1.2", "--retry-count", "3"]) == ("s", "1.2", 3)
    assert task_from_command(["flowplane", "task", "--task-id", "1", "--step", "s"]) == ("s", "1", 0)
    assert task_from_command(["python", "task", "--step", "s", "--task-id", "1"]) is None


def test_batch_updates_carry_times_exit_code_and_log_stream():
    running = JobStateChange.model_validate(job_detail("F", "r", "s", "1", 0, "RUNNING", "j", T0, T0 + 5, log_stream="ls"))
    assert attempt_update_from_batch(running) == {
        "status": "RUNNING", "batch_job_id": "j", "created_at": iso(T0), "started_at": iso(T0 + 5), "log_stream": "ls",
    }
    failed = JobStateChange.model_validate(
        job_detail("F", "r", "s", "1", 0, "FAILED", "j", T0, T0 + 5, T0 + 9, exit_code=1, reason="Essential container in task exited", log_stream="ls")
    )
    update = attempt_update_from_batch(failed)
    assert update["stopped_at"] == iso(T0 + 9) and update["exit_code"] == 1
    assert update["status_reason"] == "Essential container in task exited"


def test_task_updates_cut_a_runaway_traceback():
    error = {"type": "E", "message": "m", "traceback": "x" * 100_000}
    event = TaskEvent.model_validate(task_detail("failed", "F", "r", "s", "1", 0, T0, error=error))
    update = attempt_update_from_task(event)
    assert update["status"] == "FAILED" and update["stopped_at"] == iso(T0)
    assert len(update["error"]["traceback"]) < 16_100 and update["error"]["traceback"].endswith("x")


def test_task_order_sorts_foreach_indices_numerically():
    ids = ["1.10", "1.2", "1", "1.2.10", "1.2.9"]
    assert sorted(ids, key=task_order) == ["1", "1.2", "1.2.9", "1.2.10", "1.10"]
