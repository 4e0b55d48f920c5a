"""A foreach join reads its inputs from the join-inputs table (flowplane/join_inputs.py), on Batch.

In-process against moto, as tests/task/test_task_production.py: the real task runtime
runs each task of a deployed package; the tasks ending a foreach body put their item,
and the join finds its inputs there, a Query page at a time, reading S3 only for what
is missing.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import boto3
import pytest

from flowplane import join_inputs
from flowplane.datastore import layout
from flowplane.datastore.artifacts import index_key
from flowplane.datastore.storage import S3Storage
from flowplane.manifest import DeployOptions
from flowplane.package import build_package, manifest_for
from flowplane.task.command import main as task_main
from flowplane.task.loader import load_flow_file
from tests.support.local_runs import RunView
from tests.support.shared_flows import SHARED_FLOWS
from tests.support.task_aws import task_aws

pytestmark = pytest.mark.aws

BUCKET = "flowplane-test"
ROOT = f"s3://{BUCKET}/datastore"
TABLE = "flowplane-inputs"
RUN = "sfn-exec-1"

NESTED = textwrap.dedent('''
    from flowplane import FlowSpec, step


    class NestedFlow(FlowSpec):
        @step
        def start(self):
            self.outer = [10, 20]
            self.next(self.split_inner, foreach="outer")

        @step
        def split_inner(self):
            self.base = self.input
            self.inner = [1, 2, 3]
            self.next(self.add, foreach="inner")

        @step
        def add(self):
            self.value = self.base + self.input
            self.next(self.inner_join)

        @step
        def inner_join(self, inputs):
            self.values = [i.value for i in inputs]
            self.next(self.outer_join)

        @step
        def outer_join(self, inputs):
            self.values = [i.values for i in inputs]
            self.next(self.end)

        @step
        def end(self):
            pass


    if __name__ == "__main__":
        NestedFlow()
''')


@pytest.fixture()
def aws(monkeypatch):
    with task_aws(monkeypatch, BUCKET, ROOT, "tok-123", FLOWPLANE_JOIN_INPUTS_TABLE=TABLE,
                  FLOWPLANE_EXECUTION_INPUT=json.dumps({"Parameters": "{}"})):
        boto3.client("dynamodb").create_table(
            TableName=TABLE,
            KeySchema=list(join_inputs.KEY_SCHEMA), AttributeDefinitions=list(join_inputs.ATTRIBUTE_DEFINITIONS),
            BillingMode="PAY_PER_REQUEST",
        )
        yield


def deploy(tmp_path: Path, name: str, source: str) -> str:
    folder = tmp_path / f"src_{name}"
    folder.mkdir()
    (folder / name).write_text(source)
    ctx, _ = load_flow_file(str(folder / name)).context([])
    package = build_package(str(folder), manifest_for(ctx, DeployOptions()))
    boto3.client("s3").put_object(Bucket=BUCKET, Key=package.key, Body=package.data)
    return f"s3://{BUCKET}/{package.key}"


def task(url: str, step: str, task_id: str = "1", retry: int = 0) -> int:
    return task_main(["--package", url, "--run-id", RUN, "--step", step, "--task-id", task_id,
                      "--retry-count", str(retry)])


def items(flow: str, step: str, join_task: str) -> list[join_inputs.JoinInput]:
    key = join_inputs.join_key(flow, RUN, step, join_task)
    return list(join_inputs.read_inputs(TABLE, key, boto3.client("dynamodb")))


def forget_in_s3(flow: str, step: str, task_ids: list[str]) -> None:
    """Delete the task records and artifact indices a join would read from S3 for these tasks."""
    s3 = boto3.client("s3")
    for tid in task_ids:
        for key in (layout.task_key(flow, RUN, step, tid), index_key(flow, RUN, step, tid, 0)):
            s3.delete_object(Bucket=BUCKET, Key=f"datastore/{key}")


def test_the_join_reads_its_inputs_from_the_table_not_from_s3(aws, tmp_path):
    url = deploy(tmp_path, "foreach_flow.py", (SHARED_FLOWS / "foreach_flow.py").read_text())
    assert task(url, "start") == 0
    squares = [f"1.{i}" for i in range(10)]
    for tid in reversed(squares):  # finishing out of order, as a Map's children do
        assert task(url, "square", tid) == 0
    found = items("ForeachFlow", "square", "1")
    assert [e.index for e in found] == list(range(10)) and {e.attempt for e in found} == {0}
    storage = S3Storage(ROOT)
    for e, tid in zip(found, squares):
        assert e.artifacts == storage.get_bytes(index_key("ForeachFlow", RUN, "square", tid, 0))
    # Each item carries the small blobs the task saved, its `value` among them.
    values = [json.loads(e.artifacts)["value"]["sha"] for e in found]
    assert all(sha in e.blobs for e, sha in zip(found, values))
    # With every input's record, index and value gone from S3, only the table can give them.
    forget_in_s3("ForeachFlow", "square", squares)
    for sha in values:
        boto3.client("s3").delete_object(Bucket=BUCKET, Key="datastore/" + layout.blob_key("ForeachFlow", sha))
    assert task(url, "join") == 0
    assert RunView(storage, "ForeachFlow", RUN).data("join")["total"] == 285


def test_inputs_missing_from_the_table_come_from_s3(aws, tmp_path):
    url = deploy(tmp_path, "foreach_flow.py", (SHARED_FLOWS / "foreach_flow.py").read_text())
    assert task(url, "start") == 0
    for i in range(10):
        assert task(url, "square", f"1.{i}") == 0
    key = join_inputs.join_key("ForeachFlow", RUN, "square", "1")
    for i in (0, 4, 9):  # as for an index too big for an item, or a run begun before the table
        boto3.client("dynamodb").delete_item(TableName=TABLE, Key={"join": {"S": key}, "index": {"N": str(i)}})
    assert task(url, "join") == 0
    assert RunView(S3Storage(ROOT), "ForeachFlow", RUN).data("join")["total"] == 285


def test_a_retried_attempt_leaves_its_own_item(aws, tmp_path):
    url = deploy(tmp_path, "foreach_flow.py", (SHARED_FLOWS / "foreach_flow.py").read_text())
    assert task(url, "start") == 0
    for i in range(10):
        assert task(url, "square", f"1.{i}") == 0
    assert task(url, "square", "1.3", retry=1) == 0
    found = items("ForeachFlow", "square", "1")
    assert [(e.index, e.attempt) for e in found if e.attempt] == [(3, 1)]
    assert len(found) == 10
    # The join reads the second attempt's index; the first attempt's is gone, so only it serves.
    boto3.client("s3").delete_object(Bucket=BUCKET, Key="datastore/" + index_key("ForeachFlow", RUN, "square", "1.3", 0))
    assert task(url, "join") == 0
    assert RunView(S3Storage(ROOT), "ForeachFlow", RUN).data("join")["total"] == 285


def test_nested_foreaches_keep_each_join_in_its_own_partition(aws, tmp_path):
    url = deploy(tmp_path, "nested_flow.py", NESTED)
    assert task(url, "start") == 0
    for i in range(2):
        assert task(url, "split_inner", f"1.{i}") == 0
        for j in range(3):
            assert task(url, "add", f"1.{i}.{j}") == 0
    assert [e.index for e in items("NestedFlow", "add", "1.0")] == [0, 1, 2]
    assert [e.index for e in items("NestedFlow", "add", "1.1")] == [0, 1, 2]
    assert items("NestedFlow", "add", "1") == []
    forget_in_s3("NestedFlow", "add", [f"1.{i}.{j}" for i in range(2) for j in range(3)])
    for i in range(2):
        assert task(url, "inner_join", f"1.{i}") == 0
    assert [e.index for e in items("NestedFlow", "inner_join", "1")] == [0, 1]
    forget_in_s3("NestedFlow", "inner_join", ["1.0", "1.1"])
    assert task(url, "outer_join") == 0
    assert RunView(S3Storage(ROOT), "NestedFlow", RUN).data("outer_join")["values"] == [[11, 12, 13], [21, 22, 23]]


def test_steps_not_ending_a_foreach_body_put_nothing(aws, tmp_path):
    url = deploy(tmp_path, "branch_flow.py", (SHARED_FLOWS / "branch_flow.py").read_text())
    assert task(url, "start") == 0
    for step in ("a", "b"):
        assert task(url, step) == 0
    assert boto3.client("dynamodb").scan(TableName=TABLE)["Items"] == []


def test_an_index_too_big_for_an_item_is_not_put_and_blobs_are_kept_small():
    small = join_inputs.JoinInput(0, 0, b"{}")
    big = join_inputs.JoinInput(0, 0, b"x" * (join_inputs.MAX_ARTIFACTS_BYTES + 1))
    assert join_inputs.input_item("F/r/s/1", small, now=0)["ttl"] == {"N": str(366 * 86400)}
    assert join_inputs.input_item("F/r/s/1", small)["input"] == {"S": "0\n{}\n"}
    assert join_inputs.input_item("F/r/s/1", big) is None
    blobs = {f"{i:064x}": b"z" * 1000 for i in range(40)}  # 40 KB: more than an item carries
    item = join_inputs.input_item("F/r/s/1", join_inputs.JoinInput(3, 2, b'{"a":1}', blobs))
    assert item["index"] == {"N": "3"}
    attempt, index, packed = item["input"]["S"].split("\n")
    assert (attempt, index) == ("2", '{"a":1}')
    kept = json.loads(packed)
    assert 0 < len(kept) < 40 and sum(len(k) + len(v) for k, v in kept.items()) <= join_inputs.MAX_BLOBS_BYTES
    with pytest.raises(ValueError, match="task_id"):
        join_inputs.join_key("F", "r", "s", "a/b")


def test_the_partition_is_read_page_by_page_in_index_order(aws):
    client = boto3.client("dynamodb")
    key = join_inputs.join_key("F", RUN, "body", "1")
    blob = b'{"x":"' + b"y" * 300_000 + b'"}'  # four of these pass DynamoDB's 1 MB page
    for i in (5, 0, 3, 1, 4, 2):
        assert join_inputs.record_input(TABLE, key, join_inputs.JoinInput(i, 0, blob), client)
    calls = []
    client.meta.events.register("before-call.dynamodb.Query", lambda **kw: calls.append(1))
    found = list(join_inputs.read_inputs(TABLE, key, client))
    assert [e.index for e in found] == [0, 1, 2, 3, 4, 5] and all(e.artifacts == blob for e in found)
    assert len(calls) >= 2
