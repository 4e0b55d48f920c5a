"""Writing run records: read the item, merge (merge.py), put it back if nobody else did.

Every write is conditional on the revision read (a digest of the document,
see run_records.digest); on a conflict the item is read and merged again, a
bounded number of times. A merge that changes nothing writes nothing, so
duplicate deliveries cost one read.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

from flowplane.datastore.layout import indices_of

from .. import keys
from ..aws import client_error
from . import run_records
from .merge import merge_attempt, merge_run

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

MAX_TRIES = 6
# DynamoDB takes at most 100 items in one transaction: the run and 99 tag copies.
MAX_TAG_ITEMS = 99


class WriteConflict(RuntimeError):
    """The item kept changing under us; the event is retried by Lambda."""


@dataclass(frozen=True)
class Change:
    """A record before and after one event (before is {} when the item is new)."""

    before: dict[str, Any]
    after: dict[str, Any]

    @property
    def created(self) -> bool:
        return not self.before

    @property
    def changed(self) -> bool:
        return self.before != self.after


def merge_task(doc: dict[str, Any], attempt: int, update: dict[str, Any]) -> dict[str, Any]:
    """A task document with one attempt's update merged in."""
    attempts = dict(doc.get("attempts") or {})
    key = str(int(attempt))
    attempts[key] = merge_attempt(attempts.get(key) or {"attempt": int(attempt)}, update)
    return {**doc, "attempts": attempts}


def _conflict(e: ClientError) -> bool:
    code = e.response.get("Error", {}).get("Code", "")
    if code in ("ConditionalCheckFailedException", "TransactionConflictException"):
        return True
    if code == "TransactionCanceledException":
        reasons = e.response.get("CancellationReasons") or []
        return all(r.get("Code") in ("None", "ConditionalCheckFailed", "TransactionConflict", None) for r in reasons)
    return False


