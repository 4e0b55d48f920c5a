"""moto patch 21: SendMessage no longer counts the queue's messages, and a queue's attributes read
through the patch are moto's own, names, order and values."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from flowplane.local.moto_patches import install_sqs_attributes_fix

pytestmark = pytest.mark.aws

QUEUES = {
    "plain": {"VisibilityTimeout": "30"},
    "fifo.fifo": {"FifoQueue": "true", "ContentBasedDeduplication": "true"},
    "fifo-explicit.fifo": {"FifoQueue": "true"},
    "kms": {"KmsMasterKeyId": "alias/aws/sqs"},
    "policy": {"Policy": json.dumps({"Version": "2012-10-17", "Statement": []})},
}


def _world(sqs) -> dict[str, dict]:
    urls = {name: sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"] for name, attrs in QUEUES.items()}
    dlq = sqs.get_queue_attributes(QueueUrl=urls["plain"], AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.set_queue_attributes(QueueUrl=urls["kms"], Attributes={
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq, "maxReceiveCount": 3})})
    for _ in range(3):
        sqs.send_message(QueueUrl=urls["plain"], MessageBody="x")
    sqs.send_message(QueueUrl=urls["fifo.fifo"], MessageBody="y", MessageGroupId="g")
    sqs.receive_message(QueueUrl=urls["plain"], MaxNumberOfMessages=1)
    return urls


def _all(sqs, urls: dict[str, str]) -> dict[str, dict]:
    out = {}
    for name, url in urls.items():
        attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        # Times differ between the two worlds; what the attributes are, and their values, must not.
        out[name] = {k: v for k, v in attrs.items() if k not in ("CreatedTimestamp", "LastModifiedTimestamp")}
        out[name]["names"] = list(attrs)
    return out


def test_every_queue_shows_the_same_attributes_as_without_the_patch():
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        before = _all(sqs, _world(sqs))
    undo = install_sqs_attributes_fix()
    try:
        with mock_aws():
            sqs = boto3.client("sqs", region_name="us-east-1")
            urls = _world(sqs)
            after = _all(sqs, urls)
            one = sqs.get_queue_attributes(QueueUrl=urls["plain"],
                                           AttributeNames=["ApproximateNumberOfMessages", "QueueArn"])["Attributes"]
            # A FIFO queue without content-based deduplication still wants a deduplication id.
            with pytest.raises(sqs.exceptions.ClientError) as missing:
                sqs.send_message(QueueUrl=urls["fifo-explicit.fifo"], MessageBody="z", MessageGroupId="g")
    finally:
        undo()
    assert after == before
    assert one == {"ApproximateNumberOfMessages": "2", "QueueArn": before["plain"]["QueueArn"]}
    assert "MessageDeduplicationId" in str(missing.value) or "ContentBasedDeduplication" in str(missing.value)


def test_a_send_does_not_walk_the_queues_messages():
    from moto.sqs.models import Queue

    undo = install_sqs_attributes_fix()
    try:
        with mock_aws():
            sqs = boto3.client("sqs", region_name="us-east-1")
            url = sqs.create_queue(QueueName="deep")["QueueUrl"]
            sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": str(i), "MessageBody": "m"} for i in range(10)])
            walked = []
            original = Queue.messages
            Queue.messages = property(lambda q: walked.append(q.name) or original.fget(q))
            try:
                sqs.send_message(QueueUrl=url, MessageBody="one more")
            finally:
                Queue.messages = original
            assert walked == []
            assert sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
                "Attributes"]["ApproximateNumberOfMessages"] == "11"
    finally:
        undo()
    assert isinstance(Queue.__dict__["attributes"], property)
