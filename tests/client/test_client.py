"""Client API over local run layouts: Metaflow's objects, properties and orderings."""

from __future__ import annotations

import gzip
import hashlib
import pickle
from datetime import datetime

import pytest

from flowplane import DataArtifact, Flow, Metaflow, Run, Step, Task, namespace
from flowplane.client import ChildNotFound, MetaflowData, NotFound, TaskException
from flowplane.datastore import layout
from flowplane.datastore.storage import LocalStorage
from tests.support.run_layouts import build_world, isolate_client


@pytest.fixture(scope="module")
def world_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("datastore")
    world = build_world(LocalStorage(str(root)))
    return root, world


@pytest.fixture(autouse=True)
def client(world_root, monkeypatch):
    root, world = world_root
    isolate_client(monkeypatch, root)
    return world


# --- Metaflow() and Flow ------------------------------------------------------


def test_metaflow_lists_the_flows_with_a_run_in_the_namespace():
    names = [f.id for f in Metaflow()]
    assert names == ["BranchFlow", "CatchFlow", "ForeachFlow", "ParameterFlow", "RetryFlow", "TrainFlow"]
    assert [f.id for f in Metaflow().flows] == names
    assert Metaflow()["BranchFlow"] == Flow("BranchFlow")
    assert "BranchFlow" in Metaflow()
    assert "BobOnlyFlow" not in Metaflow()  # only bob ran it
    assert "NoSuchFlow" not in Metaflow()
    namespace(None)
    assert "BobOnlyFlow" in [f.id for f in Metaflow()]


def test_flow_iterates_runs_newest_first_in_the_namespace():
    assert [r.id for r in Flow("ParameterFlow")] == ["7001", "1002", "1001"]
    namespace(None)
    assert [r.id for r in Flow("ParameterFlow")] == ["7001", "sfn-abc", "1003", "1002", "1001"]


def test_latest_run_may_be_running_latest_successful_run_is_finished():
    flow = Flow("ParameterFlow")
    assert flow.latest_run == Run("ParameterFlow/7001")
    assert flow.latest_run.finished is False
    assert flow.latest_successful_run == Run("ParameterFlow/1002")
    assert flow.latest_successful_run.data.alpha == 0.5
    assert Flow("TrainFlow").latest_successful_run is None
    assert Flow("TrainFlow").latest_run.id == "4001"


def test_runs_filters_on_every_tag_given():
    flow = Flow("ParameterFlow")
    assert [r.id for r in flow.runs("exp:2")] == ["1002"]
    assert [r.id for r in flow.runs("runtime:local", "user:alice")] == ["7001", "1002", "1001"]
    assert [r.id for r in flow.runs("exp:2", "user:bob")] == []
    assert [r.id for r in flow.runs()] == ["7001", "1002", "1001"]


def test_flow_properties():
    flow = Flow("ParameterFlow")
    assert flow.id == flow.pathspec == "ParameterFlow"
    assert flow.path_components == ["ParameterFlow"]
    assert flow.parent is None
    assert flow.tags == frozenset()
    assert flow.created_at == Run("ParameterFlow/1001").created_at  # its first run
    assert str(flow) == repr(flow) == "Flow('ParameterFlow')"
    assert "1001" in flow and "9999" not in flow


# --- Run ------------------------------------------------------------------------


def test_run_data_is_the_end_tasks_data():
    run = Run("ParameterFlow/1001")
    assert isinstance(run.data, MetaflowData)
    assert run.data.alpha == 0.01
    assert run.end_task == Task("ParameterFlow/1001/end/1")
    assert run.end_task.data.alpha == run.data.alpha
    assert "alpha" in run.data and "beta" not in run.data
    assert list(run.data) == ["alpha"]


def test_run_status_and_times():
    run = Run("ParameterFlow/1001")
    assert run.successful is True
    assert run.finished is True
    assert isinstance(run.created_at, datetime) and run.created_at.tzinfo is not None
    assert run.finished_at == run.end_task.finished_at
    assert run.created_at < run["start"].created_at < run.finished_at


def test_run_tags():
    run = Run("ParameterFlow/1002")
    assert run.system_tags == frozenset({"user:alice", "runtime:local"})
    assert run.user_tags == frozenset({"exp:2"})
    assert run.tags == frozenset({"user:alice", "runtime:local", "exp:2"})
    # Steps, tasks and artifacts carry their run's tags.
    assert run["start"].tags == run.tags
    assert run["start"].task.tags == run.tags
    assert run["start"].task["alpha"].tags == run.tags


def test_run_steps_iterate_in_reverse_execution_order():
    assert [s.id for s in Run("ParameterFlow/1001")] == ["end", "start"]
    assert [s.id for s in Run("BranchFlow/2001")] == ["end", "join", "b", "a", "start"]
    assert [s.id for s in Run("ForeachFlow/3001").steps()] == ["end", "join", "square", "start"]
    assert [s.id for s in Run("TrainFlow/4001")] == ["train", "start"]


