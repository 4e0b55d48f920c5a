"""Create a stage's stateful resources: the bucket, the table, the foreach and join-inputs tables.

On AWS these come from the stack (see chalicelib/TABLE.md for the key schema);
the embedded local mode and the tests create them in moto with this, so both
get the same shapes: the bucket sends its events to EventBridge, the table has
string PK/SK, the foreach table is keyed by `pathspec` with a TTL, the join-inputs table
by `join` and `index` (flowplane/join_inputs.py) with a TTL.
"""

from __future__ import annotations

from flowplane import join_inputs
from flowplane.foreach_cardinality import KEY_ATTR, TTL_ATTR

from .aws import Aws, client_error, error_code

# Run records' sparse indexes (chalicelib/TABLE.md): runs of a flow by time, and by status.
RUN_INDEX_ATTRIBUTES = ("GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK")
RUN_INDEXES = tuple(
    {
        "IndexName": name,
        "KeySchema": [{"AttributeName": f"{name}PK", "KeyType": "HASH"}, {"AttributeName": f"{name}SK", "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "ALL"},
    }
    for name in ("GSI1", "GSI2")
)


def ensure_resources(aws: Aws) -> None:
    s = aws.settings
    s3 = aws.packages.client
    try:
        if s.region == "us-east-1":
            s3.create_bucket(Bucket=s.bucket)
        else:
            s3.create_bucket(Bucket=s.bucket, CreateBucketConfiguration={"LocationConstraint": s.region})
    except client_error() as e:
        if error_code(e) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    # The compile Lambda hears about packages through EventBridge, not S3 notifications.
    s3.put_bucket_notification_configuration(
        Bucket=s.bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    ddb = aws.session.client("dynamodb", region_name=s.region)
    if _table(
        ddb,
        s.table,
        [{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        [{"AttributeName": a, "AttributeType": "S"} for a in ("PK", "SK", *RUN_INDEX_ATTRIBUTES)],
        RUN_INDEXES,
    ):
        # Transient items (the reconciler's lease) expire by themselves.
        ddb.update_time_to_live(TableName=s.table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})
    assert s.foreach_table is not None
    if _table(
        ddb,
        s.foreach_table,
        [{"AttributeName": KEY_ATTR, "KeyType": "HASH"}],
        [{"AttributeName": KEY_ATTR, "AttributeType": "S"}],
    ):
        ddb.update_time_to_live(
            TableName=s.foreach_table, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTR}
        )
    assert s.join_inputs_table is not None
    if _table(
        ddb,
        s.join_inputs_table,
        list(join_inputs.KEY_SCHEMA),
        list(join_inputs.ATTRIBUTE_DEFINITIONS),
    ):
        ddb.update_time_to_live(
            TableName=s.join_inputs_table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": join_inputs.TTL_ATTR},
        )


def _table(ddb, name: str, keys: list, attributes: list, indexes: tuple = ()) -> bool:  # type: ignore[no-untyped-def]
    try:
        extra = {"GlobalSecondaryIndexes": list(indexes)} if indexes else {}
        ddb.create_table(
            TableName=name, KeySchema=keys, AttributeDefinitions=attributes, BillingMode="PAY_PER_REQUEST", **extra
        )
        ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
        return True
    except client_error() as e:
        if error_code(e) == "ResourceInUseException":
            return False
        raise
