"""`python FLOW run` for every flow in ../shared/flows, as a user types it, giving what
../shared/flows/EXPECTED.md lists (read straight from the datastore)."""

from __future__ import annotations

import pytest

from tests.support.flow_sources import sleepy_flow
from tests.support.local_runs import USER, RunView, max_overlap, run_cli, write_flow
from tests.support.shared_flows import SHARED_FLOWS

pytestmark = pytest.mark.slow

if not SHARED_FLOWS.is_dir():
    pytest.skip(f"the shared example flows are not at {SHARED_FLOWS}", allow_module_level=True)


@pytest.fixture()
def root(tmp_path):
    return tmp_path / "datastore"


def ok(proc) -> None:
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"


def test_parameter_flow(root, tmp_path):
    proc = run_cli(SHARED_FLOWS / "parameter_flow.py", root, tmp_path, "run")
    ok(proc)
    run = RunView.only(root, "ParameterFlow")
    assert run.data("end")["alpha"] == 0.01
    assert "alpha is 0.010000" in run.log("start")
    assert f"[{run.run_id}/start/1 (pid " in proc.stdout and "alpha is 0.010000" in proc.stdout
    assert run.record.status == "succeeded" and f"user:{USER}" in run.record.system_tags


def test_branch_flow(root, tmp_path):
    ok(run_cli(SHARED_FLOWS / "branch_flow.py", root, tmp_path, "run"))
    run = RunView.only(root, "BranchFlow")
    assert run.data("join")["total"] == 5
    assert run.data("a")["x"] == 2 and run.data("b")["x"] == 3


@pytest.mark.parametrize("launcher", ["fork", "subprocess"])
def test_foreach_flow_with_three_workers(root, tmp_path, launcher):
    ok(run_cli(SHARED_FLOWS / "foreach_flow.py", root, tmp_path, "run", "--max-workers", "3",
               FLOWPLANE_TASK_LAUNCHER=launcher))
    run = RunView.only(root, "ForeachFlow")
    assert run.data("join")["total"] == 285 and run.data("end")["total"] == 285
    squares = run.task_ids("square")
    assert squares == [f"1.{i}" for i in range(10)]
    spans = [(a.started_at, a.finished_at) for tid in squares for a in run.attempts("square", tid)]
    assert len(spans) == 10 and max_overlap(spans) <= 3
    # Every task of the run, not only the squares, respects the bound.
    everything = spans + [(a.started_at, a.finished_at) for s in ("start", "join", "end") for a in run.attempts(s)]
    assert max_overlap(everything) <= 3


def test_deployment_info_flow(root, tmp_path):
    ok(run_cli(SHARED_FLOWS / "deployment_info_flow.py", root, tmp_path, "run"))
    run = RunView.only(root, "DeploymentInfoFlow")
    info = run.data("end")["deployment_info"]
    assert info["who"] == USER and info["when"]
    assert run.data("start")["deployment_info"] == info  # evaluated once, at the start of run


def test_hourly_flow_runs_locally(root, tmp_path):
    ok(run_cli(SHARED_FLOWS / "hourly_flow.py", root, tmp_path, "run"))
    run = RunView.only(root, "HourlyFlow")
    assert run.log("start").startswith("time is ")


@pytest.mark.parametrize(
    "args,message",
    [
        (["--alpha", "abc"], "Invalid value for '--alpha': 'abc' is not a valid float"),
        (["--beta", "1"], "No such option: --beta"),
    ],
)
def test_bad_parameters_exit_2_before_any_task(root, tmp_path, args, message):
    proc = run_cli(SHARED_FLOWS / "parameter_flow.py", root, tmp_path, "run", *args)
    assert proc.returncode == 2 and message in proc.stderr
    assert "Task is starting" not in proc.stdout and not root.exists()


def test_a_missing_required_parameter_exits_2(root, tmp_path):
    flow = write_flow(tmp_path, "required_flow", """
        from flowplane import FlowSpec, Parameter, step

        class RequiredFlow(FlowSpec):
            size = Parameter("size", type=int, required=True)

            @step
            def start(self):
                self.next(self.end)

            @step
            def end(self):
                pass

        if __name__ == "__main__":
            RequiredFlow()
    """)
    proc = run_cli(flow, root, tmp_path, "run")
    assert proc.returncode == 2 and "Missing option '--size'" in proc.stderr and not root.exists()
    ok(run_cli(flow, root, tmp_path, "run", "--size", "4"))
    assert RunView.only(root, "RequiredFlow").data("end")["size"] == 4


def test_a_failing_step_exits_1_naming_the_task(root, tmp_path):
    flow = write_flow(tmp_path, "failing_flow", """
        from flowplane import FlowSpec, step

        class FailingFlow(FlowSpec):
            @step
            def start(self):
                self.next(self.middle)

            @step
            def middle(self):
                raise KeyError("no such thing")
                self.next(self.end)

            @step
            def end(self):
                pass

        if __name__ == "__main__":
            FailingFlow()
    """)
    proc = run_cli(flow, root, tmp_path, "run")
    assert proc.returncode == 1
    run = RunView.only(root, "FailingFlow")
    pathspec = f"FailingFlow/{run.run_id}/middle/1"
    assert f"Task {pathspec} failed: KeyError: 'no such thing'" in proc.stdout
    # The traceback shown is the user's, headed by the task it belongs to.
    assert f"Task {pathspec} (attempt 0) failed:" in proc.stderr
    assert 'raise KeyError("no such thing")' in proc.stderr and "flowplane/task/" not in proc.stderr
    assert run.record.status == "failed" and run.record.failed_task == pathspec


def test_show_and_check_on_a_shared_flow(root, tmp_path):
    show = run_cli(SHARED_FLOWS / "branch_flow.py", root, tmp_path, "show")
    ok(show)
    assert "Step start\n    ?\n    => a, b\n" in show.stdout and "Step join\n    ?\n    => end\n" in show.stdout
    check = run_cli(SHARED_FLOWS / "foreach_flow.py", root, tmp_path, "check")
    ok(check)
    assert "The graph looks good!" in check.stdout
    assert not root.exists()


def test_ctrl_c_stops_the_run_and_its_tasks(root, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.support.local_runs import run_env

    flow = write_flow(tmp_path, "sleepy_flow", sleepy_flow(60, first="""
        with open("TASK_PID", "w") as f:
            f.write(str(os.getpid()))
    """))
    proc = subprocess.Popen([sys.executable, str(flow), "run"], cwd=tmp_path, env=run_env(root),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pid_file = tmp_path / "TASK_PID"
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "Workflow failed." in out and "The run stopped: RunInterrupted" in out
    task_pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(task_pid, 0)  # the task was stopped with the run
    run = RunView.only(root, "SleepyFlow")
    assert run.record.status == "failed" and run.record.error.type == "RunInterrupted"
    assert run.task("start").status == "failed"
    assert "the run was interrupted (SIGINT)" in run.attempts("start")[0].error.message