def test_run_getitem_and_contains():
    run = Run("BranchFlow/2001")
    assert run["join"].task.data.total == 5
    assert isinstance(run["join"], Step)
    assert "join" in run
    assert "nope" not in run
    with pytest.raises(KeyError) as err:
        run["nope"]
    assert isinstance(err.value, NotFound)
    assert str(err.value) == "Step('BranchFlow/2001/nope') does not exist"


def test_run_identity():
    run = Run("BranchFlow/2001")
    assert run.id == "2001"
    assert run.pathspec == "BranchFlow/2001"
    assert run.path_components == ["BranchFlow", "2001"]
    assert run.parent == Flow("BranchFlow")
    assert str(run) == "Run('BranchFlow/2001')"
    assert Flow("BranchFlow")["2001"] == run


def test_running_run_has_no_end_task_yet():
    run = Run("ParameterFlow/7001")
    assert run.end_task is None
    assert run.data is None
    assert run.successful is False and run.finished is False and run.finished_at is None
    assert [s.id for s in run] == ["start"]


# --- Step -----------------------------------------------------------------------


def test_step_of_a_linear_step_has_one_task():
    step = Step("BranchFlow/2001/a")
    assert step.task == Task("BranchFlow/2001/a/1")
    assert step.task.data.x == 2
    assert [t.id for t in step] == ["1"]
    assert [t.id for t in step.tasks()] == ["1"]
    assert step.parent == Run("BranchFlow/2001")
    assert step.path_components == ["BranchFlow", "2001", "a"]
    assert step.created_at == step.task.created_at
    assert step.finished_at == step.task.finished_at
    assert step.task.index is None


def test_foreach_step_has_a_task_per_item():
    step = Run("ForeachFlow/3001")["square"]
    tasks = list(step)
    assert len(tasks) == 10
    # Newest first, as Metaflow iterates children.
    assert [t.index for t in tasks] == list(range(9, -1, -1))
    assert sorted(t.id for t in tasks) == sorted(f"1.{i}" for i in range(10))
    assert sum(t.data.value for t in tasks) == 285
    assert {t.data.value for t in tasks} == {i * i for i in range(10)}
    assert Task("ForeachFlow/3001/square/1.3").index == 3
    assert Task("ForeachFlow/3001/square/1.3").data.value == 9
    assert step.task in tasks
    assert step.finished_at == max(t.finished_at for t in tasks)
    assert step.created_at == min(t.created_at for t in tasks)
    assert Run("ForeachFlow/3001")["join"].task.data.total == 285
    assert Run("ForeachFlow/3001").data.total == 285


# --- Task and DataArtifact ------------------------------------------------------


def test_task_getitem_gives_a_data_artifact():
    task = Task("BranchFlow/2001/join/1")
    art = task["total"]
    assert isinstance(art, DataArtifact)
    assert art.data == 5
    assert art.pathspec == "BranchFlow/2001/join/1/total"
    assert art.path_components == ["BranchFlow", "2001", "join", "1", "total"]
    assert art.id == "total"
    assert art.type == "int"
    assert art.size == len(pickle.dumps(5, protocol=pickle.HIGHEST_PROTOCOL))
    # The sha is the content address of the pickle, and names the stored blob.
    assert art.sha == hashlib.sha256(pickle.dumps(5, protocol=pickle.HIGHEST_PROTOCOL)).hexdigest()
    assert art.parent == task
    assert art.created_at == art.finished_at == task.finished_at
    assert DataArtifact("BranchFlow/2001/join/1/total").data == 5
    assert "total" in task and "nope" not in task


def test_equal_values_share_one_blob(world_root):
    root, _ = world_root
    shas = {t["numbers"].sha for t in Step("ForeachFlow/3001/square")}
    assert len(shas) == 1
    blob = LocalStorage(str(root)).get_bytes(layout.blob_key("ForeachFlow", shas.pop()))
    assert pickle.loads(gzip.decompress(blob)) == list(range(10))


def test_task_iterates_public_artifacts_by_name():
    task = Task("ForeachFlow/3001/square/1.4")
    assert [a.id for a in task] == ["numbers", "value"]
    assert task.artifacts.value.data == 16
    assert sorted(task.data) == ["numbers", "value"]
    assert str(task.data) == "<MetaflowData: numbers, value>"


def test_missing_artifact_is_an_attribute_error_on_data_and_a_key_error_on_task():
    task = Task("BranchFlow/2001/join/1")
    with pytest.raises(AttributeError, match=r"DataArtifact\('BranchFlow/2001/join/1/nope'\) does not exist"):
        task.data.nope
    assert not hasattr(task.data, "nope")
    assert getattr(task.data, "nope", "default") == "default"
    with pytest.raises(KeyError) as err:
        task["nope"]
    assert "the task's artifacts: total" in str(err.value)
    with pytest.raises(NotFound, match="BranchFlow/2001/join/1/nope"):
        DataArtifact("BranchFlow/2001/join/1/nope")


