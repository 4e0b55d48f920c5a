"""The Client API over an S3 datastore (moto): same layout, same answers as a local folder."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from flowplane import Flow, Metaflow, Run, Step, Task, namespace
from flowplane.client import NamespaceMismatch, NotFound, get_metadata
from flowplane.datastore.storage import S3Storage
from tests.support.run_layouts import build_world, isolate_client

pytestmark = pytest.mark.aws


@pytest.fixture()
def s3(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("FLOWPLANE_S3_ENDPOINT_URL", raising=False)
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="flowplane-data")
        yield


@pytest.mark.parametrize("root", ["s3://flowplane-data/datastore", "s3://flowplane-data"])
def test_runs_in_s3_read_like_local_ones(s3, monkeypatch, root):
    build_world(S3Storage(root))
    isolate_client(monkeypatch, root)
    assert get_metadata() == f"s3@{root}"
    assert [f.id for f in Metaflow()] == ["BranchFlow", "CatchFlow", "ForeachFlow", "ParameterFlow", "RetryFlow",
                                          "TrainFlow"]
    assert [r.id for r in Flow("ParameterFlow")] == ["7001", "1002", "1001"]
    assert Flow("ParameterFlow").latest_successful_run.data.alpha == 0.5
    assert "alpha is 0.010000" in Run("ParameterFlow/1001")["start"].task.stdout
    assert Run("BranchFlow/2001")["join"].task.data.total == 5
    assert [s.id for s in Run("BranchFlow/2001")] == ["end", "join", "b", "a", "start"]
    square = Step("ForeachFlow/3001/square")
    assert len(list(square)) == 10
    assert sum(t.data.value for t in square) == 285
    assert Task("TrainFlow/4001/train/1").exception.type == "ValueError"
    assert Task("RetryFlow/6001/flaky/1", attempt=0).stdout == "try 1\n"
    assert Task("ParameterFlow/1001/start/1").metadata_dict["ds-type"] == "s3"


def test_errors_over_s3(s3, monkeypatch):
    root = "s3://flowplane-data/ds"
    build_world(S3Storage(root))
    isolate_client(monkeypatch, root)
    with pytest.raises(NotFound, match=r"Run\('ParameterFlow/424242'\) does not exist"):
        Run("ParameterFlow/424242")
    with pytest.raises(NamespaceMismatch):
        Run("ParameterFlow/1003")
    namespace("production:tok1")
    assert Flow("ParameterFlow").latest_run.id == "sfn-abc"
