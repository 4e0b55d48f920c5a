"""Every flow in ../shared/flows through the embedded control plane: `step-functions
create`, `trigger`, the run SUCCEEDED, and the Client API (over the control plane)
gives what ../shared/flows/EXPECTED.md lists and the same artifacts as a local `run`.

HourlyFlow is fired by the plane's scheduler with a clock moved by hand.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from flowplane.local.scheduler import ManualClock
from tests.support.embedded_plane import (
    USER,
    artifacts,
    create,
    embedded_plane,
    execution,
    local_run,
    max_overlap,
    processes,
    production_run,
    trigger,
    wait_for_run,
)
from tests.support.shared_flows import SHARED_FLOWS

pytestmark = pytest.mark.slow

CLOCK = ManualClock(datetime(2026, 11, 24, 10, 30, tzinfo=timezone.utc))
# The scheduler ticks only when a test says so.
plane = embedded_plane(clock=CLOCK, schedule_seconds=None)


def namespace_of(output: str) -> str:
    return next(line.strip() for line in output.splitlines() if line.strip().startswith("production:"))


def test_parameter_flow_with_alpha(plane, tmp_path):
    path = SHARED_FLOWS / "parameter_flow.py"
    created = create(path)
    run_id = trigger(path, "--alpha", "0.5")
    assert wait_for_run(plane, "ParameterFlow", run_id)["status"] == "SUCCEEDED"
    run = production_run("ParameterFlow", run_id)
    assert run.successful and run.data.alpha == 0.5
    # Metaflow's tagging: the run is the production user's and lives in the token's namespace.
    assert namespace_of(created) in run.tags and "user:SFN" in run.tags and f"user:{USER}" not in run.tags
    # The task's stdout comes from CloudWatch Logs, where the local Batch put it.
    assert "alpha is 0.500000" in run["start"].task.stdout
    local = local_run(path, tmp_path, "--alpha", "0.5")
    assert local.artifacts == artifacts(run)


def test_branch_flow(plane, tmp_path):
    path = SHARED_FLOWS / "branch_flow.py"
    create(path)
    run_id = trigger(path)
    assert wait_for_run(plane, "BranchFlow", run_id)["status"] == "SUCCEEDED"
    run = production_run("BranchFlow", run_id)
    assert run["join"].task.data.total == 5
    assert local_run(path, tmp_path).artifacts == artifacts(run)


def test_foreach_flow_never_more_than_max_workers(plane, tmp_path):
    path = SHARED_FLOWS / "foreach_flow.py"
    create(path, "--max-workers", "3")
    run_id = trigger(path)
    assert wait_for_run(plane, "ForeachFlow", run_id, timeout=180)["status"] == "SUCCEEDED"
    run = production_run("ForeachFlow", run_id)
    assert run["join"].task.data.total == 285
    assert sorted(t.id for t in run["square"]) == sorted(f"1.{i}" for i in range(10))
    squares = processes(plane, run_id, "square")
    assert len(squares) == 10 and all(p.exit_code == 0 for p in squares)
    spans = [(p.started, p.ended) for p in processes(plane, run_id)]
    # The local Batch has 4 vCPUs: the bound seen is the Map's MaxConcurrency, and work did overlap.
    assert 2 <= max_overlap(spans) <= 3
    assert local_run(path, tmp_path, "--max-workers", "3").artifacts == artifacts(run)


def test_deployment_info_is_evaluated_once_at_deploy_time(plane, tmp_path):
    path = SHARED_FLOWS / "deployment_info_flow.py"
    create(path)
    first, second = trigger(path), trigger(path)
    infos = []
    for run_id in (first, second):
        assert wait_for_run(plane, "DeploymentInfoFlow", run_id)["status"] == "SUCCEEDED"
        infos.append(production_run("DeploymentInfoFlow", run_id).data.deployment_info)
    assert infos[0] == infos[1] and infos[0]["who"] == USER
    local = local_run(path, tmp_path)
    production = artifacts(production_run("DeploymentInfoFlow", first))
    # Same artifacts, but for the deploy-time value: the local run evaluated it when it started.
    # The parameter is stored under its name and, as Metaflow stores it, under its attribute `info`.
    assert _without(local.artifacts, "deployment_info", "info") == _without(production, "deployment_info", "info")
    assert all(v["info"] == v["deployment_info"] for v in [*local.artifacts.values(), *production.values()])
    assert {v["deployment_info"]["who"] for v in local.artifacts.values()} == {USER}


def test_hourly_flow_fires_on_the_hour_once_per_tick(plane, tmp_path):
    path = SHARED_FLOWS / "hourly_flow.py"
    created = create(path)
    assert "cron(0 * * * ? *)" in created
    rule = plane.session.client("events").describe_rule(Name="flowplane-local-schedule-HourlyFlow")
    assert rule["ScheduleExpression"] == "cron(0 * * * ? *)"
    assert hourly(plane.scheduler.tick()) == []  # 10:30: the rule is seen; nothing is due
    CLOCK.set(datetime(2026, 11, 24, 10, 59, 59, tzinfo=timezone.utc))
    assert hourly(plane.scheduler.tick()) == []
    CLOCK.set(datetime(2026, 11, 24, 11, 0, 0, tzinfo=timezone.utc))
    fired = hourly(plane.scheduler.tick())
    assert [(f.rule, f.time.isoformat(), f.error) for f in fired] == [
        ("flowplane-local-schedule-HourlyFlow", "2026-11-24T11:00:00+00:00", None)
    ]
    started = fired[0].result
    assert started["started"] is True
    run_id = started["run_id"]
    # EventBridge delivers at least once: the same tick again starts nothing new.
    again = plane.scheduler.deliver("flowplane-local-schedule-HourlyFlow", CLOCK.now())
    assert again[0].error is None and again[0].result["run_id"] == run_id
    assert hourly(plane.scheduler.tick()) == []  # nothing more is due at 11:00
    assert wait_for_run(plane, "HourlyFlow", run_id)["status"] == "SUCCEEDED"
    machine = execution(plane, "HourlyFlow", run_id)["stateMachineArn"]
    assert len(plane.session.client("stepfunctions").list_executions(stateMachineArn=machine)["executions"]) == 1
    run = production_run("HourlyFlow", run_id)
    assert run.successful and run["start"].task.stdout.startswith("time is ")
    assert local_run(path, tmp_path).artifacts == artifacts(run)


def hourly(fired: list) -> list:
    """HourlyFlow's firings (the control plane's own reconciler fires on its rate too)."""
    return [f for f in fired if f.rule == "flowplane-local-schedule-HourlyFlow"]


def _without(found: dict, *names: str) -> dict:
    return {k: {n: v for n, v in values.items() if n not in names} for k, values in found.items()}
