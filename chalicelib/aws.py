"""Thin adapters over the AWS services the control plane uses.

Each class wraps one service with the few calls the logic needs, in the
logic's own terms (a package, a record, a schedule), so the modules that
decide things never build boto3 requests and tests can swap one adapter for
a failing one to check what a failure leaves behind.
"""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any, Optional

from .settings import Settings

if TYPE_CHECKING:
    import boto3
    from botocore.exceptions import ClientError

# boto3 and botocore load on first use, not on import: they are most of a cold
# Lambda's import time, and routes that answer from the request alone (bad input,
# /health) never need them.


def client_error() -> type["ClientError"]:
    """botocore's ClientError, for `except client_error() as e:`.

    An except clause evaluates its expression only when something was raised,
    and by then the failing call has loaded botocore already.
    """
    from botocore.exceptions import ClientError

    return ClientError


def error_code(e: "ClientError") -> str:
    return e.response.get("Error", {}).get("Code", "") or ""


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals back to ints and floats."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, set, tuple)):
        return [_plain(v) for v in value]
    return value


def _dynamo(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, dict):
        return {k: _dynamo(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_dynamo(v) for v in value]
    return value


class PackageStore:
    """Packages and compiled definitions in the control plane's bucket."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def put(self, key: str, data: bytes, content_type: str = "application/gzip") -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def size(self, key: str, bucket: Optional[str] = None) -> Optional[int]:
        """The object's size, None when it does not exist (another bucket: the datastore's)."""
        try:
            return int(self.client.head_object(Bucket=bucket or self.bucket, Key=key)["ContentLength"])
        except client_error() as e:
            if error_code(e) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def put_json(self, key: str, value: Any) -> None:
        self.put(key, json.dumps(value, sort_keys=True).encode("utf-8"), "application/json")

    def get_json(self, key: str) -> Any:
        return json.loads(self.get(key))

    def presign_put(
        self, key: str, sha256_hex: str, expires: int, *, bucket: Optional[str] = None,
        content_type: str = "application/gzip",
    ) -> tuple[str, dict[str, str]]:
        """A PUT URL S3 itself checks against the object's sha256 (a package, an included file)."""
        checksum = base64.b64encode(bytes.fromhex(sha256_hex)).decode("ascii")
        url = self.client.generate_presigned_url(
            "put_object",
            Params={"Bucket": bucket or self.bucket, "Key": key, "ChecksumSHA256": checksum,
                    "ContentType": content_type},
            ExpiresIn=expires,
        )
        return url, {"x-amz-checksum-sha256": checksum, "Content-Type": content_type}


