"""Failures through the embedded control plane: `--with retry` retried as the state
machine says and recorded attempt by attempt; a task whose process is killed gives a
FAILED run whose reason the Client API shows; a terminated run stops its jobs; a @catch
step killed outright is caught by its fallback attempt, and one whose fallbacks cannot
run either fails the run at that step."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.support.embedded_plane import create, embedded_plane, execution, processes, production_run, trigger, wait_for_run
from tests.support.flow_sources import sleepy_flow

pytestmark = pytest.mark.slow

plane = embedded_plane()

FLAKY = '''
from flowplane import FlowSpec, Parameter, current, step


class FlakyFlow(FlowSpec):
    """start fails until its attempt number reaches `succeed_at`."""

    succeed_at = Parameter("succeed_at", default=1)

    @step
    def start(self):
        print("attempt %d" % current.retry_count)
        if current.retry_count < self.succeed_at:
            raise RuntimeError("flaky failure on attempt %d" % current.retry_count)
        self.attempt_that_worked = current.retry_count
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    FlakyFlow()
'''

SLEEPY = sleepy_flow(120, first='print("going to sleep", flush=True)')


# Kills itself on every attempt of user code: as the OOM killer, nothing is recorded.
KILLED = '''
import os
import signal

from flowplane import FlowSpec, catch, current, retry, step


class KilledFlow(FlowSpec):
    @step
    def start(self):
        self.before = "kept"
        self.next(self.boom)

    @catch(var="failure")
    @retry(times=RETRIES, minutes_between_retries=0)
    @step
    def boom(self):
        print("boom attempt %d" % current.retry_count, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        self.next(self.end)

    @step
    def end(self):
        self.seen = (self.before, type(self.failure).__name__, str(self.failure))


if __name__ == "__main__":
    KilledFlow()
'''

# Dies as its module loads in boom's tasks, so not even @catch's fallback attempts can run.
DOOMED = '''
import os
import signal
import sys

from flowplane import FlowSpec, catch, step

if "boom" in sys.argv:
    os.kill(os.getpid(), signal.SIGKILL)


class DoomedFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.boom)

    @catch(var="failure")
    @step
    def boom(self):
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    DoomedFlow()
'''


def write(tmp_path: Path, name: str, source: str) -> Path:
    folder = tmp_path / name.removesuffix(".py")
    folder.mkdir()
    path = folder / name
    path.write_text(source)
    return path


@pytest.fixture(scope="module")
def flaky(plane, tmp_path_factory) -> Path:
    path = write(tmp_path_factory.mktemp("flaky"), "flaky_flow.py", FLAKY)
    # Two retries, one second apart (minutes_between_retries=0 becomes IntervalSeconds 1).
    create(path, with_=("retry:times=2,minutes_between_retries=0",))
    return path


def test_a_retried_task_succeeds_on_its_second_attempt(plane, flaky):
    run_id = trigger(flaky, "--succeed_at", "1")
    assert wait_for_run(plane, "FlakyFlow", run_id)["status"] == "SUCCEEDED"
    # One Batch job per attempt, each given its attempt number by the state machine.
    starts = processes(plane, run_id, "start")
    assert [p.command[-1] for p in starts] == ["0", "1"] and [p.exit_code for p in starts] == [1, 0]
    run = production_run("FlakyFlow", run_id)
    assert run.successful and run.data.attempt_that_worked == 1
    task = run["start"].task
    assert task.current_attempt == 1 and task.successful
    first = run["start"].task.__class__(task.pathspec, attempt=0)
    assert not first.successful and "flaky failure on attempt 0" in str(first.exception)
    assert "attempt 0" in first.stdout and "attempt 1" in task.stdout


def test_a_task_failing_every_attempt_fails_the_run_after_the_last(plane, flaky):
    run_id = trigger(flaky, "--succeed_at", "9")
    found = wait_for_run(plane, "FlakyFlow", run_id)
    assert found["status"] == "FAILED" and found["error"] == "States.TaskFailed"
    starts = processes(plane, run_id, "start")
    # times=2: the first attempt and two retries, at least IntervalSeconds apart; `end` never ran.
    assert [p.command[-1] for p in starts] == ["0", "1", "2"] and all(p.exit_code == 1 for p in starts)
    assert all(b.started - a.ended >= 0.9 for a, b in zip(starts, starts[1:]))
    assert processes(plane, run_id, "end") == []
    run = production_run("FlakyFlow", run_id)
    assert not run.successful and run.end_task is None
    task = run["start"].task
    assert task.current_attempt == 2 and not task.successful
    for n in (0, 1, 2):
        attempt = task.__class__(task.pathspec, attempt=n)
        assert f"flaky failure on attempt {n}" in str(attempt.exception)


def test_a_killed_task_fails_the_run_with_the_reason(plane, tmp_path):
    path = write(tmp_path, "sleepy_flow.py", SLEEPY)
    create(path)
    run_id = trigger(path)
    job = _wait_running(plane, run_id, "start")
    _wait_logged(plane, job.job_id, "going to sleep")  # mid-run, not at its start
    plane.batch.kill(job.job_id, signal.SIGKILL)  # as the OOM killer would
    found = wait_for_run(plane, "SleepyFlow", run_id)
    assert found["status"] == "FAILED"
    cause = json.loads(found["cause"])
    assert cause["Container"]["ExitCode"] == 137 and "SIGKILL" in cause["StatusReason"]
    run = production_run("SleepyFlow", run_id)
    assert not run.successful
    task = run["start"].task
    assert not task.finished
    shown = str(task.exception)
    assert "SIGKILL" in shown, shown
    assert "going to sleep" in task.stdout


@pytest.mark.parametrize("retries", [0, 1])
def test_a_catch_step_killed_outright_is_caught_by_its_fallback_attempt(plane, tmp_path, retries):
    name = f"Killed{retries}Flow"
    path = write(tmp_path, "killed_flow.py", KILLED.replace("KilledFlow", name).replace("RETRIES", str(retries)))
    create(path)
    run_id = trigger(path)
    found = wait_for_run(plane, name, run_id)
    assert found["status"] == "SUCCEEDED", found
    # Every attempt of user code was killed; the next one is @catch's fallback, which runs
    # no user code and exits 0. No more attempts after it.
    boom = processes(plane, run_id, "boom")
    assert [p.command[-1] for p in boom] == [str(n) for n in range(retries + 2)]
    assert [p.signal for p in boom] == ["SIGKILL"] * (retries + 1) + [None] and boom[-1].exit_code == 0
    run = production_run(name, run_id)
    assert run.successful
    task = run["boom"].task
    assert task.finished and task.current_attempt == retries + 1
    for n in range(retries + 1):
        killed = task.__class__(task.pathspec, attempt=n)
        assert not killed.finished and "SIGKILL" in str(killed.exception), n
        assert f"boom attempt {n}" in killed.stdout
    # The catch variable names what happened to the attempts it stands for.
    caught = task["failure"].data
    assert type(caught).__name__ == "ExceptionWrapper"
    assert caught.type == "flowplane.task_errors.FailureHandledByCatch"
    assert f"attempt {retries}" in caught.message and "SIGKILL" in caught.message, caught.message
    assert "exit code 137" in caught.message
    assert str(task.exception) == str(caught)
    seen = run["end"].task["seen"].data
    assert seen[0] == "kept" and seen[1] == "ExceptionWrapper" and "SIGKILL" in seen[2]


def test_a_catch_step_whose_fallbacks_cannot_run_fails_the_run_at_that_step(plane, tmp_path):
    path = write(tmp_path, "doomed_flow.py", DOOMED)
    create(path)
    run_id = trigger(path)
    found = wait_for_run(plane, "DoomedFlow", run_id)
    assert found["status"] == "FAILED"
    # The run stops at the step itself, not at a downstream task that refuses to start.
    assert found["error"] == "States.TaskFailed"
    cause = json.loads(found["cause"])
    assert cause["JobName"] == "DoomedFlow-boom" and cause["Container"]["ExitCode"] == 137
    assert processes(plane, run_id, "end") == []
    # One attempt of user code and @catch's three fallback attempts, all killed.
    assert [p.signal for p in processes(plane, run_id, "boom")] == ["SIGKILL"] * 4
    run = production_run("DoomedFlow", run_id)
    assert not run.successful and run.end_task is None
    task = run["boom"].task
    assert not task.finished and task.current_attempt == 3
    assert "SIGKILL" in str(task.exception)
    # The run's record names the step that failed it, and why.
    from flowplane.api_client import ApiClient

    record = ApiClient(plane.url).request("GET", f"/flows/DoomedFlow/runs/{run_id}")
    assert record["status"] == "failed" and record["failed_task"] == f"DoomedFlow/{run_id}/boom/1"
    assert record["error"]["message"].startswith("task boom/1 failed: ") and "SIGKILL" in record["error"]["message"]


def test_terminating_a_run_stops_its_jobs(plane, tmp_path):
    path = write(tmp_path, "sleepy_flow.py", SLEEPY.replace("SleepyFlow", "NappingFlow"))
    create(path)
    run_id = trigger(path)
    _wait_running(plane, run_id, "start")
    from tests.support.embedded_plane import sdk

    assert "Terminated run" in sdk(path, "step-functions", "terminate", run_id)
    assert wait_for_run(plane, "NappingFlow", run_id)["status"] == "ABORTED"
    deadline = time.monotonic() + 15
    while processes(plane, run_id, "start")[0].ended is None:
        assert time.monotonic() < deadline, "the aborted run's job still runs"
        time.sleep(0.1)
    assert execution(plane, "NappingFlow", run_id)["status"] == "ABORTED"


def _wait_logged(plane, job_id: str, text: str, timeout: float = 60) -> None:
    logs = plane.session.client("logs")
    stream = f"{plane.settings.job_definition}/default/{job_id}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            events = logs.get_log_events(logGroupName="/aws/batch/job", logStreamName=stream)["events"]
        except logs.exceptions.ResourceNotFoundException:
            events = []
        if any(text in e["message"] for e in events):
            return
        assert time.monotonic() < deadline, f"{text!r} not in the logs of job {job_id} after {timeout} s"
        time.sleep(0.2)


def _wait_running(plane, run_id: str, step: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        running = [p for p in plane.batch.running() if p.run_id == run_id and p.step == step]
        if running:
            return running[0]
        assert time.monotonic() < deadline, f"no process for {step} of {run_id} after {timeout} s"
        time.sleep(0.1)
