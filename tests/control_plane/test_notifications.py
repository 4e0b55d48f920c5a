"""Run-end notifications: set with a deploy's authorization, the webhook kept as a secret and
never read back, delivered once per run end from the recorder's announcement, a failing
destination retried a little, logged and counted, never raised."""

from __future__ import annotations

import json

import pytest

from chalicelib.notifications import deliver
from flowplane.trigger_events import RunFinished
from tests.support.webhook_receiver import webhook_receiver

pytestmark = pytest.mark.aws

SNS_TOPIC = "arn:aws:sns:us-east-1:123456789012:flow-alerts"


def _put(cp, body):
    return cp.client.http.put("/flows/ParameterFlow/notifications", headers={"content-type": "application/json"},
                              body=json.dumps({"user": "alice", **body}))


def _finished(cp, status="FAILED", run_id="sfn-r1") -> dict:
    token = cp.get("/deployments?flow=ParameterFlow").json_body["flow"]["production_token"]
    return RunFinished(flow="ParameterFlow", run_id=run_id, status=status, namespace=f"production:{token}",
                       deployment="ParameterFlow", stage="flowplane-local").model_dump(mode="json")


def _notify(cp, detail):
    event = {"version": "0", "id": "n-1", "detail-type": "Flowplane Run Finished", "source": "flowplane.run",
             "account": "123456789012", "time": "2026-11-24T10:00:00Z", "region": "us-east-1",
             "resources": [], "detail": detail}
    return cp.client.lambda_.invoke("notify", event).payload


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setattr(deliver, "BACKOFF_SECONDS", 0.01)
    monkeypatch.setattr(deliver, "FAILED_TASK_WAIT_SECONDS", 0.01)


def test_the_webhook_is_a_secret_no_read_route_returns(control_plane):
    cp = control_plane
    cp.deploy("parameter_flow.py")
    with webhook_receiver() as hook:
        r = _put(cp, {"on_error": True, "slack_webhook_url": hook.url, "sns_topic": SNS_TOPIC})
        assert r.status_code == 200, r.json_body
        secret = cp.aws.secrets.get_secret_value(SecretId="flowplane-local-notify/ParameterFlow")["SecretString"]
        assert secret == hook.url
        for path in ("/flows/ParameterFlow/notifications", "/deployments?flow=ParameterFlow", "/flows/ParameterFlow",
                     "/flows"):
            answer = cp.get(path)
            assert answer.status_code == 200 and "secret-token" not in json.dumps(answer.json_body), path
        assert r.json_body["slack_webhook"].startswith("configured") and "secret-token" not in json.dumps(r.json_body)
        assert cp.get("/flows/ParameterFlow/notifications").json_body["sns_topic"] == SNS_TOPIC


def test_bad_settings_are_refused_and_change_nothing(control_plane):
    cp = control_plane
    cp.deploy("parameter_flow.py")
    cases = [
        ({"on_error": True}, 400, "slack_webhook_url"),
        ({"slack_webhook_url": "https://hooks.slack.com/services/x"}, 400, "on_error"),
        ({"on_error": True, "slack_webhook_url": "http://hooks.example.com/x"}, 400, "slack_webhook_url"),
        ({"on_error": True, "slack_webhook_url": "ftp://127.0.0.1/x"}, 400, "slack_webhook_url"),
        ({"on_error": True, "sns_topic": "arn:aws:sqs:us-east-1:123456789012:q"}, 400, "sns_topic"),
        ({"on_error": "yes", "sns_topic": SNS_TOPIC}, 400, "on_error"),
        ({"on_error": True, "sns_topic": SNS_TOPIC, "user": "mallory"}, 403, "authorize"),
    ]
    for body, status, field in cases:
        r = _put(cp, body)
        assert r.status_code == status and r.json_body["field"] == field, (body, r.json_body)
        assert "hooks.example.com" not in json.dumps(r.json_body)
    r = cp.client.http.put("/flows/NoSuchFlow/notifications", headers={"content-type": "application/json"},
                           body=json.dumps({"user": "alice", "on_error": True, "sns_topic": SNS_TOPIC}))
    assert r.status_code == 404
    assert cp.get("/flows/ParameterFlow/notifications").json_body == {
        "flow": "ParameterFlow", "on_error": False, "on_success": False, "slack_webhook": None, "sns_topic": None}


