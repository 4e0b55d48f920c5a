"""A wide step's tasks through the Client API: `Step.tasks_by_index()` reads them in foreach
index order, a page at a time as iteration goes, from the control plane and the datastore alike."""

from __future__ import annotations

import itertools

import pytest

from flowplane import Step, namespace
from flowplane.client import use_provider
from flowplane.client.local import LocalProvider
from flowplane.datastore import layout
from flowplane.datastore.storage import LocalStorage
from tests.support.fake_control_plane import fake_control_plane
from tests.support.run_layouts import RunWriter, isolate_client

WIDE = (0, 1, 2, 9, 10, 11, 99, 100)
# Nested indices written in an order that is neither index order nor the folders' (1.10 < 1.2).
POSITIONS = sorted(((i, j) for i in WIDE for j in WIDE[:3]), key=str)


def at(task) -> tuple[int, ...]:
    return tuple(layout.indices_of(task.id))


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("datastore")
    w = RunWriter(LocalStorage(str(root)), "NestFlow", "sfn-w", production_token="tok1")
    w.task("start")
    for i, j in POSITIONS:
        w.task("inner", {"at": (i, j)}, foreach_indices=[i, j])
    w.finish()
    return root


@pytest.fixture()
def plane(root, monkeypatch, tmp_path):
    isolate_client(monkeypatch, tmp_path / "local")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with fake_control_plane(LocalStorage(str(root))) as p:
        monkeypatch.setenv("FLOWPLANE_API_URL", p.url)
        namespace(None)
        yield p


def test_tasks_come_from_the_control_plane_page_by_page_in_index_order(plane, monkeypatch):
    from flowplane.client import service

    monkeypatch.setattr(service, "TASK_PAGE", 5)
    step = Step("NestFlow/sfn-w/inner")
    assert plane.paths("tasks") == []  # a Step no longer reads its tasks to count them
    tasks = step.tasks_by_index()
    first = next(tasks)
    assert first.id == "1.0.0"
    assert len(plane.paths("tasks")) == 1  # one page for the first task, not the whole step
    rest = list(tasks)
    assert [at(t) for t in [first, *rest]] == sorted(POSITIONS)
    assert [t.data.at for t in itertools.islice([first, *rest], 4)] == sorted(POSITIONS)[:4]
    queries = [q for p, q in plane.requests if plane._kind(p) == "tasks"]
    assert len(queries) == -(-len(POSITIONS) // 5)
    assert all(q["limit"] == "5" for q in queries) and "next_token" not in queries[0]
    # Metaflow's order for iterating the step itself (newest first) still holds: the
    # RunWriter's clock made later tasks newer.
    assert [at(t) for t in step] == POSITIONS[::-1]


def test_a_datastore_step_reads_its_records_a_page_at_a_time_in_index_order(root, monkeypatch):
    from flowplane.client import local

    storage = LocalStorage(str(root))
    asked: list[int] = []
    get_many = storage.get_many
    monkeypatch.setattr(storage, "get_many", lambda keys: asked.append(len(keys)) or get_many(keys))
    monkeypatch.setattr(local, "TASK_PAGE", 7)
    with use_provider(LocalProvider(storage)):
        namespace(None)
        step = Step("NestFlow/sfn-w/inner")  # its creation time is its earliest task's: all are read
        asked.clear()
        tasks = step.tasks_by_index()
        assert next(tasks).id == "1.0.0"
        assert asked == [7]
        assert [t.id for t in tasks][:4] == ["1.0.1", "1.0.2", "1.1.0", "1.1.1"]
    assert sum(asked) == len(POSITIONS) and max(asked) == 7


def test_a_step_that_does_not_exist_has_no_tasks(plane):
    from flowplane.client import get_provider

    assert list(get_provider().iter_tasks("NestFlow", "sfn-w", "nostep")) == []
    assert list(get_provider().iter_tasks("NestFlow", "sfn-w", "../x")) == []
