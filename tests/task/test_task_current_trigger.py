"""`current.trigger` in a task: what started its production run, read from the execution input.

Every production task gets its execution's input (FLOWPLANE_EXECUTION_INPUT); a triggered
run's carries its causes (`"Trigger"`, flowplane/trigger_events.py). The task is called
in-process as Batch starts it; a local run ignores triggers, as in Metaflow.
"""

from __future__ import annotations

import json

import pytest

from tests.support.run_layouts import RunWriter, isolate_client
from flowplane import current
from flowplane.datastore.storage import LocalStorage
from flowplane.task.command import main as task_main
from flowplane.trigger_events import EXECUTION_INPUT_KEY, PublishedEvent, RunFinished, TriggerCause
from tests.support.local_runs import RunView, write_flow

TOKEN = "tok-1"
TRIGGERED = """
from flowplane import FlowSpec, current, step

class TriggeredFlow(FlowSpec):
    @step
    def start(self):
        t = current.trigger
        self.seen = None if t is None else {
            "events": [(e.name, e.id, e.timestamp, e.payload, e.type) for e in t.events],
            "event": t.event.name,
            "upstream": t.run.pathspec if t.run is not None else None,
            "upstream_total": t.run.data.total if t.run is not None else None,
        }
        self.next(self.end)

    @step
    def end(self):
        pass
"""
PUBLISHED = TriggerCause.from_published(PublishedEvent(name="data_updated", id="ev-7", timestamp=1_764_000_000,
                                                       payload={"table": "sales"}))
UPSTREAM = TriggerCause.from_run(RunFinished(flow="BranchFlow", run_id="sfn-up", status="SUCCEEDED",
                                             namespace=f"production:{TOKEN}"), timestamp=1_764_000_100)


@pytest.fixture()
def root(tmp_path, monkeypatch):
    root = tmp_path / "ds"
    isolate_client(monkeypatch, str(root))
    for var in ("FLOWPLANE_EXECUTION_INPUT", "FLOWPLANE_PRODUCTION_TOKEN", "FLOWPLANE_FOREACH_TABLE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    return root


def execution_input(causes: list[TriggerCause]) -> str:
    """What the launcher starts a triggered run with, as every task of the run then gets it."""
    return json.dumps({"Parameters": "{}", EXECUTION_INPUT_KEY: [json.loads(c.model_dump_json()) for c in causes]})


def run_start(tmp_path, root) -> dict | None:
    flow = write_flow(tmp_path, "triggered_flow", TRIGGERED)
    argv = ["--run-id", "sfn-down", "--step", "start", "--task-id", "1", "--retry-count", "0",
            "--flow-file", str(flow), "--datastore-root", str(root)]
    assert task_main(argv) == 0
    assert current.trigger is None  # the task's context is gone once it ends
    return RunView(LocalStorage(str(root)), "TriggeredFlow", "sfn-down").data("start")["seen"]


def test_a_production_task_sees_the_event_and_the_upstream_run(tmp_path, root, monkeypatch):
    # The upstream run, in the datastore the task's Client API reads.
    upstream = RunWriter(LocalStorage(str(root)), "BranchFlow", "sfn-up", production_token=TOKEN)
    upstream.task("start", {"total": 0})
    upstream.task("end", {"total": 5})
    upstream.finish()
    monkeypatch.setenv("FLOWPLANE_PRODUCTION_TOKEN", TOKEN)
    monkeypatch.setenv("FLOWPLANE_EXECUTION_INPUT", execution_input([PUBLISHED, UPSTREAM]))
    seen = run_start(tmp_path, root)
    assert seen == {
        "events": [("data_updated", "ev-7", 1_764_000_000, {"table": "sales"}, "event"),
                   ("BranchFlow", "run:BranchFlow/sfn-up", 1_764_000_100,
                    {"flow": "BranchFlow", "run_id": "sfn-up", "status": "SUCCEEDED",
                     "namespace": f"production:{TOKEN}"}, "run")],
        "event": "data_updated",
        "upstream": "BranchFlow/sfn-up",
        "upstream_total": 5,
    }


def test_a_production_run_nobody_triggered_has_no_trigger(tmp_path, root, monkeypatch):
    monkeypatch.setenv("FLOWPLANE_PRODUCTION_TOKEN", TOKEN)
    monkeypatch.setenv("FLOWPLANE_EXECUTION_INPUT", json.dumps({"Parameters": "{}"}))
    assert run_start(tmp_path, root) is None


def test_a_local_run_ignores_triggers(tmp_path, root, monkeypatch):
    # Even with an execution input lying around in the environment.
    monkeypatch.setenv("FLOWPLANE_EXECUTION_INPUT", execution_input([PUBLISHED]))
    assert run_start(tmp_path, root) is None