class RecordStore:
    def __init__(self, resource_table: Any, sleep: Callable[[float], None] = time.sleep) -> None:
        self.t = resource_table
        self.client = resource_table.meta.client
        self.name = resource_table.name
        self.sleep = sleep

    # --- reads ---------------------------------------------------------------------

    def get(self, pk: str, sk: str) -> Optional[dict[str, Any]]:
        return self.t.get_item(Key={"PK": pk, "SK": sk}, ConsistentRead=True).get("Item")

    def run(self, flow: str, run_id: str) -> Optional[dict[str, Any]]:
        item = self.get(keys.flow_pk(flow), keys.run_sk(run_id))
        return run_records.decode(item) if item else None

    # --- the read-merge-write loop ---------------------------------------------------

    def _merge_loop(
        self,
        pk: str,
        sk: str,
        merge: Callable[[dict[str, Any]], dict[str, Any]],
        write: Callable[[dict[str, Any], Optional[str]], None],
    ) -> Change:
        for attempt in range(MAX_TRIES):
            item = self.get(pk, sk)
            before = run_records.decode(item) if item else {}
            after = merge(before)
            if after == before:
                return Change(before, after)
            try:
                write(after, item.get("revision") if item else None)
                return Change(before, after)
            except client_error() as e:
                if not _conflict(e):
                    raise
            # Someone wrote in between: read their version and merge again.
            self.sleep(random.uniform(0, 0.02 * (2**attempt)))
        raise WriteConflict(f"{pk} {sk} kept changing; gave up after {MAX_TRIES} tries")

    @staticmethod
    def _guard(revision: Optional[str]) -> dict[str, Any]:
        if revision is None:
            return {"ConditionExpression": "attribute_not_exists(PK)"}
        return {"ConditionExpression": "revision = :rev", "ExpressionAttributeValues": {":rev": revision}}

    # --- runs --------------------------------------------------------------------------

    def update_run(self, update: dict[str, Any]) -> Change:
        """Merge what one event says into the run, its tag copies moving with it."""

        def write(doc: dict[str, Any], revision: Optional[str]) -> None:
            items = run_records.run_items(doc)
            ops = [{"Put": {"TableName": self.name, "Item": items[0], **self._guard(revision)}}]
            ops += [{"Put": {"TableName": self.name, "Item": i}} for i in items[1 : 1 + MAX_TAG_ITEMS]]
            self.client.transact_write_items(TransactItems=ops)

        flow, run_id = update["flow"], update["run_id"]
        return self._merge_loop(keys.flow_pk(flow), keys.run_sk(run_id), lambda d: merge_run(d, update), write)

    # --- tasks -------------------------------------------------------------------------

    def update_attempt(
        self, flow: str, run_id: str, step: str, task_id: str, attempt: int, update: dict[str, Any]
    ) -> Change:
        """Merge what one event says about one attempt into its task's item."""
        identity = {
            "flow": flow,
            "run_id": run_id,
            "step": step,
            "task_id": task_id,
            "foreach_indices": indices_of(task_id),
        }

        def merge(doc: dict[str, Any]) -> dict[str, Any]:
            return merge_task({**identity, **doc}, attempt, update)

        def write(doc: dict[str, Any], revision: Optional[str]) -> None:
            self.t.put_item(Item=run_records.task_item(doc), **self._guard(revision))

        return self._merge_loop(keys.run_records_pk(flow, run_id), keys.task_sk(step, task_id), merge, write)

    def task(self, flow: str, run_id: str, step: str, task_id: str) -> Optional[dict[str, Any]]:
        item = self.get(keys.run_records_pk(flow, run_id), keys.task_sk(step, task_id))
        return run_records.decode(item) if item else None

    def note_failed_task(self, flow: str, run_id: str, step: str, task_id: str) -> None:
        """Mark a task whose latest attempt failed; idempotent, and never removed (readers check the task)."""
        self.t.put_item(Item=run_records.failed_task_item(flow, run_id, step, task_id))

    def failed_tasks(self, flow: str, run_id: str) -> list[tuple[str, str]]:
        """(step, task id) of every marked task of a run, in step and foreach order."""
        from boto3.dynamodb.conditions import Key

        cond = Key("PK").eq(keys.run_records_pk(flow, run_id)) & Key("SK").begins_with(keys.FAILED_TASK_PREFIX)
        found, start = [], None
        while True:
            page = self.t.query(KeyConditionExpression=cond, ConsistentRead=True,
                                **({"ExclusiveStartKey": start} if start else {}))
            found += [(i["step"], i["task_id"]) for i in page.get("Items", [])]
            start = page.get("LastEvaluatedKey")
            if not start:
                return found

    def put_artifacts(self, flow: str, run_id: str, step: str, task_id: str, attempt: int, index: dict) -> None:
        """An attempt's artifact index; every delivery of its event carries the same one."""
        self.t.put_item(Item=run_records.artifacts_item(flow, run_id, step, task_id, attempt, index))

    # --- earliest-time entries: steps and the flows directory -----------------------------

    def note_step(self, flow: str, run_id: str, step: str, created_at: str) -> None:
        self._earliest(keys.run_records_pk(flow, run_id), keys.step_sk(step), run_records.STEP, step, created_at)

    def note_flow(self, flow: str, created_at: str) -> None:
        self._earliest(keys.FLOWS_PK, keys.flow_entry_sk(flow), run_records.FLOW_ENTRY, flow, created_at)

    def _earliest(self, pk: str, sk: str, kind: str, name: str, created_at: str) -> None:
        """Keep the earliest time seen: a min, so any order of calls ends the same."""
        try:
            self.t.update_item(
                Key={"PK": pk, "SK": sk},
                UpdateExpression="SET #n = :n, #t = :t, created_at = :c",
                ConditionExpression="attribute_not_exists(created_at) OR created_at > :c",
                ExpressionAttributeNames={"#n": "name", "#t": "type"},
                ExpressionAttributeValues={":n": name, ":t": kind, ":c": created_at},
            )
        except client_error() as e:
            if e.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise


def task_created_at(doc: dict[str, Any]) -> Optional[str]:
    """A task's creation: the earliest time any of its attempts reports."""
    times = [
        t
        for a in (doc.get("attempts") or {}).values()
        for t in (a.get("created_at"), a.get("started_at"), a.get("stopped_at"))
        if t
    ]
    return min(times) if times else None


__all__ = ["Change", "RecordStore", "WriteConflict", "merge_task", "task_created_at"]
