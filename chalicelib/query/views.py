"""Stored documents -> the Client API's records (flowplane/datastore/records.py).

The recorder stores what events said, in AWS's terms (Step Functions and Batch
statuses, per-attempt facts); a task's status, final attempt and error are
derived here from its attempts, so they can never disagree with them.
"""

from __future__ import annotations

from typing import Any, Optional

from flowplane.datastore.records import AttemptRecord, ErrorInfo, RunRecord, TaskRecord

from ..recording.run_records import API_RUN_STATUS
from ..recording.merge import ATTEMPT_RANK, task_status
from ..recording.store import task_created_at

ATTEMPT_STATUS = {
    "SUBMITTED": "pending",
    "PENDING": "pending",
    "RUNNABLE": "pending",
    "STARTING": "pending",
    "RUNNING": "running",
    "SUCCEEDED": "succeeded",
    "FAILED": "failed",
}
NAMED_FAILURES = ("TIMED_OUT", "ABORTED")


def _error(value: Any) -> Optional[ErrorInfo]:
    if not isinstance(value, dict) or not value.get("type"):
        return None
    return ErrorInfo(type=str(value["type"]), message=str(value.get("message") or ""), traceback=value.get("traceback"))


def run_view(doc: dict[str, Any]) -> dict[str, Any]:
    raw = doc.get("status") or "RUNNING"
    status = API_RUN_STATUS.get(raw, "running")
    error = _error(doc.get("error"))
    if raw in NAMED_FAILURES:
        # The contract's way of telling them apart from FAILED: error.type names them.
        detail = ": ".join(x for x in ((error.type if error else ""), (error.message if error else "")) if x)
        error = ErrorInfo(type=raw, message=detail or f"the execution ended {raw}")
    rec = RunRecord(
        flow=doc["flow"],
        run_id=doc["run_id"],
        user=doc.get("user") or "unknown",
        owner=doc.get("owner"),
        tags=doc.get("tags") or [],
        system_tags=doc.get("system_tags") or [],
        parameters=doc.get("parameters") or {},
        status=status,  # type: ignore[arg-type]
        created_at=doc["started_at"],
        finished_at=doc.get("stopped_at") if status != "running" else None,
        failed_task=doc.get("failed_task") if status == "failed" else None,
        error=error if status == "failed" else None,
        trigger=doc.get("trigger") or [],
    )
    out = rec.model_dump(mode="json")
    out.update(
        {
            "production_status": raw,
            "execution_arn": doc.get("execution_arn"),
            "deployment": doc.get("deployment"),
            "version": doc.get("version"),
            # The names `step-functions list-runs` prints.
            "started_at": doc["started_at"],
            "stopped_at": doc.get("stopped_at"),
        }
    )
    return out


def _attempts(doc: dict[str, Any]) -> list[dict[str, Any]]:
    found = doc.get("attempts") or {}
    return [{**found[k], "attempt": int(k)} for k in sorted(found, key=int)]


def attempt_view(a: dict[str, Any]) -> dict[str, Any]:
    raw = a.get("status") or "SUBMITTED"
    status = ATTEMPT_STATUS.get(raw, "pending")
    error = _error(a.get("error"))
    if error is None and status == "failed":
        reason = a.get("status_reason") or "the Batch job failed"
        error = ErrorInfo(type="BatchJobFailed", message=str(reason))
    started = a.get("started_at") or a.get("created_at")
    rec = AttemptRecord(
        attempt=int(a["attempt"]),
        status=status,  # type: ignore[arg-type]
        **({"started_at": started} if started else {}),
        finished_at=a.get("stopped_at") if status in ("succeeded", "failed") else None,
        exit_code=a.get("exit_code"),
        error=error,
        log_location=a.get("log_stream"),
    )
    out = rec.model_dump(mode="json")
    out.update({"production_status": raw, "batch_job_id": a.get("batch_job_id"), "status_reason": a.get("status_reason")})
    return out


def final_attempt(attempts: list[dict[str, Any]]) -> Optional[dict[str, Any]]:
    """The attempt whose artifacts count: the successful one, else the last if it failed."""
    for a in attempts:
        if a.get("status") == "SUCCEEDED":
            return a
    if attempts:
        latest = max(attempts, key=lambda a: (a["attempt"], ATTEMPT_RANK.get(a.get("status", ""), -1)))
        if latest.get("status") == "FAILED":
            return latest
    return None


def task_view(doc: dict[str, Any], with_attempts: bool = False) -> dict[str, Any]:
    attempts = _attempts(doc)
    raw = task_status(attempts)
    status = ATTEMPT_STATUS.get(raw or "", "pending")
    final = final_attempt(attempts)
    final_view = attempt_view(final) if final is not None else None
    created = task_created_at(doc)
    rec = TaskRecord(
        flow=doc["flow"],
        run_id=doc["run_id"],
        step=doc["step"],
        task_id=doc["task_id"],
        status=status,  # type: ignore[arg-type]
        attempts=len(attempts) and max(a["attempt"] for a in attempts) + 1,
        final_attempt=final["attempt"] if final is not None else None,
        foreach_indices=doc.get("foreach_indices") or [],
        **({"created_at": created} if created else {}),
        finished_at=final_view["finished_at"] if final_view else None,
        error=ErrorInfo(**final_view["error"]) if final_view and final_view.get("error") and status == "failed" else None,
    )
    out = rec.model_dump(mode="json")
    if with_attempts:
        out["attempts"] = [attempt_view(a) for a in attempts]
        out["attempt_count"] = rec.attempts
    return out
