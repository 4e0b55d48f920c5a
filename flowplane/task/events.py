"""The events a task on Batch puts on the EventBridge bus (the job's EVENT_BUS).

The control plane's recorder turns them into run/task/attempt records. Sending
is best effort: a lost event is repaired by the reconciler, so a failure to
send is reported on stderr and never fails the task.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Optional

from .. import job
from ..datastore.artifacts import ArtifactRef
from ..datastore.records import ErrorInfo, now_iso
from ..event_types import TASK_EVENT_SOURCE
from ..events import STAGE_ENV, ArtifactEntry, TaskEvent


class EventSender:
    def __init__(self, bus: str, client: Any = None):
        self.bus = bus
        self._client = client

    @classmethod
    def from_env(cls) -> Optional["EventSender"]:
        bus = os.environ.get(job.EVENT_BUS)
        return cls(bus) if bus else None

    @property
    def client(self) -> Any:
        if self._client is None:
            from .aws import client  # only on Batch, where events are sent

            self._client = client("events")
        return self._client

    def send(
        self,
        kind: str,
        flow: str,
        run_id: str,
        step: str,
        task_id: str,
        attempt: int,
        foreach_indices: list[int],
        artifacts: Optional[dict[str, ArtifactRef]] = None,
        error: Optional[ErrorInfo] = None,
    ) -> None:
        event = TaskEvent(
            kind=kind,  # type: ignore[arg-type]
            flow=flow,
            run_id=run_id,
            step=step,
            task_id=task_id,
            attempt=attempt,
            at=now_iso(),
            foreach_indices=foreach_indices,
            artifacts={n: ArtifactEntry(sha=r.sha, size=r.size, type=r.type) for n, r in artifacts.items()}
            if artifacts is not None
            else None,
            error=error,
            batch_job_id=os.environ.get(job.BATCH_JOB_ID) or None,
            stage=os.environ.get(STAGE_ENV) or None,
        )
        entry = {
            "Source": TASK_EVENT_SOURCE,
            "DetailType": event.detail_type,
            "Detail": event.model_dump_json(),
            "EventBusName": self.bus,
        }
        try:
            resp = self.client.put_events(Entries=[entry])
            if resp.get("FailedEntryCount"):
                failed = resp.get("Entries", [{}])[0]
                raise RuntimeError(f"{failed.get('ErrorCode')}: {failed.get('ErrorMessage')}")
        except Exception as e:
            print(
                f"flowplane: could not send the {kind} event of {event.pathspec} to {self.bus}: "
                f"{type(e).__name__}: {e}",
                file=sys.stderr,
            )
