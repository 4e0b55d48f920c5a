"""Run, task and attempt records: what the Client API reads about a run.

Local runs write them as JSON beside the artifacts (see layout.py); production
runs have the control plane record the same models into DynamoDB from
EventBridge events. One definition, both places.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from ..trigger_events import TriggerCause
from . import layout
from .storage import NotFound, Storage

# The user of every production run, as Metaflow names Step Functions runs: namespace('user:me')
# shows what I ran myself, never what a schedule ran from my deployment. Who deployed the
# version that started the run is its `owner`.
PRODUCTION_USER = "SFN"
# A production run's id is its Step Functions execution's name behind this prefix, as
# Metaflow's are; the compiled state machine, the control plane and the SDK all use it.
PRODUCTION_RUN_PREFIX = "sfn-"


def production_run_id(execution_name: str) -> str:
    return PRODUCTION_RUN_PREFIX + execution_name


def is_production_run_id(run_id: str) -> bool:
    return run_id.startswith(PRODUCTION_RUN_PREFIX)

RunStatus = Literal["running", "succeeded", "failed"]
TaskStatus = Literal["pending", "running", "succeeded", "failed"]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class _Record(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ErrorInfo(_Record):
    type: str
    message: str
    traceback: Optional[str] = None


class RunRecord(_Record):
    flow: str
    run_id: str
    user: str
    owner: Optional[str] = None
    # Tags the user gave (--tag) and system tags: user:<name>, runtime:local or
    # production:<token>. namespace('x') shows the runs that carry tag x.
    tags: list[str] = Field(default_factory=list)
    system_tags: list[str] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)
    status: RunStatus = "running"
    created_at: str = Field(default_factory=now_iso)
    finished_at: Optional[str] = None
    # The failed task's pathspec and error, when the run failed.
    failed_task: Optional[str] = None
    error: Optional[ErrorInfo] = None
    # What started a production run (`Run.trigger`); empty for a run nobody's event started,
    # and for every local run (a local run ignores triggers, as in Metaflow).
    trigger: list[TriggerCause] = Field(default_factory=list)
    # The run a `resume` started from (Metaflow's origin-run-id); None for any other run.
    origin_run_id: Optional[str] = None

    @property
    def all_tags(self) -> list[str]:
        return [*self.system_tags, *self.tags]


class AttemptRecord(_Record):
    attempt: int
    status: TaskStatus = "running"
    started_at: str = Field(default_factory=now_iso)
    finished_at: Optional[str] = None
    exit_code: Optional[int] = None
    error: Optional[ErrorInfo] = None
    # Where this attempt's logs are: a datastore key prefix locally, a CloudWatch stream on Batch.
    log_location: Optional[str] = None
    # The AWS Batch job that ran the attempt (on Batch): what Batch says of it outlives the process.
    batch_job_id: Optional[str] = None


class TaskRecord(_Record):
    flow: str
    run_id: str
    step: str
    task_id: str
    status: TaskStatus = "pending"
    attempts: int = 0  # how many attempts started
    # The attempt whose artifacts count (the successful one, else the last).
    final_attempt: Optional[int] = None
    foreach_indices: list[int] = Field(default_factory=list)
    created_at: str = Field(default_factory=now_iso)
    finished_at: Optional[str] = None
    error: Optional[ErrorInfo] = None
    # A task `resume` cloned rather than ran: the pathspec of the task it was cloned from.
    origin: Optional[str] = None

    @property
    def pathspec(self) -> str:
        return f"{self.flow}/{self.run_id}/{self.step}/{self.task_id}"


def write_run(storage: Storage, rec: RunRecord) -> None:
    storage.put_bytes(layout.run_key(rec.flow, rec.run_id), rec.model_dump_json().encode())


def read_run(storage: Storage, flow: str, run_id: str) -> Optional[RunRecord]:
    try:
        return RunRecord.model_validate_json(storage.get_bytes(layout.run_key(flow, run_id)))
    except NotFound:
        return None


def write_task(storage: Storage, rec: TaskRecord) -> None:
    storage.put_bytes(layout.task_key(rec.flow, rec.run_id, rec.step, rec.task_id), rec.model_dump_json().encode())


def read_task(storage: Storage, flow: str, run_id: str, step: str, task_id: str) -> Optional[TaskRecord]:
    try:
        return TaskRecord.model_validate_json(storage.get_bytes(layout.task_key(flow, run_id, step, task_id)))
    except NotFound:
        return None


def write_attempt(storage: Storage, flow: str, run_id: str, step: str, task_id: str, rec: AttemptRecord) -> None:
    key = layout.attempt_key(flow, run_id, step, task_id, rec.attempt, layout.ATTEMPT_RECORD)
    storage.put_bytes(key, rec.model_dump_json().encode())


def read_attempt(storage: Storage, flow: str, run_id: str, step: str, task_id: str,
                 attempt: int) -> Optional[AttemptRecord]:
    key = layout.attempt_key(flow, run_id, step, task_id, attempt, layout.ATTEMPT_RECORD)
    try:
        return AttemptRecord.model_validate_json(storage.get_bytes(key))
    except NotFound:
        return None
