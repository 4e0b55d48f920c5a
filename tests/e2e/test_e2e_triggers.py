"""Event-triggered flows end to end on the embedded plane: publish -> run, a chain of flows,
all-of-these events under duplicated and shuffled deliveries, refused payloads, delete, loops."""

from __future__ import annotations

import json
import random
import shutil
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowplane.event_cli import main as event_main
from flowplane.integrations import Event

from tests.support.control_plane import EXAMPLES
from tests.support.embedded_plane import create, embedded_plane, production_run, sdk, trigger, wait_for_run

pytestmark = pytest.mark.slow

plane = embedded_plane()


def _copy(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copy(EXAMPLES / name, target)
    return target


def _write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def _runs_of(plane, flow: str) -> list[dict]:
    from chalicelib.resource_names import state_machine_name

    sfn = plane.session.client("stepfunctions")
    arn = (f"arn:aws:states:{plane.region}:{plane.account}:stateMachine:"
           f"{state_machine_name(plane.settings.resource_prefix, flow)}")
    return sfn.list_executions(stateMachineArn=arn)["executions"]


def _wait_for_runs(plane, flow: str, count: int, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        plane.settle(timeout=10)
        runs = _runs_of(plane, flow)
        if len(runs) >= count:
            return runs
        assert time.monotonic() < deadline, f"{flow}: {len(runs)} runs after {timeout} s, expected {count}"
        time.sleep(0.2)


def test_publishing_an_event_starts_the_flow_with_the_payloads_parameters(plane, tmp_path, capsys) -> None:
    flow = _copy(tmp_path, "triggered_flow.py")
    assert "This workflow triggers automatically on the event(s) data_updated" in create(flow)
    assert event_main(["publish", "data_updated", "--payload", '{"table": "sales", "rows": 120}']) == 0
    assert "Published event data_updated (id " in capsys.readouterr().out
    (execution,) = _wait_for_runs(plane, "TriggeredFlow", 1)
    run_id = f"sfn-{execution['name']}"
    assert wait_for_run(plane, "TriggeredFlow", run_id)["status"] == "SUCCEEDED"
    run = production_run("TriggeredFlow", run_id)
    assert (run.data.table, run.data.rows) == ("sales", 120)


def test_all_of_these_events_start_one_run_whatever_their_order_and_duplicates(plane, tmp_path) -> None:
    flow = _write(tmp_path, "both_flow.py", """
        from flowplane import FlowSpec, Parameter, step, trigger

        @trigger(events=[{"name": "features_ready", "parameters": {"day": "day"}}, "labels_ready"])
        class BothFlow(FlowSpec):
            day = Parameter("day", default="none")

            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass
        """)
    assert "triggers automatically once each of the event(s) features_ready and labels_ready" in create(flow)
    deliveries = [("features_ready", "f-1", {"day": "2027-01-15"}), ("labels_ready", "l-1", {})] * 3
    random.Random(7).shuffle(deliveries)
    for name, event_id, payload in deliveries:
        assert Event(name, payload=payload, id=event_id).publish(ignore_errors=False) == event_id
    (execution,) = _wait_for_runs(plane, "BothFlow", 1)
    time.sleep(1)
    plane.settle(timeout=10)
    assert len(_runs_of(plane, "BothFlow")) == 1
    run_id = f"sfn-{execution['name']}"
    wait_for_run(plane, "BothFlow", run_id)
    assert production_run("BothFlow", run_id).data.day == "2027-01-15"


def test_a_payload_value_that_does_not_fit_is_refused_and_list_runs_says_why(plane, tmp_path) -> None:
    flow = _copy(tmp_path, "triggered_flow.py")
    create(flow)
    before = len(_runs_of(plane, "TriggeredFlow"))
    Event("data_updated", payload={"rows": "lots"}, id="bad-rows").publish(ignore_errors=False)
    deadline = time.monotonic() + 30
    while "refused" not in (listing := sdk(flow, "step-functions", "list-runs")) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "1 trigger(s) of TriggeredFlow refused" in listing and "data_updated (bad-rows)" in listing
    assert "'rows'" in listing and "int" in listing
    assert len(_runs_of(plane, "TriggeredFlow")) == before


def test_delete_removes_the_flows_rules(plane, tmp_path) -> None:
    flow = _copy(tmp_path, "triggered_flow.py")
    create(flow)
    events = plane.session.client("events")
    assert [r["Name"] for r in events.list_rules(NamePrefix="flowplane-local-trigger-event-TriggeredFlow")["Rules"]]
    sdk(flow, "step-functions", "delete")
    assert events.list_rules(NamePrefix="flowplane-local-trigger-event-TriggeredFlow")["Rules"] == []
    # Published afterwards, the event reaches no rule of the deleted flow: nothing to start.
    assert Event("data_updated", id="after-delete").publish(ignore_errors=False) == "after-delete"
    plane.settle(timeout=10)
    machines = plane.session.client("stepfunctions").list_state_machines()["stateMachines"]
    assert not any(m["name"].endswith("-TriggeredFlow") for m in machines)


def test_a_loop_of_finish_triggers_is_refused_by_create(plane, tmp_path) -> None:
    def downstream(name: str, upstream: str) -> Path:
        return _write(tmp_path, f"{name.lower()}.py", f"""
            from flowplane import FlowSpec, step, trigger_on_finish

            @trigger_on_finish(flow="{upstream}")
            class {name}(FlowSpec):
                @step
                def start(self):
                    self.next(self.end)

                @step
                def end(self):
                    pass
            """)

    create(downstream("PingFlow", "PongFlow"))
    pong = downstream("PongFlow", "PingFlow")
    from tests.support.embedded_plane import flow_cli

    result = CliRunner().invoke(flow_cli(pong), ["step-functions", "create"])
    assert result.exit_code == 1
    assert "PongFlow -> PingFlow -> PongFlow" in result.output and "--allow-trigger-loop" in result.output


def test_a_finished_run_starts_the_flow_triggered_on_its_finish(plane, tmp_path) -> None:
    upstream, downstream = _copy(tmp_path, "parameter_flow.py"), _copy(tmp_path, "after_parameter_flow.py")
    create(upstream)
    assert "triggers automatically on a successful production run of ParameterFlow" in create(downstream)
    first = trigger(upstream, "--alpha", "0.7")
    assert wait_for_run(plane, "ParameterFlow", first)["status"] == "SUCCEEDED"
    (execution,) = _wait_for_runs(plane, "AfterParameterFlow", 1)
    second = f"sfn-{execution['name']}"
    status = wait_for_run(plane, "AfterParameterFlow", second)["status"]
    assert status == "SUCCEEDED", production_run("AfterParameterFlow", second)["start"].task.stderr
    run = production_run("AfterParameterFlow", second)
    assert run.data.upstream_alpha == 0.7
    assert run.trigger.run.pathspec == f"ParameterFlow/{first}"
    assert run.trigger.event.name == "ParameterFlow"
    # Followed backwards: the upstream run was started by hand, by nobody's event.
    assert run.trigger.run.trigger is None
