"""Item shapes of run records in the single table (chalicelib/TABLE.md).

The recorder writes these items and chalicelib/query reads them; their keys
come from chalicelib/keys.py. Each record is kept whole as one JSON document
(`doc`): DynamoDB cannot hold floats and nobody queries inside it; the few
attributes queries do need (index keys, status, tags) are copied beside it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .. import keys

RUN, TAG, TASK, STEP, ARTIFACTS, FLOW_ENTRY = "run", "run_tag", "task", "step", "artifacts", "flow_entry"
FAILED_TASK = "failed_task"
# Run statuses as the Client API shows them (flowplane/datastore/records.py).
API_RUN_STATUS = {
    "PENDING": "running",
    "RUNNING": "running",
    "SUCCEEDED": "succeeded",
    "FAILED": "failed",
    "TIMED_OUT": "failed",
    "ABORTED": "failed",
}


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
    order = keys.time_sk(created, run_id)
    items = [
        {
            "PK": keys.flow_pk(flow),
            "SK": keys.run_sk(run_id),
            "type": RUN,
            "GSI1PK": keys.runs_by_time_pk(flow),
            "GSI1SK": order,
            "GSI2PK": keys.status_pk(flow, status),
            "GSI2SK": order,
            **body,
        }
    ]
    for tag in tags:
        items.append(
            {
                "PK": keys.tag_pk(flow, tag),
                "SK": order,
                "type": TAG,
                "GSI2PK": keys.status_pk(flow, status, tag),
                "GSI2SK": order,
                **body,
            }
        )
    return items


def task_item(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "PK": keys.run_records_pk(doc["flow"], doc["run_id"]),
        "SK": keys.task_sk(doc["step"], doc["task_id"]),
        "type": TASK,
        "doc": canonical(doc),
        "revision": digest(doc),
    }


def failed_task_item(flow: str, run_id: str, step: str, task_id: str) -> dict[str, Any]:
    return {
        "PK": keys.run_records_pk(flow, run_id),
        "SK": keys.failed_task_sk(step, task_id),
        "type": FAILED_TASK,
        "pathspec": f"{flow}/{run_id}/{step}/{task_id}",
        "step": step,
        "task_id": task_id,
    }


def artifacts_item(flow: str, run_id: str, step: str, task_id: str, attempt: int, index: dict) -> dict[str, Any]:
    doc = {"attempt": int(attempt), "artifacts": index}
    return {
        "PK": keys.run_records_pk(flow, run_id),
        "SK": keys.artifacts_sk(step, task_id, attempt),
        "type": ARTIFACTS,
        "doc": canonical(doc),
    }
