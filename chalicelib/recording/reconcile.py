"""Every few minutes: repair what missed events left behind.

EventBridge delivers Step Functions' status changes on a best-effort basis, so
the table can miss a run's end or never hear of a run at all (one started from
the console, or whose events were lost). For every deployed state machine the
reconciler lists its newest executions and records those the table lacks or
shows in another status; then it asks Step Functions about every run still
RUNNING in the table that the listing did not cover. Everything goes through
the recorder's own path (the same merge), so a repair can only add facts, and
a run's end it repairs is announced as the event's would have been. An
announcement that fails is logged and listed (`unannounced`), and the pass goes
on: the next pass finds the run recorded and would not announce it again.
Work is bounded per invocation; what is left waits for the next one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable, Optional

from .. import keys
from ..aws import client_error
from . import run_records
from .announce import AnnouncementFailed
from .events import ExecutionStatusChange, run_id_of_execution
from .recorder import Outcome, Recorder, Rejected


@dataclass(frozen=True)
class Limits:
    state_machines: int = 1000
    executions_per_machine: int = 100
    running_runs_per_flow: int = 200
    describes: int = 300
    seconds: float = 20.0
    lease_seconds: int = 240


@dataclass
class Report:
    machines: int = 0
    executions_seen: int = 0
    adopted: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    skipped: int = 0
    stopped_early: bool = False
    # Runs recorded as ended whose end could not be put on the bus.
    unannounced: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _ms(value: Any) -> Optional[int]:
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, (int, float)):
        return int(value)
    return None


def change_from_description(desc: dict[str, Any]) -> ExecutionStatusChange:
    """DescribeExecution's answer in the shape of the status change event it stands for."""
    return ExecutionStatusChange(
        executionArn=desc["executionArn"],
        stateMachineArn=desc["stateMachineArn"],
        name=desc["name"],
        status=desc["status"],
        startDate=_ms(desc.get("startDate")),
        stopDate=_ms(desc.get("stopDate")),
        input=desc.get("input"),
        error=desc.get("error"),
        cause=desc.get("cause"),
        stateMachineVersionArn=desc.get("stateMachineVersionArn"),
        stateMachineAliasArn=desc.get("stateMachineAliasArn"),
        redriveCount=desc.get("redriveCount"),
    )


