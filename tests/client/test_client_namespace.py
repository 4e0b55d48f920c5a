"""Namespaces as in Metaflow: `user:<name>` by default, `production:<token>` inside a
production task, any tag on request, None for everything."""

from __future__ import annotations

import pytest

from flowplane import DataArtifact, Flow, Metaflow, Run, Step, Task, default_namespace, get_namespace, namespace
from flowplane.client import MetaflowNamespaceMismatch, NamespaceMismatch
from flowplane.current import current
from flowplane.datastore.storage import LocalStorage
from tests.support.run_layouts import build_world, isolate_client


@pytest.fixture(scope="module")
def world_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("datastore")
    build_world(LocalStorage(str(root)))
    return root


@pytest.fixture(autouse=True)
def client(world_root, monkeypatch):
    isolate_client(monkeypatch, world_root, user="alice")


def test_default_namespace_is_the_user():
    assert get_namespace() == "user:alice"
    assert default_namespace() == "user:alice"


def test_default_namespace_follows_the_user_at_first_use(monkeypatch):
    # Chosen lazily, so an environment set after import still counts.
    monkeypatch.setenv("FLOWPLANE_USER", "bob")
    assert get_namespace() == "user:bob"
    assert [r.id for r in Flow("ParameterFlow")] == ["1003"]
    assert Flow("BobOnlyFlow").latest_run.id == "1"


def test_inside_a_production_task_the_default_is_the_deployments_namespace(monkeypatch):
    monkeypatch.setattr(current, "_info", {
        "flow_name": "ParameterFlow", "run_id": "sfn-xyz", "step_name": "start", "task_id": "1",
        "username": "alice", "namespace": "production:tok1", "is_production": True,
    })
    assert default_namespace() == "production:tok1"
    assert Flow("ParameterFlow").latest_run.id == "sfn-abc"


def test_inside_a_local_task_the_default_is_the_tasks_namespace(monkeypatch):
    monkeypatch.setattr(current, "_info", {"flow_name": "ParameterFlow", "run_id": "9", "namespace": "user:bob"})
    assert default_namespace() == "user:bob"


def test_namespace_none_shows_everything_and_default_namespace_resets():
    assert namespace(None) is None
    assert get_namespace() is None
    assert Run("ParameterFlow/1003").data.alpha == 0.2
    assert len(list(Flow("ParameterFlow"))) == 5
    assert default_namespace() == "user:alice"
    with pytest.raises(NamespaceMismatch):
        Run("ParameterFlow/1003")


def test_production_namespace_reads_the_deployments_runs():
    assert namespace("production:tok1") == "production:tok1"
    flow = Flow("ParameterFlow")
    assert [r.id for r in flow] == ["sfn-abc"]
    run = flow.latest_run
    assert run.data.alpha == 0.5
    assert "production:tok1" in run.system_tags
    assert "user:alice" not in run.tags  # production runs are not in the deployer's namespace
    assert run.end_task.runtime_name == "step-functions"
    assert [f.id for f in Metaflow()] == ["ParameterFlow"]
    with pytest.raises(NamespaceMismatch):
        Run("ParameterFlow/1001")


def test_any_tag_can_be_a_namespace():
    namespace("exp:2")
    assert [r.id for r in Flow("ParameterFlow")] == ["1002"]
    with pytest.raises(NamespaceMismatch):
        Flow("BranchFlow")


def test_objects_of_another_user_raise_namespace_mismatch():
    with pytest.raises(NamespaceMismatch) as err:
        Run("ParameterFlow/1003")
    assert str(err.value) == (
        "Run('ParameterFlow/1003') is not in namespace 'user:alice'. Switch with namespace('<tag>'), "
        "or namespace(None) to see every namespace."
    )
    assert err.value.namespace == "user:alice"
    assert MetaflowNamespaceMismatch is NamespaceMismatch
    for make in (lambda: Step("ParameterFlow/1003/start"), lambda: Task("ParameterFlow/1003/start/1"),
                 lambda: DataArtifact("ParameterFlow/1003/start/1/alpha")):
        with pytest.raises(NamespaceMismatch, match="ParameterFlow/1003"):
            make()


def test_a_flow_with_no_run_in_the_namespace_is_a_mismatch():
    with pytest.raises(NamespaceMismatch, match=r"Flow\('BobOnlyFlow'\) is not in namespace 'user:alice'"):
        Flow("BobOnlyFlow")
    namespace("user:bob")
    assert Flow("BobOnlyFlow").latest_run.id == "1"


def test_children_of_another_namespace_through_getitem():
    flow = Flow("ParameterFlow")
    assert "1003" in flow  # it exists ...
    with pytest.raises(NamespaceMismatch):  # ... but is not ours
        flow["1003"]
    assert [r.id for r in flow] == ["7001", "1002", "1001"]  # and iteration skips it


def test_namespace_switch_applies_to_objects_already_made():
    flow = Flow("ParameterFlow")
    namespace("user:bob")
    assert [r.id for r in flow] == ["1003"]
    assert flow.latest_run.id == "1003"


def test_bad_namespace_values():
    with pytest.raises(ValueError, match="a namespace is a non-empty tag string or None"):
        namespace("")
    with pytest.raises(ValueError, match="a namespace is a non-empty tag string or None"):
        namespace(5)  # type: ignore[arg-type]
    assert get_namespace() == "user:alice"  # unchanged
