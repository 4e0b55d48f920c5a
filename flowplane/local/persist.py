"""What the embedded control plane stored, kept in a folder across restarts.

moto keeps everything in memory. `save` writes what the control plane and its
tasks stored — S3 objects (packages, definitions, artifacts), DynamoDB items
(deployments, run records, foreach cardinalities), state machines with their
executions, schedule rules with their targets, CloudWatch Logs of the jobs —
into the state folder; `restore` puts it back into a fresh moto before the
plane serves anything. What the plane builds itself at every start (the Batch
environment, its own rules and queues) is not saved.

Layout: `snapshot.json` (everything but object bodies) and `objects/<sha256 of
bucket/key>` (bodies, written only when an object's ETag changed since the
last save). The snapshot is replaced atomically, so a crash mid-save leaves
the previous one; bodies no snapshot names are removed after the new one is
in place.

Executions cannot be created through the API in a final state, so restore
adds them to moto's Step Functions backend directly (the one thing here that
reaches into moto). An execution still RUNNING when the plane stopped (a
crash; a clean stop ends them first) comes back ABORTED, and is reported then.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Optional

log = logging.getLogger("flowplane.local.persist")

SNAPSHOT = "snapshot.json"
OBJECTS = "objects"
FORMAT = 1
CRASHED_CAUSE = "the local control plane stopped while this execution ran"


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _when(value: Optional[str]) -> Optional[datetime]:
    return datetime.fromisoformat(value) if value else None


def _pages(call: Any, key: str, token_in: str = "nextToken", token_out: str = "nextToken", **kwargs: Any) -> list:
    items, token = [], None
    while True:
        page = call(**kwargs, **({token_in: token} if token else {}))
        items.extend(page.get(key, []))
        token = page.get(token_out)
        if not token:
            return items


@dataclass
class Counts:
    objects: int = 0
    objects_written: int = 0
    items: int = 0
    state_machines: int = 0
    executions: int = 0
    rules: int = 0
    log_events: int = 0
    # Restored executions: ARN -> statuses already reported to the recorder.
    reported: dict[str, list[str]] = field(default_factory=dict)


class StateStore:
    """The state folder of one embedded control plane."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir)
        self.objects = self.dir / OBJECTS
        # object file -> (ETag, content type) of the body on disk: unchanged objects are not rewritten
        self._known: dict[str, tuple[str, Optional[str]]] = {}

    @property
    def snapshot_path(self) -> Path:
        return self.dir / SNAPSHOT

    def exists(self) -> bool:
        return self.snapshot_path.exists()

    # --- saving --------------------------------------------------------------------------

    def save(self, session: Any, skip_rules: Iterable[str] = (), skip_queues: bool = True) -> Counts:
        counts = Counts()
        self.objects.mkdir(parents=True, exist_ok=True)
        snapshot = {
            "format": FORMAT,
            "saved_at": datetime.now(timezone.utc).isoformat(),
            "s3": self._save_s3(session.client("s3"), counts),
            "dynamodb": self._save_dynamodb(session.client("dynamodb"), counts),
            "stepfunctions": self._save_stepfunctions(session.client("stepfunctions"), counts),
            "rules": self._save_rules(session.client("events"), set(skip_rules), counts),
            "logs": self._save_logs(session.client("logs"), counts),
        }
        tmp = self.dir / (SNAPSHOT + ".tmp")
        tmp.write_text(json.dumps(snapshot, default=_iso))
        os.replace(tmp, self.snapshot_path)
        self._collect_garbage(snapshot)
        return counts

    def _save_s3(self, s3: Any, counts: Counts) -> list[dict[str, Any]]:
        buckets = []
        for bucket in s3.list_buckets().get("Buckets", []):
            name = bucket["Name"]
            objects = []
            for o in _pages(s3.list_objects_v2, "Contents", "ContinuationToken", "NextContinuationToken", Bucket=name):
                key, etag = o["Key"], o["ETag"]
                file = hashlib.sha256(f"{name}/{key}".encode()).hexdigest()
                known = self._known.get(file)
                if known is None or known[0] != etag or not (self.objects / file).exists():
                    known = self._write_object(s3, name, key, file)
                    counts.objects_written += 1
                objects.append({"key": key, "etag": known[0], "file": file, "content_type": known[1]})
                counts.objects += 1
            buckets.append({"bucket": name, "objects": objects})
        return buckets

    def _write_object(self, s3: Any, bucket: str, key: str, file: str) -> tuple[str, Optional[str]]:
        got = s3.get_object(Bucket=bucket, Key=key)
        path = self.objects / file
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            for chunk in iter(lambda: got["Body"].read(1 << 20), b""):
                f.write(chunk)
        os.replace(tmp, path)
        self._known[file] = (got["ETag"], got.get("ContentType"))
        return self._known[file]

    def _save_dynamodb(self, ddb: Any, counts: Counts) -> list[dict[str, Any]]:
        tables = []
        for name in _pages(ddb.list_tables, "TableNames", "ExclusiveStartTableName", "LastEvaluatedTableName"):
            d = ddb.describe_table(TableName=name)["Table"]
            spec: dict[str, Any] = {
                "TableName": name,
                "KeySchema": d["KeySchema"],
                "AttributeDefinitions": d["AttributeDefinitions"],
            }
            for index in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
                if d.get(index):
                    spec[index] = [
                        {k: v for k, v in i.items() if k in ("IndexName", "KeySchema", "Projection")} for i in d[index]
                    ]
            ttl = ddb.describe_time_to_live(TableName=name).get("TimeToLiveDescription", {})
            items = _pages(ddb.scan, "Items", "ExclusiveStartKey", "LastEvaluatedKey", TableName=name)
            counts.items += len(items)
            tables.append(
                {
                    "table": spec,
                    "ttl": ttl.get("AttributeName") if ttl.get("TimeToLiveStatus") == "ENABLED" else None,
                    "items": items,
                }
            )
        return tables

    def _save_stepfunctions(self, sfn: Any, counts: Counts) -> list[dict[str, Any]]:
        machines = []
        for m in _pages(sfn.list_state_machines, "stateMachines"):
            d = sfn.describe_state_machine(stateMachineArn=m["stateMachineArn"])
            tags = sfn.list_tags_for_resource(resourceArn=m["stateMachineArn"]).get("tags", [])
            aliases = _pages(sfn.list_state_machine_aliases, "stateMachineAliases", stateMachineArn=m["stateMachineArn"])
            executions = []
            for e in _pages(sfn.list_executions, "executions", stateMachineArn=m["stateMachineArn"]):
                full = sfn.describe_execution(executionArn=e["executionArn"])
                executions.append(
                    {k: full.get(k) for k in ("executionArn", "name", "status", "startDate", "stopDate", "input",
                                              "output", "error", "cause")}
                )
            counts.state_machines += 1
            counts.executions += len(executions)
            machines.append(
                {
                    "name": d["name"],
                    "arn": d["stateMachineArn"],
                    "definition": d["definition"],
                    "roleArn": d["roleArn"],
                    "tags": tags,
                    "aliases": [a["stateMachineAliasArn"].rsplit(":", 1)[-1] for a in aliases],
                    "executions": executions,
                }
            )
        return machines

    def _save_rules(self, events: Any, skip: set[str], counts: Counts) -> list[dict[str, Any]]:
        rules = []
        for bus in events.list_event_buses().get("EventBuses", []):
            for r in _pages(events.list_rules, "Rules", "NextToken", "NextToken", EventBusName=bus["Name"]):
                if r["Name"] in skip:
                    continue
                targets = events.list_targets_by_rule(Rule=r["Name"], EventBusName=bus["Name"]).get("Targets", [])
                keep = ("Name", "ScheduleExpression", "EventPattern", "State", "Description")
                rules.append({**{k: r[k] for k in keep if r.get(k)}, "EventBusName": bus["Name"], "Targets": targets})
                counts.rules += 1
        return rules

    def _save_logs(self, logs: Any, counts: Counts) -> list[dict[str, Any]]:
        groups = []
        for g in _pages(logs.describe_log_groups, "logGroups"):
            streams = []
            for s in _pages(logs.describe_log_streams, "logStreams", logGroupName=g["logGroupName"]):
                events, token = [], None
                while True:
                    kwargs = {"nextToken": token} if token else {}
                    page = logs.get_log_events(
                        logGroupName=g["logGroupName"], logStreamName=s["logStreamName"], startFromHead=True, **kwargs
                    )
                    events.extend({"timestamp": e["timestamp"], "message": e["message"]} for e in page["events"])
                    if not page["events"] or page.get("nextForwardToken") in (None, token):
                        break
                    token = page["nextForwardToken"]
                counts.log_events += len(events)
                streams.append({"name": s["logStreamName"], "events": events})
            groups.append({"group": g["logGroupName"], "streams": streams})
        return groups

    def _collect_garbage(self, snapshot: dict[str, Any]) -> None:
        keep = {o["file"] for b in snapshot["s3"] for o in b["objects"]}
        for path in self.objects.iterdir():
            if path.name not in keep:
                path.unlink(missing_ok=True)
                self._known.pop(path.name, None)

    # --- restoring ---------------------------------------------------------------------------

    def restore(self, session: Any, account: str, region: str) -> Counts:
        """Put the last snapshot back into moto; its parts missing from the snapshot are skipped."""
        counts = Counts()
        if not self.exists():
            return counts
        snapshot = json.loads(self.snapshot_path.read_text())
        if snapshot.get("format") != FORMAT:
            raise RuntimeError(f"{self.snapshot_path} has format {snapshot.get('format')}, this flowplane reads {FORMAT}")
        self._restore_s3(session.client("s3"), snapshot.get("s3", []), region, counts)
        self._restore_dynamodb(session.client("dynamodb"), snapshot.get("dynamodb", []), counts)
        self._restore_logs(session.client("logs"), snapshot.get("logs", []), account, region, counts)
        self._restore_stepfunctions(session.client("stepfunctions"), snapshot.get("stepfunctions", []), account,
                                    region, counts)
        self._restore_rules(session.client("events"), snapshot.get("rules", []), counts)
        return counts

    def _restore_s3(self, s3: Any, buckets: list[dict[str, Any]], region: str, counts: Counts) -> None:
        existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
        for b in buckets:
            if b["bucket"] not in existing:
                if region == "us-east-1":
                    s3.create_bucket(Bucket=b["bucket"])
                else:
                    s3.create_bucket(Bucket=b["bucket"], CreateBucketConfiguration={"LocationConstraint": region})
            for o in b["objects"]:
                path = self.objects / o["file"]
                if not path.exists():
                    log.warning("the body of s3://%s/%s is missing from %s; skipped", b["bucket"], o["key"], self.dir)
                    continue
                with open(path, "rb") as f:
                    extra = {"ContentType": o["content_type"]} if o.get("content_type") else {}
                    put = s3.put_object(Bucket=b["bucket"], Key=o["key"], Body=f, **extra)
                self._known[o["file"]] = (put["ETag"], o.get("content_type"))
                counts.objects += 1

    def _restore_dynamodb(self, ddb: Any, tables: list[dict[str, Any]], counts: Counts) -> None:
        existing = set(_pages(ddb.list_tables, "TableNames", "ExclusiveStartTableName", "LastEvaluatedTableName"))
        for t in tables:
            spec = t["table"]
            if spec["TableName"] not in existing:
                ddb.create_table(**spec, BillingMode="PAY_PER_REQUEST")
                if t.get("ttl"):
                    ddb.update_time_to_live(
                        TableName=spec["TableName"],
                        TimeToLiveSpecification={"Enabled": True, "AttributeName": t["ttl"]},
                    )
            items = t["items"]
            for i in range(0, len(items), 25):
                request = {spec["TableName"]: [{"PutRequest": {"Item": item}} for item in items[i : i + 25]]}
                while request:
                    request = ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or None
            counts.items += len(items)

    def _restore_logs(self, logs: Any, groups: list[dict[str, Any]], account: str, region: str, counts: Counts) -> None:
        # Through the backend: the API refuses events older than 14 days, which a restart must keep.
        from moto.logs.models import logs_backends

        backend = logs_backends[account][region]
        for g in groups:
            backend.ensure_log_group(g["group"])
            for s in g["streams"]:
                backend.ensure_log_stream(g["group"], s["name"])
                if s["events"]:
                    stream = backend.groups[g["group"]].streams[s["name"]]
                    stream.put_log_events(sorted(s["events"], key=lambda e: e["timestamp"]))
                    counts.log_events += len(s["events"])

    def _restore_stepfunctions(
        self, sfn: Any, machines: list[dict[str, Any]], account: str, region: str, counts: Counts
    ) -> None:
        for m in machines:
            created = sfn.create_state_machine(
                name=m["name"], definition=m["definition"], roleArn=m["roleArn"], type="STANDARD", publish=True,
                **({"tags": m["tags"]} if m.get("tags") else {}),
            )
            for alias in m.get("aliases", []):
                sfn.create_state_machine_alias(
                    name=alias,
                    routingConfiguration=[{"stateMachineVersionArn": created["stateMachineVersionArn"], "weight": 100}],
                )
            counts.state_machines += 1
            for e in m.get("executions", []):
                reported = _add_execution(account, region, created["stateMachineArn"], e)
                counts.reported[e["executionArn"]] = reported
                counts.executions += 1

    def _restore_rules(self, events: Any, rules: list[dict[str, Any]], counts: Counts) -> None:
        for r in rules:
            bus = r.get("EventBusName", "default")
            if bus != "default":
                try:
                    events.create_event_bus(Name=bus)
                except events.exceptions.ResourceAlreadyExistsException:
                    pass
            keep = {k: r[k] for k in ("Name", "ScheduleExpression", "EventPattern", "State", "Description") if k in r}
            events.put_rule(**keep, EventBusName=bus)
            if r.get("Targets"):
                events.put_targets(Rule=r["Name"], EventBusName=bus, Targets=r["Targets"])
            counts.rules += 1


