"""EventBridge as AWS wires it for the control plane, and the events moto never emits.

`EventRouter` does what `chalice deploy` sets up for every `@app.on_cw_event`
handler: a rule on the event bus with the handler's pattern. Here the rule's
target is an SQS queue in moto, and one thread per queue calls the handler
in-process with each event, as Lambda's EventBridge trigger would. moto then
does the routing itself: its S3 sends "Object Created" events of a bucket
with EventBridge notifications on, and `put_events` goes through the rules'
patterns. A handler that raises gets the event again, twice at most, as
Lambda retries an asynchronous invocation.

`ExecutionWatcher` makes the "Step Functions Execution Status Change" events
moto does not: it polls the executions' statuses and puts one event per status
an execution reaches (RUNNING, then SUCCEEDED/FAILED/TIMED_OUT/ABORTED), each
once, in AWS's shape. The local Batch hands its job state changes to
`batch_job_event` for the "Batch Job State Change" events.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Optional

from ..event_types import BATCH_DETAIL_TYPE, BATCH_SOURCE, SFN_DETAIL_TYPE, SFN_SOURCE

log = logging.getLogger("flowplane.local.events")

MAX_RECEIVES = 3  # the first delivery and Lambda's two retries of an async invocation


def _millis(value: Any) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, datetime):
        return int(value.timestamp() * 1000)
    return int(value)


def execution_status_detail(execution: dict[str, Any]) -> dict[str, Any]:
    """The event detail AWS sends for an execution, from its DescribeExecution."""
    return {
        "executionArn": execution["executionArn"],
        "stateMachineArn": execution["stateMachineArn"],
        "name": execution["name"],
        "status": execution["status"],
        "startDate": _millis(execution.get("startDate")),
        "stopDate": _millis(execution.get("stopDate")),
        "input": execution.get("input"),
        "output": execution.get("output"),
        "inputDetails": {"included": True},
        "outputDetails": {"included": True} if execution.get("output") is not None else None,
        "error": execution.get("error"),
        "cause": execution.get("cause"),
        "redriveCount": execution.get("redriveCount", 0),
    }


def execution_status_event(execution: dict[str, Any]) -> dict[str, Any]:
    """A put_events entry for an execution's status change."""
    return {
        "Source": SFN_SOURCE,
        "DetailType": SFN_DETAIL_TYPE,
        "Detail": json.dumps(execution_status_detail(execution)),
        "Resources": [execution["executionArn"]],
        "Time": datetime.now(timezone.utc),
    }


def batch_job_event(detail: dict[str, Any], job_arn: str) -> dict[str, Any]:
    """A put_events entry for a Batch job's state change; the detail is the job's description."""
    return {
        "Source": BATCH_SOURCE,
        "DetailType": BATCH_DETAIL_TYPE,
        "Detail": json.dumps(detail, default=str),
        "Resources": [job_arn],
        "Time": datetime.now(timezone.utc),
    }


@dataclass
class Delivery:
    handler: str
    event: dict[str, Any]
    ok: bool
    error: Optional[str] = None


# The attribute of the message `stop` sends to end a route's long poll.
_WAKE = "flowplane-wake"


@dataclass
class _Route:
    handler: str
    rule: str
    queue_url: str
    busy: bool = False


