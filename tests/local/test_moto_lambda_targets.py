"""moto patch 15: a rule's Lambda target gets the event through its InputTransformer."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from flowplane.local.moto_patches import install_lambda_targets, moto_events_fix

pytestmark = pytest.mark.aws

FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:flowplane-local-launch"


def test_matching_events_reach_lambda_targets_transformed_and_other_targets_as_before(monkeypatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    delivered: list[tuple[str, dict]] = []
    with mock_aws(), moto_events_fix():
        undo = install_lambda_targets(lambda arn, payload: delivered.append((arn, payload)))
        try:
            events, sqs = boto3.client("events"), boto3.client("sqs")
            url = sqs.create_queue(QueueName="q")["QueueUrl"]
            queue = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
            events.put_rule(Name="r", EventPattern=json.dumps({"source": ["flowplane.event"], "detail-type": ["go"]}))
            transformer = {"InputPathsMap": {"detail": "$.detail", "id": "$.id"},
                           "InputTemplate": '{"flow": "F", "event": {"id": "<id>", "detail": <detail>}}'}
            events.put_targets(Rule="r", Targets=[{"Id": "fn", "Arn": FUNCTION, "InputTransformer": transformer},
                                                  {"Id": "q", "Arn": queue}])
            entry = {"Source": "flowplane.event", "Detail": json.dumps({"payload": {"a": 1}})}
            answer = events.put_events(Entries=[{**entry, "DetailType": "go"}, {**entry, "DetailType": "other"}])
            assert answer["FailedEntryCount"] == 0
            ((arn, payload),) = delivered
            assert arn == FUNCTION
            assert payload["flow"] == "F" and payload["event"]["detail"] == {"payload": {"a": 1}}
            assert payload["event"]["id"] == answer["Entries"][0]["EventId"]
            (message,) = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
            assert json.loads(message["Body"])["detail-type"] == "go"
        finally:
            undo()