def _add_execution(account: str, region: str, machine_arn: str, saved: dict[str, Any]) -> list[str]:
    """Put a finished execution back on its state machine; the statuses already reported."""
    from moto.stepfunctions.parser.api import ExecutionStatus
    from moto.stepfunctions.parser.backend.execution import Execution
    from moto.stepfunctions.parser.models import stepfunctions_parser_backends

    backend = stepfunctions_parser_backends[account][region]
    machine = backend.describe_state_machine(machine_arn)
    status, error, cause = saved["status"], saved.get("error"), saved.get("cause")
    stop = _when(saved.get("stopDate"))
    reported = [status, "RUNNING"]
    if status == "RUNNING":
        status, error, cause = "ABORTED", "Flowplane.LocalPlaneStopped", CRASHED_CAUSE
        stop = datetime.now(timezone.utc)
        reported = ["RUNNING"]  # the ABORTED is news: the watcher reports it
    execution = Execution(
        name=saved["name"],
        sm_type=machine.sm_type,
        role_arn=machine.roleArn,
        exec_arn=saved["executionArn"],
        account_id=account,
        region_name=region,
        state_machine=machine,
        start_date=_when(saved.get("startDate")) or datetime.now(timezone.utc),
        cloud_watch_logging_session=None,
        activity_store={},
        input_data=saved.get("input") or "{}",
    )
    execution.exec_status = ExecutionStatus(status)
    execution.stop_date = stop
    if saved.get("output") is not None:
        execution.output = json.loads(saved["output"])
    execution.error, execution.cause = error, cause
    machine.executions.append(execution)
    return reported
