"""A foreach as a Distributed Map: the item list's key, and the Map state reading it.

Every foreach, nested or inside a branch, is a Distributed Map (notes/wide-foreach.md
has the measurements and README "Wide foreach" the reasons): each item runs as a
child execution with its own history, so the run's history stays constant and the
width is bounded by S3, not by the 25,000 events or the 40 concurrent iterations
of an inline Map. The splitting task writes the item list to the datastore; its
key comes from `flowplane.foreach_items.items_key`, so writer and reader share one
function.
"""

from __future__ import annotations

from typing import Any, Optional

from flowplane.foreach_items import items_key

from .intrinsics import format_call

READ_FROM_S3 = "arn:aws:states:::s3:getObject"
# Where the Map's result (only its count) goes in the state data.
ITEMS_FIELD = "fe"
# The iteration input's own field: the task-id prefix of the tasks inside.
TASK_ID_FIELD = "tid"
TASK_ID_PATH = f"$.{TASK_ID_FIELD}"
# The run id the context state evaluated once, in the parent execution: inside a
# child execution `$$.Execution.Name` is the child's own name.
RUN_ID_FIELD = "run"
ITEM_INDEX = "$$.Map.Item.Index"
# What a Distributed Map fails with when its ItemReader cannot read the list (S3
# throttling, say); retried, as nothing of the Map has run yet. A child's failure
# (States.ExceedToleratedFailureThreshold) is not: the task's own Retry already ran.
ITEM_READER_FAILED = "States.ItemReaderFailed"

_RUN, _TASK = "\x00run\x00", "\x00task\x00"


def item_key_expr(flow: str, step: str, datastore_prefix: str, context_path: str, task_id_path: Optional[str]) -> str:
    """The intrinsic that evaluates, in the execution, to the S3 key of `items_key(...)`.

    `task_id_path` is None outside any foreach (the task id is then "1").
    """
    template = items_key(flow, _RUN, step, _TASK if task_id_path else "1")
    if datastore_prefix:
        template = f"{datastore_prefix}/{template}"
    before_run, after_run = template.split(_RUN)
    args = [f"{context_path}.{RUN_ID_FIELD}"]
    pieces = [before_run]
    if task_id_path:
        middle, after_task = after_run.split(_TASK)
        pieces += [middle, after_task]
        args.append(task_id_path)
    else:
        pieces.append(after_run)
    return format_call(pieces, args)


def iteration_task_id_expr(outer_task_id_path: Optional[str]) -> str:
    """The task-id prefix of one Map iteration: `1.<i>`, nested `<outer>.<j>`."""
    if outer_task_id_path is None:
        return format_call(["1.", ""], [ITEM_INDEX])
    return format_call(["", ".", ""], [outer_task_id_path, ITEM_INDEX])


def map_state(
    iteration: dict[str, Any],
    bucket: str,
    key_expr: str,
    outer_task_id_path: Optional[str],
    context_field: str,
    max_concurrency: int,
    next_state: str,
) -> dict[str, Any]:
    """The Distributed Map over the split's item list; each child gets the shared context and its task id."""
    return {
        "Type": "Map",
        "ItemReader": {
            "Resource": READ_FROM_S3,
            "ReaderConfig": {"InputType": "JSON"},
            "Parameters": {"Bucket": bucket, "Key.$": key_expr},
        },
        "ItemSelector": {
            f"{context_field}.$": f"$.{context_field}",
            f"{TASK_ID_FIELD}.$": iteration_task_id_expr(outer_task_id_path),
        },
        # Always given: without it AWS starts up to 10,000 children at once, and the
        # embedded plane one thread per item.
        "MaxConcurrency": max_concurrency,
        # Standard children: a Batch `.sync` task needs them, and they may run for days.
        # No ToleratedFailure*: absent means 0, so one failed child fails the Map, and
        # the run, as one failed foreach task fails a Metaflow run.
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}, **iteration},
        # The children's outputs are not needed downstream (tasks share data through
        # the datastore); keep only their count so the state stays small however wide
        # the foreach is.
        "ResultSelector": {"n.$": "States.ArrayLength($)"},
        "ResultPath": f"$.{ITEMS_FIELD}",
        "Retry": [{"ErrorEquals": [ITEM_READER_FAILED], "IntervalSeconds": 2, "MaxAttempts": 4, "BackoffRate": 2}],
        "Next": next_state,
    }
