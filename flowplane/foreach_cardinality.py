"""The foreach cardinality a splitting task leaves for Step Functions, defined once.

On Step Functions a foreach becomes a `dynamodb:getItem` state followed by a Map
state. The task that splits writes one DynamoDB item, keyed by its own pathspec,
holding the indices the Map iterates over; the compiler (chalicelib/compiler)
builds the getItem key from `foreach_item_key` and reads `CARDINALITY_ATTR`, so
the writer here and the reader in the state machine cannot drift apart.

Item shape (as Metaflow's, plus the flow name in the key and an explicit count):

    pathspec              S   "<flow>/<run_id>/<step>/<task_id>"   (the table's hash key)
    for_each_cardinality  NS  {"0", "1", ..., "<n-1>"}            (what the Map iterates over)
    num_splits            N   n
    ttl                   N   epoch seconds; DynamoDB's TTL deletes the item afterwards

The flow name is part of the key because one table serves every flow of a stage
and run ids (`sfn-<execution name>`) are only unique within one state machine.
A number set cannot be empty in DynamoDB; a foreach needs at least one item
anyway (FlowSpec.next refuses an empty list).
"""

from __future__ import annotations

import time
from typing import Any, Optional

KEY_ATTR = "pathspec"
CARDINALITY_ATTR = "for_each_cardinality"
NUM_SPLITS_ATTR = "num_splits"
TTL_ATTR = "ttl"

# Standard Step Functions executions may run for up to a year; the item must
# outlive the run that reads it.
DEFAULT_TTL_DAYS = 366


def foreach_item_key(flow: str, run_id: str, step: str, task_id: str) -> str:
    """The hash key of the cardinality item written by task `step/task_id` of a run."""
    for what, value in (("flow", flow), ("run_id", run_id), ("step", step), ("task_id", task_id)):
        if not value or "/" in value:
            raise ValueError(f"{what} must be non-empty and contain no '/', got {value!r}")
    return f"{flow}/{run_id}/{step}/{task_id}"


def cardinality_item(
    flow: str,
    run_id: str,
    step: str,
    task_id: str,
    num_splits: int,
    ttl_days: float = DEFAULT_TTL_DAYS,
    now: Optional[float] = None,
) -> dict[str, Any]:
    """The item in DynamoDB's typed JSON form, ready for `put_item`."""
    if isinstance(num_splits, bool) or not isinstance(num_splits, int) or num_splits < 1:
        raise ValueError(f"num_splits must be a positive integer, got {num_splits!r}")
    if ttl_days <= 0:
        raise ValueError(f"ttl_days must be positive, got {ttl_days!r}")
    expires = int((time.time() if now is None else now) + ttl_days * 86400)
    return {
        KEY_ATTR: {"S": foreach_item_key(flow, run_id, step, task_id)},
        CARDINALITY_ATTR: {"NS": [str(i) for i in range(num_splits)]},
        NUM_SPLITS_ATTR: {"N": str(num_splits)},
        TTL_ATTR: {"N": str(expires)},
    }


def record_cardinality(
    table: str,
    flow: str,
    run_id: str,
    step: str,
    task_id: str,
    num_splits: int,
    ttl_days: float = DEFAULT_TTL_DAYS,
    client: Any = None,
) -> dict[str, Any]:
    """Write the item the state machine's getItem state reads; returns the item.

    Called by the splitting task on Batch. A retried attempt overwrites the item
    with the same key, which is what the next state must see.
    """
    item = cardinality_item(flow, run_id, step, task_id, num_splits, ttl_days)
    if client is None:
        import boto3  # lazily: the local runtime never needs it

        client = boto3.client("dynamodb")
    client.put_item(TableName=table, Item=item)
    return item


def read_cardinality(
    table: str, flow: str, run_id: str, step: str, task_id: str, client: Any = None
) -> int:
    """The number of splits a foreach task recorded (what a foreach join needs)."""
    if client is None:
        import boto3

        client = boto3.client("dynamodb")
    key = foreach_item_key(flow, run_id, step, task_id)
    resp = client.get_item(TableName=table, Key={KEY_ATTR: {"S": key}}, ConsistentRead=True)
    item = resp.get("Item")
    if item is None:
        raise LookupError(f"no foreach cardinality recorded for {key} in table {table}")
    return int(item[NUM_SPLITS_ATTR]["N"])
