"""A production run's end is announced on the stage's bus as the contract says (RunFinished).

The recording handlers run through chalice.test.Client into moto; an SQS queue behind a
rule on the stage's bus hears what they announce, as a subscriber would. Announced: a
terminal status the run has, each time an event says so (a second delivery announces
again; subscribers dedupe by trigger_id). Never: a non-terminal status, a stale event,
another stage's execution.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from chalicelib import http
from chalicelib.recording.announce import AnnouncementFailed
from chalicelib.recording.service import reconcile, recorder_for
from flowplane.trigger_events import RUN_FINISHED_DETAIL_TYPE, RUN_FINISHED_SOURCE, RunFinished
from tests.support.recording_events import T0, deliver, execution_arn, execution_detail, execution_event, iso

FLOW = "ParameterFlow"
STAGE = "flowplane-local"

pytestmark = pytest.mark.aws


@pytest.fixture
def deployed(control_plane):
    cp = control_plane
    record = cp.deploy("parameter_flow.py")
    assert record["status"] == "DEPLOYED", record
    cp.token = record["production_token"]
    cp.heard = listen(cp)
    return cp


class Heard:
    """What a subscriber to RunFinished on the stage's bus receives."""

    def __init__(self, sqs: Any, url: str) -> None:
        self.sqs, self.url = sqs, url

    def events(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return out
            for m in messages:
                out.append(json.loads(m["Body"]))
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=m["ReceiptHandle"])

    def details(self) -> list[RunFinished]:
        return [RunFinished.model_validate(e["detail"]) for e in self.events()]


