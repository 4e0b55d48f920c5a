"""Zoned schedules on EventBridge Scheduler, pause/unpause, the schedule's view, and backfill."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from chalicelib.deploy.schedules import scheduler_input
from chalicelib.resource_names import rule_name as stage_rule_name
from flowplane.schedule_times import next_times
from tests.support.control_plane import EXAMPLES, project_copy

pytestmark = pytest.mark.aws

RULE = stage_rule_name("flowplane-local", "HourlyFlow")
ZONED = "@schedule(cron='30 2 * * ? *', timezone='Europe/Amsterdam')"
LAUNCHER = "arn:aws:lambda:us-east-1:123456789012:function:flowplane-local-launch"


def _deploy(cp, tmp_path, decorator: str = ZONED, **options):
    text = (EXAMPLES / "hourly_flow.py").read_text().replace("@schedule(hourly=True)", decorator)
    record = cp.deploy("hourly_flow.py", folder=project_copy(tmp_path, "hourly_flow.py", text), **options)
    assert record["status"] == "DEPLOYED", record
    return record


def _fire(cp, when: str) -> dict:
    """What EventBridge Scheduler hands the launcher at `when`: the target's Input, its context filled."""
    s = cp.aws.zoned_schedules.get(RULE)
    payload = s["target"]["Input"].replace("<aws.scheduler.scheduled-time>", when).replace(
        "<aws.scheduler.schedule-arn>", s["arn"])
    return cp.client.lambda_.invoke("launch", json.loads(payload)).payload


def _post(cp, path: str, body: dict):
    return cp.post_json(path, body)


# --- deploying a zone -----------------------------------------------------------------


def test_a_zoned_schedule_is_an_eventbridge_scheduler_schedule_not_a_rule(control_plane, tmp_path):
    cp = control_plane
    _deploy(cp, tmp_path)
    s = cp.aws.zoned_schedules.get(RULE)
    assert s["expression"] == "cron(30 2 * * ? *)" and s["timezone"] == "Europe/Amsterdam" and s["state"] == "ENABLED"
    assert s["target"]["Arn"] == LAUNCHER and s["target"]["RoleArn"] == cp.aws.scheduler_role_arn
    assert s["target"]["Input"] == scheduler_input("HourlyFlow")
    assert cp.aws.schedules.get(RULE) is None
    head = cp.get("/deployments?flow=HourlyFlow").json_body["flow"]
    assert head["timezone"] == "Europe/Amsterdam" and head["schedule"] == "cron(30 2 * * ? *)"
    # The Client API's read of the flow (Flow.deployment, the dashboard's flows page) carries the zone.
    flow = cp.get("/flows/HourlyFlow").json_body
    assert flow["timezone"] == "Europe/Amsterdam" and flow["schedule"] == "cron(30 2 * * ? *)"


def test_switching_between_a_rule_and_a_zone_leaves_one_schedule(control_plane, tmp_path):
    cp = control_plane
    cp.deploy("hourly_flow.py")
    assert cp.aws.schedules.get(RULE) is not None
    _deploy(cp, tmp_path)
    assert cp.aws.schedules.get(RULE) is None and cp.aws.zoned_schedules.get(RULE) is not None
    _deploy(cp, tmp_path, "@schedule(hourly=True)")
    assert cp.aws.schedules.get(RULE)["expression"] == "cron(0 * * * ? *)"
    assert cp.aws.zoned_schedules.get(RULE) is None


def test_an_unknown_zone_fails_the_deploy_and_changes_nothing(control_plane, tmp_path):
    cp = control_plane
    cp.deploy("hourly_flow.py")
    text = (EXAMPLES / "hourly_flow.py").read_text().replace("@schedule(hourly=True)", "@schedule(hourly=True, timezone='Nowhere/Atlantis')")
    _, package = cp.build("hourly_flow.py", folder=project_copy(tmp_path, "hourly_flow.py", text))
    r = cp.post_package(package.data)
    assert r.status_code == 400 and r.json_body["field"] == "schedule.timezone", r.json_body
    assert "Nowhere/Atlantis" in r.json_body["error"]
    assert cp.aws.schedules.get(RULE)["expression"] == "cron(0 * * * ? *)"
    assert cp.aws.zoned_schedules.get(RULE) is None


