"""@catch's fallback attempts: a step that died without an exception, told without running it again.

As in Metaflow, a `@catch` step gets FALLBACK_ATTEMPTS attempts beyond `@retry`'s
(flowplane/job.py counts them, for the compiler's Retry and the task alike). An
attempt of user code that raises is caught on the spot; the fallback attempts only
run when the last attempt of user code left no outcome: its process was killed
(SIGKILL, out of memory), Batch stopped it (attempt timeout), or the runtime itself
failed. A fallback attempt runs no user code: it raises FailureHandledByCatch, which
@catch stores in its variable like any caught exception, so the step ends with a
proper task and the flow goes on.

What happened to the earlier attempts is read from their attempt records (an
attempt records its start, and the local runtime records a killed child) and, on
AWS Batch, from the Batch jobs they recorded: Batch keeps a job's exit code and
status reason after the container is gone. Batch's answer is best effort: without
it (no permission, no job id) the message still says the attempt ended unrecorded.
"""

from __future__ import annotations

import signal
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:
    from ..datastore.records import AttemptRecord
    from ..datastore.storage import Storage

DescribeJobs = Callable[[list[str]], dict[str, "BatchJob"]]


@dataclass(frozen=True)
class BatchJob:
    """What AWS Batch says of a finished job."""

    status: Optional[str] = None
    status_reason: Optional[str] = None
    exit_code: Optional[int] = None
    container_reason: Optional[str] = None
    stopped_at: Optional[str] = None  # ISO time

    @classmethod
    def from_description(cls, job: dict[str, Any]) -> "BatchJob":
        container = job.get("container") or {}
        # A retried Batch job keeps each attempt's container; the job's own fields are the last's.
        last = (job.get("attempts") or [{}])[-1].get("container") or {}
        exit_code = container.get("exitCode", last.get("exitCode"))
        stopped = job.get("stoppedAt")
        return cls(
            status=job.get("status"),
            status_reason=job.get("statusReason"),
            exit_code=int(exit_code) if isinstance(exit_code, (int, float)) else None,
            container_reason=container.get("reason") or last.get("reason"),
            stopped_at=datetime.fromtimestamp(stopped / 1000, timezone.utc).isoformat(timespec="milliseconds")
            if isinstance(stopped, (int, float))
            else None,
        )

    def describe(self, before: str = "") -> str:
        """`was killed by signal SIGKILL{before} (exit code 137; Batch: <reason>)` and the like."""
        reasons: list[str] = []
        for reason in (self.status_reason, self.container_reason):
            if reason and not any(reason in r for r in reasons):
                reasons.append(reason)
        details = [f"Batch: {'; '.join(reasons)}"] if reasons else []
        signame = signal_name(self.exit_code)
        if signame:
            head = f"was killed by signal {signame}"
            details.insert(0, f"exit code {self.exit_code}")
        elif self.exit_code is not None:
            head = f"exited with code {self.exit_code}"
        else:
            head = "was stopped"
            details = details or ["Batch gave no reason"]
        return f"{head}{before} ({'; '.join(details)})" if details else f"{head}{before}"


def signal_name(exit_code: Optional[int]) -> Optional[str]:
    """SIGKILL for 137: a container's process ended by signal N exits 128+N."""
    if exit_code is None or exit_code <= 128:
        return None
    try:
        return signal.Signals(exit_code - 128).name
    except ValueError:
        return None


@dataclass
class EarlierAttempt:
    """One attempt before the fallback: its record, and what Batch says of its job."""

    attempt: int
    record: Optional["AttemptRecord"]
    batch: Optional[BatchJob] = None

    @property
    def unrecorded(self) -> bool:
        """It started but never recorded how it ended: the process died under it."""
        return self.record is not None and self.record.status == "running"

    def describe(self) -> str:
        rec = self.record
        if rec is None:
            return (
                f"attempt {self.attempt} left no record: it ended before the task started "
                "(the container could not start, or the flow's module failed as it loaded)"
            )
        if rec.status == "failed" and rec.error is not None:
            first_line = (rec.error.message or "").strip().splitlines()[:1]
            return f"attempt {self.attempt} failed: {rec.error.type}: {first_line[0] if first_line else ''}".rstrip(": ")
        if rec.status == "succeeded":
            return f"attempt {self.attempt} succeeded"
        if self.batch is not None:
            return f"attempt {self.attempt} {self.batch.describe(before=' before recording an outcome')}"
        return (
            f"attempt {self.attempt} ended without recording an outcome (its process was killed: "
            "a signal, out of memory, or Batch's attempt timeout)"
        )

    def as_failed_record(self) -> "AttemptRecord":
        """The record the attempt would have written had it been able to: a failed attempt."""
        from ..datastore.records import AttemptRecord, ErrorInfo, now_iso

        assert self.record is not None
        batch = self.batch
        killed = batch is not None and signal_name(batch.exit_code) is not None
        error = ErrorInfo(type="TaskKilled" if killed else "TaskFailed", message=self.describe())
        return AttemptRecord(
            attempt=self.attempt,
            status="failed",
            started_at=self.record.started_at,
            finished_at=(batch.stopped_at if batch else None) or now_iso(),
            exit_code=batch.exit_code if batch else None,
            error=error,
            log_location=self.record.log_location,
            batch_job_id=self.record.batch_job_id,
        )


def earlier_attempts(
    storage: "Storage",
    flow: str,
    run_id: str,
    step: str,
    task_id: str,
    attempt: int,
    describe_jobs: Optional[DescribeJobs] = None,
) -> list[EarlierAttempt]:
    """Attempts 0..attempt-1 of the task, those that died unrecorded completed with Batch's word."""
    from ..datastore import records

    found = [
        EarlierAttempt(n, records.read_attempt(storage, flow, run_id, step, task_id, n)) for n in range(attempt)
    ]
    job_ids = [a.record.batch_job_id for a in found if a.unrecorded and a.record and a.record.batch_job_id]
    if job_ids and describe_jobs is not None:
        jobs = describe_jobs(job_ids)
        for a in found:
            if a.unrecorded and a.record is not None and a.record.batch_job_id in jobs:
                a.batch = jobs[a.record.batch_job_id]
    return found


def record_as_failed(
    storage: "Storage", flow: str, run_id: str, step: str, task_id: str, attempts: list[EarlierAttempt]
) -> None:
    """The attempts that died unrecorded become failed attempts, as the local runtime records its killed children."""
    from ..datastore import records

    for a in attempts:
        if a.unrecorded:
            records.write_attempt(storage, flow, run_id, step, task_id, a.as_failed_record())


def fallback_message(step: str, attempt: int, attempts: list[EarlierAttempt]) -> str:
    """FailureHandledByCatch's message: what became of the attempts this fallback stands for."""
    told = "; ".join(a.describe() for a in attempts) or "no earlier attempt is recorded"
    return (
        f"step {step!r} raised no exception that @catch could keep: {told}. "
        f"@catch's fallback attempt {attempt} records this instead of running the step again."
    )


def batch_describe_jobs(job_ids: list[str]) -> dict[str, BatchJob]:
    """Ask AWS Batch about finished jobs; {} (and a line on stderr) when it cannot answer."""
    from .aws import client

    try:
        found = client("batch").describe_jobs(jobs=job_ids[:100]).get("jobs", [])
    except Exception as e:  # no batch:DescribeJobs permission, no endpoint: the records still tell something
        print(f"flowplane: could not ask AWS Batch about jobs {', '.join(job_ids)}: {type(e).__name__}: {e}",
              file=sys.stderr)
        return {}
    return {j["jobId"]: BatchJob.from_description(j) for j in found if j.get("jobId")}