class Reconciler:
    def __init__(
        self,
        recorder: Recorder,
        sfn: Any,
        limits: Limits = Limits(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.recorder = recorder
        self.store = recorder.store
        self.sfn = sfn
        self.limits = limits
        self.clock = clock
        self.describes = 0

    # --- the lease: one reconciler at a time (schedules may fire twice) ------------------

    def _take_lease(self, now: float) -> bool:
        try:
            self.store.t.put_item(
                Item={"PK": keys.LEASE_PK, "SK": keys.LEASE_SK, "type": "lease", "ttl": int(now) + self.limits.lease_seconds},
                ConditionExpression="attribute_not_exists(PK) OR #ttl < :now",
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues={":now": int(now)},
            )
            return True
        except client_error() as e:
            if e.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return False
            raise

    def _release_lease(self) -> None:
        self.store.t.delete_item(Key={"PK": keys.LEASE_PK, "SK": keys.LEASE_SK})

    # --- the pass ------------------------------------------------------------------------

    def run(self) -> Report:
        report = Report()
        started = self.clock()
        if not self._take_lease(started):
            report.stopped_early = True
            return report
        try:
            self.describes = 0
            deadline = started + self.limits.seconds
            covered: set[tuple[str, str]] = set()
            flows: set[str] = set()
            for head in self._deployed_heads(report):
                if self.clock() > deadline:
                    report.stopped_early = True
                    break
                flows.add(head["flow_name"])
                self._sweep_machine(head, report, covered)
            flows.update(self._recorded_flows())
            for flow in sorted(flows):
                if self.clock() > deadline:
                    report.stopped_early = True
                    break
                self._repair_running(flow, report, covered)
        finally:
            self._release_lease()
        return report

    def _deployed_heads(self, report: Report) -> Iterable[dict[str, Any]]:
        """Heads of the state machines that exist and that flowplane deployed."""
        machines: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"maxResults": 1000}
        while len(machines) < self.limits.state_machines:
            page = self.sfn.list_state_machines(**kwargs)
            machines.extend(page.get("stateMachines", []))
            if not page.get("nextToken"):
                break
            kwargs["nextToken"] = page["nextToken"]
        machines = machines[: self.limits.state_machines]
        # Only this stage's state machines, by the deployment each is named after.
        by_name = {}
        for m in machines:
            deployment = self.recorder.owners.deployment(m["name"])
            if deployment:
                by_name[deployment] = m["stateMachineArn"]
        names = sorted(by_name)
        for i in range(0, len(names), 100):
            chunk = names[i : i + 100]
            for head in self._batch_get([(keys.flow_pk(n), keys.HEAD_SK) for n in chunk]):
                name = head.get("name")
                if name in by_name and head.get("state_machine_arn") == by_name[name] and head.get("flow_name"):
                    report.machines += 1
                    yield head

    def _batch_get(self, key_pairs: list[tuple[str, str]]) -> list[dict[str, Any]]:
        if not key_pairs:
            return []
        request = {self.store.name: {"Keys": [{"PK": pk, "SK": sk} for pk, sk in key_pairs], "ConsistentRead": True}}
        found: list[dict[str, Any]] = []
        for _ in range(5):
            answer = self.store.client.batch_get_item(RequestItems=request)
            found.extend(answer.get("Responses", {}).get(self.store.name, []))
            request = answer.get("UnprocessedKeys") or {}
            if not request:
                break
        return found

    def _sweep_machine(self, head: dict[str, Any], report: Report, covered: set[tuple[str, str]]) -> None:
        flow = head["flow_name"]
        executions = self.sfn.list_executions(
            stateMachineArn=head["state_machine_arn"], maxResults=self.limits.executions_per_machine
        ).get("executions", [])
        report.executions_seen += len(executions)
        keys_ = [(keys.flow_pk(flow), keys.run_sk(run_id_of_execution(e["name"]))) for e in executions]
        recorded = {}
        for i in range(0, len(keys_), 100):
            for item in self._batch_get(keys_[i : i + 100]):
                doc = run_records.decode(item)
                recorded[doc["run_id"]] = doc
        for e in executions:
            run_id = run_id_of_execution(e["name"])
            covered.add((flow, run_id))
            known = recorded.get(run_id)
            if known is not None and known.get("status") == e["status"] and "parameters" in known:
                continue
            if self._describe_and_record(e["executionArn"], report, adopted=known is None) is None:
                report.skipped += 1

    def _recorded_flows(self) -> list[str]:
        items = self.store.t.query(
            KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": keys.FLOWS_PK}
        ).get("Items", [])
        return [str(i["name"]) for i in items if i.get("name")]

    def _repair_running(self, flow: str, report: Report, covered: set[tuple[str, str]]) -> None:
        items = self.store.t.query(
            IndexName=keys.BY_STATUS,
            KeyConditionExpression="GSI2PK = :pk",
            ExpressionAttributeValues={":pk": keys.status_pk(flow, "running")},
            Limit=self.limits.running_runs_per_flow,
        ).get("Items", [])
        for item in items:
            doc = run_records.decode(item)
            if (flow, doc["run_id"]) in covered or not doc.get("execution_arn"):
                continue
            self._describe_and_record(doc["execution_arn"], report, adopted=False)

    def _describe_and_record(self, execution_arn: str, report: Report, adopted: bool) -> Optional[str]:
        if self.describes >= self.limits.describes:
            report.stopped_early = True
            return None
        self.describes += 1
        try:
            desc = self.sfn.describe_execution(executionArn=execution_arn)
        except client_error() as e:
            if e.response.get("Error", {}).get("Code") in ("ExecutionDoesNotExist", "ResourceNotFound"):
                return None
            raise
        try:
            outcome: Outcome = self.recorder.record_execution(change_from_description(desc))
        except Rejected as e:
            self.recorder.telemetry.rejected(str(e))
            return None
        except AnnouncementFailed as e:
            outcome = e.outcome
            report.unannounced.append(outcome.pathspec)
        if outcome.changed and outcome.pathspec:
            (report.adopted if adopted else report.repaired).append(outcome.pathspec)
        return outcome.pathspec
