"""Every Client API read as one Query or GetItem (chalicelib/TABLE.md, "Run records").

Listings page with `limit` and an opaque `next_token`; a missing thing is a
404 and a bad parameter a 400 naming it, checked before anything is read.
Only an empty answer costs a second request, to tell "none yet" from "no such
flow/run" (a 404).
"""

from __future__ import annotations

import json
import re
from typing import Any, Optional

from flowplane.datastore import layout

from .. import keys
from ..errors import BadRequest, NotFound
from ..recording import run_records
from ..resource_names import is_deployment_name
from . import tokens
from .views import run_view, task_view

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
RUN_STATUSES = ("running", "succeeded", "failed")
# Finer production statuses, filtered inside "failed" (the CLI's --timed-out/--aborted).
FINE_STATUSES = {"timed_out": "TIMED_OUT", "aborted": "ABORTED"}
MAX_TAG = 512
_TAG_BAD = re.compile(r"[\x00-\x1f\x7f]")


class Missing(NotFound):
    """404 with the contract's code."""

    code = "not_found"


def parse_limit(value: Optional[str], default: int = DEFAULT_LIMIT) -> int:
    if value is None:
        return default
    try:
        limit = int(value)
    except ValueError:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_LIMIT}, got {value!r}", field="limit") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be from 1 to {MAX_LIMIT}, got {limit}", field="limit")
    return limit


def parse_tag(value: Optional[str], field: str) -> Optional[str]:
    """A namespace or tag: any non-empty tag string (`user:alice`, `production:<token>`, ...)."""
    if value is None:
        return None
    if not value.strip() or value != value.strip() or len(value) > MAX_TAG or _TAG_BAD.search(value):
        raise BadRequest(
            f"{field} must be a tag such as user:alice or production:<token> "
            f"(1-{MAX_TAG} characters, no surrounding spaces or control characters), got {value!r}",
            field=field,
        )
    if field == "namespace" and value.endswith(":"):
        raise BadRequest(f"namespace {value!r} names no one: put the user or token after the colon", field=field)
    return value


def parse_status(value: Optional[str]) -> tuple[Optional[str], Optional[str]]:
    """(status in the API's terms, finer production status or None)."""
    if value is None:
        return None, None
    v = value.strip().lower()
    if v in RUN_STATUSES:
        return v, None
    if v in FINE_STATUSES:
        return "failed", FINE_STATUSES[v]
    allowed = ", ".join([*RUN_STATUSES, *FINE_STATUSES])
    raise BadRequest(f"status must be one of {allowed}, got {value!r}", field="status")


def parse_deployment(value: Optional[str]) -> Optional[str]:
    if value is None:
        return None
    if not is_deployment_name(value):
        raise BadRequest(
            f"deployment must be a deployment name (1-80 letters, digits, '-' or '_', or "
            f"<project>.<branch>.<Flow>), got {value[:300]!r}", field="deployment"
        )
    return value


def parse_attempt(value: Optional[str]) -> Optional[int]:
    if value is None:
        return None
    if not value.isdigit() or len(value) > 6:
        raise BadRequest(f"attempt must be a whole number from 0, got {value!r}", field="attempt")
    return int(value)


def entry_deleted(entry: dict[str, Any]) -> bool:
    """A flow is deleted when it was deployed and none of its deployments is live (TABLE.md)."""
    return bool(entry.get("deployments")) and not entry.get("live_deployments")


def _own_head(head: Optional[dict[str, Any]], flow: str) -> Optional[dict[str, Any]]:
    """The head keyed by the flow's name, unless it is a `--name` deployment of another flow."""
    if head is None or head.get("flow_name") not in (None, flow):
        return None
    return head


def _names(flow: str, run_id: Optional[str] = None, step: Optional[str] = None, task_id: Optional[str] = None) -> None:
    """A name that cannot exist is simply not found (and never reaches a key)."""
    if not keys.FLOW_NAME.match(flow):
        raise Missing(f"no flow named {flow!r}", field="flow")
    if run_id is not None and not keys.RUN_ID.match(run_id):
        raise Missing(f"no run {flow}/{run_id}", field="run_id")
    if step is not None and not keys.STEP_NAME.match(step):
        raise Missing(f"no step {flow}/{run_id}/{step}", field="step")
    if task_id is not None and not keys.TASK_ID.match(task_id):
        raise Missing(f"no task {flow}/{run_id}/{step}/{task_id}", field="task_id")


