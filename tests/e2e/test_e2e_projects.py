"""@project end to end on the embedded plane: one flow deployed as user.<me>, test.exp and prod side
by side, each triggered and read in its own namespace; delete one, the others run on; another user
replacing prod; @trigger_on_finish hearing only its own branch; bad branches deploying nothing."""

from __future__ import annotations

import re
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from chalicelib.resource_names import rule_name, state_machine_name
from tests.support.embedded_plane import USER, embedded_plane, flow_cli, production_run, sdk, wait_for_run

pytestmark = pytest.mark.slow

plane = embedded_plane()

SCORED = """
from flowplane import FlowSpec, current, project, schedule, step

@schedule(hourly=True)
@project(name="fraud")
class ScoreFlow(FlowSpec):
    @step
    def start(self):
        self.seen = {"project": current.project_name, "branch": current.branch_name,
                     "production": current.is_production, "deployment": current.project_flow_name,
                     "tags": sorted(t for t in current.tags if t.startswith("project"))}
        self.next(self.end)

    @step
    def end(self):
        self.end_branch = current.branch_name
"""

BRANCHES = {  # top-level options -> the branch deployed
    (): f"user.{USER}",
    ("--branch", "exp"): "test.exp",
    ("--production",): "prod",
}


def _write(tmp_path: Path, name: str, source: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(source))
    return path


def _trigger(path: Path, *options: str) -> str:
    """`python FLOW [--branch B | --production] step-functions trigger`: the run id."""
    return sdk(path, *options, "step-functions", "trigger").strip().splitlines()[-1]


def _token(created: str) -> str:
    return re.search(r"production:(\S+)", created).group(1)


def _machines(plane) -> list[str]:
    return sorted(m["name"] for m in plane.session.client("stepfunctions").list_state_machines()["stateMachines"])


# The table's items a deploy writes (run records go on changing as earlier runs' events arrive).
DEPLOY_ITEMS = {"flow", "version", "deployment", "package_link", "state_machine", "finish_triggers", "trigger_state"}


def _stored(plane) -> tuple:
    """What a deploy would change: state machines, rules, and the table's deployment items."""
    rules = sorted(r["Name"] for r in plane.session.client("events").list_rules(NamePrefix="flowplane-")["Rules"])
    items = plane.session.client("dynamodb").scan(TableName=plane.settings.table)["Items"]
    deployed = [i for i in items if i.get("type", {}).get("S") in DEPLOY_ITEMS]
    return _machines(plane), rules, sorted(str(sorted(i.items())) for i in deployed)


def _executions(plane, deployment: str) -> list[dict]:
    sfn = plane.session.client("stepfunctions")
    arn = (f"arn:aws:states:{plane.region}:{plane.account}:stateMachine:"
           f"{state_machine_name(plane.settings.resource_prefix, deployment)}")
    return sfn.list_executions(stateMachineArn=arn)["executions"]


