"""The Client API through the real control plane: runs recorded by the recording handlers
from events of AWS's shapes (moto DynamoDB and S3 behind chalice.test.Client), read
back with the same Flow/Run/Step/Task classes through ServiceProvider.

Each shape of run (ParameterFlow, BranchFlow, ForeachFlow, a retried task) is built
twice from one description: with the datastore's writers as a local run leaves it,
and as a production run leaves it (artifacts and logs in the S3 datastore, metadata
from Step Functions, Batch and task events). The Client API must answer the same.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from flowplane import Flow, Metaflow, Run, Task, namespace
from flowplane.client import NamespaceMismatch, NotFound, use_provider
from flowplane.client.local import LocalProvider
from flowplane.client.service import ServiceProvider
from flowplane.datastore.storage import LocalStorage
from tests.support.production_runs import BASE, FILES, NUMBERS, SHAPES, InProcess, moto_opener, write_local, write_production
from tests.support.recording_events import T0, Attempt, TaskPlan, deliver, execution_detail, execution_event, run_events
from tests.support.run_layouts import isolate_client

pytestmark = pytest.mark.aws

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
