"""Provider selection and the LocalProvider's reads; the Client API's import cost."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from flowplane import Flow, Run
from flowplane.client import Provider, get_metadata, get_provider, set_provider, use_provider
from flowplane.client.local import LocalProvider
from flowplane.datastore.storage import LocalStorage
from tests.support.run_layouts import build_world, isolate_client, linear_run

# No moto runs here: `aws` keeps these tests out of make test-quick, where they were when
# the marker was inferred from a module's text (its import probe names moto).
pytestmark = pytest.mark.aws


@pytest.fixture()
def root(tmp_path, monkeypatch):
    build_world(LocalStorage(str(tmp_path)))
    isolate_client(monkeypatch, tmp_path)
    return tmp_path


class CountingProvider:
    """Wraps a provider and counts the calls: stands in for any other implementation."""

    def __init__(self, inner: Provider):
        self.inner = inner
        self.calls: list[str] = []

    def __getattr__(self, name: str):
        target = getattr(self.inner, name)

        def call(*args, **kwargs):
            self.calls.append(name)
            return target(*args, **kwargs)

        return call


def test_default_provider_reads_flowplane_datastore_root(root):
    provider = get_provider()
    assert isinstance(provider, LocalProvider)
    assert isinstance(provider, Provider)
    assert provider.describe() == f"local@{root}"
    assert get_metadata() == f"local@{root}"
    assert get_provider() is provider  # cached per root


def test_default_root_is_dot_flowplane_in_the_working_directory(tmp_path, monkeypatch):
    isolate_client(monkeypatch, tmp_path)
    monkeypatch.delenv("FLOWPLANE_DATASTORE_ROOT")
    monkeypatch.chdir(tmp_path)
    linear_run(LocalStorage(str(tmp_path / ".flowplane")))
    assert get_metadata() == f"local@{tmp_path / '.flowplane'}"
    assert Flow("ParameterFlow").latest_run.data.alpha == 0.01


def test_a_changed_root_is_read_at_once(root, tmp_path_factory, monkeypatch):
    other = tmp_path_factory.mktemp("other")
    linear_run(LocalStorage(str(other)), "555")
    assert Flow("ParameterFlow").latest_run.id == "7001"
    monkeypatch.setenv("FLOWPLANE_DATASTORE_ROOT", str(other))
    assert Flow("ParameterFlow").latest_run.id == "555"


def test_an_override_provider_serves_every_object(root):
    counting = CountingProvider(LocalProvider(LocalStorage(str(root))))
    with use_provider(counting):  # type: ignore[arg-type]
        run = Flow("BranchFlow").latest_run
        assert run["join"].task.data.total == 5
        # Objects keep the provider they were made with, down to their children.
        assert run.parent.latest_run == run
    assert {"get_flow", "list_runs", "get_step", "list_tasks", "artifact_index", "load_artifact"} <= set(
        counting.calls)
    assert get_provider() is not counting
    calls = len(counting.calls)
    assert Run("BranchFlow/2001").data.total == 5
    assert len(counting.calls) == calls  # no longer in use


def test_set_provider_refuses_an_object_that_is_not_a_provider(root):
    with pytest.raises(TypeError, match="does not implement the Client API Provider interface"):
        set_provider(object())  # type: ignore[arg-type]
    assert isinstance(get_provider(), LocalProvider)


def test_local_provider_reads(root):
    p = LocalProvider(LocalStorage(str(root)))
    assert [f.name for f in p.list_flows()] == [
        "BobOnlyFlow", "BranchFlow", "CatchFlow", "ForeachFlow", "ParameterFlow", "RetryFlow", "TrainFlow"]
    assert p.get_flow("NoSuchFlow") is None
    assert [r.run_id for r in p.list_runs("ParameterFlow")] == ["7001", "sfn-abc", "1003", "1002", "1001"]
    assert [r.run_id for r in p.list_runs("ParameterFlow", limit=2)] == ["7001", "sfn-abc"]
    assert [r.run_id for r in p.list_runs("ParameterFlow", namespace_tag="user:bob")] == ["1003"]
    assert p.list_runs("NoSuchFlow") == []
    assert p.get_run("ParameterFlow", "1001").user == "alice"
    assert {s.step for s in p.list_steps("ForeachFlow", "3001")} == {"start", "square", "join", "end"}
    assert p.get_step("ForeachFlow", "3001", "square").task_count == 10
    assert [t.task_id for t in p.list_tasks("ForeachFlow", "3001", "square")] == [f"1.{i}" for i in range(10)]
    assert [a.attempt for a in p.list_attempts("RetryFlow", "6001", "flaky", "1")] == [0, 1]
    index = p.artifact_index("RetryFlow", "6001", "flaky", "1", 1)
    assert sorted(index) == ["result", "tries"]
    assert p.load_artifact("RetryFlow", index["tries"].sha) == 2
    assert p.artifact_index("RetryFlow", "6001", "flaky", "1", 7) == {}
    assert p.logs("RetryFlow", "6001", "flaky", "1", 0, "stdout") == "try 1\n"
    assert p.logs("RetryFlow", "6001", "flaky", "1", 7, "stdout") == ""


def test_local_provider_refuses_bad_input(root):
    p = LocalProvider(LocalStorage(str(root)))
    with pytest.raises(ValueError, match="a log stream is 'stdout' or 'stderr', got 'stdin'"):
        p.logs("RetryFlow", "6001", "flaky", "1", 0, "stdin")  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="not an artifact address"):
        p.load_artifact("RetryFlow", "../../etc/passwd")
    # Names that could leave the datastore are not read, whatever is there.
    assert p.get_run("..", "x") is None
    assert p.list_runs("../ParameterFlow") == []
    assert p.get_task("ParameterFlow", "1001", "..", "1") is None
    assert p.list_steps("ParameterFlow", "1001/..") == []


_IMPORT_PROBE = """
import sys
from flowplane import Flow, Run, Metaflow, namespace
import flowplane.client
{extra}
heavy = sorted(m for m in ("boto3", "botocore", "moto") if m in sys.modules)
print(",".join(heavy))
"""


def test_importing_the_client_loads_no_aws_sdk(root):
    env = {**os.environ, "FLOWPLANE_DATASTORE_ROOT": str(root), "FLOWPLANE_USER": "alice"}
    read = "assert Flow('ParameterFlow').latest_successful_run.data.alpha == 0.5"
    for extra in ("", read):
        out = subprocess.run([sys.executable, "-c", _IMPORT_PROBE.format(extra=extra)], env=env,
                             capture_output=True, text=True, check=True)
        assert out.stdout.strip() == "", f"imported {out.stdout.strip()} (extra={extra!r})"


def test_a_large_artifact_reads_back_through_the_client(tmp_path, monkeypatch):
    from tests.support.run_layouts import RunWriter

    isolate_client(monkeypatch, tmp_path)
    big = bytes(range(256)) * (40 * 1024)  # 10 MiB: past the store's in-memory spool
    w = RunWriter(LocalStorage(str(tmp_path)), "BigFlow", "1")
    w.task("start", {"blob": big})
    w.task("end", {"blob": big})
    w.finish()
    art = Run("BigFlow/1").end_task["blob"]
    assert art.size > len(big)
    assert art.type == "bytes"
    assert art.data == big
