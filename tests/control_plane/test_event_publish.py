"""POST /events puts an event on the stack's bus in the documented shape; bad events change nothing."""

from __future__ import annotations

import json

import pytest

from flowplane.event_cli import build_parser
from flowplane.integrations import ArgoEvent, Event
from flowplane.trigger_events import EVENT_SOURCE, MAX_PAYLOAD_BYTES, PublishedEvent

pytestmark = pytest.mark.aws

def _listen(control_plane) -> tuple[object, str]:
    """An SQS queue that hears every published event on the stage's bus."""
    session, region = control_plane.aws.session, control_plane.settings.region
    sqs = session.client("sqs", region_name=region)
    url = sqs.create_queue(QueueName="heard")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = control_plane.aws.events
    bus = control_plane.settings.event_bus or "default"
    events.put_rule(Name="hear-published", EventBusName=bus, EventPattern=json.dumps({"source": [EVENT_SOURCE]}))
    events.put_targets(Rule="hear-published", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    return sqs, url


def _heard(sqs, url) -> list[dict]:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_a_published_event_reaches_the_bus_as_the_contract_says(control_plane) -> None:
    sqs, url = _listen(control_plane)
    r = control_plane.post_json("/events", {"name": "data_updated", "payload": {"table": "sales", "rows": 3}})
    assert r.status_code == 202, r.json_body
    answer = r.json_body
    assert answer["name"] == "data_updated" and answer["id"] and isinstance(answer["timestamp"], int)
    (event,) = _heard(sqs, url)
    assert event["source"] == EVENT_SOURCE and event["detail-type"] == "data_updated"
    detail = PublishedEvent.model_validate(event["detail"])
    assert detail == PublishedEvent(name="data_updated", id=answer["id"], timestamp=answer["timestamp"],
                                    payload={"table": "sales", "rows": 3})


def test_a_given_id_is_kept(control_plane) -> None:
    sqs, url = _listen(control_plane)
    r = control_plane.post_json("/events", {"name": "nightly.done", "id": "batch-2026-12-07"})
    assert r.status_code == 202 and r.json_body["id"] == "batch-2026-12-07"
    assert _heard(sqs, url)[0]["detail"]["id"] == "batch-2026-12-07"


@pytest.mark.parametrize(
    "body, status, words",
    [
        ({"payload": {}}, 400, "name"),
        ({"name": "has space"}, 400, "should match pattern"),
        ({"name": "a", "payload": [1, 2]}, 400, "payload must be a JSON object"),
        ({"name": "a", "extra": 1}, 400, "unknown field(s) extra"),
        ({"name": "a", "payload": {"x": "y" * (MAX_PAYLOAD_BYTES + 1)}}, 413, "at most"),
        ([1], 400, "must be a JSON object"),
    ],
)
def test_bad_events_are_refused_and_nothing_is_published(control_plane, body, status, words) -> None:
    sqs, url = _listen(control_plane)
    r = control_plane.post_json("/events", body)
    assert r.status_code == status and words in r.json_body["error"], r.json_body
    assert _heard(sqs, url) == []


def test_the_sdk_event_is_metaflows_argo_event_shape(monkeypatch) -> None:
    sent = []

    class FakeClient:
        def publish_event(self, name, payload, event_id=None):
            sent.append((name, payload, event_id))
            return {"name": name, "id": event_id or "generated", "timestamp": 1}

    monkeypatch.setattr("flowplane.api_client.ApiClient", FakeClient)
    assert ArgoEvent is Event
    event = Event("data_updated", payload={"a": 1}).add_to_payload("b", 2)
    assert event.publish(payload={"c": 3}) == "generated"
    assert sent == [("data_updated", {"a": 1, "b": 2, "c": 3}, None)]
    assert Event("x", id="fixed").safe_publish() == "fixed"


def test_publish_errors_are_printed_unless_asked_to_raise(monkeypatch, capsys) -> None:
    class Broken:
        def publish_event(self, *a, **k):
            raise RuntimeError("no control plane")

    monkeypatch.setattr("flowplane.api_client.ApiClient", Broken)
    assert Event("x").publish() is None
    assert "Event 'x' was not published: no control plane" in capsys.readouterr().err
    with pytest.raises(RuntimeError):
        Event("x").publish(ignore_errors=False)


def test_the_cli_refuses_a_payload_that_is_not_an_object(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["publish", "a", "--payload", "[1]"])
    assert e.value.code == 2 and "must be a JSON object" in capsys.readouterr().err
