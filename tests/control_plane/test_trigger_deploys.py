"""Triggered flows on the control plane (moto): rules at deploy, runs from events, refusals, loops."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from chalicelib.aws_events import apply_input_transformer
from chalicelib.resource_names import trigger_rule_name
from flowplane.event_types import PUBLISHED_EVENT_SOURCE, RUN_FINISHED_DETAIL_TYPE, RUN_FINISHED_SOURCE


pytestmark = pytest.mark.aws

TRIGGERED = """
from flowplane import FlowSpec, Parameter, step, trigger

@trigger(events=[{"name": "data_updated", "parameters": {"alpha": "value", "table": "table"}}, "model_ready"])
class TrigFlow(FlowSpec):
    alpha = Parameter("alpha", default=0.5)
    table = Parameter("table", default="t0")

    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""

DOWNSTREAM = """
from flowplane import FlowSpec, step, trigger_on_finish

@trigger_on_finish(flow="{upstream}")
class {name}(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def _write(folder: Path, filename: str, source: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / filename).write_text(textwrap.dedent(source))
    return filename


def _rule(cp, name: str, kind: str) -> dict:
    return cp.aws.schedules.get(trigger_rule_name(cp.settings.resource_prefix, name, kind))


def _published(name: str, event_id: str, payload: dict, ts: int = 1_800_000_000) -> dict:
    return {"version": "0", "id": f"eb-{event_id}", "detail-type": name, "source": PUBLISHED_EVENT_SOURCE,
            "account": "123456789012", "time": "2027-01-15T08:00:00Z", "region": "us-east-1", "resources": [],
            "detail": {"name": name, "id": event_id, "timestamp": ts, "payload": payload}}


def _deliver(cp, flow: str, kind: str, event: dict) -> dict:
    """What EventBridge would hand the launcher for `event` through the flow's rule."""
    rule = _rule(cp, flow, kind)
    return cp.client.lambda_.invoke("launch", apply_input_transformer(rule["targets"][0]["InputTransformer"], event)).payload


@pytest.mark.parametrize("control_plane", [{"execute": False}], indirect=True)
def test_a_trigger_deploys_its_rule_and_all_its_events_start_one_run_with_mapped_parameters(control_plane, tmp_path):
    cp = control_plane
    record = cp.deploy(_write(tmp_path, "trig_flow.py", TRIGGERED), folder=tmp_path)
    assert record["status"] == "DEPLOYED", record
    rule = _rule(cp, "TrigFlow", "event")
    assert rule["pattern"] == {"source": [PUBLISHED_EVENT_SOURCE], "detail-type": ["data_updated", "model_ready"]}
    assert rule["targets"][0]["Arn"] == cp.aws.launcher_arn
    assert _rule(cp, "TrigFlow", "finish") is None

    first = _deliver(cp, "TrigFlow", "event", _published("data_updated", "e1", {"value": "0.9", "table": "sales"}))
    assert first["started"] == [] and cp.executions("TrigFlow") == []  # model_ready has not arrived
    second = _deliver(cp, "TrigFlow", "event", _published("model_ready", "e2", {}))
    (run,) = second["started"]
    assert sorted(run["causes"]) == ["e1", "e2"]
    (execution,) = cp.executions("TrigFlow")
    described = cp.aws.state_machines.client.describe_execution(executionArn=execution["executionArn"])
    doc = json.loads(described["input"])
    assert json.loads(doc["Parameters"]) == {"alpha": 0.9, "table": "sales"}
    assert sorted(c["id"] for c in doc["Trigger"]) == ["e1", "e2"]
    # Duplicates of both, in any order, start nothing more.
    for event in (_published("model_ready", "e2", {}), _published("data_updated", "e1", {"value": "0.9"})):
        assert _deliver(cp, "TrigFlow", "event", event)["started"] == []
    assert len(cp.executions("TrigFlow")) == 1