class Reads:
    def __init__(self, resource_table: Any) -> None:
        self.t = resource_table
        self.client = resource_table.meta.client
        self.name = resource_table.name

    # --- primitives ---------------------------------------------------------------------

    def _get(self, pk: str, sk: str) -> Optional[dict[str, Any]]:
        return self.t.get_item(Key={"PK": pk, "SK": sk}).get("Item")

    def _page(
        self,
        partition: tuple[str, str],
        index: Optional[str],
        limit: Optional[int],
        next_token: Optional[str],
        prefix: Optional[str] = None,
        newest_first: bool = False,
        filter_: Any = None,
        only_doc: bool = False,
    ) -> tuple[list[dict[str, Any]], Optional[str]]:
        """One Query: a page of `partition` on `index`, and the token of the next.

        `only_doc` asks for the record document alone (all its reader decodes), not the
        index keys, tags and statuses copied beside it: a page of 100 runs comes back with
        one attribute an item instead of a dozen, which every layer then parses.
        """
        from boto3.dynamodb.conditions import Key

        attribute, value = partition
        start = tokens.decode(next_token, index, partition, prefix)
        cond = Key(attribute).eq(value)
        if prefix:
            cond = cond & Key(keys.INDEX_KEYS[index][1]).begins_with(prefix)
        kwargs: dict[str, Any] = {"KeyConditionExpression": cond, "ScanIndexForward": not newest_first}
        if index:
            kwargs["IndexName"] = index
        if limit:
            kwargs["Limit"] = limit
        if start:
            kwargs["ExclusiveStartKey"] = start
        if filter_ is not None:
            kwargs["FilterExpression"] = filter_
        if only_doc:
            kwargs["ProjectionExpression"] = "#doc"
            kwargs["ExpressionAttributeNames"] = {"#doc": "doc"}
        page = self.t.query(**kwargs)
        return page.get("Items", []), tokens.encode(page.get("LastEvaluatedKey"), index)

    def _all(self, partition: tuple[str, str], prefix: str) -> list[dict[str, Any]]:
        """Every item under a prefix: one Query per 1 MB."""
        items, token = self._page(partition, None, None, None, prefix)
        while token:
            more, token = self._page(partition, None, None, token, prefix)
            items.extend(more)
        return items

    def _batch_get(self, pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
        request = {self.name: {"Keys": [{"PK": pk, "SK": sk} for pk, sk in pairs]}}
        found: list[dict[str, Any]] = []
        while request:
            answer = self.client.batch_get_item(RequestItems=request)
            found.extend(answer.get("Responses", {}).get(self.name, []))
            request = answer.get("UnprocessedKeys") or {}
        return found

    # --- flows ----------------------------------------------------------------------------

    def flows(self) -> dict[str, Any]:
        """Flows with recorded runs, each entry carrying its own `deleted`: one Query a MB."""
        from boto3.dynamodb.conditions import Attr

        # Deploying writes a flow's entry before it has runs; listed from its first run on.
        has_runs = Attr("created_at").exists()
        entries, token = self._page(("PK", keys.FLOWS_PK), None, None, None, keys.FLOW_PREFIX, filter_=has_runs)
        while token:
            more, token = self._page(("PK", keys.FLOWS_PK), None, None, token, keys.FLOW_PREFIX, filter_=has_runs)
            entries.extend(more)
        flows = [{"name": str(e["name"]), "created_at": e["created_at"], "deleted": entry_deleted(e)} for e in entries]
        return {"flows": sorted(flows, key=lambda f: f["name"])}

    def flow(self, flow: str) -> dict[str, Any]:
        """The flow's first run and its deployment of the same name, in one BatchGetItem."""
        _names(flow)
        found = {i["SK"]: i for i in self._batch_get([(keys.FLOWS_PK, keys.flow_entry_sk(flow)), (keys.flow_pk(flow), keys.HEAD_SK)])}
        entry, head = found.get(keys.flow_entry_sk(flow)), _own_head(found.get(keys.HEAD_SK), flow)
        first_run = entry.get("created_at") if entry else None
        if first_run is None and head is None:
            raise Missing(f"no flow named {flow!r} has runs or a deployment", field="flow")
        out: dict[str, Any] = {
            "name": flow,
            "created_at": first_run or head.get("deployed_at"),  # type: ignore[union-attr]
            # The entry knows every deployment of the flow (`--name` ones too); an entry
            # written before it kept them leaves the head of the flow's own name to say.
            "deleted": entry_deleted(entry) if entry and "deployments" in entry else bool(head and head.get("deleted")),
            "deployed": head is not None,
        }
        if head is not None:
            live = not head.get("deleted")
            if live and head.get("production_token"):
                out["production_token"] = head["production_token"]
                out["namespace"] = f"production:{head['production_token']}"
            for k in ("state_machine_arn", "production_version", "deployer", "deployed_at", "schedule", "timezone"):
                if head.get(k) is not None:
                    out[k] = int(head[k]) if k == "production_version" else head[k]
            if live and head.get("triggers"):
                # Kept as a JSON string (rollout.trigger_document); answered as the object it is.
                out["triggers"] = json.loads(head["triggers"])
        return out

    def _flow_exists(self, flow: str) -> bool:
        found = self._batch_get([(keys.FLOWS_PK, keys.flow_entry_sk(flow)), (keys.flow_pk(flow), keys.HEAD_SK)])
        return any(i["SK"] != keys.HEAD_SK or _own_head(i, flow) for i in found)

    def _check_deployment(self, flow: str, deployment: str) -> None:
        """404 unless `deployment` is (or was) a deployment of `flow`."""
        head = self._get(keys.flow_pk(deployment), keys.HEAD_SK)
        if head is None or head.get("flow_name") not in (None, flow):
            raise Missing(f"{flow!r} has no deployment named {deployment!r}", field="deployment")

    # --- runs -------------------------------------------------------------------------------

    def runs(
        self,
        flow: str,
        namespace: Optional[str] = None,
        tag: Optional[str] = None,
        status: Optional[str] = None,
        limit: Optional[str] = None,
        next_token: Optional[str] = None,
        deployment: Optional[str] = None,
    ) -> dict[str, Any]:
        """Newest first; one Query whichever filters are given (see TABLE.md).

        `deployment` keeps the runs of one deployment (state machine) of the flow, as
        `step-functions --name X list-runs` shows them; a filtered page may hold fewer
        than `limit` runs and still have a `next_token`.
        """
        _names(flow)
        ns, user_tag = parse_tag(namespace, "namespace"), parse_tag(tag, "tag")
        api_status, fine = parse_status(status)
        n = parse_limit(limit)
        deployment = parse_deployment(deployment)
        # The namespace is a tag like any other: the rarer of the two picks the partition,
        # the other filters.
        primary, also = (ns, user_tag) if ns is not None else (user_tag, None)
        from boto3.dynamodb.conditions import Attr

        filters = []
        if also is not None:
            filters.append(Attr("all_tags").contains(also))
        if fine is not None:
            filters.append(Attr("production_status").eq(fine))
        if deployment is not None:
            of_deployment = Attr("deployment").eq(deployment)
            if deployment == flow:
                # Runs recorded before `deployment` was copied beside the document were
                # nearly all of the deployment named after the flow.
                of_deployment = of_deployment | Attr("deployment").not_exists()
            filters.append(of_deployment)
        filter_ = None
        for f in filters:
            filter_ = f if filter_ is None else filter_ & f
        if api_status is not None:
            index, partition = keys.BY_STATUS, ("GSI2PK", keys.status_pk(flow, api_status, primary))
        elif primary is not None:
            index, partition = None, ("PK", keys.tag_pk(flow, primary))
        else:
            index, partition = keys.BY_TIME, ("GSI1PK", keys.runs_by_time_pk(flow))
        items, token = self._page(partition, index, n, next_token, newest_first=True, filter_=filter_, only_doc=True)
        if not items and next_token is None:
            if deployment is not None:
                self._check_deployment(flow, deployment)
            elif not self._flow_exists(flow):
                raise Missing(f"no flow named {flow!r} has runs or a deployment", field="flow")
        return {"runs": [run_view(run_records.decode(i)) for i in items], "next_token": token}

    def run(self, flow: str, run_id: str) -> dict[str, Any]:
        _names(flow, run_id)
        item = self._get(keys.flow_pk(flow), keys.run_sk(run_id))
        if item is None:
            raise Missing(f"no run {flow}/{run_id}", field="run_id")
        return run_view(run_records.decode(item))

    # --- steps and tasks ----------------------------------------------------------------------

    def steps(self, flow: str, run_id: str) -> dict[str, Any]:
        _names(flow, run_id)
        items = self._all(("PK", keys.run_records_pk(flow, run_id)), keys.STEP_PREFIX)
        if not items and self._get(keys.flow_pk(flow), keys.run_sk(run_id)) is None:
            raise Missing(f"no run {flow}/{run_id}", field="run_id")
        steps = [{"name": i["name"], "created_at": i["created_at"]} for i in items]
        return {"steps": sorted(steps, key=lambda s: (s["created_at"], s["name"]))}

    def step(self, flow: str, run_id: str, step: str) -> dict[str, Any]:
        _names(flow, run_id, step)
        item = self._get(keys.run_records_pk(flow, run_id), keys.step_sk(step))
        if item is None:
            raise Missing(f"no step {flow}/{run_id}/{step}", field="step")
        return {"name": item["name"], "created_at": item["created_at"]}

    def tasks(
        self, flow: str, run_id: str, step: str, limit: Optional[str] = None, next_token: Optional[str] = None
    ) -> dict[str, Any]:
        """In foreach order; all of them unless `limit` asks for pages."""
        _names(flow, run_id, step)
        partition = ("PK", keys.run_records_pk(flow, run_id))
        if limit is None and next_token is None:
            items, token = self._all(partition, keys.task_prefix(step)), None
        else:
            items, token = self._page(partition, None, parse_limit(limit), next_token, keys.task_prefix(step))
        if not items and next_token is None:
            raise Missing(f"no step {flow}/{run_id}/{step} (no task of it was recorded)", field="step")
        return {"tasks": [task_view(run_records.decode(i)) for i in items], "next_token": token}

    def task(self, flow: str, run_id: str, step: str, task_id: str) -> dict[str, Any]:
        return task_view(self._task_doc(flow, run_id, step, task_id), with_attempts=True)

    def _task_doc(self, flow: str, run_id: str, step: str, task_id: str) -> dict[str, Any]:
        _names(flow, run_id, step, task_id)
        item = self._get(keys.run_records_pk(flow, run_id), keys.task_sk(step, task_id))
        if item is None:
            raise Missing(f"no task {flow}/{run_id}/{step}/{task_id}", field="task_id")
        return run_records.decode(item)

    # --- artifacts --------------------------------------------------------------------------------

    def artifacts(self, flow: str, run_id: str, step: str, task_id: str, attempt: Optional[str]) -> dict[str, Any]:
        """The attempt's artifact index; without `attempt`, the final attempt's.

        No attempt follows a successful one, so the last attempt that stored an index is
        the successful one, else the last that failed.
        """
        _names(flow, run_id, step, task_id)
        n = parse_attempt(attempt)
        pk = keys.run_records_pk(flow, run_id)
        if n is not None:
            item = self._get(pk, keys.artifacts_sk(step, task_id, n))
        else:
            found, _ = self._page(("PK", pk), None, 1, None, keys.artifacts_prefix(step, task_id), newest_first=True)
            item = found[0] if found else None
        if item is None:
            which = f"attempt {n} of " if n is not None else ""
            raise Missing(
                f"no artifacts recorded for {which}task {flow}/{run_id}/{step}/{task_id} "
                "(it has not finished, or does not exist)",
                field="attempt" if n is not None else "task_id",
            )
        doc = run_records.decode(item)
        return {"attempt": doc["attempt"], "artifacts": doc["artifacts"]}

    def step_artifacts(self, flow: str, run_id: str, step: str, limit: Optional[str] = None,
                       next_token: Optional[str] = None) -> dict[str, Any]:
        """Every recorded artifact index of the step's tasks, each attempt's, in task order:
        a page of `limit` (at most 1,000) in one Query, where the task route costs one each."""
        _names(flow, run_id, step)
        partition = ("PK", keys.run_records_pk(flow, run_id))
        items, token = self._page(partition, None, parse_limit(limit), next_token, keys.step_artifacts_prefix(step))
        indexes = []
        for item in items:
            task_id, attempt = keys.artifacts_sk_task(item["SK"])
            indexes.append({"task_id": task_id, "attempt": attempt,
                            "artifacts": run_records.decode(item)["artifacts"]})
        return {"indexes": indexes, "next_token": token}

    def artifact(
        self, flow: str, run_id: str, step: str, task_id: str, name: str, attempt: Optional[str]
    ) -> dict[str, Any]:
        found = self.artifacts(flow, run_id, step, task_id, attempt)
        entry = found["artifacts"].get(name)
        if entry is None:
            raise Missing(f"task {flow}/{run_id}/{step}/{task_id} has no artifact {name!r}", field="name")
        return {"name": name, "attempt": found["attempt"], **entry, "key": layout.blob_key(flow, entry["sha"])}

    def attempt_log_stream(
        self, flow: str, run_id: str, step: str, task_id: str, attempt: Optional[str]
    ) -> tuple[int, Optional[str]]:
        """(attempt, CloudWatch log stream); without `attempt`, the latest."""
        n = parse_attempt(attempt)
        doc = self._task_doc(flow, run_id, step, task_id)
        attempts = doc.get("attempts") or {}
        if n is None:
            if not attempts:
                raise Missing(f"task {flow}/{run_id}/{step}/{task_id} has no attempt yet", field="attempt")
            n = max(int(k) for k in attempts)
        a = attempts.get(str(n))
        if a is None:
            raise Missing(f"task {flow}/{run_id}/{step}/{task_id} has no attempt {n}", field="attempt")
        return n, a.get("log_stream")
