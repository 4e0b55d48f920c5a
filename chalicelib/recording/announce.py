"""A production run's end, put on the stage's bus as `RunFinished` (flowplane/trigger_events.py).

The recorder announces a terminal status each time it records one that is the run's
status. It cannot tell a second delivery of a status change from EventBridge's retry of
one whose announcement failed (both find the record already written), so it announces
both: a run's end is announced at least once, sometimes more, and subscribers dedupe by
`RunFinished.trigger_id` (the launcher starts one run per trigger id).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from flowplane.trigger_events import RUN_FINISHED_DETAIL_TYPE, RUN_FINISHED_SOURCE, RunFinished

from .events import ExecutionStatusChange
from .merge import FINAL_RUN_STATUSES
from .owners import TOKEN_TAG, Owner


class AnnouncementFailed(RuntimeError):
    """The run is recorded, but its end is not on the bus."""

    # What was recorded (the recorder's Outcome), for a caller that carries on (the reconciler).
    outcome: Any = None


def announces(change: ExecutionStatusChange, run: Mapping[str, Any]) -> bool:
    """Whether this status change ends the run as recorded: a terminal status the run still has.

    A stale event (the first try of a redriven execution, arriving after the redrive) is
    recorded without changing the run, and is not announced.
    """
    return (
        change.status in FINAL_RUN_STATUSES
        and run.get("status") == change.status
        and int(run.get("redrive_count") or 0) == int(change.redriveCount or 0)
    )


def run_finished(owner: Owner, run: Mapping[str, Any], stage: Optional[str]) -> RunFinished:
    project = owner.project
    return RunFinished(
        project=project.name if project else None,
        branch=project.branch if project else None,
        project_flow_name=project.project_flow_name if project else owner.flow,
        flow=owner.flow,
        run_id=run["run_id"],
        status=run["status"],
        namespace=TOKEN_TAG + owner.token,
        deployment=owner.deployment,
        started_at=run.get("started_at"),
        finished_at=run.get("stopped_at"),
        stage=stage,
    )


class Announcer:
    """Puts `RunFinished` events on one bus, for one stage."""

    def __init__(self, events_client: Any, bus: str, stage: Optional[str]) -> None:
        self.client = events_client
        self.bus = bus
        self.stage = stage

    def announce(self, owner: Owner, run: Mapping[str, Any]) -> RunFinished:
        finished = run_finished(owner, run, self.stage)
        entry = {
            "Source": RUN_FINISHED_SOURCE,
            "DetailType": RUN_FINISHED_DETAIL_TYPE,
            "Detail": finished.model_dump_json(),
            "EventBusName": self.bus,
            "Resources": [run["execution_arn"]] if run.get("execution_arn") else [],
        }
        try:
            answer = self.client.put_events(Entries=[entry])
        except Exception as e:
            raise AnnouncementFailed(f"{finished.pathspec} {finished.status}: {type(e).__name__}: {e}") from e
        if answer.get("FailedEntryCount"):
            failed = (answer.get("Entries") or [{}])[0]
            raise AnnouncementFailed(
                f"{finished.pathspec} {finished.status}: EventBridge refused it: "
                f"{failed.get('ErrorCode')}: {failed.get('ErrorMessage')}"
            )
        return finished