@pytest.mark.parametrize("control_plane", [{"execute": False}], indirect=True)
def test_a_payload_value_a_parameter_cannot_take_is_a_refused_trigger_never_a_run(control_plane, tmp_path):
    cp = control_plane
    cp.deploy(_write(tmp_path, "trig_flow.py", TRIGGERED), folder=tmp_path)
    _deliver(cp, "TrigFlow", "event", _published("data_updated", "bad", {"value": "not a number"}))
    answer = _deliver(cp, "TrigFlow", "event", _published("model_ready", "ok", {}))
    assert answer["started"] == [] and cp.executions("TrigFlow") == []
    (refused,) = answer["refused"]
    assert "alpha" in refused["reason"] and "float" in refused["reason"]
    listed = cp.get("/flows/TrigFlow/triggers/refused").json_body["refused"]
    assert [sorted(c["id"] for c in r["causes"]) for r in listed] == [["bad", "ok"]]
    assert listed[0]["reason"] == refused["reason"]
    # Missing fields keep the defaults: the next pair starts a run with alpha's default.
    _deliver(cp, "TrigFlow", "event", _published("data_updated", "e3", {"table": "t9"}))
    (run,) = _deliver(cp, "TrigFlow", "event", _published("model_ready", "e4", {}))["started"]
    (execution,) = cp.executions("TrigFlow")
    doc = json.loads(cp.aws.state_machines.client.describe_execution(executionArn=execution["executionArn"])["input"])
    assert json.loads(doc["Parameters"]) == {"table": "t9"}


@pytest.mark.parametrize("control_plane", [{"execute": False}], indirect=True)
def test_trigger_on_finish_hears_successes_of_this_stage_only(control_plane, tmp_path):
    cp = control_plane
    cp.deploy(_write(tmp_path, "second.py", DOWNSTREAM.format(upstream="FirstFlow", name="SecondFlow")), folder=tmp_path)
    rule = _rule(cp, "SecondFlow", "finish")
    assert rule["pattern"] == {"source": [RUN_FINISHED_SOURCE], "detail-type": [RUN_FINISHED_DETAIL_TYPE],
                               "detail": {"project_flow_name": ["FirstFlow"], "status": ["SUCCEEDED"],
                                          "stage": [cp.settings.resource_prefix]}}

    def finished(run_id: str, status: str = "SUCCEEDED", stage: str = cp.settings.resource_prefix) -> dict:
        return {"version": "0", "id": f"eb-{run_id}", "detail-type": RUN_FINISHED_DETAIL_TYPE, "source": RUN_FINISHED_SOURCE,
                "account": "123456789012", "time": "2027-01-15T08:00:00Z", "region": "us-east-1", "resources": [],
                "detail": {"flow": "FirstFlow", "run_id": run_id, "status": status, "stage": stage}}

    assert _deliver(cp, "SecondFlow", "finish", finished("sfn-a", "FAILED"))["started"] == []
    assert _deliver(cp, "SecondFlow", "finish", finished("sfn-b", stage="flowplane-other"))["started"] == []
    (run,) = _deliver(cp, "SecondFlow", "finish", finished("sfn-c"))["started"]
    assert run["causes"] == ["run:FirstFlow/sfn-c"]
    # The end of one run announced twice starts one downstream run.
    assert _deliver(cp, "SecondFlow", "finish", finished("sfn-c"))["started"] == []
    assert len(cp.executions("SecondFlow")) == 1


def test_a_deploy_that_closes_a_loop_of_finish_triggers_is_refused_naming_it(control_plane, tmp_path):
    cp = control_plane
    assert cp.deploy(_write(tmp_path, "b.py", DOWNSTREAM.format(upstream="AFlow", name="BFlow")), folder=tmp_path)["status"] == "DEPLOYED"
    assert cp.deploy(_write(tmp_path, "c.py", DOWNSTREAM.format(upstream="BFlow", name="CFlow")), folder=tmp_path)["status"] == "DEPLOYED"
    before = cp.snapshot()
    _, package = cp.build(_write(tmp_path, "a.py", DOWNSTREAM.format(upstream="CFlow", name="AFlow")), folder=tmp_path)
    r = cp.post_package(package.data)
    assert r.status_code == 400, r.json_body
    assert "AFlow -> BFlow -> CFlow -> AFlow" in r.json_body["error"] and "--allow-trigger-loop" in r.json_body["error"]
    assert r.json_body["field"] == "trigger_on_finish" and r.json_body["line"] == 4
    assert cp.snapshot() == before
    # Told to allow it, the deploy goes ahead with a warning.
    _, allowed = cp.build("a.py", folder=tmp_path, allow_trigger_loop=True)
    r = cp.post_package(allowed.data)
    assert r.status_code == 202 and "AFlow -> BFlow -> CFlow -> AFlow" in r.json_body["warnings"][0]


