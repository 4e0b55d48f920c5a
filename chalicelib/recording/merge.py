"""Order-free merging of what events say about runs, tasks and attempts.

EventBridge delivers at least once and in any order. Each record is therefore
a join-semilattice: `merge` is commutative, associative and idempotent, so
any order and any number of duplicates of the same events give the same
record. The rules:

- a status only moves up its ladder (RUNNING never overwrites a final status);
  the fields that describe a status (stop time, error) travel with it;
- a redriven execution (Step Functions' RedriveExecution, from the console) runs
  again under the same name: its redrive count comes before the status, so the
  redrive's RUNNING replaces the final status it restarts, and only that;
- a start time is the earliest seen, a stop time comes with the final status;
- identity fields (flow, run id, ...) are equal on every event; other facts
  (artifact index, log stream) are kept once known, ties broken by value.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Optional

# Higher wins. Final statuses share the top rank; between two different
# finals (which AWS never sends for one execution) the tie-break below decides.
RUN_RANK = {"PENDING": 0, "RUNNING": 1, "SUCCEEDED": 2, "FAILED": 2, "TIMED_OUT": 2, "ABORTED": 2}
FINAL_RUN_STATUSES = frozenset(s for s, r in RUN_RANK.items() if r == 2)

ATTEMPT_RANK = {
    "SUBMITTED": 0,
    "PENDING": 1,
    "RUNNABLE": 2,
    "STARTING": 3,
    "RUNNING": 4,
    "SUCCEEDED": 5,
    "FAILED": 5,
}

# Fields whose value comes with the status that set them.
STATUS_GROUP = ("status", "stopped_at", "error", "exit_code", "status_reason", "redrive_count", "failed_task")


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _pick(a: Any, b: Any) -> Any:
    """Deterministic choice between two known values (the larger by canonical JSON)."""
    if a is None:
        return b
    if b is None:
        return a
    return a if _key(a) >= _key(b) else b


def _min(a: Optional[str], b: Optional[str]) -> Optional[str]:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def _merge_status(a: Mapping[str, Any], b: Mapping[str, Any], ranks: Mapping[str, int]) -> dict[str, Any]:
    """The higher status wins with its fields; equal statuses merge their fields."""

    def group(rec: Mapping[str, Any]) -> dict[str, Any]:
        return {k: rec.get(k) for k in STATUS_GROUP if rec.get(k) is not None}

    ga, gb = group(a), group(b)
    if not ga.get("status"):
        return gb if gb.get("status") else {}
    if not gb.get("status"):
        return ga
    oa = (int(ga.get("redrive_count") or 0), ranks.get(ga["status"], -1), ga["status"])
    ob = (int(gb.get("redrive_count") or 0), ranks.get(gb["status"], -1), gb["status"])
    if oa != ob:
        return ga if oa > ob else gb
    return {k: _pick(ga.get(k), gb.get(k)) for k in set(ga) | set(gb)}


def merge_records(a: Mapping[str, Any], b: Mapping[str, Any], ranks: Mapping[str, int]) -> dict[str, Any]:
    """Merge two partial records of the same run, task or attempt."""
    out: dict[str, Any] = {}
    for k in set(a) | set(b):
        if k in STATUS_GROUP:
            continue
        if k.endswith("started_at") or k == "created_at":
            out[k] = _min(a.get(k), b.get(k))
        elif k in ("tags", "system_tags"):
            out[k] = sorted(set(a.get(k) or []) | set(b.get(k) or []))
        else:
            out[k] = _pick(a.get(k), b.get(k))
    out.update(_merge_status(a, b, ranks))
    return {k: v for k, v in out.items() if v is not None}


def merge_run(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    return merge_records(a, b, RUN_RANK)


def merge_attempt(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
    return merge_records(a, b, ATTEMPT_RANK)


def task_status(attempts: list[Mapping[str, Any]]) -> Optional[str]:
    """A task's status from its attempts: the latest attempt decides, a success is final."""
    if not attempts:
        return None
    if any(a.get("status") == "SUCCEEDED" for a in attempts):
        return "SUCCEEDED"
    latest = max(attempts, key=lambda a: (int(a.get("attempt", 0)), ATTEMPT_RANK.get(a.get("status", ""), -1)))
    return latest.get("status")