class Table:
    """The single DynamoDB table (see chalicelib/TABLE.md)."""

    def __init__(self, resource_table: Any) -> None:
        self.t = resource_table
        self.client = resource_table.meta.client
        self.name = resource_table.name

    def get(self, pk: str, sk: str) -> Optional[dict[str, Any]]:
        item = self.t.get_item(Key={"PK": pk, "SK": sk}, ConsistentRead=True).get("Item")
        return _plain(item) if item else None

    def put(self, item: dict[str, Any], condition: Optional[str] = None, values: Optional[dict] = None) -> None:
        kwargs: dict[str, Any] = {"Item": _dynamo(item)}
        if condition:
            kwargs["ConditionExpression"] = condition
        if values:
            kwargs["ExpressionAttributeValues"] = _dynamo(values)
        self.t.put_item(**kwargs)

    def update(
        self,
        pk: str,
        sk: str,
        changes: dict[str, Any],
        condition: Optional[str] = None,
        values: Optional[dict[str, Any]] = None,
        names: Optional[dict[str, str]] = None,
    ) -> None:
        sets, removes = [], []
        attr_names = dict(names or {})
        attr_values = dict(values or {})
        for i, (k, v) in enumerate(changes.items()):
            attr_names[f"#u{i}"] = k
            if v is None:
                removes.append(f"#u{i}")
            else:
                sets.append(f"#u{i} = :u{i}")
                attr_values[f":u{i}"] = v
        expr = ""
        if sets:
            expr += "SET " + ", ".join(sets)
        if removes:
            expr += " REMOVE " + ", ".join(removes)
        kwargs: dict[str, Any] = {
            "Key": {"PK": pk, "SK": sk},
            "UpdateExpression": expr.strip(),
            "ExpressionAttributeNames": attr_names,
        }
        if attr_values:
            kwargs["ExpressionAttributeValues"] = _dynamo(attr_values)
        if condition:
            kwargs["ConditionExpression"] = condition
        self.t.update_item(**kwargs)

    def query(self, pk: str, sk_prefix: str = "", ascending: bool = True, limit: Optional[int] = None) -> list[dict]:
        from boto3.dynamodb.conditions import Key

        cond = Key("PK").eq(pk)
        if sk_prefix:
            cond = cond & Key("SK").begins_with(sk_prefix)
        kwargs: dict[str, Any] = {"KeyConditionExpression": cond, "ScanIndexForward": ascending, "ConsistentRead": True}
        items: list[dict] = []
        while True:
            if limit:
                kwargs["Limit"] = limit - len(items)
            page = self.t.query(**kwargs)
            items.extend(_plain(i) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page or (limit and len(items) >= limit):
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def transact_put(
        self,
        puts: list[tuple[dict[str, Any], Optional[str], Optional[dict[str, Any]]]],
        names: Optional[dict[str, str]] = None,
    ) -> None:
        """Several conditional puts, all or none (item, condition, values).

        The resource's own client takes plain Python values (boto3 serializes them).
        """
        ops = []
        for item, condition, values in puts:
            put: dict[str, Any] = {"TableName": self.name, "Item": _dynamo(item)}
            if condition:
                put["ConditionExpression"] = condition
            if values:
                put["ExpressionAttributeValues"] = _dynamo(values)
            if names and condition and any(n in condition for n in names):
                put["ExpressionAttributeNames"] = {n: v for n, v in names.items() if n in condition}
            ops.append({"Put": put})
        self.client.transact_write_items(TransactItems=ops)


class StateMachines:
    """Step Functions: state machines, their versions, the production alias, executions."""

    ALIAS = "production"

    def __init__(self, client: Any) -> None:
        self.client = client

    def find(self, arn: str) -> Optional[dict[str, Any]]:
        try:
            return self.client.describe_state_machine(stateMachineArn=arn)
        except client_error() as e:
            if error_code(e) in ("StateMachineDoesNotExist", "ResourceNotFound"):
                return None
            raise

    def publish(self, arn: str, name: str, definition: dict, role_arn: str, description: str) -> tuple[str, str]:
        """Create or update the state machine and publish the definition as a new version."""
        body = json.dumps(definition, separators=(",", ":"))
        if self.find(arn) is None:
            r = self.client.create_state_machine(
                name=name,
                definition=body,
                roleArn=role_arn,
                type="STANDARD",
                publish=True,
                versionDescription=description[:256],
                tags=[{"key": "flowplane:deployment", "value": name}],
            )
            return r["stateMachineArn"], r["stateMachineVersionArn"]
        r = self.client.update_state_machine(
            stateMachineArn=arn,
            definition=body,
            roleArn=role_arn,
            publish=True,
            versionDescription=description[:256],
        )
        return arn, r["stateMachineVersionArn"]

    def restore_definition(self, arn: str, definition: dict, role_arn: str) -> None:
        """Put back a definition without publishing (a rollback: the version exists already)."""
        self.client.update_state_machine(
            stateMachineArn=arn, definition=json.dumps(definition, separators=(",", ":")), roleArn=role_arn
        )

    def delete_version(self, version_arn: str) -> None:
        self.client.delete_state_machine_version(stateMachineVersionArn=version_arn)

    def point_alias(self, arn: str, version_arn: str) -> str:
        alias_arn = f"{arn}:{self.ALIAS}"
        routing = [{"stateMachineVersionArn": version_arn, "weight": 100}]
        try:
            self.client.update_state_machine_alias(stateMachineAliasArn=alias_arn, routingConfiguration=routing)
        except client_error() as e:
            if error_code(e) not in ("ResourceNotFound", "StateMachineDoesNotExist"):
                raise
            alias_arn = self.client.create_state_machine_alias(name=self.ALIAS, routingConfiguration=routing)[
                "stateMachineAliasArn"
            ]
        return alias_arn

    def delete(self, arn: str) -> None:
        try:
            self.client.delete_state_machine_alias(stateMachineAliasArn=f"{arn}:{self.ALIAS}")
        except client_error() as e:
            if error_code(e) not in ("ResourceNotFound", "StateMachineDoesNotExist"):
                raise
        self.client.delete_state_machine(stateMachineArn=arn)

    def start(self, target_arn: str, name: str, payload: dict[str, Any]) -> str:
        """Start an execution; one that already exists under this name counts as started."""
        try:
            return self.client.start_execution(stateMachineArn=target_arn, name=name, input=json.dumps(payload))[
                "executionArn"
            ]
        except client_error() as e:
            if error_code(e) != "ExecutionAlreadyExists":
                raise
            return execution_arn(target_arn, name)

    def executions(self, arn: str, status: Optional[str], limit: int) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {"stateMachineArn": arn, "maxResults": min(limit, 1000)}
        if status:
            kwargs["statusFilter"] = status
        out: list[dict[str, Any]] = []
        while len(out) < limit:
            page = self.client.list_executions(**kwargs)
            out.extend(page.get("executions", []))
            if not page.get("nextToken"):
                break
            kwargs["nextToken"] = page["nextToken"]
        return out[:limit]

    def execution(self, arn: str) -> Optional[dict[str, Any]]:
        try:
            return self.client.describe_execution(executionArn=arn)
        except client_error() as e:
            if error_code(e) in ("ExecutionDoesNotExist", "ResourceNotFound"):
                return None
            raise

    def stop(self, arn: str, cause: str) -> None:
        self.client.stop_execution(executionArn=arn, error="Flowplane.Terminated", cause=cause[:32768])


def execution_arn(state_machine_arn: str, name: str) -> str:
    """arn:...:stateMachine:NAME[:qualifier] -> arn:...:execution:NAME:EXEC."""
    parts = state_machine_arn.split(":")
    base = ":".join(parts[:7]).replace(":stateMachine:", ":execution:")
    return f"{base}:{name}"


class Schedules:
    """EventBridge rules that fire the launcher: a flow's schedule, and its triggers' event patterns."""

    TARGET_ID = "flowplane-launcher"

    def __init__(self, client: Any, lambda_client: Any, grant_permission: bool) -> None:
        self.client = client
        self.lambda_client = lambda_client
        self.grant_permission = grant_permission

    def get(self, rule: str, bus: str = "default") -> Optional[dict[str, Any]]:
        try:
            r = self.client.describe_rule(Name=rule, EventBusName=bus)
        except client_error() as e:
            if error_code(e) == "ResourceNotFoundException":
                return None
            raise
        targets = self.client.list_targets_by_rule(Rule=rule, EventBusName=bus).get("Targets", [])
        pattern = json.loads(r["EventPattern"]) if r.get("EventPattern") else None
        return {"expression": r.get("ScheduleExpression"), "pattern": pattern, "arn": r["Arn"],
                "state": r.get("State"), "targets": targets}

    def put(self, rule: str, expression: str, description: str, target_arn: str, transformer: dict,
            enabled: bool = True) -> str:
        return self._put(rule, {"ScheduleExpression": expression}, description, target_arn, transformer,
                         "ENABLED" if enabled else "DISABLED")

    def set_enabled(self, rule: str, enabled: bool) -> bool:
        """Enable or disable the rule (a paused schedule); False when there is no such rule."""
        if self.get(rule) is None:
            return False
        (self.client.enable_rule if enabled else self.client.disable_rule)(Name=rule)
        return True

    def put_pattern(self, rule: str, pattern: dict[str, Any], description: str, target_arn: str,
                    transformer: dict, bus: str = "default") -> str:
        """A rule on `bus` matching `pattern` (a triggered flow's events)."""
        return self._put(rule, {"EventPattern": json.dumps(pattern, sort_keys=True), "EventBusName": bus},
                         description, target_arn, transformer)

    def _put(self, rule: str, what: dict[str, Any], description: str, target_arn: str, transformer: dict,
             state: str = "ENABLED") -> str:
        arn = self.client.put_rule(Name=rule, State=state, Description=description[:512], **what)["RuleArn"]
        bus = {"EventBusName": what["EventBusName"]} if "EventBusName" in what else {}
        self.client.put_targets(
            **bus,
            Rule=rule, Targets=[{"Id": self.TARGET_ID, "Arn": target_arn, "InputTransformer": transformer}]
        )
        if self.grant_permission:
            self._allow(rule, arn, target_arn)
        return arn

    def _allow(self, rule: str, rule_arn: str, target_arn: str) -> None:
        try:
            self.lambda_client.add_permission(
                FunctionName=target_arn,
                StatementId=f"flowplane-{rule}"[:100],
                Action="lambda:InvokeFunction",
                Principal="events.amazonaws.com",
                SourceArn=rule_arn,
            )
        except client_error() as e:
            if error_code(e) != "ResourceConflictException":  # granted by an earlier deploy
                raise

    def remove(self, rule: str, bus: str = "default") -> bool:
        if self.get(rule, bus) is None:
            return False
        self.client.remove_targets(Rule=rule, EventBusName=bus, Ids=[self.TARGET_ID], Force=True)
        self.client.delete_rule(Name=rule, EventBusName=bus, Force=True)
        return True


class ZonedSchedules:
    """EventBridge Scheduler schedules (the default group) that fire the launcher in a time zone."""

    GROUP = "default"

    def __init__(self, client: Any) -> None:
        self.client = client

    def get(self, name: str) -> Optional[dict[str, Any]]:
        try:
            s = self.client.get_schedule(Name=name, GroupName=self.GROUP)
        except client_error() as e:
            if error_code(e) == "ResourceNotFoundException":
                return None
            raise
        return {"expression": s.get("ScheduleExpression"), "timezone": s.get("ScheduleExpressionTimezone"),
                "arn": s["Arn"], "state": s.get("State"), "target": s.get("Target") or {}}

    def put(self, name: str, expression: str, timezone: str, description: str, target_arn: str, role_arn: str,
            payload: str, enabled: bool = True) -> str:
        """Create or replace the schedule (Scheduler has no upsert: update when it exists)."""
        args = {
            "Name": name, "GroupName": self.GROUP, "ScheduleExpression": expression,
            "ScheduleExpressionTimezone": timezone, "Description": description[:512],
            "State": "ENABLED" if enabled else "DISABLED",
            # Exact times: a flexible window would move the run but not its scheduled time.
            "FlexibleTimeWindow": {"Mode": "OFF"},
            "Target": {"Arn": target_arn, "RoleArn": role_arn, "Input": payload,
                       "RetryPolicy": {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185}},
        }
        if self.get(name) is None:
            try:
                return self.client.create_schedule(**args)["ScheduleArn"]
            except client_error() as e:
                if error_code(e) != "ConflictException":  # created meanwhile: update it below
                    raise
        return self.client.update_schedule(**args)["ScheduleArn"]

    def set_enabled(self, name: str, enabled: bool) -> bool:
        """Scheduler updates replace the whole schedule: read it, then write it back with the state."""
        s = self.client.get_schedule(Name=name, GroupName=self.GROUP) if self.get(name) else None
        if s is None:
            return False
        keep = {k: s[k] for k in ("ScheduleExpression", "ScheduleExpressionTimezone", "Description",
                                  "FlexibleTimeWindow", "Target") if s.get(k) is not None}
        self.client.update_schedule(Name=name, GroupName=self.GROUP, State="ENABLED" if enabled else "DISABLED", **keep)
        return True

    def remove(self, name: str) -> bool:
        try:
            self.client.delete_schedule(Name=name, GroupName=self.GROUP)
        except client_error() as e:
            if error_code(e) == "ResourceNotFoundException":
                return False
            raise
        return True


_SESSIONS: dict[str, "boto3.session.Session"] = {}


def shared_session(region: str) -> "boto3.session.Session":
    """One session per region and process: it keeps the parsed service models, which a
    new session re-reads (a third of a second)."""
    if region not in _SESSIONS:
        import boto3

        _SESSIONS[region] = boto3.session.Session(region_name=region)
    return _SESSIONS[region]


class Aws:
    """The adapters for one stage, created lazily (a cold Lambda pays only for what it uses)."""

    def __init__(self, settings: Settings, session: Optional["boto3.session.Session"] = None) -> None:
        self.settings = settings
        self.session = session or shared_session(settings.region)

    def _client(self, name: str, **kwargs: Any) -> Any:
        return self.session.client(name, region_name=self.settings.region, **kwargs)

    @cached_property
    def packages(self) -> PackageStore:
        from botocore.config import Config

        # SigV4 so a presigned PUT can carry the checksum S3 verifies.
        return PackageStore(self._client("s3", config=Config(signature_version="s3v4")), self.settings.bucket)

    @cached_property
    def batch(self) -> Any:
        """The Batch client: job definitions for @batch(image=...) (chalicelib/deploy/job_definitions.py)."""
        return self._client("batch")

    @cached_property
    def logs(self) -> Any:
        """The CloudWatch Logs client: an attempt's log before it is stored (chalicelib/query/blobs.py)."""
        return self._client("logs")

    @cached_property
    def table(self) -> Table:
        return Table(self.session.resource("dynamodb", region_name=self.settings.region).Table(self.settings.table))

    @cached_property
    def state_machines(self) -> StateMachines:
        return StateMachines(self._client("stepfunctions"))

    @cached_property
    def events(self) -> Any:
        """The EventBridge client: publishing events and triggered flows' rules (chalicelib/triggers/)."""
        return self._client("events")

    @cached_property
    def schedules(self) -> Schedules:
        return Schedules(self._client("events"), self._client("lambda"), self.settings.grant_launcher_permission)

    @cached_property
    def secrets(self) -> Any:
        """Secrets Manager: a deployment's notification webhook (chalicelib/notifications/)."""
        return self._client("secretsmanager")

    @cached_property
    def sns(self) -> Any:
        return self._client("sns")

    @cached_property
    def zoned_schedules(self) -> ZonedSchedules:
        """EventBridge Scheduler: the schedules of flows with `@schedule(timezone=...)`."""
        return ZonedSchedules(self._client("scheduler"))

    @property
    def scheduler_role_arn(self) -> str:
        """The role EventBridge Scheduler invokes the launcher as (the stack's SchedulerRole)."""
        from .resource_names import scheduler_role_name

        return self.settings.scheduler_role_arn or (
            f"arn:aws:iam::{self.account}:role/{scheduler_role_name(self.settings.stage)}"
        )

    def state_machine_arn(self, name: str) -> str:
        """Deployment `name`'s state machine in this stage (chalicelib/resource_names.py names it)."""
        from .resource_names import state_machine_name

        machine = state_machine_name(str(self.settings.resource_prefix), name)
        return f"arn:aws:states:{self.settings.region}:{self.account}:stateMachine:{machine}"

    @cached_property
    def account(self) -> str:
        s = self.settings
        if s.account:
            return s.account
        # An ARN in the settings already names the account: no STS round trip on a cold start.
        for arn in (s.sfn_role_arn, s.launcher_arn):
            parts = (arn or "").split(":")
            if len(parts) > 4 and parts[4]:
                return parts[4]
        return self._client("sts").get_caller_identity()["Account"]

    @property
    def sfn_role_arn(self) -> str:
        from .resource_names import states_role_name

        return self.settings.sfn_role_arn or f"arn:aws:iam::{self.account}:role/{states_role_name(self.settings.stage)}"

    @property
    def launcher_arn(self) -> str:
        return self.settings.launcher_arn or (
            f"arn:aws:lambda:{self.settings.region}:{self.account}:function:flowplane-{self.settings.stage}-launch"
        )
