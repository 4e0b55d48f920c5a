"""Deployment records and the flow's production pointer (its head).

Keys and access patterns are in chalicelib/TABLE.md. The flow's head item
(`FLOW#<name>`/`FLOW`) says which published version is production; nothing
else does, so moving production is one conditional write.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from datetime import datetime, timezone
from typing import Any, Optional

from .. import keys, resource_names
from ..aws import Table, _dynamo, client_error, error_code
from ..errors import Conflict, NotFound
from ..recording import run_records

PENDING, DEPLOYED, FAILED = "PENDING", "DEPLOYED", "FAILED"
DEPLOYMENT_ID_RE = re.compile(r"^d-[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$")


def now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_deployment_id() -> str:
    # Sortable by time, unguessable enough that ids do not collide between deployers.
    return f"d-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{secrets.token_hex(4)}"


def live(head: Optional[dict[str, Any]]) -> bool:
    """A head that is production: deployed, not deleted, with a token."""
    return bool(head) and not head.get("deleted") and bool(head.get("production_token"))


class Deployments:
    def __init__(self, table: Table) -> None:
        self.table = table

    # flow head and versions

    def head(self, name: str) -> Optional[dict[str, Any]]:
        item = self.table.get(keys.flow_pk(name), keys.HEAD_SK)
        return _decode(item) if item else None

    def live_head(self, name: str) -> dict[str, Any]:
        head = self.head(name)
        if not head:
            raise NotFound(f"no flow named {name!r} is deployed", field="flow")
        if head.get("deleted"):
            raise NotFound(f"{name!r} was deleted on {head.get('deleted_at')}; deploy it again to use it", field="flow")
        return head

    def versions(self, name: str) -> list[dict[str, Any]]:
        return [_decode(i) for i in self.table.query(keys.flow_pk(name), keys.VERSION_PREFIX)]

    # deployments

    def create_pending(self, record: dict[str, Any]) -> dict[str, Any]:
        """The PENDING record and the package's link to it, together."""
        item = {
            "PK": keys.deployment_pk(record["deployment_id"]),
            "SK": keys.DEPLOYMENT_SK,
            "type": "deployment",
            "status": PENDING,
            "stage": "waiting for the package",
            **_encode(record),
        }
        link = {
            "PK": keys.package_pk(record["package_sha256"]),
            "SK": keys.package_link_sk(record["created_at"], record["deployment_id"]),
            "type": "package_link",
            "deployment_id": record["deployment_id"],
            "name": record["name"],
            "created_at": record["created_at"],
        }
        self.table.transact_put([(item, "attribute_not_exists(PK)", None), (link, "attribute_not_exists(PK)", None)])
        return _decode(item)

    def get(self, deployment_id: str) -> dict[str, Any]:
        if not DEPLOYMENT_ID_RE.match(deployment_id):
            raise NotFound(f"no deployment {deployment_id!r}", field="deployment_id")
        item = self.table.get(keys.deployment_pk(deployment_id), keys.DEPLOYMENT_SK)
        if not item:
            raise NotFound(f"no deployment {deployment_id!r}", field="deployment_id")
        return _decode(item)

    def waiting_for(self, sha256: str) -> list[str]:
        """Deployments of this package, oldest first (the ids sort by time)."""
        return [i["deployment_id"] for i in self.table.query(keys.package_pk(sha256), keys.DEPLOYMENT_PREFIX)]

    def claim(self, deployment_id: str) -> bool:
        """PENDING and unclaimed -> claimed; False when another delivery got there first."""
        try:
            self.table.update(
                keys.deployment_pk(deployment_id),
                keys.DEPLOYMENT_SK,
                {"claimed_at": now_iso(), "stage": "compiling", "updated_at": now_iso()},
                condition="#s = :pending AND attribute_not_exists(claimed_at)",
                values={":pending": PENDING},
                names={"#s": "status"},
            )
            return True
        except client_error() as e:
            if error_code(e) == "ConditionalCheckFailedException":
                return False
            raise

    def set_stage(self, deployment_id: str, stage: str) -> None:
        self.table.update(keys.deployment_pk(deployment_id), keys.DEPLOYMENT_SK, {"stage": stage, "updated_at": now_iso()})

    def fail(self, deployment_id: str, error: dict[str, Any]) -> None:
        # None removes what an undone `promote` had written: a FAILED deployment has no version.
        self.table.update(
            keys.deployment_pk(deployment_id),
            keys.DEPLOYMENT_SK,
            {
                "status": FAILED,
                "stage": "failed",
                "error": json.dumps(error),
                "updated_at": now_iso(),
                "version": None,
                "version_arn": None,
            },
        )

    def promote(
        self,
        deployment: dict[str, Any],
        previous_head: Optional[dict[str, Any]],
        head: dict[str, Any],
        version: dict[str, Any],
    ) -> None:
        """Version record + new head + DEPLOYED, all or none.

        The head write is conditional on the head being what this deployment read
        before it started, so two deployments cannot both believe they won.
        """
        revision = int(previous_head.get("revision", 0)) if previous_head else 0
        head_item = {"PK": keys.flow_pk(head["name"]), "SK": keys.HEAD_SK, "type": "flow", **_encode(head), "revision": revision + 1}
        if previous_head:
            head_cond, head_vals = "revision = :rev", {":rev": revision}
        else:
            head_cond, head_vals = "attribute_not_exists(PK)", None
        version_item = {
            "PK": keys.flow_pk(head["name"]),
            "SK": keys.version_sk(version["version"]),
            "type": "version",
            **_encode(version),
        }
        done = {
            **{k: v for k, v in deployment.items() if k not in ("error",)},
            "PK": keys.deployment_pk(deployment["deployment_id"]),
            "SK": keys.DEPLOYMENT_SK,
            "status": DEPLOYED,
            "stage": "done",
            "version": version["version"],
            "version_arn": version["version_arn"],
            "state_machine_arn": head["state_machine_arn"],
            "production_token": head["production_token"],
            "updated_at": now_iso(),
        }
        ops = [
            _put(self.table.name, head_item, head_cond, head_vals),
            _put(self.table.name, version_item, "attribute_not_exists(PK)"),
            _put(self.table.name, _encode(done), "#s = :pending", {":pending": PENDING}, {"#s": "status"}),
            # The flow's directory entry moves with the head, so GET /flows reads `deleted` there.
            *_entry_ops(self.table.name, head["name"], previous_head, head),
        ]
        machine = head["state_machine_arn"].split(":")[6]
        if resource_names.shortened(machine):
            # The recorder cannot read the deployment back from a name cut to fit.
            link = {"PK": keys.state_machine_pk(machine), "SK": keys.STATE_MACHINE_SK, "type": "state_machine", "deployment": head["name"]}
            ops.append(_put(self.table.name, link))
        try:
            self.table.client.transact_write_items(TransactItems=ops)
        except client_error() as e:
            if error_code(e) in ("TransactionCanceledException", "ConditionalCheckFailedException"):
                raise Conflict(
                    f"another deployment of {head['name']!r} finished while this one ran; deploy again",
                    step="record",
                ) from None
            raise

    def unpromote(
        self, name: str, flow_name: str, previous: Optional[dict[str, Any]], expected_revision: int, version: int
    ) -> None:
        """Undo `promote` when a later step fails: the head as it was, no record of the version."""
        self.restore_head(name, flow_name, previous, expected_revision)
        self.table.t.delete_item(Key={"PK": keys.flow_pk(name), "SK": keys.version_sk(version)})

    def restore_head(
        self, name: str, flow_name: str, previous: Optional[dict[str, Any]], expected_revision: int
    ) -> None:
        """Put the head back as it was before `promote` (which deployed `flow_name`), and the
        flow directory's entries with it."""
        t = self.table.name
        guard = {"ConditionExpression": "revision = :rev", "ExpressionAttributeValues": {":rev": expected_revision}}
        undone = {"name": name, "flow_name": flow_name}
        if previous is None:
            head_op = {"Delete": {"TableName": t, "Key": {"PK": keys.flow_pk(name), "SK": keys.HEAD_SK}, **guard}}
        else:
            item = {"PK": keys.flow_pk(name), "SK": keys.HEAD_SK, "type": "flow", **_encode(previous)}
            item["revision"] = expected_revision + 1
            head_op = _put(t, item, "revision = :rev", {":rev": expected_revision})
        self.table.client.transact_write_items(TransactItems=[head_op, *_entry_ops(t, name, undone, previous, undo=True)])
        if previous is None or previous.get("flow_name") != flow_name:
            self._drop_empty_entry(flow_name)

    def _drop_empty_entry(self, flow_name: str) -> None:
        """An entry only an undone first deploy wrote (no runs, no deployment) goes too."""
        try:
            self.table.t.delete_item(
                Key={"PK": keys.FLOWS_PK, "SK": keys.flow_entry_sk(flow_name)},
                ConditionExpression="attribute_not_exists(created_at) AND attribute_not_exists(deployments)",
            )
        except client_error() as e:
            if error_code(e) != "ConditionalCheckFailedException":
                raise

    def mark_deleted(self, head: dict[str, Any], user: str) -> None:
        """The head deleted and the flow directory's entry saying so, together."""
        revision = int(head.get("revision", 0))
        deleted = {**head, "deleted": True}
        ops = [
            {
                "Update": {
                    "TableName": self.table.name,
                    "Key": {"PK": keys.flow_pk(head["name"]), "SK": keys.HEAD_SK},
                    "UpdateExpression": "SET deleted = :t, deleted_at = :at, deleted_by = :by, revision = :next",
                    "ConditionExpression": "revision = :rev",
                    "ExpressionAttributeValues": {
                        ":t": True, ":at": now_iso(), ":by": user, ":next": revision + 1, ":rev": revision,
                    },
                }
            },
            *_entry_ops(self.table.name, head["name"], head, deleted),
        ]
        try:
            self.table.client.transact_write_items(TransactItems=ops)
        except client_error() as e:
            if error_code(e) in ("TransactionCanceledException", "ConditionalCheckFailedException"):
                raise Conflict(f"{head['name']!r} changed while it was being deleted; try again", field="flow") from None
            raise


