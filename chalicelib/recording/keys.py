"""Keys and item shapes of run records in the single table (chalicelib/TABLE.md).

The recorder writes these items and chalicelib/query reads them; both build
keys here, so a key shape is defined once. Each record is kept whole as one
JSON document (`doc`): DynamoDB cannot hold floats and nobody queries inside
it; the few attributes queries do need (index keys, status, tags) are copied
beside it.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Optional

from flowplane.datastore.layout import indices_of

# Sparse global secondary indexes (bootstrap.py creates them).
BY_TIME = "GSI1"  # GSI1PK = RUNS#<flow>, GSI1SK = <created_at>#<run_id>
BY_STATUS = "GSI2"  # GSI2PK = STATUS#<flow>#<status>[#TAG#<tag>], GSI2SK as GSI1SK
INDEX_KEYS = {
    None: ("PK", "SK"),
    BY_TIME: ("GSI1PK", "GSI1SK"),
    BY_STATUS: ("GSI2PK", "GSI2SK"),
}

RUN, TAG, TASK, STEP, ARTIFACTS, FLOW_ENTRY = "run", "run_tag", "task", "step", "artifacts", "flow_entry"
# Run statuses as the Client API shows them (flowplane/datastore/records.py).
API_RUN_STATUS = {
    "PENDING": "running",
    "RUNNING": "running",
    "SUCCEEDED": "succeeded",
    "FAILED": "failed",
    "TIMED_OUT": "failed",
    "ABORTED": "failed",
}
# Names become parts of keys, where `#` and `/` separate them: anything else is refused.
FLOW_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
STEP_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,79}$")
RUN_ID = re.compile(r"^[^#/\s\x00-\x1f\x7f]{1,128}$")
TASK_ID = re.compile(r"^1(\.(0|[1-9][0-9]{0,7}))*$")
# Width of each foreach index in a task's sort key, so tasks list in index order.
INDEX_WIDTH = 8


def flow_pk(flow: str) -> str:
    return f"FLOW#{flow}"


def run_sk(run_id: str) -> str:
    return f"RUN#{run_id}"


def run_records_pk(flow: str, run_id: str) -> str:
    """The partition holding a run's steps, tasks and artifact indexes."""
    return f"RUN#{flow}/{run_id}"


def runs_by_time_pk(flow: str) -> str:
    return f"RUNS#{flow}"


def time_sk(created_at: str, run_id: str) -> str:
    return f"{created_at}#{run_id}"


def status_pk(flow: str, status: str, tag: Optional[str] = None) -> str:
    base = f"STATUS#{flow}#{status}"
    return f"{base}#TAG#{tag}" if tag is not None else base


def tag_pk(flow: str, tag: str) -> str:
    return f"TAG#{flow}#{tag}"


FLOWS_PK = "FLOWS"


def flow_entry_sk(flow: str) -> str:
    return f"FLOW#{flow}"


def step_sk(step: str) -> str:
    return f"STEP#{step}"


def task_order(task_id: str) -> str:
    """`1`, `1.3`, `1.3.0` -> a sort key in foreach order (1.2 before 1.10)."""
    indices = indices_of(task_id)
    return ".".join(["1", *(f"{i:0{INDEX_WIDTH}d}" for i in indices)])


def task_prefix(step: str) -> str:
    return f"TASK#{step}#"


def task_sk(step: str, task_id: str) -> str:
    return task_prefix(step) + task_order(task_id)


def artifacts_prefix(step: str, task_id: str) -> str:
    return f"ARTIFACTS#{step}#{task_order(task_id)}#"


def artifacts_sk(step: str, task_id: str, attempt: int) -> str:
    return artifacts_prefix(step, task_id) + f"{int(attempt):04d}"


def digest(doc: dict[str, Any]) -> str:
    """The item's revision: a digest of its document.

    Writes are conditional on the revision read. Merges only ever grow a record, so
    a digest guards as well as a counter would, and the final item depends only on
    the events, never on the order or the number of deliveries.
    """
    return hashlib.blake2b(canonical(doc).encode(), digest_size=10).hexdigest()


def canonical(doc: Any) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)


def decode(item: dict[str, Any]) -> dict[str, Any]:
    return json.loads(item["doc"])


def run_items(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The run item and one copy per tag, so every run listing is a single Query."""
    flow, run_id, created = doc["flow"], doc["run_id"], doc["started_at"]
    status = API_RUN_STATUS.get(doc.get("status", ""), "running")
    tags = sorted(set(doc.get("tags") or []) | set(doc.get("system_tags") or []))
    body = {
        "doc": canonical(doc),
        "revision": digest(doc),
        "run_status": status,
        "production_status": doc.get("status") or "RUNNING",
        "all_tags": tags,
    }
    if doc.get("deployment"):
        # `step-functions --name X list-runs` lists one deployment's runs of the flow.
        body["deployment"] = doc["deployment"]
    order = time_sk(created, run_id)
    items = [
        {
            "PK": flow_pk(flow),
            "SK": run_sk(run_id),
            "type": RUN,
            "GSI1PK": runs_by_time_pk(flow),
            "GSI1SK": order,
            "GSI2PK": status_pk(flow, status),
            "GSI2SK": order,
            **body,
        }
    ]
    for tag in tags:
        items.append(
            {
                "PK": tag_pk(flow, tag),
                "SK": order,
                "type": TAG,
                "GSI2PK": status_pk(flow, status, tag),
                "GSI2SK": order,
                **body,
            }
        )
    return items


def task_item(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "PK": run_records_pk(doc["flow"], doc["run_id"]),
        "SK": task_sk(doc["step"], doc["task_id"]),
        "type": TASK,
        "doc": canonical(doc),
        "revision": digest(doc),
    }


def artifacts_item(flow: str, run_id: str, step: str, task_id: str, attempt: int, index: dict) -> dict[str, Any]:
    doc = {"attempt": int(attempt), "artifacts": index}
    return {
        "PK": run_records_pk(flow, run_id),
        "SK": artifacts_sk(step, task_id, attempt),
        "type": ARTIFACTS,
        "doc": canonical(doc),
    }