def test_a_failed_run_is_notified_once_with_what_to_look_at(control_plane):
    cp = control_plane
    cp.deploy("parameter_flow.py")
    with webhook_receiver() as hook:
        assert _put(cp, {"on_error": True, "slack_webhook_url": hook.url}).status_code == 200
        first = _notify(cp, _finished(cp))
        assert first["sent"] == ["slack"] and first["problems"] == []
        # The recorder announces a run's end at least once: a repeat sends nothing.
        assert _notify(cp, _finished(cp))["reason"] == "notified already"
        # Not asked for: a success; another stage's run.
        assert _notify(cp, _finished(cp, "SUCCEEDED", "sfn-r2"))["sent"] == []
        assert _notify(cp, {**_finished(cp, run_id="sfn-r3"), "stage": "flowplane-prod"})["sent"] == []
        [message] = hook.received
    text = message["text"]
    assert "ParameterFlow run sfn-r1 FAILED" in text and "production:" in text
    assert "Flow('ParameterFlow')['sfn-r1']" in text and ".stderr" in text and "python flow.py logs sfn-r1/" in text


def test_the_message_names_the_failed_step_task_and_error():
    finished = RunFinished(flow="F", run_id="sfn-x", status="FAILED", namespace="production:t", deployment="F")
    run = {"failed_task": "F/sfn-x/train/1.0.3", "error": {"type": "ValueError", "message": "bad input"}}
    subject, text = deliver.message(finished, run)
    assert subject == "FAILED: F run sfn-x"
    assert "Failed step: train, task 1.0.3." in text and "Error: ValueError: bad input" in text
    assert "Flow('F')['sfn-x']['train'].task.stderr" in text and "python flow.py logs sfn-x/train" in text


def test_a_failing_webhook_is_tried_a_few_times_then_logged_and_counted_never_raised(control_plane, caplog):
    cp = control_plane
    cp.deploy("parameter_flow.py")
    with webhook_receiver(status=500) as hook:
        assert _put(cp, {"on_error": True, "on_success": True, "slack_webhook_url": hook.url}).status_code == 200
        answer = _notify(cp, _finished(cp, "SUCCEEDED"))
        assert answer["sent"] == [] and "HTTP Error 500" in answer["problems"][0]
        assert len(hook.received) == deliver.ATTEMPTS
    assert "not delivered" in caplog.text and "secret-token" not in caplog.text
    item = cp.aws.table.get("FLOW#ParameterFlow", "NOTIFIED#sfn-r1")
    assert item["outcome"] == "failed"
    # Not retried forever: the same run end again sends nothing.
    assert _notify(cp, _finished(cp, "SUCCEEDED"))["reason"] == "notified already"


def test_sns_gets_the_message(control_plane):
    cp = control_plane
    cp.deploy("parameter_flow.py")
    sns = cp.aws.sns
    topic = sns.create_topic(Name="flow-alerts")["TopicArn"]
    sqs = cp.aws.session.client("sqs", region_name="us-east-1")
    queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    assert _put(cp, {"on_error": True, "sns_topic": topic}).status_code == 200
    assert _notify(cp, _finished(cp))["sent"] == ["sns"]
    [m] = sqs.receive_message(QueueUrl=queue)["Messages"]
    body = json.loads(m["Body"])
    assert body["Subject"] == "FAILED: ParameterFlow run sfn-r1" and "sfn-r1 FAILED" in body["Message"]


def test_delete_forgets_the_notifications_and_the_secret(control_plane):
    cp = control_plane
    cp.deploy("parameter_flow.py")
    assert _put(cp, {"on_error": True, "slack_webhook_url": "https://hooks.slack.com/services/a/b/c"}).status_code == 200
    r = cp.client.http.delete("/flows/ParameterFlow", headers={"content-type": "application/json"}, body='{"user": "alice"}')
    assert r.status_code == 200
    with pytest.raises(Exception, match="ResourceNotFound"):
        cp.aws.secrets.get_secret_value(SecretId="flowplane-local-notify/ParameterFlow")
    assert _notify(cp, _finished(cp))["sent"] == []
