"""End to end: `python FLOW run` for each flow in ../shared/flows, read back through the
Client API, giving what ../shared/flows/EXPECTED.md lists."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from flowplane import Flow, Run, Step
from tests.support.run_layouts import isolate_client

pytestmark = pytest.mark.slow

from tests.support.shared_flows import SHARED_FLOWS as FLOWS  # noqa: E402
USER = "flowtester"

if not FLOWS.is_dir():
    pytest.skip(f"the shared example flows are not at {FLOWS}", allow_module_level=True)


def _runtime_ready() -> bool:
    # `run` hands the run to flowplane.runtime.run_local; until that lands there is nothing to drive.
    try:
        from flowplane.runtime import run_local  # noqa: F401
    except ImportError:
        return False
    return importlib.util.find_spec("flowplane.cli") is not None


if not _runtime_ready():
    pytest.skip("the local runtime (flowplane.runtime.run_local, behind `python flow.py run`) is not there yet",
                allow_module_level=True)


@pytest.fixture()
def datastore(tmp_path, monkeypatch):
    root = tmp_path / "datastore"
    isolate_client(monkeypatch, root, user=USER)
    return root


def run_flow(name: str, root: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "FLOWPLANE_DATASTORE_ROOT": str(root), "FLOWPLANE_USER": USER}
    proc = subprocess.run([sys.executable, str(FLOWS / name), "run", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{name} run failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def only_run(flow: str) -> Run:
    runs = list(Flow(flow))
    assert len(runs) == 1, runs
    return runs[0]


def test_parameter_flow(datastore, tmp_path):
    run_flow("parameter_flow.py", datastore, tmp_path)
    run = only_run("ParameterFlow")
    assert run.successful and run.finished
    assert run.data.alpha == 0.01
    assert "alpha is 0.010000" in run["start"].task.stdout
    assert "alpha is still 0.010000" in run.end_task.stdout
    assert {f"user:{USER}", "runtime:local"} <= run.system_tags
    assert [s.id for s in run] == ["end", "start"]
    assert Flow("ParameterFlow").latest_successful_run == run
    assert run.created_at <= run["start"].task.created_at < run.finished_at


def test_branch_flow(datastore, tmp_path):
    run_flow("branch_flow.py", datastore, tmp_path)
    run = only_run("BranchFlow")
    assert run["join"].task.data.total == 5
    assert run.data.total == 5
    assert {run["a"].task.data.x, run["b"].task.data.x} == {2, 3}
    steps = [s.id for s in run]
    assert steps[:2] == ["end", "join"] and steps[-1] == "start" and set(steps[2:4]) == {"a", "b"}
    assert "total is 5" in run.end_task.stdout


def _max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    now = peak = 0
    for _, delta in events:
        now += delta
        peak = max(peak, now)
    return peak


def test_foreach_flow(datastore, tmp_path):
    run_flow("foreach_flow.py", datastore, tmp_path, "--max-workers", "3")
    run = only_run("ForeachFlow")
    assert run.data.total == 285
    assert run["join"].task.data.total == 285
    square = Step(f"ForeachFlow/{run.id}/square")
    tasks = list(square)
    assert len(tasks) == 10
    assert sorted(t.index for t in tasks) == list(range(10))
    assert sorted(t.data.value for t in tasks) == [i * i for i in range(10)]
    # --max-workers 3: never more than three square tasks alive at once.
    assert _max_overlap([(t.created_at, t.finished_at) for t in tasks]) <= 3


def test_deployment_info_flow(datastore, tmp_path):
    run_flow("deployment_info_flow.py", datastore, tmp_path)
    run = only_run("DeploymentInfoFlow")
    info = run.data.deployment_info
    assert info["who"] == USER and run.data.info == info  # by name (EXPECTED.md) and attribute (Metaflow)
    assert datetime.fromisoformat(info["when"])
    assert f"This flow was deployed at {info['when']} by {USER}" in run["start"].task.stdout


def test_hourly_flow(datastore, tmp_path):
    run_flow("hourly_flow.py", datastore, tmp_path)
    run = only_run("HourlyFlow")
    assert run.successful
    assert "time is " in run["start"].task.stdout