@dataclass
class EventRouter:
    """Rules for the app's event handlers, delivered by SQS to the handlers in-process."""

    session: Any  # a boto3 session whose clients reach moto
    invoke: Callable[[str, Any], Any]  # (handler name, event) -> result
    rule_prefix: str  # "<app>-<stage>-", as Chalice names its rules
    bus: str = "default"
    deliveries: list[Delivery] = field(default_factory=list)
    _routes: list[_Route] = field(default_factory=list)
    _threads: list[threading.Thread] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.events = self.session.client("events")
        self.sqs = self.session.client("sqs")

    @property
    def rule_names(self) -> list[str]:
        return [r.rule for r in self._routes]

    def add(self, handler: str, pattern: dict[str, Any]) -> None:
        """Route events matching `pattern` to `handler` (a rule and a queue, as `chalice deploy` would)."""
        name = f"{self.rule_prefix}{handler}"[:64]
        queue_url = self.sqs.create_queue(QueueName=name[:80], Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        self.events.put_rule(Name=name, EventPattern=json.dumps(pattern), State="ENABLED", EventBusName=self.bus)
        self.events.put_targets(Rule=name, EventBusName=self.bus, Targets=[{"Id": "handler", "Arn": queue_arn}])
        self._routes.append(_Route(handler, name, queue_url))

    def start(self) -> None:
        for route in self._routes:
            t = threading.Thread(target=self._serve, args=(route,), daemon=True, name=f"events-{route.handler}")
            t.start()
            self._threads.append(t)

    def put(self, entries: Iterable[dict[str, Any]]) -> None:
        batch = [dict(e, EventBusName=self.bus) for e in entries]
        for i in range(0, len(batch), 10):  # PutEvents takes ten at a time
            answer = self.events.put_events(Entries=batch[i : i + 10])
            if answer.get("FailedEntryCount"):
                log.warning("EventBridge refused %d event(s): %s", answer["FailedEntryCount"], answer["Entries"])

    def idle(self) -> bool:
        """No event waiting or being handled (what a test waits for before reading records)."""
        for route in self._routes:
            if route.busy:
                return False
            attrs = self.sqs.get_queue_attributes(
                QueueUrl=route.queue_url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            if int(attrs["ApproximateNumberOfMessages"]) or int(attrs["ApproximateNumberOfMessagesNotVisible"]):
                return False
        return True

    def stop(self, drain_seconds: float = 5.0) -> None:
        """Deliver what is queued (up to `drain_seconds`), then stop."""
        deadline = time.monotonic() + drain_seconds
        while time.monotonic() < deadline and not self.idle():
            time.sleep(0.05)
        self._stop.set()
        # Wake the long polls, so stopping does not wait out their 20 s.
        for route in self._routes:
            try:
                self.sqs.send_message(QueueUrl=route.queue_url, MessageBody="{}",
                                      MessageAttributes={_WAKE: {"DataType": "String", "StringValue": "stop"}})
            except Exception:
                pass  # moto is gone already: the poll ends with an error, and the thread with it
        for t in self._threads:
            t.join(2)

    def _serve(self, route: _Route) -> None:
        while not self._stop.is_set():
            try:
                # Long polls, as Lambda's SQS poller does: an idle plane asks each queue every 20 s,
                # not every second (idle CPU), and a message is still handed over as it arrives.
                answer = self.sqs.receive_message(
                    QueueUrl=route.queue_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=20,
                    AttributeNames=["ApproximateReceiveCount"],
                    MessageAttributeNames=[_WAKE],
                )
            except Exception:
                if self._stop.is_set():
                    return
                log.exception("receiving events for %s failed", route.handler)
                time.sleep(0.5)
                continue
            received = answer.get("Messages", [])
            messages = [m for m in received if _WAKE not in m.get("MessageAttributes", {})]
            if messages:
                route.busy = True
                try:
                    done, again = [], []
                    for message in messages:
                        (done if self._deliver(route, message) else again).append(message)
                    self._settle(route, done, again)
                finally:
                    route.busy = False
            if len(messages) < len(received):
                return

    def _deliver(self, route: _Route, message: dict[str, Any]) -> bool:
        """Hand one message's event to its handler; whether the message is done with (handled, or
        failed its last receive)."""
        event = json.loads(message["Body"])
        try:
            self.invoke(route.handler, event)
            ok, error = True, None
        except Exception as e:
            ok, error = False, f"{type(e).__name__}: {e}"
            log.exception("handler %s failed on a %s event", route.handler, event.get("detail-type"))
        with self._lock:
            self.deliveries.append(Delivery(route.handler, event, ok, error))
        receives = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        return ok or receives >= MAX_RECEIVES

    def _settle(self, route: _Route, done: list[dict[str, Any]], again: list[dict[str, Any]]) -> None:
        """One request per received batch, not one per message: on a 2-core machine the plane's
        requests per recorded event bound how many tasks a second it keeps up with."""
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=route.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        if again:
            # Back in the queue at once rather than after the visibility timeout.
            self.sqs.change_message_visibility_batch(
                QueueUrl=route.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 1}
                    for i, m in enumerate(again)
                ],
            )


Statuses = Callable[[], list[tuple[str, str]]]


@dataclass
class ExecutionWatcher:
    """Puts one status-change event per status each execution reaches.

    `statuses` lists (execution ARN, status) of every execution; by default it
    asks ListStateMachines and ListExecutions. Only a status not reported yet
    costs a DescribeExecution, for the event's detail.
    """

    sfn: Any  # a Step Functions client
    put: Callable[[list[dict[str, Any]]], None]
    emitted: dict[str, set[str]] = field(default_factory=dict)  # execution ARN -> statuses sent
    on_status: Optional[Callable[[dict[str, Any]], None]] = None
    statuses: Optional[Statuses] = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def mark_emitted(self, execution_arn: str, statuses: Iterable[str]) -> None:
        """Executions restored from disk were reported before: never again."""
        self.emitted.setdefault(execution_arn, set()).update(statuses)

    def poll(self) -> int:
        """One pass over every execution; how many events were put."""
        with self._lock:
            entries: list[dict[str, Any]] = []
            for arn, status in (self.statuses or self._listed)():
                sent = self.emitted.setdefault(arn, set())
                if status in sent and "RUNNING" in sent:
                    continue
                execution = self.sfn.describe_execution(executionArn=arn)
                for reached in ("RUNNING", execution["status"]):
                    if reached not in sent:
                        shown = execution if reached == execution["status"] else _as_running(execution)
                        entries.append(execution_status_event(shown))
                        sent.add(reached)
                        if self.on_status is not None:
                            self.on_status(shown)
            if entries:
                self.put(entries)
            return len(entries)

    def _listed(self) -> list[tuple[str, str]]:
        out = []
        for machine in _pages(self.sfn.list_state_machines, "stateMachines"):
            for e in _pages(
                lambda **kw: self.sfn.list_executions(stateMachineArn=machine["stateMachineArn"], **kw), "executions"
            ):
                out.append((e["executionArn"], e["status"]))
        return out


def _as_running(execution: dict[str, Any]) -> dict[str, Any]:
    """The RUNNING event of an execution first seen already finished."""
    keep = ("executionArn", "stateMachineArn", "name", "startDate", "input")
    return {**{k: execution.get(k) for k in keep}, "status": "RUNNING"}


def _pages(call: Callable[..., dict[str, Any]], key: str) -> list[dict[str, Any]]:
    items, token = [], None
    while True:
        page = call(**({"nextToken": token} if token else {}))
        items.extend(page.get(key, []))
        token = page.get("nextToken")
        if not token:
            return items
