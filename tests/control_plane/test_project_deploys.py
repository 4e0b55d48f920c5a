"""@project on the control plane (moto): one deployment per branch, each with its own state machine,
rule and token; branches the manifest cannot deploy refused with nothing stored; upstream flows
resolved within the project."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from chalicelib.resource_names import rule_name, state_machine_name, trigger_rule_name

pytestmark = pytest.mark.aws

SCHEDULED = """
from flowplane import FlowSpec, project, schedule, step

@schedule(hourly=True)
@project(name="fraud"{extra})
class ScoreFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""

DOWNSTREAM = """
from flowplane import FlowSpec, project, step, trigger_on_finish

@trigger_on_finish(flows=["UpFlow", "other.prod.FeedFlow", {"name": "LabelFlow", "project_branch": "prod"}])
@project(name="chain")
class DownFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def _write(folder: Path, source: str, filename: str = "score_flow.py") -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / filename).write_text(textwrap.dedent(source))
    return filename


@pytest.mark.parametrize("control_plane", [{"execute": False}], indirect=True)
def test_each_branch_is_its_own_deployment(control_plane, tmp_path) -> None:
    cp = control_plane
    flow = _write(tmp_path, SCHEDULED.format(extra=""))
    prefix = cp.settings.resource_prefix
    tokens = {}
    for branch in ("user.alice", "test.exp", "prod"):
        record = cp.deploy(flow, folder=tmp_path, branch=branch)
        name = f"fraud.{branch}.ScoreFlow"
        assert (record["status"], record["name"], record["flow_name"]) == ("DEPLOYED", name, "ScoreFlow")
        tokens[branch] = record["production_token"]
        machine = cp.aws.state_machines.client.describe_state_machine(stateMachineArn=cp.aws.state_machine_arn(name))
        assert machine["name"] == state_machine_name(prefix, name) == f"{prefix}-{name}"
        assert cp.aws.schedules.get(rule_name(prefix, name))["expression"] == "cron(0 * * * ? *)"
    assert len(set(tokens.values())) == 3
    # Deleting one branch leaves the others' state machines and schedules.
    r = cp.client.http.request("DELETE", "/flows/fraud.test.exp.ScoreFlow", headers={"content-type": "application/json"},
                               body=json.dumps({"user": "alice"}))
    assert r.status_code == 200, r.json_body
    assert cp.aws.schedules.get(rule_name(prefix, "fraud.test.exp.ScoreFlow")) is None
    for branch in ("user.alice", "prod"):
        assert cp.aws.schedules.get(rule_name(prefix, f"fraud.{branch}.ScoreFlow")) is not None
        head = cp.get(f"/deployments?flow=fraud.{branch}.ScoreFlow").json_body["flow"]
        assert not head.get("deleted") and head["production_token"] == tokens[branch]
    # Another user replaces prod only with its token.
    r = cp.post_package(cp.build(flow, user="bob", folder=tmp_path, branch="prod")[1].data)
    assert r.status_code == 403 and "fraud.prod.ScoreFlow" in r.json_body["error"], r.json_body
    record = cp.deploy(flow, user="bob", folder=tmp_path, branch="prod", authorize=tokens["prod"])
    assert record["status"] == "DEPLOYED" and record["production_token"] == tokens["prod"]


@pytest.mark.parametrize("control_plane", [{"execute": False}], indirect=True)
@pytest.mark.parametrize("extra, options, field, words", [
    ("", {"branch": None}, "options.branch", "names none"),
    ("", {"branch": "test.exp", "name": "Mine"}, "options.name", "--name is not supported"),
    (", branch='exp'", {"branch": "test.other"}, "options.branch", "'test.other' is not the one @project(...)"),
    (", production=True", {"branch": "test.x"}, "options.branch", "(prod)"),
    ("", {"branch": "test." + "b" * 128}, "options.branch", "at most 255"),
], ids=["no-branch", "name", "decorator-branch", "decorator-production", "too-long"])
def test_a_branch_the_decorator_does_not_allow_is_refused_and_stores_nothing(
        control_plane, tmp_path, extra, options, field, words) -> None:
    cp = control_plane
    source = SCHEDULED.format(extra=extra)
    if (options.get("branch") or "").endswith("b" * 128):
        source = source.replace('name="fraud"', f'name="{"f" * 128}"')
    flow = _write(tmp_path, source)
    before = cp.snapshot()
    r = cp.post_package(cp.build(flow, folder=tmp_path, **options)[1].data)
    assert r.status_code == 400, r.json_body
    assert r.json_body["field"] == field and words in r.json_body["error"], r.json_body
    assert cp.snapshot() == before


@pytest.mark.parametrize("control_plane", [{"execute": False}], indirect=True)
def test_a_branch_without_project_is_refused(control_plane, tmp_path) -> None:
    cp = control_plane
    before = cp.snapshot()
    r = cp.post_package(cp.build("parameter_flow.py", branch="prod")[1].data)
    assert r.status_code == 400 and r.json_body["field"] == "options.branch", r.json_body
    assert "has no @project" in r.json_body["error"]
    assert cp.snapshot() == before


@pytest.mark.parametrize("control_plane", [{"execute": False}], indirect=True)
def test_upstream_flows_named_alone_are_the_same_project_and_branchs(control_plane, tmp_path) -> None:
    cp = control_plane
    flow = _write(tmp_path, DOWNSTREAM, "down_flow.py")
    assert cp.deploy(flow, folder=tmp_path, branch="test.a")["status"] == "DEPLOYED"
    rule = cp.aws.schedules.get(trigger_rule_name(cp.settings.resource_prefix, "chain.test.a.DownFlow", "finish"))
    assert rule["pattern"]["detail"]["project_flow_name"] == [
        "chain.prod.LabelFlow", "chain.test.a.UpFlow", "other.prod.FeedFlow"]
    head = cp.get("/deployments?flow=chain.test.a.DownFlow").json_body["flow"]
    flows = json.loads(head["triggers"])["trigger_on_finish"]["flows"]
    assert [(f["project"], f["branch"], f["name"]) for f in flows] == [
        ("chain", "test.a", "UpFlow"), ("other", "prod", "FeedFlow"), ("chain", "prod", "LabelFlow")]


@pytest.mark.parametrize("control_plane", [{"execute": False}], indirect=True)
def test_a_long_branch_name_is_shortened_as_every_name_is_and_its_runs_still_find_it(control_plane, tmp_path) -> None:
    from tests.support.recording_events import execution_detail, execution_event

    cp = control_plane
    project, branch = "p" * 60, "test." + "b" * 60
    flow = _write(tmp_path, SCHEDULED.format(extra="").replace('name="fraud"', f'name="{project}"'))
    name = f"{project}.{branch}.ScoreFlow"
    record = cp.deploy(flow, folder=tmp_path, branch=branch)
    assert record["status"] == "DEPLOYED" and record["name"] == name
    prefix = cp.settings.resource_prefix
    machine = state_machine_name(prefix, name)
    assert len(machine) == 80 and machine != f"{prefix}-{name}"
    assert len(rule_name(prefix, name)) == 64 and cp.aws.schedules.get(rule_name(prefix, name)) is not None
    # A run of the shortened state machine is recorded as the branch's, with its tags.
    from tests.support.recording_events import deliver

    deliver(cp.client, execution_event(execution_detail(name, "e1", "RUNNING", 1_800_000_000_000)))
    run = cp.get("/flows/ScoreFlow/runs/sfn-e1").json_body
    assert run["deployment"] == name, run
    assert {f"project:{project}", f"project_branch:{branch}"} <= set(run["system_tags"])