def _wait_for_executions(plane, deployment: str, count: int, timeout: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout
    while len(found := _executions(plane, deployment)) < count:
        assert time.monotonic() < deadline, f"{deployment}: {len(found)} runs after {timeout} s, expected {count}"
        plane.settle(timeout=10)
        time.sleep(0.2)
    return found


def test_three_branches_deploy_run_and_delete_side_by_side(plane, tmp_path, monkeypatch) -> None:
    from flowplane.client import Flow, namespace

    path = _write(tmp_path, "score_flow.py", SCORED)
    tokens, runs = {}, {}
    for options, branch in BRANCHES.items():
        created = sdk(path, *options, "step-functions", "create")
        assert f"Project: fraud, Branch: {branch}" in created and f"fraud.{branch}.ScoreFlow" in created
        tokens[branch] = _token(created)
    assert len(set(tokens.values())) == 3  # each branch its own production token (and namespace)
    prefix = plane.settings.resource_prefix
    assert {f"{prefix}-fraud.{b}.ScoreFlow" for b in BRANCHES.values()} <= set(_machines(plane))
    for options, branch in BRANCHES.items():
        runs[branch] = _trigger(path, *options)
    for branch, run_id in runs.items():
        deployment = f"fraud.{branch}.ScoreFlow"
        assert wait_for_run(plane, deployment, run_id)["status"] == "SUCCEEDED"
        namespace(f"production:{tokens[branch]}")
        run = Flow("ScoreFlow").latest_run
        assert run.id == run_id
        assert run.data.seen == {"project": "fraud", "branch": branch, "production": branch == "prod",
                                 "deployment": deployment,
                                 "tags": [f"project:fraud", f"project_branch:{branch}"]}
        assert run.data.end_branch == branch
        assert {"project:fraud", f"project_branch:{branch}"} <= run.system_tags
    # The Client API filters by the project's tags, across namespaces.
    namespace(None)
    assert [r.id for r in Flow("ScoreFlow").runs("project_branch:prod")] == [runs["prod"]]
    assert {r.id for r in Flow("ScoreFlow").runs("project:fraud")} == set(runs.values())
    listed = sdk(path, "--branch", "exp", "step-functions", "list-runs")
    assert runs["test.exp"] in listed and runs["prod"] not in listed

    # Deleting test.exp leaves user.<me> and prod deployed, scheduled and running.
    sdk(path, "--branch", "exp", "step-functions", "delete")
    machines = _machines(plane)
    assert f"{prefix}-fraud.test.exp.ScoreFlow" not in machines
    events = plane.session.client("events")
    assert not events.list_rules(NamePrefix=rule_name(prefix, "fraud.test.exp.ScoreFlow"))["Rules"]
    for options, branch in BRANCHES.items():
        if branch == "test.exp":
            continue
        deployment = f"fraud.{branch}.ScoreFlow"
        assert f"{prefix}-{deployment}" in machines
        rule = rule_name(prefix, deployment)
        assert events.describe_rule(Name=rule)["ScheduleExpression"] == "cron(0 * * * ? *)"
        (fired,) = plane.scheduler.deliver(rule, datetime(2027, 1, 15, 8, tzinfo=timezone.utc))
        assert fired.error is None and fired.result["started"] is True
        assert wait_for_run(plane, deployment, fired.result["run_id"])["status"] == "SUCCEEDED"
        assert wait_for_run(plane, deployment, _trigger(path, *options))["status"] == "SUCCEEDED"

    # Another user replaces prod only with its production token; nothing changes until then.
    other_home = tmp_path / "bob-home"
    monkeypatch.setenv("HOME", str(other_home))
    monkeypatch.setenv("FLOWPLANE_USER", "bob")
    before = _stored(plane)
    refused = CliRunner().invoke(flow_cli(path), ["--production", "step-functions", "create"])
    assert refused.exit_code == 1, refused.output
    assert "fraud.prod.ScoreFlow" in refused.output and "--authorize" in refused.output
    assert _stored(plane) == before
    replaced = sdk(path, "--production", "step-functions", "create", "--authorize", tokens["prod"])
    assert _token(replaced) == tokens["prod"]
    # bob's user branch is a deployment of its own, next to alice's.
    assert "fraud.user.bob.ScoreFlow" in sdk(path, "step-functions", "create")


UPSTREAM = """
from flowplane import FlowSpec, current, project, step

@project(name="chain")
class UpFlow(FlowSpec):
    @step
    def start(self):
        self.branch = current.branch_name
        self.next(self.end)

    @step
    def end(self):
        pass
"""

DOWNSTREAM = """
from flowplane import FlowSpec, current, project, step, trigger_on_finish

@trigger_on_finish(flow="{upstream}")
@project(name="chain")
class {name}(FlowSpec):
    @step
    def start(self):
        self.upstream = current.trigger.run.pathspec
        self.upstream_branch = current.trigger.run.data.branch
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_trigger_on_finish_inside_a_project_hears_its_own_branch_or_the_one_it_names(plane, tmp_path) -> None:
    up = _write(tmp_path, "up_flow.py", UPSTREAM)
    down = _write(tmp_path, "down_flow.py", DOWNSTREAM.format(upstream="UpFlow", name="DownFlow"))
    across = _write(tmp_path, "across_flow.py", DOWNSTREAM.format(upstream="chain.test.b.UpFlow", name="AcrossFlow"))
    for branch in ("a", "b"):
        sdk(up, "--branch", branch, "step-functions", "create")
    assert "on a successful production run of chain.test.a.UpFlow" in sdk(down, "--branch", "a", "step-functions", "create")
    assert "on a successful production run of chain.test.b.UpFlow" in sdk(
        across, "--branch", "c", "step-functions", "create")

    on_b = _trigger(up, "--branch", "b")
    assert wait_for_run(plane, "chain.test.b.UpFlow", on_b)["status"] == "SUCCEEDED"
    (reached,) = _wait_for_executions(plane, "chain.test.c.AcrossFlow", 1)
    assert wait_for_run(plane, "chain.test.c.AcrossFlow", f"sfn-{reached['name']}")["status"] == "SUCCEEDED"
    assert production_run("AcrossFlow", f"sfn-{reached['name']}").data.upstream == f"UpFlow/{on_b}"
    plane.settle(timeout=10)
    assert _executions(plane, "chain.test.a.DownFlow") == []  # test.b's run is not test.a's

    on_a = _trigger(up, "--branch", "a")
    assert wait_for_run(plane, "chain.test.a.UpFlow", on_a)["status"] == "SUCCEEDED"
    (started,) = _wait_for_executions(plane, "chain.test.a.DownFlow", 1)
    run_id = f"sfn-{started['name']}"
    assert wait_for_run(plane, "chain.test.a.DownFlow", run_id)["status"] == "SUCCEEDED"
    run = production_run("DownFlow", run_id)
    assert (run.data.upstream, run.data.upstream_branch) == (f"UpFlow/{on_a}", "test.a")
    assert len(_executions(plane, "chain.test.c.AcrossFlow")) == 1  # test.a's run is not test.b's


@pytest.mark.parametrize("source, args, words", [
    (SCORED.replace('name="fraud"', 'name="Fraud-Team"'), ["step-functions", "create"],
     ["line 5", "'Fraud-Team'", "lowercase letters, digits and underscores", "nothing was deployed"]),
    (SCORED, ["--branch", "New-Idea", "step-functions", "create"],
     ["branch name 'New-Idea'", "lowercase letters", "nothing was changed"]),
    (SCORED.replace('name="fraud"', 'name="fraud", branch="exp"'), ["--branch", "other", "step-functions", "create"],
     ["@project(branch='exp')", "--branch other", "one place"]),
    (SCORED, ["step-functions", "--name", "Mine", "create"], ["--name is not supported", "--branch"]),
    (SCORED.replace('name="fraud"', f'name="{"f" * 128}"'), ["--branch", "b" * 128, "step-functions", "create"],
     ["characters; at most 255", "Step Functions"]),
    (SCORED.replace('@project(name="fraud")\n', ""), ["--production", "step-functions", "create"],
     ["has no @project"]),
], ids=["project-name", "branch-name", "branch-twice", "name-option", "too-long", "no-project"])
def test_a_bad_project_or_branch_deploys_nothing(plane, tmp_path, source, args, words) -> None:
    path = _write(tmp_path, "score_flow.py", source)
    before = _stored(plane)
    result = CliRunner().invoke(flow_cli(path), args)
    assert result.exit_code != 0, result.output
    assert all(w in result.output for w in words), result.output
    assert _stored(plane) == before


@pytest.mark.parametrize("options, branch", [([], f"user.{USER}"), (["--branch", "exp"], "test.exp"),
                                             (["--production"], "prod")])
def test_a_local_run_of_a_branch_shows_it_in_every_task_and_its_tags(tmp_path, options, branch) -> None:
    import os
    import subprocess
    import sys

    from flowplane.client import Flow, namespace, use_provider
    from flowplane.client.local import LocalProvider
    from flowplane.datastore.storage import storage_for

    path = _write(tmp_path, "score_flow.py", SCORED + "\nif __name__ == '__main__':\n    ScoreFlow()\n")
    root = tmp_path / "datastore"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "FLOWPLANE_", "MOTO_"))}
    env.update(FLOWPLANE_DATASTORE_ROOT=str(root), FLOWPLANE_USER=USER, FLOWPLANE_EMBEDDED="0")
    proc = subprocess.run([sys.executable, str(path), *options, "run"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Project: fraud, Branch: {branch}" in proc.stdout + proc.stderr
    with use_provider(LocalProvider(storage_for(str(root)))):
        namespace(None)
        (run,) = Flow("ScoreFlow").runs(f"project_branch:{branch}")
        assert run.data.seen == {"project": "fraud", "branch": branch, "production": branch == "prod",
                                 "deployment": f"fraud.{branch}.ScoreFlow",
                                 "tags": ["project:fraud", f"project_branch:{branch}"]}
        assert run.data.end_branch == branch
        assert {"project:fraud", f"project_branch:{branch}", "runtime:local"} <= run.system_tags
