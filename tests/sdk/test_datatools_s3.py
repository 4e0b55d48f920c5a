"""`S3` (Metaflow's `metaflow.S3`): run-scoped objects in the run's datastore, locally
without AWS and in an S3 datastore (moto), read back later through `S3(run=Run(...))`;
every bad input refused with a clear error before anything is written."""

from __future__ import annotations

import io
import os

import boto3
import pytest
from moto import mock_aws

from flowplane import S3, FlowSpec, Run
from flowplane.datatools.objects import (MetaflowS3InvalidObject, MetaflowS3NotFound, MetaflowS3URLException,
                                         S3Object)
from flowplane.datatools.s3 import S3PutObject
from tests.support.feature_flows import S3_FLOW as FLOW
from tests.support.local_runs import run_cli, write_flow
from tests.support.run_layouts import isolate_client

pytestmark = pytest.mark.aws

def test_a_local_run_puts_and_gets_its_objects_and_a_client_run_reads_them(tmp_path, monkeypatch):
    path = write_flow(tmp_path, "s3_flow", FLOW)
    root = tmp_path / "ds"
    proc = run_cli(path, root, tmp_path, "run")
    assert proc.returncode == 0, proc.stderr
    isolate_client(monkeypatch, str(root), user="tester")  # the user run_cli runs as
    run = Run(f"S3Flow/{next(iter(os.listdir(root / 'S3Flow' / 'runs')))}")
    end = run["end"].task.data
    assert end.text == "alpha"
    assert end.many == [str(i) for i in range(20)]
    assert end.listed == [("many", False), ("models", False)]
    assert end.info == (2, "application/octet-stream", {"v": 2})
    assert end.missing is False
    # The objects live in the run's datastore, beside its artifacts, and outlive the run.
    assert run["start"].task.data.url.startswith(f"file://{root}/S3Flow/datatools/{run.id}/")
    with S3(run=run, tmproot=str(tmp_path)) as s3:
        got = s3.get_all()
        assert len(got) == 22 and all(o.path.startswith(str(tmp_path)) for o in got)
        obj = s3.get("models/b.bin")
        assert (obj.key, obj.blob, obj.size, obj.exists, obj.downloaded) == ("models/b.bin", b"\x00\x01", 2, True, True)
        assert [o.key for o in s3.list_recursive(["models"])] == ["models/a.txt", "models/b.bin"]
        tmp = obj.path
    assert not os.path.exists(tmp)  # downloads go when the scope closes


@pytest.fixture()
def bucket(monkeypatch):
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("FLOWPLANE_S3_ENDPOINT_URL", raising=False)
    with mock_aws():
        boto3.client("s3").create_bucket(Bucket="fp-data")
        yield "fp-data"


def test_an_s3root_puts_gets_lists_and_describes_objects(bucket, tmp_path):
    src = tmp_path / "f.csv"
    src.write_text("a,b\n")
    with S3(s3root=f"s3://{bucket}/exp/", tmproot=str(tmp_path)) as s3:
        assert s3.put("x/one", io.BytesIO(b"1")) == f"s3://{bucket}/exp/x/one"
        assert s3.put_many([("x/two", "2"), S3PutObject("y/three", b"3", content_type="text/plain",
                                                        metadata={"k": "v"})]) == [
            ("x/two", f"s3://{bucket}/exp/x/two"), ("y/three", f"s3://{bucket}/exp/y/three")]
        assert s3.put_files([("files/f.csv", str(src))]) == [("files/f.csv", f"s3://{bucket}/exp/files/f.csv")]
        s3.put("x/one", "changed", overwrite=False)  # kept: overwrite=False never replaces
        objs = s3.get_many(["y/three", "x/one", "gone"], return_missing=True)
        assert [(o.key, o.text, o.exists) for o in objs] == [("y/three", "3", True), ("x/one", "1", True),
                                                            ("gone", None, False)]
        assert (objs[0].content_type, objs[0].metadata, objs[0].url) == ("text/plain", {"k": "v"},
                                                                         f"s3://{bucket}/exp/y/three")
        assert [(o.key, o.exists, o.size) for o in s3.list_paths()] == [
            ("files", False, None), ("x", False, None), ("y", False, None)]
        assert [o.key for o in s3.list_paths(["x"])] == ["x/one", "x/two"]
        assert sorted(o.key for o in s3.get_all()) == ["files/f.csv", "x/one", "x/two", "y/three"]
        info = s3.info("files/f.csv")
        assert (info.size, info.downloaded, info.blob) == (4, False, None)
        assert s3.info("gone", return_missing=True).exists is False
    with S3() as s3:  # no root: full URLs
        assert s3.get(f"s3://{bucket}/exp/x/two").text == "2"


def test_get_many_is_parallel_and_bounded(bucket, tmp_path, monkeypatch):
    from flowplane.datatools import s3 as s3_module

    monkeypatch.setattr(s3_module, "MAX_WORKERS", 4)
    seen: set[str] = set()
    real = s3_module.ThreadPoolExecutor

    class Spy(real):  # type: ignore[misc, valid-type]
        def __init__(self, max_workers: int, **kw):
            seen.add(f"workers={max_workers}")
            super().__init__(max_workers=max_workers, **kw)

    monkeypatch.setattr(s3_module, "ThreadPoolExecutor", Spy)
    with S3(s3root=f"s3://{bucket}/p", tmproot=str(tmp_path)) as s3:
        s3.put_many([(f"k{i}", str(i)) for i in range(50)])
        assert [o.text for o in s3.get_many([f"k{i}" for i in range(50)])] == [str(i) for i in range(50)]
    assert seen == {"workers=4"}


def test_bad_input_is_refused_clearly_and_writes_nothing(bucket, tmp_path):
    with pytest.raises(MetaflowS3URLException, match="s3root needs to be an S3 URL"):
        S3(s3root="/tmp/x")
    with pytest.raises(MetaflowS3URLException, match="only inside a running step"):
        S3(run=FlowSpec.__new__(FlowSpec))
    with pytest.raises(MetaflowS3URLException, match="S3\\(run=...\\) takes"):
        S3(run="S3Flow/1")
    with S3(s3root=f"s3://{bucket}/p", tmproot=str(tmp_path)) as s3:
        with pytest.raises(MetaflowS3URLException, match="absolute S3 URLs"):
            s3.get(f"s3://{bucket}/other")
        with pytest.raises(MetaflowS3URLException, match="'..' segments"):
            s3.put("../escape", "x")
        with pytest.raises(MetaflowS3InvalidObject, match="key 'n'.*int"):
            s3.put_many([("ok", "fine"), ("n", 5)])
        with pytest.raises(MetaflowS3NotFound, match="local file not found for key 'ok'.*no-such-file"):
            s3.put_files([("ok", str(tmp_path / "no-such-file")), ("f", None)])
        with pytest.raises(MetaflowS3NotFound, match="nope does not exist"):
            s3.get("nope")
        assert s3.list_recursive() == []  # none of the refused calls wrote anything
    with S3() as s3:
        with pytest.raises(MetaflowS3URLException, match="not a full s3:// URL"):
            s3.get("relative")
        with pytest.raises(MetaflowS3URLException, match="get_all\\(\\) needs a root"):
            s3.get_all()


def test_s3object_matches_metaflows_shape():
    obj = S3Object("s3://b/root", "s3://b/root/a/b/", None, None)
    assert (obj.key, obj.prefix, obj.exists, obj.downloaded, obj.text) == ("a/b", "s3://b/root", False, False, None)
    assert "does not exist" in str(obj)
