"""Events of AWS's own shapes for the recorder's tests (no tests here).

Field names and layout follow the AWS documentation's example events:
"Step Functions Execution Status Change" (EventBridge user guide, Step Functions
events) and "Batch Job State Change" (AWS Batch user guide, job state change
events; its `detail` is the DescribeJobs JobDetail). A Batch job's command and
environment are what the compiled state machine gives it (chalicelib/compiler/asl.py);
task events are what flowplane/task/events.py puts on the bus.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any, Optional

from chalice.test import Client

from flowplane.event_types import TASK_EVENT_SOURCE
from flowplane.events import STAGE_ENV, ArtifactEntry, TaskEvent

REGION = "us-east-1"
ACCOUNT = "123456789012"
T0 = 1_764_028_800_000  # 2025-11-25T00:00:00Z in ms
QUEUE = f"arn:aws:batch:{REGION}:{ACCOUNT}:job-queue/flowplane-local"
JOBDEF = f"arn:aws:batch:{REGION}:{ACCOUNT}:job-definition/flowplane-local:1"
HANDLERS = {"aws.states": "record_execution", "aws.batch": "record_job", TASK_EVENT_SOURCE: "record_task"}


def iso(ms: int) -> str:
    from chalicelib.recording.events import ms_to_iso

    return ms_to_iso(ms)  # type: ignore[return-value]


# The local stage's resource prefix (.chalice/config.json's stage, chalicelib/settings.py's default).
PREFIX = "flowplane-local"


def state_machine_arn(deployment: str) -> str:
    """The local stage's state machine of a deployment, as the control plane names it."""
    from chalicelib.resource_names import state_machine_name

    return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{state_machine_name(PREFIX, deployment)}"


def execution_arn(deployment: str, name: str) -> str:
    from chalicelib.resource_names import state_machine_name

    return f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{state_machine_name(PREFIX, deployment)}:{name}"


def execution_detail(
    machine: str,
    name: str,
    status: str,
    start: int,
    stop: Optional[int] = None,
    parameters: Optional[dict[str, Any]] = None,
    error: Optional[str] = None,
    cause: Optional[str] = None,
    redrive_count: int = 0,
) -> dict[str, Any]:
    doc_input = json.dumps({"Parameters": json.dumps(parameters or {})})
    detail: dict[str, Any] = {
        "executionArn": execution_arn(machine, name),
        "stateMachineArn": state_machine_arn(machine),
        "name": name,
        "status": status,
        "startDate": start,
        "stopDate": stop,
        "input": doc_input,
        "inputDetails": {"included": True},
        "output": "{}" if status == "SUCCEEDED" else None,
        "outputDetails": {"included": True} if status == "SUCCEEDED" else None,
        "redriveCount": redrive_count,
        "redriveDate": start + 60_000 * redrive_count if redrive_count else None,
        "redriveStatus": "NOT_REDRIVABLE" if status in ("RUNNING", "SUCCEEDED") else "REDRIVABLE",
        "redriveStatusReason": {
            "RUNNING": "Execution is RUNNING and cannot be redriven",
            "SUCCEEDED": "Execution is SUCCEEDED and cannot be redriven",
        }.get(status),
    }
    if error is not None or cause is not None:
        detail["error"] = error
        detail["cause"] = cause
    return detail


def job_detail(
    flow: str,
    run_id: str,
    step: str,
    task_id: str,
    retry: int,
    status: str,
    job_id: str,
    created: int,
    started: Optional[int] = None,
    stopped: Optional[int] = None,
    exit_code: Optional[int] = None,
    reason: Optional[str] = None,
    log_stream: Optional[str] = None,
    stage: Optional[str] = None,
) -> dict[str, Any]:
    env = [
        {"name": "FLOWPLANE_RUN_ID", "value": run_id},
        {"name": "FLOWPLANE_FLOW", "value": flow},
        {"name": "FLOWPLANE_EXECUTION_INPUT", "value": json.dumps({"Parameters": "{}"})},
        {"name": "FLOWPLANE_PACKAGE_URL", "value": "s3://flowplane-local/packages/abc.tar.gz"},
        {"name": "FLOWPLANE_DATASTORE_ROOT", "value": "s3://flowplane-local/data"},
        {"name": "FLOWPLANE_FOREACH_TABLE", "value": "flowplane-local-foreach"},
    ]
    if stage is not None:
        env.append({"name": STAGE_ENV, "value": stage})
    container: dict[str, Any] = {
        "image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/flowplane:latest",
        "command": ["flowplane", "task", "--step", step, "--task-id", task_id, "--retry-count", str(retry)],
        "volumes": [],
        "environment": env,
        "mountPoints": [],
        "ulimits": [],
        "networkInterfaces": [],
        "resourceRequirements": [{"value": "1", "type": "VCPU"}, {"value": "2048", "type": "MEMORY"}],
        "secrets": [],
    }
    if log_stream is not None:
        container["logStreamName"] = log_stream
    if exit_code is not None:
        container["exitCode"] = exit_code
    detail: dict[str, Any] = {
        "jobArn": f"arn:aws:batch:{REGION}:{ACCOUNT}:job/{job_id}",
        "jobName": f"{flow}-{step}",
        "jobId": job_id,
        "jobQueue": QUEUE,
        "status": status,
        "attempts": [],
        "createdAt": created,
        "retryStrategy": {"attempts": 1, "evaluateOnExit": []},
        "dependsOn": [],
        "jobDefinition": JOBDEF,
        "parameters": {},
        "container": container,
        "tags": {"resourceArn": f"arn:aws:batch:{REGION}:{ACCOUNT}:job/{job_id}"},
        "propagateTags": False,
        "platformCapabilities": [],
    }
    if started is not None:
        detail["startedAt"] = started
    if stopped is not None:
        detail["stoppedAt"] = stopped
        detail["attempts"] = [
            {
                "container": {"exitCode": exit_code, "logStreamName": log_stream, "networkInterfaces": []},
                "startedAt": started,
                "stoppedAt": stopped,
                "statusReason": reason or "Essential container in task exited",
            }
        ]
    if reason is not None:
        detail["statusReason"] = reason
    return detail


