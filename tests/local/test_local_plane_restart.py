"""State survives a restart of the embedded control plane: deployed flows, recorded runs,
their artifacts and logs, executions and schedules; a run cut short by a crash comes back
ABORTED and recorded as failed. Also `flowplane local` in the foreground (the background
service is tested in test_local_service.py)."""

from __future__ import annotations

import json
import shutil
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from flowplane.local.cli import main as local_main
from flowplane.local.persist import StateStore
from flowplane.local.plane import LocalPlane, PlaneConfig, read_url_file
from flowplane.client import Flow
from tests.support.embedded_plane import USER, create, execution, production_run, trigger, wait_for_run
from tests.support.flow_sources import sleepy_flow
from tests.support.shared_flows import SHARED_FLOWS

pytestmark = pytest.mark.slow


@pytest.fixture()
def sdk_env(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FLOWPLANE_USER", USER)
    monkeypatch.delenv("FLOWPLANE_DATASTORE_ROOT", raising=False)
    from flowplane.client import namespace

    namespace(None)
    return monkeypatch


def start(state: Path, monkeypatch, **options) -> LocalPlane:
    plane = LocalPlane(PlaneConfig(state_dir=state, **options)).start()
    monkeypatch.setenv("FLOWPLANE_API_URL", plane.url)
    return plane


SLEEPY_FLOW = sleepy_flow(120)


def _journaled_running(state: Path, run_id: str) -> bool:
    """Whether the state folder's journal holds the execution of `run_id` as RUNNING."""
    name = run_id.removeprefix("sfn-")
    for path in state.glob("journal.*.jsonl"):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record["t"] == "ex" and record["name"] == name and record["status"] == "RUNNING":
                return True
    return False


def sleepy_flow(tmp_path: Path) -> Path:
    folder = tmp_path / "sleepy"
    folder.mkdir()
    path = folder / "sleepy_flow.py"
    path.write_text(SLEEPY_FLOW)
    return path


def test_flows_and_runs_survive_a_restart_and_runs_still_going_end_aborted(tmp_path, sdk_env):
    state = tmp_path / "state"
    parameter, hourly, sleepy = SHARED_FLOWS / "parameter_flow.py", SHARED_FLOWS / "hourly_flow.py", sleepy_flow(tmp_path)
    plane = start(state, sdk_env)
    try:
        for path in (parameter, hourly, sleepy):
            create(path)
        first = trigger(parameter, "--alpha", "0.5")
        assert wait_for_run(plane, "ParameterFlow", first)["status"] == "SUCCEEDED"
        cut = trigger(sleepy)
        while not plane.batch.running():
            time.sleep(0.1)
    finally:
        t0 = time.monotonic()
        plane.stop()
    # Stopping ended the run still going (its process too); everything was on disk already.
    assert time.monotonic() - t0 < 20 and all(p.ended is not None for p in plane.batch.history)
    assert read_url_file(state) is None and StateStore(state).exists()

    plane = start(state, sdk_env)
    try:
        assert plane.restored.executions == 2 and plane.restored.state_machines == 3
        # The run, its artifacts and its logs, through the Client API over the new plane.
        run = production_run("ParameterFlow", first)
        assert run.successful and run.data.alpha == 0.5
        assert "alpha is 0.500000" in run["start"].task.stdout
        # The run cut short: aborted, and recorded so before the stop.
        assert not production_run("SleepyFlow", cut).successful
        assert execution(plane, "SleepyFlow", cut)["status"] == "ABORTED"
        # Step Functions still knows the executions; the Client API lists the runs; the schedule is there.
        assert execution(plane, "ParameterFlow", first)["status"] == "SUCCEEDED"
        assert [r.id for r in Flow("ParameterFlow")] == [first]
        events = plane.session.client("events")
        rule = events.describe_rule(Name="flowplane-local-schedule-HourlyFlow")
        assert rule["ScheduleExpression"] == "cron(0 * * * ? *)" and rule["State"] == "ENABLED"
        (target,) = events.list_targets_by_rule(Rule="flowplane-local-schedule-HourlyFlow")["Targets"]
        assert target["Arn"].endswith(":function:flowplane-local-launch") and target["InputTransformer"]
        # The deployment still works: trigger again, and deploy a new version.
        second = trigger(parameter)
        assert wait_for_run(plane, "ParameterFlow", second)["status"] == "SUCCEEDED"
        assert production_run("ParameterFlow", second).data.alpha == 0.01
        assert "version 2" in create(parameter)
        # Runs restored were reported before the restart: not again.
        names = {first.removeprefix("sfn-"), cut.removeprefix("sfn-")}
        assert [d for d in plane.router.deliveries if d.event["detail"].get("name") in names] == []
    finally:
        plane.stop()


def test_a_run_cut_short_by_a_crash_comes_back_aborted(tmp_path, sdk_env):
    path = sleepy_flow(tmp_path)
    state, crashed = tmp_path / "state", tmp_path / "crashed"
    plane = start(state, sdk_env)
    try:
        create(path)
        run_id = trigger(path)
        while not plane.batch.running():
            time.sleep(0.1)
        # The journal holds the running execution within a second: no save is waited for.
        deadline = time.monotonic() + 1.0
        while not _journaled_running(state, run_id):
            assert time.monotonic() < deadline, "the running execution was not on disk within 1 s"
            time.sleep(0.05)
        shutil.copytree(state, crashed, ignore=shutil.ignore_patterns("plane.*", "jobs"))
    finally:
        plane.stop()
    # As if the machine had died just after that save: the plane restarts from it.
    plane = start(crashed, sdk_env)
    try:
        assert plane.restored.executions == 1
        found = wait_for_run(plane, "SleepyFlow", run_id)
        assert found["status"] == "ABORTED" and "stopped while this execution ran" in found["cause"]
        run = production_run("SleepyFlow", run_id)
        assert not run.successful and not run.finished
        assert [r.id for r in Flow("SleepyFlow")] == [run_id]
    finally:
        plane.stop()


def test_flowplane_local_serves_until_stopped(tmp_path, sdk_env, capsys):
    state = tmp_path / "state"
    stop = threading.Event()
    result = {}
    thread = threading.Thread(
        target=lambda: result.update(code=local_main(["--port", "0", "--vcpus", "2", "--state-dir", str(state)],
                                                     stop=stop))
    )
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while (info := read_url_file(state)) is None:
            assert thread.is_alive() and time.monotonic() < deadline
            time.sleep(0.1)
        with urllib.request.urlopen(info["url"] + "/health") as r:
            assert json.loads(r.read())["ok"] is True
    finally:
        stop.set()
        thread.join(60)
    assert result == {"code": 0} and read_url_file(state) is None
    out = capsys.readouterr().out
    assert f"export FLOWPLANE_API_URL={info['url']}" in out and "control plane ready" in out


@pytest.mark.parametrize(
    "args,message",
    [
        (["--vcpus", "0"], "argument --vcpus: must be at least 1, got 0"),
        (["--vcpus", "many"], "argument --vcpus: 'many' is not a whole number"),
        (["--port", "70000"], "argument --port: a port is 0..65535, got 70000"),
    ],
)
def test_flowplane_local_refuses_bad_options(args, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        local_main([*args, "--state-dir", str(tmp_path / "state")])
    assert exit_.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "state").exists()


def test_flowplane_local_says_when_its_port_is_taken(tmp_path, capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert local_main(["--port", str(port), "--state-dir", str(tmp_path / "state")]) == 1
    assert f"port {port} is taken; choose another with --port" in capsys.readouterr().err
    assert read_url_file(tmp_path / "state") is None
    # The refused start put everything back: the next plane in this process starts.
    plane = LocalPlane(PlaneConfig(state_dir=tmp_path / "next", persist=False)).start()
    plane.stop()


ZONED_FLOW = '''
from flowplane import FlowSpec, schedule, step


@schedule(cron="0 6 ? * MON-FRI *", timezone="America/New_York")
class ZonedFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    ZonedFlow()
'''


def test_a_zoned_schedule_and_its_pause_survive_a_restart(tmp_path, sdk_env):
    from tests.support.embedded_plane import sdk

    state, path = tmp_path / "state", tmp_path / "zoned_flow.py"
    path.write_text(ZONED_FLOW)
    plane = start(state, sdk_env)
    try:
        create(path)
        sdk(path, "step-functions", "pause")
    finally:
        plane.stop()
    plane = start(state, sdk_env)
    try:
        found = plane.session.client("scheduler").get_schedule(Name="flowplane-local-schedule-ZonedFlow")
        assert found["ScheduleExpression"] == "cron(0 6 ? * MON-FRI *)"
        assert found["ScheduleExpressionTimezone"] == "America/New_York" and found["State"] == "DISABLED"
        assert found["Target"]["Arn"].endswith(":function:flowplane-local-launch")
        assert "<aws.scheduler.scheduled-time>" in found["Target"]["Input"]
        assert "PAUSED since" in sdk(path, "step-functions", "schedule")
    finally:
        plane.stop()