def test_a_zoned_tick_starts_one_run_named_as_the_rules_with_its_scheduled_time(control_plane, tmp_path):
    cp = control_plane
    cp.deploy("hourly_flow.py")
    _deploy(cp, tmp_path)
    # 02:30 in Amsterdam on 2026-01-15 is 01:30 UTC. The rule's tick of the same instant (a
    # delivery in flight while the deploy switched kinds) names the same execution.
    first = _fire(cp, "2026-01-15T01:30:00Z")
    again = _fire(cp, "2026-01-15T01:30:00Z")
    assert first["started"] and first["run_id"] == again["run_id"] == f"sfn-{RULE}-20260115T013000Z"
    [execution] = cp.executions("HourlyFlow")
    described = cp.aws.state_machines.client.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"])["ScheduledTime"] == "2026-01-15T01:30:00Z"


def test_delete_removes_the_zoned_schedule(control_plane, tmp_path):
    cp = control_plane
    _deploy(cp, tmp_path)
    r = cp.client.http.delete("/flows/HourlyFlow", headers={"content-type": "application/json"}, body='{"user": "alice"}')
    assert r.status_code == 200, r.json_body
    assert cp.aws.zoned_schedules.get(RULE) is None


# --- pause / unpause -------------------------------------------------------------------


@pytest.mark.parametrize("zoned", [False, True])
def test_pause_stops_firing_survives_a_redeploy_and_unpause_restarts(control_plane, tmp_path, zoned):
    cp = control_plane
    decorator = ZONED if zoned else "@schedule(hourly=True)"
    _deploy(cp, tmp_path, decorator)
    state = (lambda: cp.aws.zoned_schedules.get(RULE)["state"]) if zoned else (lambda: cp.aws.schedules.get(RULE)["state"])
    r = _post(cp, "/flows/HourlyFlow/schedule/pause", {"user": "alice"})
    assert r.status_code == 200 and r.json_body["paused"] is True, r.json_body
    assert state() == "DISABLED"
    # A tick already on its way starts nothing.
    if zoned:
        assert _fire(cp, "2026-01-15T01:30:00Z")["started"] is False
    _deploy(cp, tmp_path, decorator, max_workers=7)
    assert state() == "DISABLED"
    view = cp.get("/flows/HourlyFlow/schedule").json_body
    assert view["paused"] is True and view["changed_by"] == "alice"
    assert cp.executions("HourlyFlow") == []
    r = _post(cp, "/flows/HourlyFlow/schedule/unpause", {"user": "alice"})
    assert r.status_code == 200 and r.json_body["paused"] is False
    assert state() == "ENABLED"
    if zoned:
        assert _fire(cp, "2026-01-15T01:30:00Z")["started"] is True


def test_pause_refusals_change_nothing(control_plane, tmp_path):
    cp = control_plane
    _deploy(cp, tmp_path)
    cp.deploy("parameter_flow.py")
    r = _post(cp, "/flows/HourlyFlow/schedule/pause", {"user": "mallory"})
    assert r.status_code == 403 and r.json_body["field"] == "authorize", r.json_body
    r = _post(cp, "/flows/HourlyFlow/schedule/pause", {"user": "mallory", "authorize": "production:wrong"})
    assert r.status_code == 403
    assert _post(cp, "/flows/NoSuchFlow/schedule/pause", {"user": "alice"}).status_code == 404
    r = _post(cp, "/flows/ParameterFlow/schedule/pause", {"user": "alice"})
    assert r.status_code == 409 and "no @schedule" in r.json_body["error"]
    assert _post(cp, "/flows/HourlyFlow/schedule/pause", {}).status_code == 400
    assert cp.aws.zoned_schedules.get(RULE)["state"] == "ENABLED"
    assert cp.get("/flows/HourlyFlow/schedule").json_body["paused"] is False
    # With the token, someone else may.
    token = cp.get("/deployments?flow=HourlyFlow").json_body["flow"]["production_token"]
    r = _post(cp, "/flows/HourlyFlow/schedule/pause", {"user": "bob", "authorize": f"production:{token}"})
    assert r.status_code == 200 and cp.aws.zoned_schedules.get(RULE)["state"] == "DISABLED"