@pytest.mark.parametrize("control_plane", [{"execute": False}], indirect=True)
def test_rules_move_with_the_production_version_and_go_with_delete(control_plane, tmp_path, monkeypatch):
    from chalicelib.aws import StateMachines

    cp = control_plane
    cp.deploy(_write(tmp_path, "trig_flow.py", TRIGGERED), folder=tmp_path)
    events_rule = _rule(cp, "TrigFlow", "event")
    # A redeploy that fails after the rules changed leaves the previous rules.
    changed = TRIGGERED.replace('"model_ready"', '"model_v2"')
    with monkeypatch.context() as m:
        m.setattr(StateMachines, "point_alias", lambda self, *a: (_ for _ in ()).throw(RuntimeError("alias")))
        assert cp.deploy(_write(tmp_path, "trig_flow.py", changed), folder=tmp_path)["status"] == "FAILED"
    assert _rule(cp, "TrigFlow", "event")["pattern"] == events_rule["pattern"]
    # A successful one moves them; without @trigger they go.
    assert cp.deploy(_write(tmp_path, "trig_flow.py", changed), folder=tmp_path)["status"] == "DEPLOYED"
    assert _rule(cp, "TrigFlow", "event")["pattern"]["detail-type"] == ["data_updated", "model_v2"]
    _deliver(cp, "TrigFlow", "event", _published("data_updated", "w1", {}))
    r = cp.client.http.delete("/flows/TrigFlow", headers={"content-type": "application/json"}, body='{"user": "alice"}')
    assert r.status_code == 200, r.json_body
    assert _rule(cp, "TrigFlow", "event") is None
    items = cp.snapshot()["items"]
    assert not any("TRIGGERS#TrigFlow" in i for i in items)


def test_a_mapping_to_a_parameter_the_flow_lacks_is_a_400_naming_the_line(control_plane, tmp_path):
    cp = control_plane
    before = cp.snapshot()
    source = TRIGGERED.replace('"alpha": "value"', '"beta": "value"')
    _, package = cp.build(_write(tmp_path, "trig_flow.py", source), folder=tmp_path)
    r = cp.post_package(package.data)
    assert r.status_code == 400, r.json_body
    assert "'beta'" in r.json_body["error"] and "not a parameter of the flow" in r.json_body["error"], r.json_body
    assert "line 4" in r.json_body["error"] or r.json_body.get("line") == 4, r.json_body
    assert cp.snapshot() == before


def test_malformed_trigger_input_changes_nothing(control_plane, tmp_path):
    cp = control_plane
    cp.deploy(_write(tmp_path, "trig_flow.py", TRIGGERED), folder=tmp_path)
    before = cp.snapshot()
    r = cp.get("/flows/not%20a%20name/triggers/refused")
    assert r.status_code == 400 and "is not a deployment's name" in r.json_body["error"], r.json_body
    # A launch event whose `event` is not an object (not what the rule's transformer sends).
    with pytest.raises(Exception, match="needs flow and event"):
        cp.client.lambda_.invoke("launch", {"flow": "TrigFlow", "event": "data_updated"})
    # Events of no contract shape, or for a flow without triggers, start nothing.
    assert _deliver(cp, "TrigFlow", "event", {**_published("data_updated", "x", {}), "detail": {"name": 1}})["started"] == []
    answer = cp.client.lambda_.invoke("launch", {"flow": "NoSuchFlow", "event": _published("data_updated", "y", {})}).payload
    assert answer["started"] == [] and "no live triggers" in answer["reason"]
    assert cp.snapshot() == before
