"""The EventBridge events the recorder understands, as typed models.

Shapes follow the AWS documentation ("Step Functions Execution Status Change",
"Batch Job State Change"; their names in flowplane/event_types.py) and
flowplane.events for the task's own events.
Plain pydantic rather than Powertools' parser: the parser adds ~140 ms of
cold-start imports for three small models.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flowplane.datastore.records import production_run_id
from flowplane import job
from flowplane.event_types import BATCH_DETAIL_TYPE, BATCH_SOURCE, SFN_DETAIL_TYPE, SFN_SOURCE, TASK_EVENT_SOURCE
from flowplane.events import TaskEvent
from flowplane.trigger_events import causes_from_input


class UnknownEvent(ValueError):
    """Not an event the recorder handles, or malformed: logged and counted, never fatal."""


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class Envelope(_Loose):
    id: str
    source: str
    detail_type: str = Field(alias="detail-type")
    time: Optional[str] = None
    detail: dict[str, Any]


class ExecutionStatusChange(_Loose):
    executionArn: str
    stateMachineArn: str
    name: str
    status: str
    startDate: Optional[int] = None
    stopDate: Optional[int] = None
    input: Optional[str] = None
    error: Optional[str] = None
    cause: Optional[str] = None
    # Present when the execution was started on a version or an alias.
    stateMachineVersionArn: Optional[str] = None
    stateMachineAliasArn: Optional[str] = None
    # How many times the execution was redriven (0: never; each redrive runs it again).
    redriveCount: Optional[int] = None

    @property
    def of_map_run(self) -> bool:
        """A Distributed Map's child execution (a foreach item), not a run.

        Its state machine is the Map Run's, `...:stateMachine:<name>/<map run label>`;
        a state machine's own name cannot hold a '/'. Its tasks are recorded from
        their Batch jobs, and the run is the parent execution.
        """
        return "/" in self.stateMachineArn.split(":stateMachine:", 1)[-1] or "/" in self.executionArn.split(
            ":execution:", 1
        )[-1]

    @property
    def state_machine_name(self) -> str:
        """arn:aws:states:REGION:ACCOUNT:stateMachine:NAME[:version|alias] -> NAME."""
        parts = self.stateMachineArn.split(":")
        return parts[6] if len(parts) > 6 else ""


class KeyValue(_Loose):
    name: str
    value: Optional[str] = None


class BatchContainer(_Loose):
    command: list[str] = Field(default_factory=list)
    environment: list[KeyValue] = Field(default_factory=list)
    exitCode: Optional[int] = None
    reason: Optional[str] = None
    logStreamName: Optional[str] = None


class JobStateChange(_Loose):
    jobId: str
    jobName: str
    status: str
    statusReason: Optional[str] = None
    createdAt: Optional[int] = None
    startedAt: Optional[int] = None
    stoppedAt: Optional[int] = None
    container: BatchContainer = Field(default_factory=BatchContainer)

    def env(self) -> dict[str, str]:
        return {kv.name: kv.value or "" for kv in self.container.environment}


Parsed = Union[ExecutionStatusChange, JobStateChange, TaskEvent]


def parse_event(event: dict[str, Any]) -> Parsed:
    """The typed detail of an EventBridge event; UnknownEvent if it isn't one of ours."""
    try:
        env = Envelope.model_validate(event)
        if env.source == SFN_SOURCE and env.detail_type == SFN_DETAIL_TYPE:
            return ExecutionStatusChange.model_validate(env.detail)
        if env.source == BATCH_SOURCE and env.detail_type == BATCH_DETAIL_TYPE:
            return JobStateChange.model_validate(env.detail)
        if env.source == TASK_EVENT_SOURCE:
            return TaskEvent.model_validate(env.detail)
    except ValidationError as e:
        raise UnknownEvent(f"malformed event: {e.error_count()} error(s): {e.errors()[0]['msg']}") from None
    raise UnknownEvent(f"unhandled event {env.source!r} / {env.detail_type!r}")


def ms_to_iso(ms: Optional[int]) -> Optional[str]:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds")


def run_id_of_execution(name: str) -> str:
    return production_run_id(name)


def run_update(change: ExecutionStatusChange, flow: str) -> dict[str, Any]:
    """What an execution status change says about its run (its deployment comes from owners.py:
    the state machine's name carries the stage's prefix, or was shortened)."""
    run_id = run_id_of_execution(change.name)
    update: dict[str, Any] = {
        "flow": flow,
        "run_id": run_id,
        "execution_arn": change.executionArn,
        "state_machine_arn": change.stateMachineArn.split(":stateMachine:")[0]
        + ":stateMachine:"
        + change.state_machine_name,
        "status": change.status,
        "started_at": ms_to_iso(change.startDate),
    }
    if change.redriveCount:
        update["redrive_count"] = change.redriveCount
    if change.status != "RUNNING":
        update["stopped_at"] = ms_to_iso(change.stopDate)
        if change.error or change.cause or change.status in ("TIMED_OUT", "ABORTED"):
            error, task = summarize_failure(change.error, change.cause)
            update["error"] = {"type": error or change.status, "message": error_message(error, change.cause, task)}
            if task is not None and change.status != "SUCCEEDED":
                update["failed_task"] = f"{flow}/{run_id}/{task[0]}/{task[1]}"
    if change.input:
        update["parameters"] = execution_parameters(change.input)
        causes = causes_from_input(change.input)
        if causes:
            # What started the run (`Run.trigger`): an event without input (or a hand-started
            # run's) adds nothing, so the merge keeps what the input said.
            update["trigger"] = [c.model_dump(mode="json") for c in causes]
    return update