# --- the view --------------------------------------------------------------------------


def test_the_view_shows_the_next_times_as_the_schedule_computes_them_and_the_last_runs(control_plane, tmp_path):
    cp = control_plane
    _deploy(cp, tmp_path)
    _fire(cp, "2026-01-15T01:30:00Z")
    before = datetime.now(timezone.utc)
    view = cp.get("/flows/HourlyFlow/schedule?next=3").json_body
    later = cp.get("/flows/HourlyFlow/schedule?next=2&after=2026-03-28T03:00").json_body
    assert later["next"] == ["2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z"]  # 29 March skips 02:30
    assert cp.get("/flows/HourlyFlow/schedule?after=soon").status_code == 400
    assert view["timezone"] == "Europe/Amsterdam" and view["kind"] == "scheduler" and view["paused"] is False
    now = datetime.fromisoformat(view["now"].replace("Z", "+00:00"))
    assert before.replace(microsecond=0) <= now
    expected = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in next_times("cron(30 2 * * ? *)", "Europe/Amsterdam", now, 3)]
    assert view["next"] == expected and len(expected) == 3
    [last] = view["last_runs"]
    assert last["scheduled_time"] == "2026-01-15T01:30:00Z" and last["run_id"] == f"sfn-{RULE}-20260115T013000Z"
    for bad in ("0", "101", "x"):
        r = cp.get(f"/flows/HourlyFlow/schedule?next={bad}")
        assert r.status_code == 400 and r.json_body["field"] == "next"
    cp.deploy("parameter_flow.py")
    assert cp.get("/flows/ParameterFlow/schedule").status_code == 409
    assert cp.get("/flows/NoSuchFlow/schedule").status_code == 404


# --- backfill --------------------------------------------------------------------------


def _names(cp) -> set[str]:
    return {e["name"] for e in cp.executions("HourlyFlow")}


def test_backfill_starts_one_run_per_time_once_even_when_repeated(control_plane, tmp_path):
    cp = control_plane
    _deploy(cp, tmp_path)
    body = {"user": "alice", "start": "2026-03-27", "end": "2026-03-31T03:00", "max_parallel": 10}
    r = _post(cp, "/flows/HourlyFlow/backfill", body)
    assert r.status_code == 200, r.json_body
    # 02:30 does not exist in Amsterdam on 2026-03-29 (clocks go 02:00 -> 03:00): four times, not five.
    assert r.json_body["times"] == 4 and r.json_body["started"] == 4
    assert _names(cp) == {f"{RULE}-{t}" for t in
                          ("20260327T013000Z", "20260328T013000Z", "20260330T003000Z", "20260331T003000Z")}
    for e in cp.executions("HourlyFlow"):
        described = cp.aws.state_machines.client.describe_execution(executionArn=e["executionArn"])
        assert json.loads(described["input"])["ScheduledTime"].replace("-", "").replace(":", "") in e["name"]
    # The same backfill again, and the schedule's own tick of one of those times: no new run.
    r2 = _post(cp, "/flows/HourlyFlow/backfill", body)
    assert r2.status_code == 200 and r2.json_body["started_now"] == []
    assert _fire(cp, "2026-03-30T00:30:00Z")["run_id"] == f"sfn-{RULE}-20260330T003000Z"
    # An overlapping range starts only the times not yet run.
    r3 = _post(cp, "/flows/HourlyFlow/backfill", {**body, "start": "2026-03-30", "end": "2026-04-01T03:00"})
    # (the times already run name their existing runs)
    assert r3.json_body["times"] == 3 and len(r3.json_body["started_now"]) == 3
    assert len(cp.executions("HourlyFlow")) == 5


