"""The item list a splitting task leaves for Step Functions' Distributed Map, defined once.

On Step Functions a foreach is a Distributed Map whose `ItemReader` reads a JSON
array from S3. The task that splits writes that array into the run's datastore
beside its own records (`<flow>/runs/<run_id>/<step>/<task_id>/foreach-items.json`,
not per attempt: a retried split overwrites it, and the Map runs only after the
step succeeded); the compiler (chalicelib/compiler/foreach.py) builds the
`ItemReader`'s key from `items_key`, so the writer and the reader cannot drift.

The items are the indices `[0, 1, ..., n-1]`: each child takes its task id from
`$$.Map.Item.Index`, and the values themselves stay in the datastore, where the
child's task reads its `self.input`. S3 holds the list whatever its width, where a
state payload stops at 256 KiB and a DynamoDB item at 400 KB (the store of
deployments compiled before; flowplane/foreach_cardinality.py).
"""

from __future__ import annotations

from .datastore import layout

ITEMS_FILE = "foreach-items.json"


def items_key(flow: str, run_id: str, step: str, task_id: str) -> str:
    """The datastore key (under the root) of the item list of task `step/task_id`."""
    for what, value in (("flow", flow), ("run_id", run_id), ("step", step), ("task_id", task_id)):
        if not value or "/" in value:
            raise ValueError(f"{what} must be non-empty and contain no '/', got {value!r}")
    return f"{layout.task_prefix(flow, run_id, step, task_id)}/{ITEMS_FILE}"


def items_body(num_splits: int) -> bytes:
    """The JSON array the Map iterates over: one element per child, compact (100,000 items: 0.6 MB)."""
    if isinstance(num_splits, bool) or not isinstance(num_splits, int) or num_splits < 1:
        raise ValueError(f"num_splits must be a positive integer, got {num_splits!r}")
    return ("[" + ",".join(map(str, range(num_splits))) + "]").encode()
