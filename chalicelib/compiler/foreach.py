"""The reader side of the foreach cardinality: the getItem state and the Map's items.

The item shape and its key live in `flowplane.foreach_cardinality` (the task
runtime writes with it); this module only turns them into ASL, so both sides
share one key function.
"""

from __future__ import annotations

from typing import Any, Optional

from flowplane.foreach_cardinality import (  # noqa: F401  (re-exported: the one shape)
    CARDINALITY_ATTR,
    KEY_ATTR,
    NUM_SPLITS_ATTR,
    TTL_ATTR,
    foreach_item_key,
)

from .intrinsics import EXECUTION_NAME, RUN_ID_PREFIX, format_call

GET_ITEM = "arn:aws:states:::dynamodb:getItem"
# Where the indices sit in the state data between the getItem and the Map.
ITEMS_FIELD = "fe"
# The iteration input's own field: the task-id prefix of the tasks inside.
TASK_ID_FIELD = "tid"
TASK_ID_PATH = f"$.{TASK_ID_FIELD}"
ITEM_VALUE = "$$.Map.Item.Value"

# Throttling and transient DynamoDB errors, retried as the AWS SDKs would.
DYNAMODB_TRANSIENT = [
    "DynamoDB.ProvisionedThroughputExceededException",
    "DynamoDB.ThrottlingException",
    "DynamoDB.RequestLimitExceeded",
    "DynamoDB.InternalServerErrorException",
]

_RUN, _TASK = "\x00run\x00", "\x00task\x00"


def item_key_expr(flow: str, step: str, task_id_path: Optional[str]) -> str:
    """The intrinsic that evaluates, in the execution, to `foreach_item_key(...)`.

    `task_id_path` is None outside any foreach (the task id is then "1").
    """
    template = foreach_item_key(flow, _RUN, step, _TASK if task_id_path else "1")
    before_run, after_run = template.split(_RUN)
    args = [EXECUTION_NAME]
    pieces = [before_run + RUN_ID_PREFIX]
    if task_id_path:
        middle, after_task = after_run.split(_TASK)
        pieces += [middle, after_task]
        args.append(task_id_path)
    else:
        pieces.append(after_run)
    return format_call(pieces, args)


def get_item_state(flow: str, step: str, table: str, task_id_path: Optional[str], next_state: str) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": GET_ITEM,
        "Parameters": {
            "TableName": table,
            "Key": {KEY_ATTR: {"S.$": item_key_expr(flow, step, task_id_path)}},
            # The splitting task wrote the item a moment ago.
            "ConsistentRead": True,
        },
        "ResultSelector": {"i.$": f"$.Item.{CARDINALITY_ATTR}.NS"},
        "ResultPath": f"$.{ITEMS_FIELD}",
        "Retry": [{"ErrorEquals": list(DYNAMODB_TRANSIENT), "IntervalSeconds": 1, "MaxAttempts": 6, "BackoffRate": 2}],
        "Next": next_state,
    }


def iteration_task_id_expr(outer_task_id_path: Optional[str]) -> str:
    """The task-id prefix of one Map iteration: `1.<i>`, nested `<outer>.<j>`."""
    if outer_task_id_path is None:
        return format_call(["1.", ""], [ITEM_VALUE])
    return format_call(["", ".", ""], [outer_task_id_path, ITEM_VALUE])


def map_state(
    iteration: dict[str, Any],
    outer_task_id_path: Optional[str],
    context_field: str,
    max_concurrency: int,
    next_state: str,
) -> dict[str, Any]:
    """The Map over the recorded indices; each iteration gets the shared context and its task id."""
    return {
        "Type": "Map",
        "ItemsPath": f"$.{ITEMS_FIELD}.i",
        "ItemSelector": {
            f"{context_field}.$": f"$.{context_field}",
            f"{TASK_ID_FIELD}.$": iteration_task_id_expr(outer_task_id_path),
        },
        "MaxConcurrency": max_concurrency,
        "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, **iteration},
        # The iterations' outputs are not needed downstream (tasks share data through
        # the datastore); keep only their count so the state stays small however wide
        # the foreach is.
        "ResultSelector": {"n.$": "States.ArrayLength($)"},
        "ResultPath": f"$.{ITEMS_FIELD}",
        "Next": next_state,
    }
