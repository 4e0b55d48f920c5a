"""The Client API over the control plane's read routes (ServiceProvider), against a small
fake of the HTTP contract in notes/HELPERS.md served on 127.0.0.1 (tests/support/fake_control_plane.py).

The fake answers from a datastore written with the datastore's own writers
(run_layouts), so every test can ask the same question through the local
datastore and through HTTP and expect the same answer.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from typing import Any

import pytest

from flowplane import Flow, Metaflow, Run, Step, Task, namespace
from flowplane.client import ClientError, NotFound, get_metadata, get_provider, set_provider, use_provider
from flowplane.client.combined import CombinedProvider
from flowplane.client.local import LocalProvider
from flowplane.client.service import ServiceError, ServiceProvider, configured_service_url
from flowplane.datastore.storage import LocalStorage
from tests.support.fake_control_plane import fake_control_plane
from tests.support.run_layouts import RunWriter, build_world, isolate_client, linear_run

# No moto runs here: `aws` keeps these tests out of make test-quick, where they were when
# the marker was inferred from a module's text (its import probe names moto).
pytestmark = pytest.mark.aws


# --- fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("datastore")
    build_world(LocalStorage(str(root)))
    return root


@pytest.fixture()
def plane(world_root, monkeypatch, tmp_path):
    """The Client API reads through the fake control plane (FLOWPLANE_API_URL), as alice.

    The client's own datastore is empty: every answer has to come through the plane
    (the combined provider reads both; test_client_combined*.py covers the merge)."""
    isolate_client(monkeypatch, tmp_path / "local")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with fake_control_plane(LocalStorage(str(world_root))) as p:
        monkeypatch.setenv("FLOWPLANE_API_URL", p.url)
        p.client_root = tmp_path / "local"
        yield p


def local_provider(root) -> LocalProvider:
    return LocalProvider(LocalStorage(str(root)))


# --- what a run looks like through the Client API ----------------------------------------


def _plain(value: Any) -> Any:
    """Exceptions compare by identity; compare them by type and arguments."""
    if isinstance(value, BaseException):
        return (type(value).__name__, value.args)
    return value


def describe_task(task: Task) -> dict[str, Any]:
    exc = task.exception
    return {
        "pathspec": task.pathspec,
        "data": {name: _plain(getattr(task.data, name)) for name in task.data},
        "artifacts": sorted((a.id, a.sha, a.size, a.type) for a in task),
        "successful": task.successful,
        "finished": task.finished,
        "created_at": task.created_at,
        "finished_at": task.finished_at,
        "index": task.index,
        "attempt": task.current_attempt,
        "stdout": task.stdout,
        "stderr": task.stderr,
        "exception": (exc.type, exc.message) if hasattr(exc, "type") else repr(exc),
        "tags": task.tags,
        "metadata": {k: v for k, v in task.metadata_dict.items() if k not in ("ds-type", "ds-root")},
    }


def describe_run(run: Run) -> dict[str, Any]:
    """Everything the Client API says about a run, in the order it says it."""
    steps = list(run)
    return {
        "pathspec": run.pathspec,
        "tags": run.tags,
        "user_tags": run.user_tags,
        "system_tags": run.system_tags,
        "successful": run.successful,
        "finished": run.finished,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
        "data": None if run.data is None else {n: _plain(getattr(run.data, n)) for n in run.data},
        "steps": [s.id for s in steps],
        "task_counts": {s.id: len(list(s)) for s in steps},
        "step_finished_at": {s.id: s.finished_at for s in steps},
        "tasks": {s.id: [describe_task(t) for t in s] for s in steps},
        "earlier_attempts": {
            t.pathspec: [describe_task(Task(t.pathspec, attempt=n)) for n in range(t.current_attempt or 0)]
            for s in steps for t in s
        },
    }


SHAPES = [
    ("ParameterFlow", "1002"),
    ("ParameterFlow", "sfn-abc"),
    ("ParameterFlow", "7001"),  # still running
    ("BranchFlow", "2001"),
    ("ForeachFlow", "3001"),
    ("TrainFlow", "4001"),  # failed
    ("CatchFlow", "5001"),  # @catch
    ("RetryFlow", "6001"),  # @retry: attempt 0 failed
]


@pytest.mark.parametrize("flow,run_id", SHAPES, ids=[f"{f}/{r}" for f, r in SHAPES])
def test_the_service_path_gives_the_same_answers_as_the_local_datastore(plane, world_root, flow, run_id):
    namespace(None)
    with use_provider(local_provider(world_root)):
        local = describe_run(Run(f"{flow}/{run_id}"))
    service = describe_run(Run(f"{flow}/{run_id}"))
    assert get_metadata() == f"service@{plane.url}"
    assert get_provider().describe() == f"service@{plane.url}+local@{plane.client_root}"
    assert service == local
    assert plane.paths(), "nothing went through the control plane"


def test_production_run_is_read_in_its_deployment_namespace(plane):
    namespace("production:tok1")
    run = Flow("ParameterFlow").latest_run
    assert run.id == "sfn-abc"
    assert run.data.alpha == 0.5
    assert run.successful and run.finished
    assert "alpha is 0.500000" in run["start"].task.stdout
    assert {"production:tok1", "runtime:step-functions"} <= run.tags
    # The filter ran on the server: the namespace went with the request.
    assert {q.get("namespace") for p, q in plane.requests if plane._kind(p) == "runs"} == {"production:tok1"}


def test_default_namespace_is_the_users_and_none_shows_every_run(plane):
    assert [r.id for r in Flow("ParameterFlow")] == ["7001", "1002", "1001"]
    assert Flow("ParameterFlow").latest_successful_run.data.alpha == 0.5
    assert [f.id for f in Metaflow()] == [
        "BranchFlow", "CatchFlow", "ForeachFlow", "ParameterFlow", "RetryFlow", "TrainFlow"]
    namespace(None)
    assert [r.id for r in Flow("ParameterFlow")] == ["7001", "sfn-abc", "1003", "1002", "1001"]
    assert "BobOnlyFlow" in [f.id for f in Metaflow()]
    runs_queries = [q for p, q in plane.requests if plane._kind(p) == "runs"]
    assert "namespace" not in runs_queries[-1]
    assert {q.get("namespace") for q in runs_queries[:-1]} >= {"user:alice"}


def test_objects_outside_the_namespace_are_a_mismatch_not_a_miss(plane):
    from flowplane.client import NamespaceMismatch

    with pytest.raises(NamespaceMismatch, match="user:alice"):
        Run("ParameterFlow/sfn-abc")
    with pytest.raises(NamespaceMismatch):
        Flow("BobOnlyFlow")
    namespace("user:bob")
    assert Flow("BobOnlyFlow").latest_run.data.alpha == 0.01


def test_missing_things_are_not_found(plane):
    namespace(None)
    with pytest.raises(NotFound, match=r"Flow\('NoSuchFlow'\) does not exist \(datastore service@http"):
        Flow("NoSuchFlow")
    with pytest.raises(NotFound, match=r"Run\('ParameterFlow/999'\) does not exist"):
        Run("ParameterFlow/999")
    with pytest.raises(KeyError, match="nostep"):
        Run("ParameterFlow/1001")["nostep"]
    with pytest.raises(NotFound, match=r"Task\('ParameterFlow/1001/start/9'\) does not exist"):
        Task("ParameterFlow/1001/start/9")
    with pytest.raises(NotFound, match="has no attempt 3"):
        Task("RetryFlow/6001/flaky/1", attempt=3)
    with pytest.raises(AttributeError, match="does not exist"):
        Run("ParameterFlow/1001").data.nothing
    assert "nostep" not in Run("ParameterFlow/1001")
    assert "NoSuchFlow" not in Metaflow()


# --- pagination ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def many_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("many")
    storage = LocalStorage(str(root))
    for i in range(130):
        linear_run(storage, str(10_000 + i), minute=i, alpha=i / 100)
    return root


@pytest.fixture()
def many_runs(many_root, tmp_path, monkeypatch):
    isolate_client(monkeypatch, tmp_path / "local")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with fake_control_plane(LocalStorage(str(many_root))) as p:
        monkeypatch.setenv("FLOWPLANE_API_URL", p.url)
        yield p


def test_latest_run_reads_one_small_page(many_runs):
    run = Flow("ParameterFlow").latest_run
    assert run.id == "10129" and run.data.alpha == 1.29
    pages = [q for p, q in many_runs.requests if many_runs._kind(p) == "runs"]
    # One page for the namespace check (limit 1), one for latest_run: never the whole list.
    assert [q["limit"] for q in pages] == ["1", "20"]
    assert all("next_token" not in q for q in pages)


def test_iterating_runs_follows_next_token_lazily(many_runs):
    runs = iter(Flow("ParameterFlow"))
    first = [next(runs) for _ in range(20)]
    pages = lambda: [q for p, q in many_runs.requests if many_runs._kind(p) == "runs"]  # noqa: E731
    assert len(pages()) == 2  # the namespace check and the first page: nothing fetched ahead
    rest = list(runs)
    ids = [r.id for r in first + rest]
    assert ids == [str(10_000 + i) for i in reversed(range(130))]
    assert [q["limit"] for q in pages()] == ["1", "20", "100", "500"]
    assert [("next_token" in q) for q in pages()] == [False, False, True, True]


def test_run_pages_behave_as_a_sequence(many_runs):
    provider = get_provider()
    runs = provider.list_runs("ParameterFlow", namespace_tag="user:alice")
    assert runs[0].run_id == "10129"
    assert runs[25].run_id == "10104"
    assert len(runs) == 130 and runs[-1].run_id == "10000"
    assert [r.run_id for r in runs[:2]] == ["10129", "10128"]
    assert bool(provider.list_runs("ParameterFlow", namespace_tag="user:nobody")) is False
    assert [r.run_id for r in provider.list_runs("ParameterFlow", limit=3)] == ["10129", "10128", "10127"]
    assert list(provider.list_runs("ParameterFlow", limit=0)) == []
    assert len(provider.list_runs("ParameterFlow", limit=1000)) == 130


def test_a_repeated_next_token_stops_the_listing(many_runs):
    token = base64.urlsafe_b64encode(b"20").decode()
    many_runs.fail("/flows/ParameterFlow/runs", 200, {"runs": [], "next_token": token})
    with pytest.raises(ClientError, match="returned next_token .* twice"):
        list(get_provider().list_runs("ParameterFlow"))


# --- artifacts -------------------------------------------------------------------------


def test_artifacts_stream_from_the_presigned_url_once_per_sha(plane):
    namespace(None)
    run = Run("ParameterFlow/sfn-abc")
    assert run["start"].task.data.alpha == 0.5
    assert run.data.alpha == 0.5  # the end task inherits the same value: same sha
    assert run["end"].task["alpha"].data == 0.5
    assert run["start"].task["alpha"].sha == run["end"].task["alpha"].sha
    assert len(plane.paths("blob")) == 1
    assert len(plane.paths("artifact")) == 1


def test_a_large_artifact_is_streamed_and_not_kept(tmp_path, monkeypatch):
    storage = LocalStorage(str(tmp_path / "big"))
    big = bytes(range(256)) * (40 * 1024)  # 10 MiB pickle: past what the provider keeps
    w = RunWriter(storage, "BigFlow", "1")
    w.task("start", {"blob": big})
    w.task("end", {"blob": big})
    w.finish()
    isolate_client(monkeypatch, tmp_path / "local")
    with fake_control_plane(storage) as p:
        monkeypatch.setenv("FLOWPLANE_API_URL", p.url)
        art = Run("BigFlow/1").end_task["blob"]
        assert art.type == "bytes" and art.size > len(big)
        assert art.data == big
        assert art.data == big
        assert len(p.paths("blob")) == 2


def test_a_failed_download_names_the_url_without_its_signature(plane):
    plane.blob_status = 403
    namespace(None)
    with pytest.raises(ServiceError) as e:
        Run("ParameterFlow/1002").data.alpha
    msg = str(e.value)
    assert "HTTP 403" in msg and "/_s3/ParameterFlow/" in msg and "Request has expired" in msg
    assert "secret-signature" not in msg


def test_an_artifact_gone_between_index_and_value_is_not_found(plane):
    namespace(None)
    task = Run("ParameterFlow/1001")["end"].task
    assert "alpha" in task.data
    plane.fail("/flows/ParameterFlow/runs/1001/steps/end/tasks/1/artifacts/alpha", 404,
               {"error": "artifact alpha does not exist", "code": "not_found"})
    with pytest.raises(NotFound, match=r"DataArtifact\('ParameterFlow/1001/end/1/alpha'\) \(attempt 0\)"):
        task.data.alpha


def test_load_artifact_refuses_what_it_cannot_address(plane):
    provider = get_provider()
    with pytest.raises(KeyError, match="not an artifact address"):
        provider.load_artifact("ParameterFlow", "../../etc/passwd")
    with pytest.raises(NotFound, match="was not listed by any task"):
        provider.load_artifact("ParameterFlow", "0" * 64)
    assert plane.requests == []


# --- attempts and logs -------------------------------------------------------------------


def test_a_task_reads_its_attempts_from_the_task_answer(plane):
    namespace(None)
    task = Task("RetryFlow/6001/flaky/1")
    assert task.current_attempt == 1 and task.successful
    assert len(plane.paths("task")) == 1  # get_task's attempts served list_attempts
    assert task.stdout == "try 2\n"
    first = Task("RetryFlow/6001/flaky/1", attempt=0)
    assert first.stdout == "try 1\n"
    assert not first.finished and first.exception.type == "RuntimeError"
    assert [q["attempt"] for p, q in plane.requests if plane._kind(p) == "logs"] == ["1", "0"]


def test_logs_refuse_a_stream_that_is_not_one(plane):
    with pytest.raises(ValueError, match="a log stream is 'stdout' or 'stderr', got 'stdin'"):
        get_provider().logs("RetryFlow", "6001", "flaky", "1", 0, "stdin")  # type: ignore[arg-type]
    assert plane.requests == []


def test_names_that_could_leave_the_route_are_never_sent(plane):
    provider = get_provider()
    assert provider.get_run("..", "x") is None
    assert provider.list_runs("../ParameterFlow") == []
    assert provider.get_task("ParameterFlow", "1001", "..", "1") is None
    assert provider.list_steps("ParameterFlow", "1001/..") == []
    assert provider.artifact_index("ParameterFlow", "1001", "start", "1/../2", 0) == {}
    assert plane.requests == []


# --- errors --------------------------------------------------------------------------------


def test_a_server_error_names_the_url_and_the_message(plane):
    plane.fail("/flows/ParameterFlow/runs/1001", 500, {"error": "DynamoDB said no"})
    with pytest.raises(ServiceError) as e:
        Run("ParameterFlow/1001")
    assert str(e.value) == f"GET {plane.url}/flows/ParameterFlow/runs/1001 failed: HTTP 500: DynamoDB said no"
    assert e.value.status == 500
    assert isinstance(e.value, ClientError)


def test_a_bad_request_names_the_field(plane):
    plane.fail("/flows/ParameterFlow/runs", 400, {"error": "not a namespace: 'x y'", "field": "namespace"})
    with pytest.raises(ServiceError, match=r"HTTP 400: not a namespace: 'x y' \(field namespace\)"):
        list(get_provider().list_runs("ParameterFlow", namespace_tag="x y"))


def test_a_404_that_is_not_the_contracts_is_a_missing_route(plane):
    plane.fail("/flows/ParameterFlow/runs/1001/steps", 404, {"message": "Not Found"})
    namespace(None)
    with pytest.raises(ServiceError, match="no such route on the control plane"):
        list(Run("ParameterFlow/1001"))


def test_throttling_and_gateway_errors_are_retried(world_root, plane):
    waits: list[float] = []
    provider = ServiceProvider(plane.url, sleep=waits.append, retries=3)
    plane.fail("/flows/ParameterFlow/runs/1001", 503, {"message": "Service Unavailable"}, times=2)
    assert provider.get_run("ParameterFlow", "1001").run_id == "1001"
    # Full jitter (flowplane/api_retry.py): each wait is somewhere in a window that doubles.
    assert len(waits) == 2 and 0 <= waits[0] <= 0.25 and 0 <= waits[1] <= 0.5
    plane.fail("/flows/ParameterFlow/runs/1002", 429, {"message": "Too Many Requests"})
    with pytest.raises(ServiceError, match="HTTP 429: Too Many Requests"):
        provider.get_run("ParameterFlow", "1002")
    assert len(plane.paths("run")) == 3 + 3


def test_an_answer_of_the_wrong_shape_is_reported(plane):
    provider = get_provider()
    plane.fail("/flows/ParameterFlow/runs/1001", 200, {"flow": "ParameterFlow"})
    with pytest.raises(ServiceError, match=r"unexpected answer: RunRecord\.run_id: Field required"):
        provider.get_run("ParameterFlow", "1001")
    plane.fail("/flows/ParameterFlow/runs", 200, {"items": []})
    with pytest.raises(ServiceError, match="unexpected answer: no list 'runs'"):
        list(provider.list_runs("ParameterFlow"))
    plane.fail("/flows/ParameterFlow/runs/1002/steps/end/tasks/1/logs/stdout", 200, {"attempt": 0})
    with pytest.raises(ServiceError, match="no string 'text'"):
        provider.logs("ParameterFlow", "1002", "end", "1", 0, "stdout")
    plane.fail("/flows/ParameterFlow/runs/1002/steps/end/tasks/1/artifacts", 200,
               {"attempt": 0, "artifacts": {"alpha": {"type": "float"}}})
    with pytest.raises(ServiceError, match="artifact 'alpha' has no sha and size"):
        provider.artifact_index("ParameterFlow", "1002", "end", "1", 0)


def test_an_unreachable_control_plane_is_a_clear_error(world_root, monkeypatch):
    isolate_client(monkeypatch, world_root)
    monkeypatch.setenv("FLOWPLANE_API_URL", "http://127.0.0.1:9/api")
    with pytest.raises(ServiceError, match=r"GET http://127.0.0.1:9/api/flows/ParameterFlow failed: cannot reach"):
        Flow("ParameterFlow")


def test_only_a_plane_that_did_not_answer_is_unreachable(world_root, monkeypatch):
    # The combined provider falls back to local runs only for an absent plane; a settings
    # or credentials error is the plane's answer of a kind, whatever its words.
    isolate_client(monkeypatch, world_root)

    from flowplane.api_client import urllib_transport
    from flowplane.user_config import ConfigError

    def misconfigured(method, url, headers, body):
        raise ConfigError("cannot reach a decision on credentials: none found")

    # Port 9 (discard) refuses connections here.
    for transport, unreachable in ((urllib_transport(timeout=5), True), (misconfigured, False)):
        provider = ServiceProvider("http://127.0.0.1:9/api", transport=transport, retries=1)
        with pytest.raises(ServiceError) as caught:
            provider.get_flow("ParameterFlow")
        assert caught.value.unreachable is unreachable, caught.value


# --- choosing the provider ----------------------------------------------------------------


@pytest.fixture()
def home(tmp_path, monkeypatch, world_root):
    isolate_client(monkeypatch, world_root)
    monkeypatch.delenv("FLOWPLANE_API_URL", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home" / ".flowplane").mkdir(parents=True)
    return tmp_path / "home"


def test_flowplane_api_url_selects_the_control_plane(home, monkeypatch, world_root):
    monkeypatch.setenv("FLOWPLANE_API_URL", "https://cp.example/dev/")
    provider = get_provider()
    # The control plane, read together with the local datastore (local runs stay visible).
    assert isinstance(provider, CombinedProvider) and provider.origin == "env"
    assert isinstance(provider.plane, ServiceProvider) and isinstance(provider.local, LocalProvider)
    assert provider.plane.describe() == "service@https://cp.example/dev"
    assert provider.describe() == f"service@https://cp.example/dev+local@{world_root}"
    assert get_provider() is provider  # cached per URL and root
    monkeypatch.delenv("FLOWPLANE_API_URL")
    assert isinstance(get_provider(), LocalProvider)


def test_the_config_file_selects_the_control_plane_unless_a_datastore_is_chosen(home, monkeypatch):
    (home / ".flowplane" / "config.json").write_text(json.dumps({"api_url": "https://cp.example/prod"}))
    # An explicit FLOWPLANE_DATASTORE_ROOT (a task, a test) is a choice the file does not override.
    assert isinstance(get_provider(), LocalProvider)
    monkeypatch.delenv("FLOWPLANE_DATASTORE_ROOT")
    assert configured_service_url() == "https://cp.example/prod"
    assert get_metadata() == "service@https://cp.example/prod"
    assert get_provider().describe() == f"service@https://cp.example/prod+local@{os.getcwd()}/.flowplane"
    assert get_provider().origin == "config"
    (home / ".flowplane" / "config.json").write_text(json.dumps({"other": 1}))
    assert configured_service_url() is None
    assert get_metadata().startswith("local@")


def test_a_broken_config_file_is_named(home, monkeypatch):
    monkeypatch.delenv("FLOWPLANE_DATASTORE_ROOT")
    (home / ".flowplane" / "config.json").write_text("{not json")
    with pytest.raises(ClientError, match=r"config.json is not readable JSON"):
        Flow("ParameterFlow")
    (home / ".flowplane" / "config.json").write_text(json.dumps(["https://cp.example"]))
    with pytest.raises(ClientError, match=r"config.json must hold a JSON object"):
        Flow("ParameterFlow")


def test_an_explicit_provider_wins_over_the_control_plane(home, monkeypatch, world_root):
    monkeypatch.setenv("FLOWPLANE_API_URL", "http://127.0.0.1:9/api")
    local = local_provider(world_root)
    with use_provider(local):
        assert Flow("ParameterFlow").latest_run.id == "7001"
    set_provider(local)
    try:
        assert get_provider() is local
    finally:
        set_provider(None)
    assert isinstance(get_provider(), CombinedProvider)


def test_the_config_file_is_the_api_clients(home, monkeypatch):
    from flowplane.api_client import ApiClient

    monkeypatch.delenv("FLOWPLANE_DATASTORE_ROOT")
    (home / ".flowplane" / "config.json").write_text(json.dumps({"api_url": "https://cp.example/prod/"}))
    assert configured_service_url() == ApiClient().base_url == "https://cp.example/prod"


_PROBE = """
import sys
from flowplane import Flow, namespace
namespace(None)
assert Flow('ParameterFlow').latest_successful_run.data.alpha == 0.5
print(",".join(sorted(m for m in ("boto3", "botocore", "requests", "moto") if m in sys.modules)))
"""


def test_reading_through_the_control_plane_loads_no_aws_sdk_nor_requests(plane, world_root):
    env = {**os.environ, "FLOWPLANE_API_URL": plane.url, "FLOWPLANE_USER": "alice"}
    out = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
    assert plane.paths("runs")


def test_run_data_costs_one_request_per_thing_it_needs(plane):
    namespace(None)
    assert Run("ParameterFlow/1002").data.alpha == 0.5
    kinds = [plane._kind(p) for p, _ in plane.requests]
    # The Step is one request (no task count: that would read every task of a wide foreach),
    # its iteration one page of tasks, whose answer's attempts the Task then reuses.
    assert kinds == ["run", "step", "tasks", "task", "artifacts", "artifact", "blob"]


def test_a_handed_over_read_goes_stale(plane, monkeypatch):
    from flowplane.client import service

    namespace(None)
    provider = get_provider()
    now = [1000.0]
    monkeypatch.setattr(service.time, "monotonic", lambda: now[0])
    assert provider.get_task("ParameterFlow", "1002", "end", "1").attempts == 1
    now[0] += service._HANDOFF_FRESH_S + 1  # the attempts the task answer brought are stale now
    assert [a.attempt for a in provider.list_attempts("ParameterFlow", "1002", "end", "1")] == [0]
    assert [plane._kind(p) for p, _ in plane.requests] == ["task", "task"]
    assert provider.plane._handoff == {}
