"""Unknown objects, malformed pathspecs and half-written layouts: clear errors naming the fault."""

from __future__ import annotations

import os

import pytest

from flowplane import DataArtifact, Flow, Metaflow, Run, Step, Task
from flowplane.client import (
    ClientError,
    InvalidPathspec,
    MetaflowInvalidPathspec,
    MetaflowNotFound,
    NotFound,
)
from flowplane.datastore import layout, records
from flowplane.datastore.records import TaskRecord
from flowplane.datastore.storage import LocalStorage
from tests.support.run_layouts import RunWriter, build_world, isolate_client


@pytest.fixture()
def root(tmp_path, monkeypatch):
    build_world(LocalStorage(str(tmp_path)))
    isolate_client(monkeypatch, tmp_path)
    return tmp_path


def _snapshot(root) -> dict[str, float]:
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            out[p] = os.stat(p).st_mtime_ns
    return out


@pytest.mark.parametrize("make, message", [
    (lambda: Flow("NoSuchFlow"), "Flow('NoSuchFlow') does not exist"),
    (lambda: Run("NoSuchFlow/1"), "Run('NoSuchFlow/1') does not exist"),
    (lambda: Run("ParameterFlow/424242"), "Run('ParameterFlow/424242') does not exist"),
    (lambda: Step("ParameterFlow/1001/train"), "Step('ParameterFlow/1001/train') does not exist"),
    (lambda: Step("ParameterFlow/424242/start"),
     "Step('ParameterFlow/424242/start') does not exist: there is no Run('ParameterFlow/424242')"),
    (lambda: Task("ParameterFlow/1001/start/2"), "Task('ParameterFlow/1001/start/2') does not exist"),
    (lambda: Task("ForeachFlow/3001/square/1.10"), "Task('ForeachFlow/3001/square/1.10') does not exist"),
    (lambda: DataArtifact("ParameterFlow/1001/start/1/beta"),
     "DataArtifact('ParameterFlow/1001/start/1/beta') does not exist (the task's artifacts: alpha)"),
])
def test_unknown_objects_raise_not_found_naming_the_pathspec(root, make, message):
    before = _snapshot(root)
    with pytest.raises(NotFound) as err:
        make()
    assert str(err.value).startswith(message)
    assert isinstance(err.value, MetaflowNotFound) and isinstance(err.value, ClientError)
    assert _snapshot(root) == before  # reading never writes


def test_unknown_flow_message_names_the_datastore(root):
    with pytest.raises(NotFound, match=f"datastore local@{root}"):
        Flow("NoSuchFlow")


@pytest.mark.parametrize("make, fragment", [
    (lambda: Flow("A/B"), "Flow('A/B'): expected 1 part(s) separated by '/', like 'FlowName'"),
    (lambda: Run("ParameterFlow"), "Run('ParameterFlow'): expected 2 part(s) separated by '/', like 'FlowName/RunID'"),
    (lambda: Run("ParameterFlow/1001/start"), "expected 2 part(s)"),
    (lambda: Step("ParameterFlow/1001"), "like 'FlowName/RunID/StepName'"),
    (lambda: Task("ParameterFlow/1001/start"), "like 'FlowName/RunID/StepName/TaskID'"),
    (lambda: DataArtifact("ParameterFlow/1001/start/1"), "like 'FlowName/RunID/StepName/TaskID/ArtifactName'"),
    (lambda: Run("ParameterFlow/"), "'' is not a valid name"),
    (lambda: Step("ParameterFlow//start"), "'' is not a valid name"),
    (lambda: Run("ParameterFlow/.."), "'..' is not a valid name"),
    (lambda: Task("../../etc/passwd"), "'..' is not a valid name"),
    (lambda: Run("Parameter Flow/1"), "'Parameter Flow' is not a valid name"),
    (lambda: Run(None), "Run takes a pathspec string like 'FlowName/RunID', got None"),
    (lambda: Flow(42), "Flow takes a pathspec string like 'FlowName', got 42"),
])
def test_bad_pathspecs_raise_invalid_pathspec(root, make, fragment):
    with pytest.raises(InvalidPathspec) as err:
        make()
    assert fragment in str(err.value)
    assert isinstance(err.value, ValueError) and isinstance(err.value, MetaflowInvalidPathspec)


def test_bad_child_names_are_key_errors(root):
    run = Run("ParameterFlow/1001")
    for bad in ("..", "", "a/b", "../1002"):
        assert bad not in run
        with pytest.raises(KeyError):
            run[bad]
    assert "../x" not in Metaflow()


def test_a_run_being_created_is_skipped_until_its_record_exists(root):
    # A run folder without its record (the runtime is between mkdir and write).
    os.makedirs(os.path.join(root, "ParameterFlow", "runs", "9999", "start"))
    assert "9999" not in [r.id for r in Flow("ParameterFlow")]
    with pytest.raises(NotFound):
        Run("ParameterFlow/9999")


def test_a_task_without_its_run_record_names_the_missing_run(root):
    storage = LocalStorage(str(root))
    records.write_task(storage, TaskRecord(flow="OrphanFlow", run_id="5", step="start", task_id="1"))
    with pytest.raises(NotFound, match=r"there is no Run\('OrphanFlow/5'\)"):
        Task("OrphanFlow/5/start/1")


def test_a_task_that_has_not_started_an_attempt(root):
    storage = LocalStorage(str(root))
    w = RunWriter(storage, "PendingFlow", "1")
    records.write_task(storage, TaskRecord(flow="PendingFlow", run_id="1", step="start", task_id="1"))
    task = Task("PendingFlow/1/start/1")
    assert task.current_attempt is None
    assert task.finished is False and task.successful is False
    assert task.stdout == "" and task.stderr == ""
    assert list(task) == [] and task.exception is None
    assert not hasattr(task.data, "x")
    assert Run("PendingFlow/1").end_task is None
    assert w.run.status == "running"


def test_a_step_folder_with_no_task_record_is_not_a_step(root):
    os.makedirs(os.path.join(root, layout.run_prefix("ParameterFlow", "1001"), "ghost", "1"))
    assert [s.id for s in Run("ParameterFlow/1001")] == ["end", "start"]
    with pytest.raises(NotFound):
        Step("ParameterFlow/1001/ghost")
