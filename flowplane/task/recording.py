"""What an attempt leaves behind: records, logs, events.

The task's and the attempt's records as the attempt starts and ends, its
stdout and stderr, a foreach's cardinality, a production run's run record
(written by its start task, finished by its end task), and on Batch the events
that tell the control plane, which files them as the same records.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Optional

from .. import job
from ..datastore import layout, records
from .errors import type_name
from .outcome import EXIT_FAILED, EXIT_OK, Outcome
from .output import CapturedOutput

if TYPE_CHECKING:
    from .attempt import Task
    from .events import EventSender


def batch_job_id() -> Optional[str]:
    """This attempt's AWS Batch job; None outside Batch."""
    return os.environ.get(job.BATCH_JOB_ID) or None


class Recorder:
    """Writes down one attempt of `task` as it goes."""

    def __init__(self, task: "Task"):
        self.task = task
        self.events: Optional["EventSender"] = None
        if os.environ.get(job.EVENT_BUS):
            # Only on Batch: the event model and boto3 stay out of local tasks.
            from . import events

            self.events = events.EventSender.from_env()
        self._task_record: Optional[records.TaskRecord] = None

    def start(self, started: str) -> None:
        t = self.task
        if t.production and t.step == "start":
            self._ensure_run_record()
        self._task_record = rec = self._task_rec()
        rec.status, rec.attempts = "running", t.attempt + 1
        records.write_task(t.storage, rec)
        records.write_attempt(
            t.storage, t.flow_name, t.run_id, t.step, t.task_id,
            records.AttemptRecord(
                attempt=t.attempt, started_at=started, log_location=self.log_prefix(),
                batch_job_id=batch_job_id(),
            ),
        )
        self._send("started")

    def end(self, started: str, outcome: Outcome) -> None:
        t = self.task
        finished = records.now_iso()
        error = None
        if outcome.error is not None:
            error = records.ErrorInfo(
                type=type_name(outcome.error), message=str(outcome.error), traceback=outcome.error_text
            )
        records.write_attempt(
            t.storage, t.flow_name, t.run_id, t.step, t.task_id,
            records.AttemptRecord(
                attempt=t.attempt,
                status="succeeded" if outcome.ok else "failed",
                started_at=started,
                finished_at=finished,
                exit_code=EXIT_OK if outcome.ok else EXIT_FAILED,
                error=error,
                log_location=self.log_prefix(),
                batch_job_id=batch_job_id(),
            ),
        )
        rec = self._task_record
        assert rec is not None, "end() follows start()"
        rec.error = error
        if outcome.ok:
            rec.status, rec.final_attempt, rec.finished_at = "succeeded", t.attempt, finished
        elif t.last_attempt:
            rec.status, rec.final_attempt, rec.finished_at = "failed", t.attempt, finished
        else:
            rec.status = "running"  # @retry (or @catch's fallback) will start another attempt
        records.write_task(t.storage, rec)
        if outcome.ok:
            self._record_join_input(outcome)
        if t.production and t.step == "end" and outcome.ok:
            self._finish_run_record(finished)
        if outcome.ok:
            self._send("finished", artifacts=outcome.artifacts or {}, error=error)
        else:
            # A failed attempt keeps what it had saved, as a local run shows it (Metaflow does too).
            self._send("failed", artifacts=outcome.artifacts or None, error=error)

    def log_prefix(self) -> str:
        t = self.task
        return layout.attempt_prefix(t.flow_name, t.run_id, t.step, t.task_id, t.attempt)

    def save_logs(self, out: CapturedOutput) -> None:
        storage = self.task.storage
        prefix = self.log_prefix()
        for name, tee in zip(layout.LOGS, (out.stdout, out.stderr)):
            storage.put_stream(f"{prefix}/{name}", tee.contents())
            storage.put_bytes(f"{prefix}/{layout.log_times_name(name)}", tee.times_text())

    def foreach(self, num_splits: int) -> None:
        """A foreach task's cardinality, which its children and its join read."""
        t = self.task
        key = layout.attempt_key(t.flow_name, t.run_id, t.step, t.task_id, t.attempt, layout.FOREACH_RECORD)
        t.storage.put_bytes(key, json.dumps({"num_splits": num_splits}).encode())
        if t.production:
            # The item list the step's Distributed Map reads from S3 once this task succeeded.
            from ..foreach_items import items_body, items_key

            t.storage.put_bytes(items_key(t.flow_name, t.run_id, t.step, t.task_id), items_body(num_splits))
        table = os.environ.get(job.FOREACH_TABLE)
        if table:
            # Deployments compiled before the Distributed Map read the cardinality from
            # DynamoDB before their inline Map state; their definitions still pass the table.
            from ..foreach_cardinality import record_cardinality
            from .aws import client

            record_cardinality(
                table, t.flow_name, t.run_id, t.step, t.task_id, num_splits, client=client("dynamodb")
            )

    def _record_join_input(self, outcome: Outcome) -> None:
        """A task ending a foreach body: its final attempt and artifact index, for its join to query.

        After its task record says succeeded, so the item exists only for a task that did;
        a failure to put it fails the attempt (and @retry runs it again), as a failure to
        write the record would: the join must find every input, here or in S3.
        """
        table = os.environ.get(job.JOIN_INPUTS_TABLE)
        t = self.task
        if not table or outcome.artifacts is None:
            return
        from .graph import closes_foreach

        graph = t.graph
        if not any(closes_foreach(graph, graph[name]) for name in t.node.out_funcs):
            return
        from ..datastore.artifacts import index_to_json
        from ..join_inputs import JoinInput, join_key, record_input
        from .aws import client

        indices = layout.indices_of(t.task_id)
        key = join_key(t.flow_name, t.run_id, t.step, layout.task_id_for(indices[:-1]))
        saved = t.store.small_blobs
        blobs = {ref.sha: saved[ref.sha] for ref in outcome.artifacts.values() if ref.sha in saved}
        entry = JoinInput(indices[-1], t.attempt, index_to_json(outcome.artifacts), blobs)
        record_input(table, key, entry, client("dynamodb"))

    def _task_rec(self) -> records.TaskRecord:
        t = self.task
        rec = records.TaskRecord(
            flow=t.flow_name, run_id=t.run_id, step=t.step, task_id=t.task_id,
            foreach_indices=t.indices,
        )
        if t.attempt > 0:
            previous = records.read_task(t.storage, t.flow_name, t.run_id, t.step, t.task_id)
            if previous is not None:
                rec.created_at = previous.created_at
        return rec

    def _send(self, kind: str, **extra: Any) -> None:
        if self.events is not None:
            t = self.task
            self.events.send(kind, t.flow_name, t.run_id, t.step, t.task_id, t.attempt, t.indices, **extra)

    def _ensure_run_record(self) -> None:
        t = self.task
        if records.read_run(t.storage, t.flow_name, t.run_id) is None:
            records.write_run(
                t.storage,
                records.RunRecord(
                    flow=t.flow_name, run_id=t.run_id, user=t.user, owner=t.owner, tags=list(t.tags),
                    system_tags=t.system_tags(), parameters=_jsonable(t.params),
                ),
            )

    def _finish_run_record(self, finished: str) -> None:
        t = self.task
        run = records.read_run(t.storage, t.flow_name, t.run_id)
        if run is not None and run.status == "running":
            run.status, run.finished_at = "succeeded", finished
            records.write_run(t.storage, run)


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(values, default=str))