@pytest.mark.parametrize("control_plane", [{"execute": False}], indirect=True)  # runs stay RUNNING
def test_backfill_keeps_at_most_max_parallel_running_and_resumes(control_plane, tmp_path):
    cp = control_plane
    _deploy(cp, tmp_path, "@schedule(cron='0 6 * * ? *', timezone='America/New_York')")
    body = {"user": "alice", "start": "2026-02-01", "end": "2026-02-05T23:00", "max_parallel": 2}
    r = _post(cp, "/flows/HourlyFlow/backfill", body)
    assert r.json_body["times"] == 5 and len(r.json_body["in_flight"]) == 2 and r.json_body["remaining"] == 3
    # Asked again while both run (an interrupted CLI run again): nothing more starts.
    assert _post(cp, "/flows/HourlyFlow/backfill", body).json_body["started_now"] == []
    assert len(_names(cp)) == 2
    for e in cp.executions("HourlyFlow"):
        cp.aws.state_machines.stop(e["executionArn"], "done")
    r = _post(cp, "/flows/HourlyFlow/backfill", body)
    assert len(r.json_body["started_now"]) == 2 and r.json_body["remaining"] == 1
    # 06:00 in New York is 11:00 UTC in February.
    assert f"{RULE}-20260201T110000Z" in _names(cp) and f"{RULE}-20260204T110000Z" in _names(cp)
    for e in cp.executions("HourlyFlow"):
        if e["status"] == "RUNNING":
            cp.aws.state_machines.stop(e["executionArn"], "done")
    r = _post(cp, "/flows/HourlyFlow/backfill", body)
    assert r.json_body["remaining"] == 0
    for e in cp.executions("HourlyFlow"):
        if e["status"] == "RUNNING":
            cp.aws.state_machines.stop(e["executionArn"], "done")
    assert _post(cp, "/flows/HourlyFlow/backfill", body).json_body["status"] == "DONE"
    assert len(_names(cp)) == 5


def test_bad_backfills_are_refused_and_start_nothing(control_plane, tmp_path):
    cp = control_plane
    _deploy(cp, tmp_path, "@schedule(cron='0/5 * * * ? *', timezone='Europe/Amsterdam')")
    cp.deploy("parameter_flow.py")
    ok = {"user": "alice", "start": "2026-01-01T00:00", "end": "2026-01-01T01:00"}
    cases = [
        ({**ok, "end": "2025-12-31"}, 400, "end"),
        ({**ok, "end": "2999-01-01"}, 400, "end"),
        ({**ok, "start": "yesterday"}, 400, "start"),
        ({**ok, "start": None}, 400, "start"),
        ({**ok, "max_parallel": 0}, 400, "max_parallel"),
        ({**ok, "max_parallel": "2"}, 400, "max_parallel"),
        ({**ok, "start": "2026-01-01T00:01", "end": "2026-01-01T00:04"}, 400, "start"),  # no time in range
        ({**ok, "end": "2026-01-05"}, 400, "yes"),  # 1,153 runs need --yes
        ({**ok, "user": "mallory"}, 403, "authorize"),
    ]
    for body, status, field in cases:
        r = _post(cp, "/flows/HourlyFlow/backfill", body)
        assert r.status_code == status and r.json_body.get("field") == field, (body, r.json_body)
    assert _post(cp, "/flows/NoSuchFlow/backfill", ok).status_code == 404
    assert _post(cp, "/flows/ParameterFlow/backfill", ok).status_code == 409
    assert cp.executions("HourlyFlow") == [] and cp.executions("ParameterFlow") == []
    r = _post(cp, "/flows/HourlyFlow/backfill", {**ok, "end": "2026-01-05", "yes": True, "max_parallel": 3})
    assert r.status_code == 200 and r.json_body["times"] == 1153 and len(r.json_body["started_now"]) == 3