# --- the flow directory's entries (chalicelib/TABLE.md) ----------------------------
#
# `FLOWS`/`FLOW#<flow>` (the recorder keeps its `created_at`, the first run's start)
# holds two string sets: `deployments`, every deployment name that deployed the flow,
# and `live_deployments`, those not deleted. A flow is deleted when it has deployments
# and none is live. Only head writes change the sets, in the head's own transaction,
# so they follow the head's revisions; the recorder never touches them, so a run
# recorded late cannot bring a deleted flow back.


def _entry_ops(
    table: str, name: str, before: Optional[dict[str, Any]], after: Optional[dict[str, Any]], undo: bool = False
) -> list[dict]:
    """Updates taking the flow entries from head `before` to head `after` of deployment `name`.

    `after` is None when an undone first deploy removes the head. When the name moves to
    another flow (`--name` reused by another flow file), the flow it deployed before keeps
    the name as a deployment no longer live; an undo forgets the name in the flow it
    failed to deploy.
    """
    ops = []
    after_flow = after.get("flow_name") if after else None
    if after_flow:
        change = "ADD deployments :d, live_deployments :d" if live(after) else "ADD deployments :d DELETE live_deployments :d"
        values = {":f": after_flow, ":t": run_records.FLOW_ENTRY}
        ops.append(_entry_update(table, after_flow, f"SET #n = :f, #t = :t {change}", values, name))
    before_flow = before.get("flow_name") if before else None
    if before_flow and before_flow != after_flow:
        change = "DELETE deployments :d, live_deployments :d" if undo else "DELETE live_deployments :d"
        ops.append(_entry_update(table, before_flow, change, {}, name))
    return ops


