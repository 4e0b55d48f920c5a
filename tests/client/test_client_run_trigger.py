"""`Run.trigger` through the Client API, read from the control plane (ServiceProvider).

Runs are recorded by the recording handlers from events of AWS's shapes (moto behind
chalice.test.Client, as in test_client_service_app); a triggered run's execution input
carries its causes as the launcher gives them. As Metaflow's: None for a run nobody
triggered and for local runs; `.run` is the upstream Run, so a chain is followed backwards.
"""

from __future__ import annotations

import json

import pytest

from flowplane import Run, namespace
from flowplane.client import use_provider
from flowplane.client.local import LocalProvider
from flowplane.datastore.storage import LocalStorage
from flowplane.trigger_events import EXECUTION_INPUT_KEY, PublishedEvent, RunFinished, Trigger, TriggerCause
from tests.support.production_runs import SHAPES, write_local, write_production
from tests.support.recording_events import T0, deliver, execution_detail, execution_event

pytestmark = pytest.mark.aws


def triggered_by(cp, flow: str, execution: str, causes: list[TriggerCause]) -> None:
    """The run's status change as Step Functions reports it: its input names what started it."""
    detail = execution_detail(flow, execution, "RUNNING", T0 + 60_000)
    detail["input"] = json.dumps({"Parameters": "{}",
                                  EXECUTION_INPUT_KEY: [json.loads(c.model_dump_json()) for c in causes]})
    assert deliver(cp.client, execution_event(detail))["recorded"] is True


def finished(flow: str, run_id: str) -> TriggerCause:
    return TriggerCause.from_run(RunFinished(flow=flow, run_id=run_id, status="SUCCEEDED"), timestamp=1_764_000_000)


def test_a_chain_of_runs_is_followed_backwards(plane, tmp_path):
    upstream = write_production(plane, SHAPES["BranchFlow"], "up")
    downstream = write_production(plane, SHAPES["ParameterFlow"], "down", start=T0 + 60_000)
    triggered_by(plane, "ParameterFlow", "down", [finished("BranchFlow", upstream)])
    namespace(None)
    trigger = Run(f"ParameterFlow/{downstream}").trigger
    assert isinstance(trigger, Trigger) and len(trigger) == 1
    assert trigger.event.name == "BranchFlow" and trigger.event.id == f"run:BranchFlow/{upstream}"
    assert trigger.run == Run(f"BranchFlow/{upstream}") == trigger["BranchFlow"]
    assert trigger.runs == [trigger.run]
    # The upstream run is read where the triggered one was, whatever the current provider.
    with use_provider(LocalProvider(LocalStorage(str(tmp_path / "elsewhere")))):
        up = trigger.run
        assert up.successful and up.data.total == 5
    assert up.trigger is None  # nobody's event started the first run of the chain


def test_an_event_triggered_run_has_the_event_and_no_upstream_run(plane):
    run_id = write_production(plane, SHAPES["ParameterFlow"], "ev")
    event = PublishedEvent(name="data_updated", id="ev-1", timestamp=1_764_000_000, payload={"alpha": 0.5})
    triggered_by(plane, "ParameterFlow", "ev", [TriggerCause.from_published(event)])
    namespace(None)
    trigger = Run(f"ParameterFlow/{run_id}").trigger
    assert (trigger.event.name, trigger.event.id, trigger.event.payload) == ("data_updated", "ev-1", {"alpha": 0.5})
    assert trigger.event.timestamp == 1_764_000_000 and trigger["data_updated"].payload == {"alpha": 0.5}
    assert trigger.run is None and trigger.runs == []
    with pytest.raises(KeyError, match="'FirstFlow' did not trigger this run"):
        trigger["FirstFlow"]


def test_several_causes_are_all_kept(plane):
    first = write_production(plane, SHAPES["BranchFlow"], "a")
    second = write_production(plane, SHAPES["ForeachFlow"], "b", start=T0 + 1000)
    run_id = write_production(plane, SHAPES["ParameterFlow"], "both", start=T0 + 60_000)
    triggered_by(plane, "ParameterFlow", "both", [finished("BranchFlow", first), finished("ForeachFlow", second)])
    namespace(None)
    trigger = Run(f"ParameterFlow/{run_id}").trigger
    assert [r.pathspec for r in trigger.runs] == [f"BranchFlow/{first}", f"ForeachFlow/{second}"]
    assert [e.name for e in trigger.events] == ["BranchFlow", "ForeachFlow"]


def test_a_run_nobody_triggered_and_a_local_run_have_no_trigger(plane, tmp_path):
    run_id = write_production(plane, SHAPES["ParameterFlow"], "plain")
    namespace(None)
    assert Run(f"ParameterFlow/{run_id}").trigger is None
    local = LocalStorage(str(tmp_path / "local"))
    write_local(local, SHAPES["ParameterFlow"], "1")
    with use_provider(LocalProvider(local)):
        assert Run("ParameterFlow/1").trigger is None
