"""The foreach cardinality item: one key function for the task that writes it and the state that reads it."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from flowplane.foreach_cardinality import (
    CARDINALITY_ATTR,
    DEFAULT_TTL_DAYS,
    KEY_ATTR,
    NUM_SPLITS_ATTR,
    TTL_ATTR,
    cardinality_item,
    foreach_item_key,
    read_cardinality,
    record_cardinality,
)

pytestmark = pytest.mark.aws

TABLE = "flowplane-foreach"


@pytest.fixture
def ddb(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": KEY_ATTR, "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": KEY_ATTR, "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


def test_key_is_the_task_pathspec_with_the_flow():
    assert foreach_item_key("ForeachFlow", "sfn-abc", "start", "1.3") == "ForeachFlow/sfn-abc/start/1.3"


@pytest.mark.parametrize("part", ["", "a/b"])
def test_key_parts_must_be_non_empty_without_slashes(part):
    for args in [(part, "r", "s", "1"), ("F", part, "s", "1"), ("F", "r", part, "1"), ("F", "r", "s", part)]:
        with pytest.raises(ValueError, match="must be non-empty and contain no '/'"):
            foreach_item_key(*args)


def test_item_shape():
    item = cardinality_item("F", "sfn-r", "start", "1", 3, ttl_days=2, now=1_000_000)
    assert item == {
        KEY_ATTR: {"S": "F/sfn-r/start/1"},
        CARDINALITY_ATTR: {"NS": ["0", "1", "2"]},
        NUM_SPLITS_ATTR: {"N": "3"},
        TTL_ATTR: {"N": str(1_000_000 + 2 * 86400)},
    }
    assert DEFAULT_TTL_DAYS >= 365  # outlives the longest Step Functions execution


def test_record_then_read(ddb):
    item = record_cardinality(TABLE, "F", "sfn-r", "start", "1.0", 10, client=ddb)
    stored = ddb.get_item(TableName=TABLE, Key={KEY_ATTR: item[KEY_ATTR]})["Item"]
    assert sorted(int(i) for i in stored[CARDINALITY_ATTR]["NS"]) == list(range(10))
    assert read_cardinality(TABLE, "F", "sfn-r", "start", "1.0", client=ddb) == 10
    # A retried attempt writes the same key again.
    record_cardinality(TABLE, "F", "sfn-r", "start", "1.0", 4, client=ddb)
    assert read_cardinality(TABLE, "F", "sfn-r", "start", "1.0", client=ddb) == 4
    assert ddb.scan(TableName=TABLE)["Count"] == 1


def test_reading_a_missing_item_names_it(ddb):
    with pytest.raises(LookupError, match="F/sfn-r/start/1 in table flowplane-foreach"):
        read_cardinality(TABLE, "F", "sfn-r", "start", "1", client=ddb)


@pytest.mark.parametrize("n", [0, -1, True, 2.0, "3"])
def test_bad_split_counts_are_refused_and_nothing_is_written(ddb, n):
    with pytest.raises(ValueError, match="num_splits must be a positive integer"):
        record_cardinality(TABLE, "F", "sfn-r", "start", "1", n, client=ddb)
    assert ddb.scan(TableName=TABLE)["Count"] == 0


def test_bad_ttl_is_refused(ddb):
    with pytest.raises(ValueError, match="ttl_days must be positive"):
        record_cardinality(TABLE, "F", "sfn-r", "start", "1", 2, ttl_days=0, client=ddb)
    assert ddb.scan(TableName=TABLE)["Count"] == 0