def task_detail(
    kind: str,
    flow: str,
    run_id: str,
    step: str,
    task_id: str,
    attempt: int,
    at: int,
    artifacts: Optional[dict[str, dict[str, Any]]] = None,
    error: Optional[dict[str, Any]] = None,
    job_id: Optional[str] = None,
    stage: Optional[str] = None,
) -> dict[str, Any]:
    from flowplane.datastore.layout import indices_of
    from flowplane.datastore.records import ErrorInfo

    event = TaskEvent(
        kind=kind,  # type: ignore[arg-type]
        flow=flow,
        run_id=run_id,
        step=step,
        task_id=task_id,
        attempt=attempt,
        at=iso(at),
        foreach_indices=indices_of(task_id),
        artifacts={n: ArtifactEntry(**a) for n, a in artifacts.items()} if artifacts is not None else None,
        error=ErrorInfo(**error) if error else None,
        batch_job_id=job_id,
        stage=stage,
    )
    return json.loads(event.model_dump_json())


@dataclass(frozen=True)
class Event:
    source: str
    detail_type: str
    detail: dict[str, Any]
    resources: tuple[str, ...]

    def envelope(self, client: Client) -> dict[str, Any]:
        event = client.events.generate_cw_event(
            source=self.source,
            detail_type=self.detail_type,
            detail=json.loads(json.dumps(self.detail)),
            resources=list(self.resources),
            region=REGION,
        )
        event["id"] = str(uuid.uuid4())
        return event


def execution_event(detail: dict[str, Any]) -> Event:
    return Event("aws.states", "Step Functions Execution Status Change", detail, (detail["executionArn"],))


def job_event(detail: dict[str, Any]) -> Event:
    return Event("aws.batch", "Batch Job State Change", detail, (detail["jobArn"],))


def task_event(detail: dict[str, Any]) -> Event:
    from flowplane.events import TASK_EVENT_DETAIL_TYPES

    return Event(TASK_EVENT_SOURCE, TASK_EVENT_DETAIL_TYPES[detail["kind"]], detail, ())


def deliver(client: Client, event: Event) -> dict[str, Any]:
    return client.lambda_.invoke(HANDLERS[event.source], event.envelope(client)).payload


# --- a whole run, as the services would report it --------------------------------------------


@dataclass
class Attempt:
    ok: bool
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class TaskPlan:
    step: str
    task_id: str
    attempts: list[Attempt]


def artifact(sha: str, size: int = 10, type_: str = "builtins.int") -> dict[str, Any]:
    return {"sha": sha, "size": size, "type": type_}


def run_events(
    machine: str,
    flow: str,
    execution: str,
    tasks: list[TaskPlan],
    final: str = "SUCCEEDED",
    parameters: Optional[dict[str, Any]] = None,
    start: int = T0,
) -> list[Event]:
    """Every event one run produces: its execution, each attempt's Batch job and task events."""
    run_id = f"sfn-{execution}"
    clock = start
    events = [execution_event(execution_detail(machine, execution, "RUNNING", start, parameters=parameters))]
    failed_job: Optional[dict[str, Any]] = None
    for plan in tasks:
        for n, attempt in enumerate(plan.attempts):
            job_id = str(uuid.UUID(int=hash((execution, plan.step, plan.task_id, n)) & (2**128 - 1)))
            stream = f"flowplane-local/default/{job_id.replace('-', '')}"
            created, started, stopped = clock + 10, clock + 500, clock + 2500
            clock = stopped + 100
            common = dict(flow=flow, run_id=run_id, step=plan.step, task_id=plan.task_id, retry=n, job_id=job_id, created=created)
            for status in ("RUNNABLE", "STARTING"):
                events.append(job_event(job_detail(**common, status=status)))
            events.append(job_event(job_detail(**common, status="RUNNING", started=started, log_stream=stream)))
            end = "SUCCEEDED" if attempt.ok else "FAILED"
            reason = None if attempt.ok else "Essential container in task exited"
            last = job_detail(
                **common, status=end, started=started, stopped=stopped, exit_code=0 if attempt.ok else 1,
                reason=reason, log_stream=stream,
            )
            events.append(job_event(last))
            ids = dict(flow=flow, run_id=run_id, step=plan.step, task_id=plan.task_id, attempt=n, job_id=job_id)
            events.append(task_event(task_detail("started", at=started + 50, **ids)))
            if attempt.ok:
                events.append(task_event(task_detail("finished", at=stopped - 50, artifacts=attempt.artifacts, **ids)))
            else:
                error = {"type": "ValueError", "message": f"boom {n}", "traceback": "Traceback ...\nValueError: boom"}
                events.append(task_event(task_detail("failed", at=stopped - 50, error=error, artifacts=attempt.artifacts or None, **ids)))
                failed_job = last
    stop = clock + 200
    if final == "SUCCEEDED":
        events.append(execution_event(execution_detail(machine, execution, final, start, stop, parameters)))
    else:
        cause = json.dumps(failed_job) if failed_job else "the execution failed"
        events.append(
            execution_event(
                execution_detail(machine, execution, final, start, stop, parameters, error="States.TaskFailed", cause=cause)
            )
        )
    return events