# A failed run's cause can be the whole Batch job description (tens of KB); the
# record keeps a readable line.
MAX_MESSAGE = 2000


def summarize_failure(error: Optional[str], cause: Optional[str]) -> tuple[Optional[str], Optional[tuple[str, str]]]:
    """(error, (step, task id) of the failed task when the cause names one)."""
    if not cause:
        return error, None
    try:
        doc = json.loads(cause)
    except (json.JSONDecodeError, TypeError):
        return error, None
    if not isinstance(doc, dict):
        return error, None
    container = _field(doc, "container")
    command = _field(container, "command") if isinstance(container, dict) else None
    if isinstance(command, list):
        parsed = task_from_command([str(c) for c in command])
        if parsed is not None:
            return error, (parsed[0], parsed[1])
    return error, None


def error_message(error: Optional[str], cause: Optional[str], task: Optional[tuple[str, str]]) -> str:
    if not cause:
        return error or ""
    try:
        doc = json.loads(cause)
    except (json.JSONDecodeError, TypeError):
        doc = None
    if isinstance(doc, dict):
        reason = _field(doc, "statusReason")
        container = _field(doc, "container")
        exit_code = _field(container, "exitCode") if isinstance(container, dict) else None
        where = f"task {task[0]}/{task[1]}" if task else "a task"
        parts = [f"{where} failed"]
        if reason:
            parts.append(str(reason))
        if exit_code is not None:
            parts.append(f"exit code {exit_code}")
        return ": ".join(parts[:2]) + (f" ({parts[2]})" if len(parts) > 2 else "")
    return cause[:MAX_MESSAGE]


def _field(doc: Any, name: str) -> Any:
    """A field in either case: Step Functions hands Batch's job back in PascalCase."""
    if not isinstance(doc, dict):
        return None
    if name in doc:
        return doc[name]
    return doc.get(name[0].upper() + name[1:])


def execution_parameters(raw_input: str) -> dict[str, Any]:
    """The `Parameters` of an execution input (a JSON string inside JSON), or {}."""
    try:
        doc = json.loads(raw_input)
        params = doc.get("Parameters", "{}") if isinstance(doc, dict) else "{}"
        value = json.loads(params) if isinstance(params, str) else params
        return value if isinstance(value, dict) else {}
    except (json.JSONDecodeError, TypeError):
        return {}


def task_from_command(command: list[str]) -> Optional[tuple[str, str, int]]:
    """(step, task id, retry count) from `flowplane task --step S --task-id T --retry-count N`."""
    if len(command) < 2 or command[0] != "flowplane" or command[1] != "task":
        return None
    options: dict[str, str] = {}
    rest = command[2:]
    for option, value in zip(rest[::2], rest[1::2]):
        options[option] = value
    try:
        return options["--step"], options["--task-id"], int(options.get("--retry-count") or 0)
    except (KeyError, ValueError):
        return None


def attempt_key(change: JobStateChange) -> Optional[tuple[str, str, str, str, int]]:
    """(flow, run, step, task, attempt) of a Batch job that runs a flowplane task, else None.

    The compiled job carries the flow and the run in its environment (shared by every
    task of the execution) and the step, task id and retry count in its command; the
    FLOWPLANE_STEP/TASK_ID/RETRY_COUNT variables win when a job definition sets them.
    """
    env = change.env()
    from_command = task_from_command(change.container.command)
    try:
        flow = env[job.FLOW]
        run_id = env[job.RUN_ID]
        step = env.get(job.STEP) or (from_command[0] if from_command else "")
        task_id = env.get(job.TASK_ID) or (from_command[1] if from_command else "")
        retry = env.get(job.RETRY_COUNT)
        attempt = int(retry) if retry else (from_command[2] if from_command else 0)
    except (KeyError, ValueError):
        return None
    if not (flow and run_id and step and task_id) or attempt < 0:
        return None
    return flow, run_id, step, task_id, attempt


def attempt_update_from_batch(change: JobStateChange) -> dict[str, Any]:
    update: dict[str, Any] = {
        "status": change.status,
        "batch_job_id": change.jobId,
        "created_at": ms_to_iso(change.createdAt),
        "started_at": ms_to_iso(change.startedAt),
        "log_stream": change.container.logStreamName,
    }
    if change.status in ("SUCCEEDED", "FAILED"):
        update["stopped_at"] = ms_to_iso(change.stoppedAt)
        update["exit_code"] = change.container.exitCode
        update["status_reason"] = change.statusReason or change.container.reason
    return {k: v for k, v in update.items() if v is not None}


# Tracebacks ride in the task item with every attempt; a runaway one is cut.
MAX_TRACEBACK = 16_000


def attempt_update_from_task(event: TaskEvent) -> dict[str, Any]:
    """What a task's own event says about its attempt (the artifact index travels apart)."""
    status = {"started": "RUNNING", "finished": "SUCCEEDED", "failed": "FAILED"}[event.kind]
    update: dict[str, Any] = {"status": status}
    if event.kind == "started":
        update["started_at"] = event.at
    else:
        update["stopped_at"] = event.at
    if event.error is not None:
        error = event.error.model_dump(exclude_none=True)
        if len(error.get("traceback") or "") > MAX_TRACEBACK:
            error["traceback"] = "...\n" + error["traceback"][-MAX_TRACEBACK:]
        update["error"] = error
    if event.batch_job_id:
        update["batch_job_id"] = event.batch_job_id
    return update
