"""The EventBridge events the recorder understands, as typed models.

Shapes follow the AWS documentation ("Step Functions Execution Status Change",
"Batch Job State Change") and flowplane.events for the task's own events.
Plain pydantic rather than Powertools' parser: the parser adds ~140 ms of
cold-start imports for three small models.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flowplane.events import TASK_EVENT_SOURCE, TaskEvent

SFN_SOURCE = "aws.states"
SFN_DETAIL_TYPE = "Step Functions Execution Status Change"
BATCH_SOURCE = "aws.batch"
BATCH_DETAIL_TYPE = "Batch Job State Change"


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


class KeyValue(_Loose):
    name: str
    value: Optional[str] = None


class BatchContainer(_Loose):
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
    return f"sfn-{name}"


def run_update(change: ExecutionStatusChange, flow: str) -> dict[str, Any]:
    """What an execution status change says about its run."""
    update: dict[str, Any] = {
        "flow": flow,
        "run_id": run_id_of_execution(change.name),
        "execution_arn": change.executionArn,
        "state_machine_arn": change.stateMachineArn,
        "status": change.status,
        "started_at": ms_to_iso(change.startDate),
    }
    if change.status != "RUNNING":
        update["stopped_at"] = ms_to_iso(change.stopDate)
        if change.error or change.cause:
            update["error"] = {"type": change.error or change.status, "message": change.cause or ""}
    if change.input:
        update["parameters"] = execution_parameters(change.input)
    return update


def execution_parameters(raw_input: str) -> dict[str, Any]:
    """The `Parameters` of an execution input (a JSON string inside JSON), or {}."""
    try:
        doc = json.loads(raw_input)
        params = doc.get("Parameters", "{}") if isinstance(doc, dict) else "{}"
        value = json.loads(params) if isinstance(params, str) else params
        return value if isinstance(value, dict) else {}
    except (json.JSONDecodeError, TypeError):
        return {}


def attempt_key(change: JobStateChange) -> Optional[tuple[str, str, str, str, int]]:
    """(flow, run, step, task, attempt) of a Batch job that runs a flowplane task, else None."""
    env = change.env()
    try:
        return (
            env["FLOWPLANE_FLOW"],
            env["FLOWPLANE_RUN_ID"],
            env["FLOWPLANE_STEP"],
            env["FLOWPLANE_TASK_ID"],
            int(env.get("FLOWPLANE_RETRY_COUNT") or 0),
        )
    except (KeyError, ValueError):
        return None


def attempt_update_from_batch(change: JobStateChange) -> dict[str, Any]:
    update: dict[str, Any] = {
        "status": change.status,
        "batch_job_id": change.jobId,
        "started_at": ms_to_iso(change.startedAt),
        "log_stream": change.container.logStreamName,
    }
    if change.status in ("SUCCEEDED", "FAILED"):
        update["stopped_at"] = ms_to_iso(change.stoppedAt)
        update["exit_code"] = change.container.exitCode
        update["status_reason"] = change.statusReason or change.container.reason
    return {k: v for k, v in update.items() if v is not None}


def attempt_update_from_task(event: TaskEvent) -> dict[str, Any]:
    status = {"started": "RUNNING", "finished": "SUCCEEDED", "failed": "FAILED"}[event.kind]
    update: dict[str, Any] = {"status": status, "foreach_indices": event.foreach_indices or None}
    if event.kind == "started":
        update["started_at"] = event.at
    else:
        update["stopped_at"] = event.at
    if event.artifacts is not None:
        update["artifacts"] = {n: a.model_dump() for n, a in event.artifacts.items()}
    if event.error is not None:
        update["error"] = event.error.model_dump()
    if event.batch_job_id:
        update["batch_job_id"] = event.batch_job_id
    return {k: v for k, v in update.items() if v is not None}