def listen(cp) -> Heard:
    session, region = cp.aws.session, cp.settings.region
    sqs = session.client("sqs", region_name=region)
    url = sqs.create_queue(QueueName="run-ends")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    bus = cp.settings.event_bus or "default"
    pattern = {"source": [RUN_FINISHED_SOURCE], "detail-type": [RUN_FINISHED_DETAIL_TYPE]}
    cp.aws.events.put_rule(Name="hear-run-ends", EventBusName=bus, EventPattern=json.dumps(pattern))
    cp.aws.events.put_targets(Rule="hear-run-ends", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    return Heard(sqs, url)


def ended(status: str, name: str = "e1", stop: int = T0 + 9000, **kwargs: Any) -> dict[str, Any]:
    if status in ("FAILED", "TIMED_OUT", "ABORTED"):
        kwargs.setdefault("error", "States.TaskFailed" if status == "FAILED" else f"States.{status}")
        kwargs.setdefault("cause", "the job failed")
    return execution_detail(FLOW, name, status, T0, stop, {"alpha": 0.5}, **kwargs)


def test_a_runs_end_is_announced_in_the_contracts_shape(deployed):
    cp = deployed
    deliver(cp.client, execution_event(execution_detail(FLOW, "e1", "RUNNING", T0, parameters={"alpha": 0.5})))
    assert cp.heard.events() == []
    deliver(cp.client, execution_event(ended("SUCCEEDED")))
    (event,) = cp.heard.events()
    assert event["source"] == RUN_FINISHED_SOURCE and event["detail-type"] == RUN_FINISHED_DETAIL_TYPE
    assert event["resources"] == [execution_arn(FLOW, "e1")]
    finished = RunFinished.model_validate(event["detail"])
    assert finished == RunFinished(
        flow=FLOW, run_id="sfn-e1", status="SUCCEEDED", namespace=f"production:{cp.token}", deployment=FLOW,
        started_at=iso(T0), finished_at=iso(T0 + 9000), stage=STAGE,
    )
    assert finished.trigger_id == f"run:{FLOW}/sfn-e1"
    # The run it announces is the one the Client API reads.
    run = cp.get(f"/flows/{FLOW}/runs/sfn-e1").json_body
    assert run["status"] == "succeeded" and f"production:{cp.token}" in run["system_tags"]


@pytest.mark.parametrize("status", ["FAILED", "TIMED_OUT", "ABORTED"])
def test_every_terminal_status_is_announced(deployed, status):
    deliver(deployed.client, execution_event(ended(status)))
    assert [(f.run_id, f.status) for f in deployed.heard.details()] == [("sfn-e1", status)]


def test_a_running_run_is_not_announced(deployed):
    cp = deployed
    for _ in range(2):
        deliver(cp.client, execution_event(execution_detail(FLOW, "e1", "RUNNING", T0)))
    assert cp.heard.events() == []


def test_one_announcement_per_status_event_and_none_for_a_late_running_one(deployed):
    cp = deployed
    event = execution_event(ended("SUCCEEDED"))
    deliver(cp.client, event)
    assert len(cp.heard.events()) == 1
    # A second delivery of the same event announces again (the recorder cannot tell it from a
    # retry after a failed announcement); it names the same run, so a subscriber dedupes it.
    deliver(cp.client, event)
    again = cp.heard.details()
    assert [f.trigger_id for f in again] == [f"run:{FLOW}/sfn-e1"]
    deliver(cp.client, execution_event(execution_detail(FLOW, "e1", "RUNNING", T0)))
    assert cp.heard.events() == []


@pytest.mark.parametrize("redrive_ends", ["SUCCEEDED", "FAILED"])
def test_a_stale_event_of_a_redriven_executions_first_try_is_not_announced(deployed, redrive_ends):
    cp = deployed
    deliver(cp.client, execution_event(ended(redrive_ends, stop=T0 + 90, redrive_count=1)))
    assert [f.status for f in cp.heard.details()] == [redrive_ends]
    # The first try's end, arriving late: the run is the redrive's, and nothing is announced.
    deliver(cp.client, execution_event(ended("FAILED", stop=T0 + 5)))
    assert cp.heard.events() == []
    assert cp.get(f"/flows/{FLOW}/runs/sfn-e1").json_body["finished_at"] == iso(T0 + 90)


def test_another_stages_execution_is_neither_recorded_nor_announced(deployed):
    cp = deployed
    detail = ended("SUCCEEDED")
    for key in ("executionArn", "stateMachineArn"):
        detail[key] = detail[key].replace(f":{STAGE}-", ":flowplane-prod-")
    outcome = deliver(cp.client, execution_event(detail))
    assert outcome["recorded"] is False and "another stage records it" in outcome["reason"]
    assert cp.heard.events() == []


class RefusingBus:
    """EventBridge answering PutEvents with a failed entry (throttled), then recovering."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.refuse = True

    def put_events(self, **kwargs: Any) -> dict[str, Any]:
        if self.refuse:
            return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "ThrottlingException", "ErrorMessage": "slow down"}]}
        return self.real.put_events(**kwargs)


def test_a_failed_announcement_keeps_the_record_and_raises_so_the_retry_announces(deployed, monkeypatch, capsys):
    cp = deployed
    announcer = recorder_for(http.aws()).announcer
    bus = RefusingBus(announcer.client)
    monkeypatch.setattr(announcer, "client", bus)
    event = execution_event(ended("SUCCEEDED"))
    with pytest.raises(AnnouncementFailed, match="ThrottlingException: slow down"):
        deliver(cp.client, event)
    assert "run end not announced" in capsys.readouterr().out
    assert cp.get(f"/flows/{FLOW}/runs/sfn-e1").json_body["status"] == "succeeded"
    assert cp.heard.events() == []
    # EventBridge retries the event: the record is unchanged, the end announced.
    bus.refuse = False
    assert deliver(cp.client, event)["changed"] is False
    assert [f.status for f in cp.heard.details()] == ["SUCCEEDED"]


class _Failing:
    def put_events(self, **kwargs: Any) -> dict[str, Any]:
        raise RuntimeError("no bus")


@pytest.mark.parametrize("control_plane", [{"execute": False}], indirect=True)  # runs stay RUNNING until stopped
def test_the_reconciler_announces_the_ends_it_repairs_and_lists_those_it_could_not(deployed, monkeypatch):
    cp = deployed
    first, second = (cp.post_json(f"/flows/{FLOW}/runs", {}).json_body for _ in range(2))
    # Each run ends and its status change is lost: only the reconciler learns of it.
    cp.aws.state_machines.stop(first["execution_arn"], "stopped from the console")
    report = reconcile(http.aws())
    assert report["repaired"] == [f"{FLOW}/{first['run_id']}"] and report["unannounced"] == []
    assert [(f.run_id, f.status, f.stage) for f in cp.heard.details()] == [(first["run_id"], "ABORTED", STAGE)]
    # EventBridge down: the repair is still recorded, the pass goes on, the run is listed.
    monkeypatch.setattr(recorder_for(http.aws()).announcer, "client", _Failing())
    cp.aws.state_machines.stop(second["execution_arn"], "stopped from the console")
    report = reconcile(http.aws())
    assert report["repaired"] == report["unannounced"] == [f"{FLOW}/{second['run_id']}"]
    assert cp.get(f"/flows/{FLOW}/runs/{second['run_id']}").json_body["production_status"] == "ABORTED"


def test_a_foreach_items_child_execution_is_neither_recorded_nor_announced(deployed):
    """On AWS a Distributed Map's children emit their own status events; the run is the parent."""
    cp = deployed
    detail = ended("FAILED")
    machine = detail["stateMachineArn"]
    detail["stateMachineArn"] = f"{machine}/start-foreach"
    detail["executionArn"] = machine.replace(":stateMachine:", ":execution:") + "/start-foreach:1f0e2d3c"
    detail["name"] = "1f0e2d3c"
    outcome = deliver(cp.client, execution_event(detail))
    assert outcome["recorded"] is False and "is a foreach item, not a run" in outcome["reason"]
    assert cp.heard.events() == []
    assert cp.get(f"/flows/{FLOW}/runs/sfn-1f0e2d3c").status_code == 404


# --- a foreach item failing the run through its Distributed Map -------------------------------

THRESHOLD = "States.ExceedToleratedFailureThreshold"


def _item_failed(cp, task_id: str, retry: int, status: str = "FAILED", stage: str = STAGE) -> None:
    from tests.support.recording_events import job_detail, job_event

    detail = job_detail(FLOW, "sfn-e1", "square", task_id, retry, status, f"job-{task_id}-{retry}",
                        created=T0 + 100, started=T0 + 200, stopped=T0 + 300,
                        exit_code=1 if status == "FAILED" else 0, stage=stage)
    deliver(cp.client, job_event(detail))


def _map_failed(cp) -> None:
    cause = "The specified tolerated failure threshold was exceeded: 1 of 20 items failed"
    deliver(cp.client, execution_event(ended("FAILED", error=THRESHOLD, cause=cause)))


@pytest.mark.parametrize("order", ["task first", "run first"])
def test_a_run_failed_by_a_foreach_item_names_that_task_whichever_event_comes_first(deployed, order):
    cp = deployed
    _item_failed(cp, "1.2", retry=0, status="SUCCEEDED")
    steps = [lambda: _item_failed(cp, "1.7", retry=0), lambda: _map_failed(cp)]
    for step in (steps if order == "task first" else reversed(steps)):
        step()
    run = cp.get(f"/flows/{FLOW}/runs/sfn-e1").json_body
    assert run["status"] == "failed" and run["failed_task"] == f"{FLOW}/sfn-e1/square/1.7"
    assert THRESHOLD in json.dumps(run["error"])


def test_a_foreach_item_that_failed_then_succeeded_on_retry_is_not_named(deployed):
    cp = deployed
    _item_failed(cp, "1.3", retry=0)
    _item_failed(cp, "1.3", retry=1, status="SUCCEEDED")
    _map_failed(cp)
    assert cp.get(f"/flows/{FLOW}/runs/sfn-e1").json_body.get("failed_task") is None
    # The item that did fail for good, arriving late, is named.
    _item_failed(cp, "1.11", retry=0)
    assert cp.get(f"/flows/{FLOW}/runs/sfn-e1").json_body["failed_task"] == f"{FLOW}/sfn-e1/square/1.11"


def test_a_failed_item_of_a_run_that_goes_on_names_nothing(deployed):
    cp = deployed
    deliver(cp.client, execution_event(execution_detail(FLOW, "e1", "RUNNING", T0)))
    _item_failed(cp, "1.4", retry=0)
    run = cp.get(f"/flows/{FLOW}/runs/sfn-e1").json_body
    assert run["status"] == "running" and run.get("failed_task") is None
