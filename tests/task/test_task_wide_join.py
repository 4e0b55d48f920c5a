"""A join after a wide foreach: its inputs in index order, read in a few batches rather than one
parent after another, and the parent at fault named when one is not there. The parents are
written by the real task runtime (tests/support/wide_joins.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from flowplane.datastore import layout, records
from flowplane.datastore.artifacts import ArtifactStore
from flowplane.datastore.storage import LocalStorage
from flowplane.task.errors import TaskSetupError
from flowplane.task.inputs import TaskInputs
from tests.support import wide_joins
from tests.support.local_runs import RunView

WIDTH = 120  # past 1.9 -> 1.10 and 1.99 -> 1.100, where folder order and index order part


class CountingStorage(LocalStorage):
    """The datastore, counting its reads: one `get_many` is one batch of concurrent reads on S3."""

    def __init__(self, root: str):
        super().__init__(root)
        self.batches: list[int] = []
        self.single = 0

    def get_many(self, keys):
        self.batches.append(len(keys))
        return super().get_many(keys)

    def open_read(self, key):  # one artifact read by itself (ArtifactStore.load)
        self.single += 1
        return super().open_read(key)


def fan_out(tmp_path_factory, width: int) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp(f"wide{width}")
    flow = wide_joins.write_flow(work)
    wide_joins.run_fan_out(flow, work / "ds", width)
    return flow, work / "ds"


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    return fan_out(tmp_path_factory, WIDTH)


@pytest.fixture()
def copy(written, tmp_path):
    """A copy of the fan-out to break one parent of."""
    flow, root = written
    shutil.copytree(root, tmp_path / "ds")
    return flow, tmp_path / "ds"


def sources(root: Path, width: int, storage=None):
    storage = storage or LocalStorage(str(root))
    graph = type("G", (), {"flow_name": wide_joins.FLOW})()
    inputs = TaskInputs(storage, ArtifactStore(storage, wide_joins.FLOW), graph, wide_joins.RUN_ID, "join", "1")
    return inputs.join_sources(wide_joins.body_refs(width))


def test_the_join_task_sees_every_input_in_index_order(copy):
    flow, root = copy
    assert wide_joins.join(flow, root, WIDTH) == 0
    data = RunView(LocalStorage(str(root)), wide_joins.FLOW, wide_joins.RUN_ID).data("join")
    assert data["indices"] == list(range(WIDTH))
    assert data["squares"] == [i * i for i in range(WIDTH)]


def test_records_and_indices_are_read_in_one_batch_each_and_artifacts_on_demand(written):
    _, root = written
    storage = CountingStorage(str(root))
    found = sources(root, WIDTH, storage)
    assert storage.batches == [WIDTH, WIDTH] and storage.single == 0
    assert found[7].load("square") == 49  # the first input asked for it: that one blob only
    assert storage.single == 1
    # A second input asking for the same artifact reads it for every input at once.
    assert found[3].load("square") == 9
    assert storage.batches[2:] == [WIDTH] and storage.single == 1
    assert [s.load("square") for s in found] == [i * i for i in range(WIDTH)]
    assert storage.single == 1 and len(storage.batches) == 3


def test_equal_values_of_two_inputs_are_objects_of_their_own(written):
    _, root = written
    found = sources(root, 3)
    a, b = found[0].load("items"), found[1].load("items")  # inherited: one blob, read ahead once
    assert a == b == list(range(WIDTH)) and a is not b


def test_big_artifacts_are_not_read_ahead(written, monkeypatch):
    from flowplane.task import read_ahead

    _, root = written
    storage = CountingStorage(str(root))
    found = sources(root, WIDTH, storage)
    monkeypatch.setattr(read_ahead, "MAX_BLOB_BYTES", 0)
    assert [s.load("square") for s in found[:3]] == [0, 1, 4]
    assert storage.batches[2:] == [0] and storage.single == 3


def break_parent(root: Path, index: int, how: str) -> None:
    tid = layout.task_id_for([index])
    task_dir = root / layout.task_prefix(wide_joins.FLOW, wide_joins.RUN_ID, "body", tid)
    storage = LocalStorage(str(root))
    if how == "not run":
        shutil.rmtree(task_dir)
    elif how == "failed":
        rec = records.read_task(storage, wide_joins.FLOW, wide_joins.RUN_ID, "body", tid)
        records.write_task(storage, rec.model_copy(update={"status": "failed"}))
    elif how == "no artifacts":
        (task_dir / "0" / layout.ARTIFACT_INDEX).unlink()


@pytest.mark.parametrize("how, says", [
    ("not run", "has not run"),
    ("failed", r"has not succeeded \(status failed\)"),
    ("no artifacts", "stored no artifacts"),
])
def test_the_first_parent_at_fault_in_index_order_is_named(copy, how, says):
    _, root = copy
    for index in (101, 17):  # 1.101 sorts before 1.17 as a folder name; 1.17 comes first
        break_parent(root, index, how)
    with pytest.raises(TaskSetupError, match=rf"WideFlow/100/body/1\.17 {says}$"):
        sources(root, WIDTH)


def test_a_join_over_a_broken_parent_fails_naming_it_and_stores_nothing(copy):
    flow, root = copy
    break_parent(root, 42, "failed")
    assert wide_joins.join(flow, root, WIDTH) == 1
    view = RunView(LocalStorage(str(root)), wide_joins.FLOW, wide_joins.RUN_ID)
    [attempt] = view.attempts("join")
    assert attempt.status == "failed"
    assert "WideFlow/100/body/1.42 has not succeeded (status failed)" in attempt.error.message


@pytest.mark.slow
def test_a_join_of_two_thousand_inputs(tmp_path_factory):
    flow, root = fan_out(tmp_path_factory, 2000)
    storage = CountingStorage(str(root))
    found = sources(root, 2000, storage)
    assert [s.load("square") for s in found] == [i * i for i in range(2000)]
    assert storage.batches == [2000, 2000, 2000] and storage.single == 1
    break_parent(root, 1999, "not run")
    break_parent(root, 1000, "no artifacts")
    # Every record is checked before any index is read.
    with pytest.raises(TaskSetupError, match=r"body/1\.1999 has not run$"):
        sources(root, 2000)