def test_task_stdout_and_stderr():
    task = Run("ParameterFlow/1001")["start"].task
    assert "alpha is 0.010000" in task.stdout
    assert task.stderr == ""
    assert Run("ParameterFlow/1001").end_task.stdout == "alpha is still 0.010000\n"


def test_task_identity_and_parents():
    task = Task("ForeachFlow/3001/square/1.2")
    assert task.id == "1.2"
    assert task.pathspec == "ForeachFlow/3001/square/1.2"
    assert task.path_components == ["ForeachFlow", "3001", "square", "1.2"]
    assert task.parent == Step("ForeachFlow/3001/square")
    assert task.parent.parent == Run("ForeachFlow/3001")
    assert task.parent.parent.parent == Flow("ForeachFlow")
    assert task.parent.parent.parent.parent is None
    assert str(task) == "Task('ForeachFlow/3001/square/1.2')"
    assert len({task, Task("ForeachFlow/3001/square/1.2"), Task("ForeachFlow/3001/square/1.3")}) == 2
    assert task != Step("ForeachFlow/3001/square")


def test_successful_task_status():
    task = Task("ParameterFlow/1001/start/1")
    assert task.successful is True
    assert task.finished is True
    assert task.exception is None
    assert task.created_at < task.finished_at
    assert task.current_attempt == 0
    assert task.runtime_name == "local"


def test_task_metadata_dict(world_root):
    root, _ = world_root
    md = Task("RetryFlow/6001/flaky/1").metadata_dict
    assert md["attempt"] == "1"  # the latest attempt's value wins
    assert md["attempt_ok"] == "True"
    assert md["ds-type"] == "local"
    assert md["ds-root"] == str(root)
    assert md["user"] == "alice"
    assert md["runtime"] == "local"
    assert md["exit_code"] == "0"
    assert Task("ForeachFlow/3001/square/1.7").metadata_dict["foreach-indices"] == "7"
    names = [m.name for m in Task("RetryFlow/6001/flaky/1").metadata]
    assert names.count("attempt") == 2


# --- failures, @catch, @retry --------------------------------------------------


def test_failed_run_and_its_failed_task():
    run = Run("TrainFlow/4001")
    assert run.successful is False
    assert run.finished is False
    assert run.finished_at is None
    assert run.end_task is None and run.data is None
    task = run["train"].task
    assert task.successful is False
    assert task.finished is False
    assert task.finished_at is not None  # it ended, unsuccessfully
    exc = task.exception
    assert isinstance(exc, TaskException)
    assert exc.type == "ValueError"
    assert exc.message == exc.exception == "learning rate must be positive"
    assert "Traceback" in exc.stacktrace
    assert str(exc) == "ValueError: learning rate must be positive"
    assert "ValueError" in task.stderr
    assert task.stdout == "training on 3 rows\n"
    assert task.data.rows == 3
    assert task.metadata_dict["attempt_ok"] == "False"
    assert run["start"].task.successful is True


def test_catch_stores_the_exception_and_the_run_goes_on():
    run = Run("CatchFlow/5001")
    assert run.successful is True
    task = run["divide"].task
    # As in Metaflow: an exception @catch handled leaves the task finished, not successful.
    assert task.finished is True
    assert task.successful is False
    assert task.exception.type == "ZeroDivisionError"
    assert task.exception.message == "division by zero"
    assert isinstance(task.data.compute_failed, ZeroDivisionError)
    assert run.data.compute_failed.args == ("division by zero",)


def test_retried_task_shows_its_latest_attempt_and_each_attempt_on_request():
    task = Task("RetryFlow/6001/flaky/1")
    assert task.current_attempt == 1
    assert task.successful is True and task.exception is None
    assert task.data.tries == 2
    assert task.stdout == "try 2\n"
    first = Task("RetryFlow/6001/flaky/1", attempt=0)
    assert first.current_attempt == 0
    assert first.successful is False and first.finished is False
    assert first.exception.type == "RuntimeError"
    assert first.stdout == "try 1\n"
    assert first.data.tries == 1
    assert first.finished_at < task.finished_at
    assert Run("RetryFlow/6001").successful is True


def test_asking_for_an_attempt_that_does_not_exist():
    with pytest.raises(NotFound, match=r"Task\('RetryFlow/6001/flaky/1'\) has no attempt 5 \(attempts: 0, 1\)"):
        Task("RetryFlow/6001/flaky/1", attempt=5)
    with pytest.raises(ValueError, match="attempt is a number"):
        Task("RetryFlow/6001/flaky/1", attempt=-1)
    with pytest.raises(ValueError, match="attempt is a number"):
        Task("RetryFlow/6001/flaky/1", attempt="1")  # type: ignore[arg-type]


def test_child_not_found_is_both_key_error_and_not_found():
    with pytest.raises(ChildNotFound):
        Flow("ParameterFlow")["9999"]
    with pytest.raises(KeyError, match=r"Task\('BranchFlow/2001/a/7'\) does not exist"):
        Step("BranchFlow/2001/a")["7"]