def _entry_update(table: str, flow: str, expression: str, values: dict[str, Any], name: str) -> dict[str, Any]:
    update: dict[str, Any] = {
        "TableName": table,
        "Key": {"PK": keys.FLOWS_PK, "SK": keys.flow_entry_sk(flow)},
        "UpdateExpression": expression,
        "ExpressionAttributeValues": {**values, ":d": {name}},
    }
    if "#n" in expression:
        update["ExpressionAttributeNames"] = {"#n": "name", "#t": "type"}
    return {"Update": update}


def _put(
    table: str,
    item: dict[str, Any],
    condition: Optional[str] = None,
    values: Optional[dict[str, Any]] = None,
    names: Optional[dict[str, str]] = None,
) -> dict[str, Any]:
    put: dict[str, Any] = {"TableName": table, "Item": _dynamo(item)}
    if condition:
        put["ConditionExpression"] = condition
    if values:
        put["ExpressionAttributeValues"] = _dynamo(values)
    if names:
        put["ExpressionAttributeNames"] = names
    return {"Put": put}


# Documents (options, parameters, errors) are stored as JSON strings: DynamoDB
# cannot hold floats natively and nobody queries inside them.
_JSON_FIELDS = ("options", "parameters", "error")


def _encode(record: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    for k in _JSON_FIELDS:
        if k in out and not isinstance(out[k], str) and out[k] is not None:
            out[k] = json.dumps(out[k], sort_keys=True)
    return out


def _decode(item: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in item.items() if k not in ("PK", "SK", "type")}
    for k in _JSON_FIELDS:
        if isinstance(out.get(k), str):
            out[k] = json.loads(out[k])
    return out


