"""A foreach join's inputs, kept in DynamoDB so the join reads them a page at a time, defined once.

A join after a foreach of n items needs each input's final attempt and artifact
index. In S3 they are two objects per input: 20,000 GETs for a join of 10,000,
which no amount of concurrency brings near a second. So every task that ends a
foreach body also puts one item here, in its join's partition, sorted by its
foreach index; the join queries the partition (strongly consistent, so every
input whose job succeeded is there) and reads from S3 only what is missing: an
input whose index was too big for an item, or a run that began before the table
existed. The S3 objects stay the truth; this is their copy for reading in bulk.

Item shape:

    join   S  "<flow>/<run_id>/<body-end step>/<join task id>"   (hash key)
    index  N  the input's foreach index                          (range key)
    input  S  three lines: the input task's final attempt; its artifact index, as
              written to S3 (artifacts.json, compact JSON: one line); and JSON
              {sha: base64} of the stored bytes of the small artifacts it saved (a few
              hundred bytes each), so `[i.score for i in inputs]` reads no blob from
              S3 either, or nothing
    ttl    N  epoch seconds; DynamoDB's TTL deletes the item afterwards

One string rather than an attribute each: a reader's SDK parses every attribute
of every item as its own typed structure, which was most of the client's time
for a join of 10,000.

A retried attempt overwrites its item, so the one left is the attempt that
succeeded. The flow name is in the key because one table serves every flow of a
stage. A leaf: the control plane's Lambda imports it, so it imports nothing heavy.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any, Iterator, NamedTuple, Optional

KEY_ATTR = "join"
INDEX_ATTR = "index"
INPUT_ATTR = "input"
TTL_ATTR = "ttl"

# The table's keys, as CreateTable takes them (chalicelib/bootstrap.py; infra/resources.json matches).
KEY_SCHEMA = ({"AttributeName": KEY_ATTR, "KeyType": "HASH"}, {"AttributeName": INDEX_ATTR, "KeyType": "RANGE"})
ATTRIBUTE_DEFINITIONS = ({"AttributeName": KEY_ATTR, "AttributeType": "S"},
                         {"AttributeName": INDEX_ATTR, "AttributeType": "N"})

# As the foreach cardinality's: the item must outlive the run, which may last a year.
DEFAULT_TTL_DAYS = 366
# DynamoDB's item limit is 400 KB; an index bigger than this is read from S3 instead.
MAX_ARTIFACTS_BYTES = 350_000
# The blobs an item carries, at most: past it the rest are read from S3 when asked.
MAX_BLOBS_BYTES = 16_384


class JoinInput(NamedTuple):
    index: int
    attempt: int
    artifacts: bytes  # the artifact index JSON, as in S3
    blobs: dict[str, bytes] = {}  # sha -> a small blob's stored bytes


def join_key(flow: str, run_id: str, body_step: str, join_task_id: str) -> str:
    """The partition of one join's inputs: the body's last step and the join's own task id."""
    for what, value in (("flow", flow), ("run_id", run_id), ("step", body_step), ("task_id", join_task_id)):
        if not value or "/" in value:
            raise ValueError(f"{what} must be non-empty and contain no '/', got {value!r}")
    return f"{flow}/{run_id}/{body_step}/{join_task_id}"


def input_item(key: str, entry: JoinInput, ttl_days: float = DEFAULT_TTL_DAYS,
               now: Optional[float] = None) -> Optional[dict[str, Any]]:
    """The item in DynamoDB's typed JSON form; None when the index is too big for one."""
    if len(entry.artifacts) > MAX_ARTIFACTS_BYTES:
        return None
    if b"\n" in entry.artifacts:
        raise ValueError("an artifact index is one line of compact JSON")
    expires = int((time.time() if now is None else now) + ttl_days * 86400)
    blobs, total = {}, 0
    for sha, data in sorted(entry.blobs.items(), key=lambda kv: len(kv[1])):
        encoded = base64.b64encode(data).decode()
        total += len(sha) + len(encoded)
        if total > MAX_BLOBS_BYTES:
            break
        blobs[sha] = encoded
    packed = "\n".join((str(int(entry.attempt)), entry.artifacts.decode(),
                        json.dumps(blobs, separators=(",", ":")) if blobs else ""))
    return {
        KEY_ATTR: {"S": key},
        INDEX_ATTR: {"N": str(int(entry.index))},
        INPUT_ATTR: {"S": packed},
        TTL_ATTR: {"N": str(expires)},
    }


def _unpacked(index: int, packed: str) -> JoinInput:
    attempt, artifacts, blobs = packed.split("\n", 2)
    found = {sha: base64.b64decode(v) for sha, v in json.loads(blobs).items()} if blobs else {}
    return JoinInput(index, int(attempt), artifacts.encode(), found)


def record_input(table: str, key: str, entry: JoinInput, client: Any) -> bool:
    """Put one input's item (the task that ends a foreach body, once it succeeded); False if too big."""
    item = input_item(key, entry)
    if item is None:
        return False
    client.put_item(TableName=table, Item=item)
    return True


def read_inputs(table: str, key: str, client: Any) -> Iterator[JoinInput]:
    """Every input recorded in one join's partition, in index order, a Query page at a time."""
    request: dict[str, Any] = {
        "TableName": table,
        "KeyConditionExpression": "#k = :k",
        "ExpressionAttributeNames": {"#k": KEY_ATTR, "#i": INDEX_ATTR, "#v": INPUT_ATTR},
        "ExpressionAttributeValues": {":k": {"S": key}},
        "ProjectionExpression": "#i, #v",
        # Every input's job succeeded before the join's began, and so did its PutItem.
        "ConsistentRead": True,
    }
    while True:
        page = client.query(**request)
        for item in page.get("Items", []):
            yield _unpacked(int(item[INDEX_ATTR]["N"]), item[INPUT_ATTR]["S"])
        last = page.get("LastEvaluatedKey")
        if not last:
            return
        request["ExclusiveStartKey"] = last
