"""Production environments shared through the stack's bucket (flowplane/environments/bucket.py):
unpacked when an archive is there, built once under a claim otherwise, a dead builder's claim
taken over, a live one waited for, and a damaged archive a clear failure. The lock names no
package, so building fetches nothing from an index."""

from __future__ import annotations

import io
import json
import sys
import time

import boto3
import pytest
from moto import mock_aws

from flowplane.environments import bucket, cache
from flowplane.manifest import LockedEnvironment

pytestmark = pytest.mark.aws

BUCKET = "fp-environments"
ENV = LockedEnvironment(python="%d.%d" % sys.version_info[:2], lock="# no packages\n")


@pytest.fixture
def s3(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENVS_DIR_ENV, str(tmp_path / "envs"))
    monkeypatch.setenv("UV_OFFLINE", "1")
    for var, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client


def _keys(s3) -> set[str]:
    return {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])}


def test_the_first_task_builds_and_stores_the_archive_the_next_unpacks_it(s3, tmp_path, monkeypatch):
    said: list[str] = []
    path = bucket.fetch_or_build(s3, BUCKET, ENV.id, ENV, say=said.append)
    assert cache.ready_path(ENV.id) == path
    assert _keys(s3) == {bucket.archive_key(ENV.id)}  # the claim is released
    assert said[0].startswith(f"Building environment {ENV.id[:12]}") and "stored at s3://" in said[-1]
    # Another machine (an empty environments folder) unpacks it rather than building.
    monkeypatch.setenv(cache.ENVS_DIR_ENV, str(tmp_path / "elsewhere"))
    monkeypatch.setenv("FLOWPLANE_UV", "/bin/false")  # no uv: nothing may be built
    said.clear()
    again = bucket.fetch_or_build(s3, BUCKET, ENV.id, ENV, say=said.append)
    assert again.startswith(str(tmp_path / "elsewhere")) and said == [
        f"Environment {ENV.id[:12]} unpacked from s3://{BUCKET}/{bucket.archive_key(ENV.id)}."
    ]


def test_a_live_builders_claim_is_waited_for(s3, monkeypatch):
    monkeypatch.setattr(bucket, "POLL_SECONDS", 0.01)
    s3.put_object(Bucket=BUCKET, Key=bucket.claim_key(ENV.id), Body=json.dumps({"claimed_at": time.time()}))
    said: list[str] = []
    with pytest.raises(bucket.EnvironmentFetchError, match="no archive at s3://.* after 0.2 s while another task builds it"):
        bucket.fetch_or_build(s3, BUCKET, ENV.id, ENV, say=said.append, wait_seconds=0.2)
    assert said == [f"Environment {ENV.id[:12]} is being built by another task; waiting for its archive."]
    assert cache.ready_path(ENV.id) is None


def test_a_dead_builders_claim_is_taken_over(s3):
    stale = time.time() - bucket.STALE_SECONDS - 1
    s3.put_object(Bucket=BUCKET, Key=bucket.claim_key(ENV.id), Body=json.dumps({"claimed_at": stale}))
    path = bucket.fetch_or_build(s3, BUCKET, ENV.id, ENV, say=lambda m: None, wait_seconds=5)
    assert cache.ready_path(ENV.id) == path
    assert _keys(s3) == {bucket.archive_key(ENV.id)}


def test_a_damaged_archive_fails_saying_where_and_builds_nothing(s3):
    s3.put_object(Bucket=BUCKET, Key=bucket.archive_key(ENV.id), Body=io.BytesIO(b"not a tar.gz"))
    with pytest.raises(bucket.EnvironmentFetchError, match=f"cannot unpack s3://{BUCKET}/environments/{ENV.id}/"):
        bucket.fetch_or_build(s3, BUCKET, ENV.id, ENV, say=lambda m: None)
    assert cache.ready_path(ENV.id) is None
    assert _keys(s3) == {bucket.archive_key(ENV.id)}
