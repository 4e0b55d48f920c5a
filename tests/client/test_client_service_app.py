"""The Client API through the real control plane: runs recorded by the recording handlers
from events of AWS's shapes (moto DynamoDB and S3 behind chalice.test.Client), read
back with the same Flow/Run/Step/Task classes through ServiceProvider.

Each shape of run (ParameterFlow, BranchFlow, ForeachFlow, a retried task) is built
twice from one description: with the datastore's writers as a local run leaves it,
and as a production run leaves it (artifacts and logs in the S3 datastore, metadata
from Step Functions, Batch and task events). The Client API must answer the same.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import pytest
import requests

from fixtures_runs import Attempt as LocalAttempt
from fixtures_runs import RunWriter, isolate_client
from flowplane import Flow, Metaflow, Run, Task, namespace
from flowplane.client import NamespaceMismatch, NotFound, use_provider
from flowplane.client.local import LocalProvider
from flowplane.client.service import ServiceError, ServiceProvider
from flowplane.datastore import layout
from flowplane.datastore.artifacts import ArtifactStore
from flowplane.datastore.records import ErrorInfo
from flowplane.datastore.storage import LocalStorage, S3Storage
from test_app_support import control_plane  # noqa: F401  (fixture)
from test_recording_support import (
    T0,
    Attempt,
    TaskPlan,
    deliver,
    execution_detail,
    execution_event,
    run_events,
)

BASE = "https://flowplane.test/api"


class InProcess:
    """A Transport into the Chalice app (chalice.test.Client); counts what it is asked."""

    def __init__(self, cp: Any) -> None:
        self.cp = cp
        self.calls: list[str] = []

    def __call__(self, method: str, url: str, headers: dict[str, str], body: Optional[bytes]):
        assert url.startswith(BASE), url
        self.calls.append(url[len(BASE):])
        lowered = {k.lower(): v for k, v in headers.items()}
        r = self.cp.client.http.request(method, url[len(BASE):], headers=lowered, body=body or b"")
        return r.status_code, r.headers, r.body


def moto_opener(url: str) -> io.BytesIO:
    """The presigned S3 URL, fetched with `requests` (moto answers it in-process)."""
    r = requests.get(url, timeout=10)
    if r.status_code != 200:
        raise ServiceError(url.split("?")[0], f"the artifact download failed: {r.text[:200]}", r.status_code)
    return io.BytesIO(r.content)


# --- one description of a run, written both ways ---------------------------------------------


@dataclass
class Try:
    ok: bool = True
    artifacts: dict[str, Any] = field(default_factory=dict)
    stdout: str = ""
    stderr: str = ""


@dataclass
class TaskShape:
    step: str
    tries: list[Try]
    foreach: tuple[int, ...] = ()

    @property
    def task_id(self) -> str:
        return layout.task_id_for(list(self.foreach))


@dataclass
class RunShape:
    flow: str
    parameters: dict[str, Any]
    tasks: list[TaskShape]


def _error(n: int) -> dict[str, str]:
    # What test_recording_support.run_events reports for a failed attempt n.
    return {"type": "ValueError", "message": f"boom {n}", "traceback": "Traceback ...\nValueError: boom"}


def write_local(storage: LocalStorage, shape: RunShape, run_id: str) -> None:
    w = RunWriter(storage, shape.flow, run_id, parameters=shape.parameters)
    for t in shape.tasks:
        attempts = [
            LocalAttempt(status="succeeded" if a.ok else "failed", artifacts=a.artifacts, stdout=a.stdout,
                         stderr=a.stderr, error=None if a.ok else ErrorInfo(**_error(n)))
            for n, a in enumerate(t.tries)
        ]
        w.task(t.step, foreach_indices=t.foreach, attempts=attempts)
    w.finish()


def write_production(cp: Any, shape: RunShape, execution: str, start: int = T0) -> str:
    """Artifacts and logs into the S3 datastore as the task writes them; the run's events
    through the recording handlers. Returns the run id."""
    run_id = f"sfn-{execution}"
    storage = S3Storage(cp.settings.datastore_root, client=cp.aws.packages.client)
    store = ArtifactStore(storage, shape.flow)
    plans = []
    for t in shape.tasks:
        attempts = []
        for n, a in enumerate(t.tries):
            values = {**shape.parameters, **a.artifacts}
            refs = {name: store.save(v) for name, v in values.items()}
            for stream, text in (("stdout", a.stdout), ("stderr", a.stderr)):
                storage.put_bytes(layout.attempt_key(shape.flow, run_id, t.step, t.task_id, n, f"{stream}.log"),
                                  text.encode())
            attempts.append(Attempt(a.ok, {k: {"sha": r.sha, "size": r.size, "type": r.type} for k, r in refs.items()}))
        plans.append(TaskPlan(t.step, t.task_id, attempts))
    for event in run_events(shape.flow, shape.flow, execution, plans, parameters=shape.parameters, start=start):
        outcome = deliver(cp.client, event)
        assert outcome.get("recorded"), outcome
    return run_id


NUMBERS = list(range(10))
SHAPES = {
    "ParameterFlow": RunShape("ParameterFlow", {"alpha": 0.5}, [
        TaskShape("start", [Try(stdout="alpha is 0.500000\n")]),
        TaskShape("end", [Try(stdout="alpha is still 0.500000\n")]),
    ]),
    "ParameterFlow-retried": RunShape("ParameterFlow", {"alpha": 0.25}, [
        TaskShape("start", [Try(ok=False, stdout="try 1\n", stderr="ValueError: boom\n"),
                            Try(stdout="alpha is 0.250000\n")]),
        TaskShape("end", [Try(stdout="alpha is still 0.250000\n")]),
    ]),
    "BranchFlow": RunShape("BranchFlow", {}, [
        TaskShape("start", [Try(artifacts={"x": 1})]),
        TaskShape("a", [Try(artifacts={"x": 2})]),
        TaskShape("b", [Try(artifacts={"x": 3})]),
        TaskShape("join", [Try(artifacts={"total": 5})]),
        TaskShape("end", [Try(artifacts={"total": 5}, stdout="total is 5\n")]),
    ]),
    "ForeachFlow": RunShape("ForeachFlow", {}, [
        TaskShape("start", [Try(artifacts={"numbers": NUMBERS})]),
        *[TaskShape("square", [Try(artifacts={"numbers": NUMBERS, "value": i * i})], foreach=(i,)) for i in NUMBERS],
        TaskShape("join", [Try(artifacts={"numbers": NUMBERS, "total": 285})]),
        TaskShape("end", [Try(artifacts={"numbers": NUMBERS, "total": 285}, stdout="sum of squares is 285\n")]),
    ]),
}
FILES = {"ParameterFlow": "parameter_flow.py", "BranchFlow": "branch_flow.py", "ForeachFlow": "foreach_flow.py"}


def _plain(value: Any) -> Any:
    return (type(value).__name__, value.args) if isinstance(value, BaseException) else value


def task_answers(task: Task) -> dict[str, Any]:
    exc = task.exception
    return {
        "id": task.id,
        "data": {n: _plain(getattr(task.data, n)) for n in task.data},
        "artifacts": sorted((a.id, a.sha, a.size, a.type) for a in task),
        "successful": task.successful,
        "finished": task.finished,
        "finished_at_known": task.finished_at is not None,
        "index": task.index,
        "attempt": task.current_attempt,
        "stdout": task.stdout,
        "stderr": task.stderr,
        "exception": (exc.type, exc.message) if exc is not None else None,
    }


def run_answers(run: Run) -> dict[str, Any]:
    """What the Client API says about a run, leaving out what names where it ran
    (run id, tags, wall-clock times)."""
    steps = list(run)
    return {
        "successful": run.successful,
        "finished": run.finished,
        "finished_at_known": run.finished_at is not None,
        "data": {n: _plain(getattr(run.data, n)) for n in run.data},
        "steps": [s.id for s in steps],
        "task_counts": {s.id: len(list(s)) for s in steps},
        "tasks": {s.id: [task_answers(t) for t in s] for s in steps},
        "earlier_attempts": {
            f"{s.id}/{t.id}": [task_answers(Task(t.pathspec, attempt=n)) for n in range(t.current_attempt or 0)]
            for s in steps for t in s
        },
    }


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def plane(control_plane, monkeypatch, tmp_path):  # noqa: F811
    """ParameterFlow, BranchFlow and ForeachFlow deployed; the Client API reads through the app."""
    cp = control_plane
    isolate_client(monkeypatch, tmp_path / "local")
    # The app reads FLOWPLANE_DATASTORE_ROOT as the stage's own (an s3:// root) when set.
    monkeypatch.delenv("FLOWPLANE_DATASTORE_ROOT")
    cp.tokens = {flow: cp.deploy(file)["production_token"] for flow, file in FILES.items()}
    cp.transport = InProcess(cp)
    cp.provider = ServiceProvider(BASE, transport=cp.transport, open_url=moto_opener)
    with use_provider(cp.provider):
        yield cp


# A failed attempt keeps its (best-effort) artifacts; the task's "failed" event carries
# their index, so a retried task reads the same through the control plane as locally.
@pytest.mark.parametrize("name", list(SHAPES))
def test_a_production_run_reads_as_the_same_local_run(plane, tmp_path, name):
    shape = SHAPES[name]
    local_root = tmp_path / "local"
    write_local(LocalStorage(str(local_root)), shape, "1")
    run_id = write_production(plane, shape, "e1")
    namespace(None)
    with use_provider(LocalProvider(LocalStorage(str(local_root)))):
        local = run_answers(Run(f"{shape.flow}/1"))
    production = run_answers(Run(f"{shape.flow}/{run_id}"))
    assert production == local
    assert production["successful"] and production["data"]  # the comparison is not of two empties


def test_the_acceptance_line(plane):
    run_id = write_production(plane, SHAPES["ParameterFlow"], "accept")
    token = plane.tokens["ParameterFlow"]
    namespace(f"production:{token}")
    run = Flow("ParameterFlow").latest_run
    assert run.id == run_id
    assert Flow("ParameterFlow").latest_run.data.alpha == 0.5
    assert run.successful and run.finished
    assert {f"production:{token}", "runtime:step-functions"} <= run.system_tags
    assert "alpha is 0.500000" in run["start"].task.stdout
    assert plane.provider.describe() == f"service@{BASE}"


def test_namespaces_filter_on_the_server(plane):
    write_production(plane, SHAPES["ParameterFlow"], "e1")
    write_production(plane, SHAPES["BranchFlow"], "b1", start=T0 + 60_000)
    token = plane.tokens["ParameterFlow"]
    namespace("production:wrong-token")
    with pytest.raises(NamespaceMismatch, match="production:wrong-token"):
        Flow("ParameterFlow")
    with pytest.raises(NamespaceMismatch):
        Run("ParameterFlow/sfn-e1")
    namespace(f"production:{token}")
    assert [f.id for f in Metaflow()] == ["ParameterFlow"]
    namespace(None)
    assert [f.id for f in Metaflow()] == ["BranchFlow", "ParameterFlow"]
    assert Run("BranchFlow/sfn-b1")["join"].task.data.total == 5
    assert [r.id for r in Flow("ParameterFlow")] == ["sfn-e1"]
    sent = [c for c in plane.transport.calls if "/runs?" in c]
    assert any(f"namespace=production%3A{token}" in c for c in sent)
    assert "namespace=" not in sent[-1]


def test_runs_page_through_next_token_newest_first(plane):
    for i in range(25):
        start = T0 + i * 60_000
        deliver(plane.client, execution_event(execution_detail("ParameterFlow", f"p{i}", "RUNNING", start)))
        deliver(plane.client, execution_event(
            execution_detail("ParameterFlow", f"p{i}", "SUCCEEDED", start, start + 1000, {"alpha": i})))
    namespace(f"production:{plane.tokens['ParameterFlow']}")
    runs = list(Flow("ParameterFlow"))
    assert [r.id for r in runs] == [f"sfn-p{i}" for i in reversed(range(25))]
    pages = [c for c in plane.transport.calls if c.startswith("/flows/ParameterFlow/runs?")]
    assert len(pages) == 3  # the namespace check (limit 1), then pages of 20 and 100
    assert "next_token=" in pages[-1] and "limit=100" in pages[-1]
    # No end task recorded: finished and successful say no, as for a local run without one.
    assert runs[0].finished is False and runs[0].successful is False


def test_missing_things_are_not_found(plane):
    write_production(plane, SHAPES["ParameterFlow"], "e1")
    namespace(None)
    with pytest.raises(NotFound, match=r"Flow\('NoSuchFlow'\) does not exist"):
        Flow("NoSuchFlow")
    with pytest.raises(NotFound, match=r"Run\('ParameterFlow/sfn-nope'\) does not exist"):
        Run("ParameterFlow/sfn-nope")
    run = Run("ParameterFlow/sfn-e1")
    with pytest.raises(KeyError, match="nostep"):
        run["nostep"]
    with pytest.raises(KeyError, match="does not exist"):
        run["start"]["1.3"]
    with pytest.raises(NotFound, match="has no attempt 4"):
        Task("ParameterFlow/sfn-e1/start/1", attempt=4)
    with pytest.raises(AttributeError, match=r"the task's artifacts: alpha"):
        run.data.beta


def test_a_running_task_shows_its_cloudwatch_output_and_no_artifacts_yet(plane):
    flow, run_id = "ParameterFlow", "sfn-live"
    events = run_events(flow, flow, "live", [TaskPlan("start", "1", [Attempt(True, {})])],
                        parameters={"alpha": 0.5})
    # The execution started, the start task's job runs: its end is still to come.
    running = [e for e in events if e.detail.get("status") in (None, "RUNNING", "RUNNABLE", "STARTING")
               and e.detail.get("kind") in (None, "started")]
    for event in running:
        deliver(plane.client, event)
    namespace(None)
    task = Run(f"{flow}/{run_id}")["start"].task
    assert task.finished is False and task.successful is False
    assert list(task.data) == []
    stream = task._attempt_record().log_location
    assert stream
    logs = plane.aws.session.client("logs", region_name=plane.settings.region)
    logs.create_log_group(logGroupName="/aws/batch/job")
    logs.create_log_stream(logGroupName="/aws/batch/job", logStreamName=stream)
    logs.put_log_events(logGroupName="/aws/batch/job", logStreamName=stream, logEvents=[
        {"timestamp": int(time.time() * 1000) + i, "message": f"alpha is {i}"} for i in range(2)])
    assert task.stdout == "alpha is 0\nalpha is 1\n"
    assert Run(f"{flow}/{run_id}").finished is False


def test_an_artifact_read_twice_is_fetched_once(plane):
    run_id = write_production(plane, SHAPES["ForeachFlow"], "f1")
    namespace(None)
    run = Run(f"ForeachFlow/{run_id}")
    # `numbers` is the same value (same sha) in all thirteen tasks.
    assert {tuple(t.data.numbers) for s in run for t in s} == {tuple(NUMBERS)}
    fetched = [c for c in plane.transport.calls if c.split("?")[0].endswith("/artifacts/numbers")]
    assert len(fetched) == 1
    assert sorted(t.data.value for t in run["square"]) == [i * i for i in NUMBERS]


def test_a_retried_task_shows_each_attempt(plane):
    run_id = write_production(plane, SHAPES["ParameterFlow-retried"], "r1")
    namespace(None)
    task = Run(f"ParameterFlow/{run_id}")["start"].task
    assert task.current_attempt == 1 and task.successful and task.data.alpha == 0.25
    assert task.stdout == "alpha is 0.250000\n"
    first = Task(task.pathspec, attempt=0)
    assert first.finished is False and first.successful is False
    assert (first.exception.type, first.exception.message) == ("ValueError", "boom 0")
    assert first.stdout == "try 1\n" and first.stderr == "ValueError: boom\n"
    assert [m.value for m in task.metadata if m.name == "attempt"] == ["0", "1"]
