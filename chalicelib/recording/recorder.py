"""One EventBridge event in, the run/task records it concerns merged and stored.

Whatever arrives, `record` never raises for the event's sake: an event that is
not ours or is malformed is logged and counted (EventsRejected) and dropped.
Only a storage failure raises, so Lambda retries the event later; and a run's end
that could not be announced (announce.py), once the run is recorded, so that the
retry announces it (recording it again changes nothing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn, Optional, Union

from flowplane.events import STAGE_ENV, TaskEvent

from .events import (
    ExecutionStatusChange,
    JobStateChange,
    UnknownEvent,
    attempt_key,
    attempt_update_from_batch,
    attempt_update_from_task,
    parse_event,
    run_id_of_execution,
    run_update,
)
from ..keys import FLOW_NAME, RUN_ID, STEP_NAME, TASK_ID
from .announce import AnnouncementFailed, Announcer, announces
from .merge import FINAL_RUN_STATUSES, task_status
from .owners import Owners
from .store import Change, RecordStore, task_created_at
from .telemetry import Telemetry


class Rejected(ValueError):
    """The event is well-formed JSON but says nothing we can record."""


@dataclass(frozen=True)
class Outcome:
    recorded: bool
    kind: str  # execution | job | task | rejected | ignored
    pathspec: Optional[str] = None
    changed: bool = False
    reason: Optional[str] = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def check_names(flow: str, run_id: str, step: Optional[str] = None, task_id: Optional[str] = None) -> None:
    if not FLOW_NAME.match(flow):
        raise Rejected(f"flow name {flow!r} is not a flow class name")
    if not RUN_ID.match(run_id):
        raise Rejected(f"run id {run_id!r} cannot be a run id")
    if step is not None and not STEP_NAME.match(step):
        raise Rejected(f"step name {step!r} is not a step name")
    if task_id is not None and not TASK_ID.match(task_id):
        raise Rejected(f"task id {task_id!r} is not a flowplane task id")


class Recorder:
    def __init__(
        self,
        store: RecordStore,
        owners: Owners,
        telemetry: Optional[Telemetry] = None,
        announcer: Optional[Announcer] = None,
    ) -> None:
        self.store = store
        self.owners = owners
        self.telemetry = telemetry or Telemetry()
        # None: runs' ends are recorded, not announced (a recorder built by hand).
        self.announcer = announcer

    def record(self, event: Any) -> Outcome:
        """Parse and store one EventBridge event (the whole envelope)."""
        try:
            parsed = parse_event(event if isinstance(event, dict) else {})
            outcome = self._dispatch(parsed)
            self.telemetry.log("recorded", outcome.to_dict())
            return outcome
        except (UnknownEvent, Rejected) as e:
            self.telemetry.rejected(str(e), event)
            return Outcome(False, "rejected", reason=str(e))

    def _dispatch(self, parsed: Union[ExecutionStatusChange, JobStateChange, TaskEvent]) -> Outcome:
        if isinstance(parsed, ExecutionStatusChange):
            return self.record_execution(parsed)
        if isinstance(parsed, JobStateChange):
            return self._job(parsed)
        return self._task(parsed)

    # --- runs --------------------------------------------------------------------------

    def record_execution(self, change: ExecutionStatusChange) -> Outcome:
        """An execution's status (from its event, or from DescribeExecution when reconciling)."""
        if change.of_map_run:
            # On AWS each foreach item is a child execution with its own status events.
            return Outcome(False, "ignored", reason=f"{change.executionArn} is a foreach item, not a run")
        if change.startDate is None:
            raise Rejected(f"execution {change.executionArn} has no startDate")
        if not self.owners.ours(change.state_machine_name):
            # Every stage in the account hears every execution; each records its own.
            self._other_stage(
                f"{change.stateMachineArn} is not a state machine of this stage "
                f"(its names start with {self.owners.prefix}-)"
            )
        owner = self.owners.of(change)
        if owner is None:
            raise Rejected(f"{change.stateMachineArn} is not a state machine flowplane deployed")
        run_id = run_id_of_execution(change.name)
        check_names(owner.flow, run_id)
        self.telemetry.correlate(run_id)
        update = {**run_update(change, owner.flow), **owner.run_fields()}
        result = self.store.update_run(update)
        if result.created:
            self.store.note_flow(owner.flow, result.after["started_at"])
            self.telemetry.run_started(owner.flow)
        final = result.after.get("status")
        if final == "FAILED" and not result.after.get("failed_task"):
            # A foreach item's failure fails the run through its Distributed Map, whose
            # cause names the map run, not the task: the task comes from its own records.
            self._name_failed_task(owner.flow, run_id)
        if final in FINAL_RUN_STATUSES and result.before.get("status") != final:
            self.telemetry.run_finished(owner.flow, final)
        self.telemetry.recorded()
        outcome = Outcome(True, "execution", f"{owner.flow}/{run_id}", result.changed)
        if self.announcer is not None and announces(change, result.after):
            try:
                self.announcer.announce(owner, result.after)
            except AnnouncementFailed as e:
                self.telemetry.announcement_failed(str(e))
                e.outcome = outcome
                raise
            self.telemetry.announced()
        return outcome

    # --- attempts ----------------------------------------------------------------------

    def _other_stage(self, what: str) -> NoReturn:
        self.telemetry.other_stage()
        raise Rejected(f"{what}; another stage records it")

    def _check_stage(self, what: str, stage: Optional[str]) -> None:
        if not self.owners.ours_by_stage(stage):
            self._other_stage(f"{what} belongs to the stage {stage!r}, not to {self.owners.prefix!r}")

    def _job(self, change: JobStateChange) -> Outcome:
        key = attempt_key(change)
        if key is None:
            raise Rejected(f"Batch job {change.jobId} does not run a flowplane task")
        self._check_stage(f"Batch job {change.jobId}", change.env().get(STAGE_ENV))
        flow, run_id, step, task_id, attempt = key
        return self._attempt("job", flow, run_id, step, task_id, attempt, attempt_update_from_batch(change))

    def _task(self, event: TaskEvent) -> Outcome:
        self._check_stage(f"the task event of {event.pathspec}", event.stage)
        outcome = self._attempt(
            "task", event.flow, event.run_id, event.step, event.task_id, event.attempt, attempt_update_from_task(event)
        )
        # A finished attempt's index; a failed one's too when the task sends it (its
        # best-effort artifacts, which a local run shows as Metaflow does).
        if event.kind != "started" and event.artifacts is not None:
            index = {name: a.model_dump() for name, a in event.artifacts.items()}
            self.store.put_artifacts(event.flow, event.run_id, event.step, event.task_id, event.attempt, index)
        return outcome

    def _attempt(
        self, kind: str, flow: str, run_id: str, step: str, task_id: str, attempt: int, update: dict[str, Any]
    ) -> Outcome:
        check_names(flow, run_id, step, task_id)
        self.telemetry.correlate(run_id)
        result: Change = self.store.update_attempt(flow, run_id, step, task_id, attempt, update)
        created = task_created_at(result.after)
        if created is not None and (result.created or created != task_created_at(result.before)):
            # The step's creation is its first task's: only an earlier time can change it.
            self.store.note_step(flow, run_id, step, created)
        if result.changed and _failed(result.after):
            # Marked first, then the run read: with the execution's path (run written, then
            # marks read) one of the two sees the other, whichever event comes first.
            self.store.note_failed_task(flow, run_id, step, task_id)
            self._name_failed_task(flow, run_id)
        self.telemetry.recorded()
        return Outcome(True, kind, f"{flow}/{run_id}/{step}/{task_id}", result.changed)

    def _name_failed_task(self, flow: str, run_id: str) -> None:
        """Give a failed run that names no task the first of its tasks that failed for good."""
        run = self.store.run(flow, run_id)
        if run is None or run.get("status") != "FAILED" or run.get("failed_task"):
            return
        for step, task_id in self.store.failed_tasks(flow, run_id):
            task = self.store.task(flow, run_id, step, task_id)
            # A mark stays when a retry then succeeded; only a task still failed counts.
            if task and _failed(task):
                update = {"flow": flow, "run_id": run_id, "status": "FAILED",
                          "failed_task": f"{flow}/{run_id}/{step}/{task_id}"}
                if run.get("redrive_count"):
                    update["redrive_count"] = run["redrive_count"]
                self.store.update_run(update)
                return


def _failed(task: dict[str, Any]) -> bool:
    """A task whose latest attempt failed (and none succeeded)."""
    return task_status(list((task.get("attempts") or {}).values())) == "FAILED"
