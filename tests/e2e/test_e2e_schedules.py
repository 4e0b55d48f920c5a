"""Operating a zoned schedule end to end on the embedded plane, on a clock the test moves:
firing at the right UTC instants across a daylight-saving change (the instants the preview
showed), pause/unpause, and backfill, through the SDK's commands."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from flowplane.local.scheduler import ManualClock
from tests.support.embedded_plane import create, embedded_plane, flow_cli, production_run, sdk, wait_for_run

pytestmark = [pytest.mark.slow, pytest.mark.embedded]

CLOCK = ManualClock(datetime(2026, 3, 27, 12, 0, tzinfo=timezone.utc))
plane = embedded_plane(clock=CLOCK, schedule_seconds=None)
SCHEDULE = "flowplane-local-schedule-ZonedFlow"

FLOW = '''
from flowplane import FlowSpec, current, schedule, step


@schedule(cron="30 2 * * ? *", timezone="Europe/Amsterdam")
class ZonedFlow(FlowSpec):
    @step
    def start(self):
        self.scheduled = current.scheduled_time.isoformat() if current.scheduled_time else None
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ZonedFlow()
'''


@pytest.fixture(scope="module")
def flow(plane, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("zoned") / "zoned_flow.py"
    path.write_text(FLOW)
    created = create(path)
    assert "cron(30 2 * * ? *) (Europe/Amsterdam)" in created
    return path


def _step_clock(plane, until: datetime, step: timedelta = timedelta(minutes=30)) -> list:
    """Move the clock to `until` in steps, ticking the scheduler at each; ZonedFlow's firings."""
    fired = []
    while CLOCK.now() < until:
        CLOCK.set(min(CLOCK.now() + step, until))
        fired.extend(f for f in plane.scheduler.tick() if f.rule == SCHEDULE)
    return fired


def _scheduled_of(run_id: str) -> str:
    return production_run("ZonedFlow", run_id)["start"].task.data.scheduled


def test_a_zoned_schedule_fires_at_the_previewed_instants_across_a_dst_change(plane, flow):
    preview = json.loads(sdk(flow, "step-functions", "schedule", "--next", "4", "--after", "2026-03-27T12:00Z", "--json"))
    # 02:30 in Amsterdam: 01:30 UTC in winter, 00:30 UTC in summer, and none on 29 March,
    # when the clocks skip from 02:00 to 03:00.
    assert preview["next"] == ["2026-03-28T01:30:00Z", "2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z",
                               "2026-04-01T00:30:00Z"]
    assert preview["timezone"] == "Europe/Amsterdam" and preview["kind"] == "scheduler"
    plane.scheduler.tick()  # the schedule is seen at 12:00
    fired = _step_clock(plane, datetime(2026, 4, 1, 12, 0, tzinfo=timezone.utc))
    assert [f.time.strftime("%Y-%m-%dT%H:%M:%SZ") for f in fired] == preview["next"]
    assert all(f.error is None and f.result["started"] for f in fired)
    runs = [f.result["run_id"] for f in fired]
    for run_id, when in zip(runs, preview["next"]):
        assert wait_for_run(plane, "ZonedFlow", run_id)["status"] == "SUCCEEDED"
        assert _scheduled_of(run_id) == when.replace("Z", "+00:00")
    shown = json.loads(sdk(flow, "step-functions", "schedule", "--json"))
    assert [r["scheduled_time"] for r in shown["last_runs"]] == list(reversed(preview["next"]))
    assert {r["status"] for r in shown["last_runs"]} == {"SUCCEEDED"}


def test_pause_stops_the_firing_and_unpause_brings_it_back(plane, flow):
    assert "Paused the schedule of ZonedFlow" in sdk(flow, "step-functions", "pause")
    assert "PAUSED since" in sdk(flow, "step-functions", "list-runs")
    assert "PAUSED since" in sdk(flow, "step-functions", "schedule")
    # A redeploy keeps it paused.
    create(flow)
    assert _step_clock(plane, CLOCK.now() + timedelta(days=2)) == []
    assert "Unpaused" in sdk(flow, "step-functions", "unpause")
    assert "active" in sdk(flow, "step-functions", "list-runs")
    fired = _step_clock(plane, CLOCK.now() + timedelta(days=1))
    assert len(fired) == 1 and fired[0].result["started"]
    assert wait_for_run(plane, "ZonedFlow", fired[0].result["run_id"])["status"] == "SUCCEEDED"


def test_backfill_runs_each_scheduled_time_once_even_run_twice(plane, flow):
    args = ["step-functions", "backfill", "--start", "2026-03-20", "--end", "2026-03-23T12:00",
            "--max-parallel", "2", "--poll", "0.5"]
    out = sdk(flow, *args)
    assert "4 scheduled time(s)" in out and "Done" in out
    started = [line.split()[-1] for line in out.splitlines() if line.strip().startswith("started ")]
    assert len(started) == 4
    for run_id in started:
        assert wait_for_run(plane, "ZonedFlow", run_id)["status"] == "SUCCEEDED"
    assert sorted(_scheduled_of(r) for r in started) == [
        "2026-03-20T01:30:00+00:00", "2026-03-21T01:30:00+00:00", "2026-03-22T01:30:00+00:00",
        "2026-03-23T01:30:00+00:00"]
    again = sdk(flow, *args)
    assert "started sfn-" not in again and "Done" in again
    machine = f"arn:aws:states:{plane.region}:{plane.account}:stateMachine:flowplane-local-ZonedFlow"
    names = [e["name"] for e in plane.session.client("stepfunctions").list_executions(stateMachineArn=machine)["executions"]]
    assert sorted(n for n in names if n < f"{SCHEDULE}-20260324") == sorted(r.removeprefix("sfn-") for r in started)


def test_bad_operations_exit_non_zero_and_change_nothing(plane, flow):
    runner = CliRunner()
    cli = flow_cli(flow)
    for args, fragment in (
        (["step-functions", "backfill", "--start", "2026-03-23", "--end", "2026-03-20"], "is before start"),
        (["step-functions", "backfill", "--start", "2026-03-20", "--end", "2999-01-01"], "in the future"),
        (["step-functions", "backfill", "--start", "2020-01-01", "--end", "2026-03-01"], "confirm with --yes"),
        (["step-functions", "schedule", "--after", "whenever"], "not an ISO 8601 time"),
    ):
        result = runner.invoke(cli, args)
        assert result.exit_code != 0 and fragment in result.output, (args, result.output)
    assert "active" in sdk(flow, "step-functions", "schedule")
