"""flowplane.task.aws: a task's AWS clients, from one botocore session, made on first use."""

from __future__ import annotations

import io

import boto3
import botocore.loaders
import pytest
from botocore.exceptions import UnknownServiceError
from moto import mock_aws

from flowplane.task import aws as task_aws
from flowplane.datastore.storage import S3Storage

pytestmark = pytest.mark.aws


@pytest.fixture()
def aws(monkeypatch):
    for var, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(var, value)
    for var in ("AWS_REGION", "AWS_ENDPOINT_URL", "FLOWPLANE_S3_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    task_aws.reset()
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="fp-task-aws")
        yield
    task_aws.reset()


def test_one_client_per_service_from_one_session(aws, monkeypatch):
    s3 = task_aws.s3()
    assert task_aws.s3() is s3 and task_aws.client("s3") is s3
    events = task_aws.client("events")
    assert events is task_aws.client("events") and events.meta.region_name == "us-east-1"
    session = task_aws.session()
    assert task_aws.session() is session
    # Another region is another client (a long-lived process, tests); a forked child starts afresh.
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert task_aws.client("events").meta.region_name == "eu-west-1"
    monkeypatch.setattr(task_aws.os, "getpid", lambda: -1)
    assert task_aws.session() is not session and task_aws.client("events") is not events


def test_small_streams_are_one_put_large_and_unsized_ones_go_multipart(aws, monkeypatch):
    import boto3.s3.inject

    storage = S3Storage("s3://fp-task-aws/root", client=task_aws.s3())
    transferred = []
    real_upload = boto3.s3.inject.upload_fileobj

    def spy(client, fileobj, bucket, key, **kw):
        transferred.append(key)
        return real_upload(client, fileobj, bucket, key, **kw)

    monkeypatch.setattr(boto3.s3.inject, "upload_fileobj", spy)
    storage.put_stream("small", io.BytesIO(b"x" * 100))
    assert transferred == [] and storage.get_bytes("small") == b"x" * 100
    # Past the threshold, or when the size is unknown, boto3's transfer manager uploads it.
    monkeypatch.setattr(task_aws, "SINGLE_PUT_BYTES", 10)
    storage.put_stream("large", io.BytesIO(b"y" * 100))

    class Unsized(io.RawIOBase):
        def __init__(self) -> None:
            self.left = b"z" * 50

        def readable(self) -> bool:
            return True

        def readinto(self, buf) -> int:
            n = min(len(buf), len(self.left))
            buf[:n], self.left = self.left[:n], self.left[n:]
            return n

    monkeypatch.setattr(task_aws, "SINGLE_PUT_BYTES", 1 << 20)
    storage.put_stream("unsized", Unsized())
    assert transferred == ["root/large", "root/unsized"]
    assert storage.get_bytes("large") == b"y" * 100 and storage.get_bytes("unsized") == b"z" * 50
    # The rest of botocore's client is there as it is.
    assert storage.list_dir("") == ["large", "small", "unsized"] and not storage.exists("nothing")


def test_the_loader_checks_one_service_folder_and_still_refuses_unknown_ones(aws):
    loader = task_aws.session().get_component("data_loader")
    services = loader.list_available_services("service-2")
    assert "s3" in services and "events" in services and "no-such-service" not in services and 3 not in services
    # Listed in full only when someone iterates: the same list botocore gives.
    assert list(services) == botocore.loaders.Loader().list_available_services("service-2")
    assert len(services) > 100
    with pytest.raises(UnknownServiceError, match="Unknown service: 'no-such-service'. Valid service names are: acc"):
        task_aws.client("no-such-service")
