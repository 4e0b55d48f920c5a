"""@catch's fallback attempts at the task level: an attempt of user code that died without
recording anything (killed, out of memory, stopped by Batch) is a failed attempt, and the
fallback attempt after it keeps a FailureHandledByCatch naming what happened, runs no user
code, and lets the flow go on. Fast: in-process tasks on a local datastore, except one
attempt that really kills its own process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import flowplane.task.fallback as fallback
from flowplane.datastore import records
from flowplane.datastore.storage import LocalStorage
from flowplane.job import FALLBACK_ATTEMPTS, attempts_before_failing, is_fallback
from flowplane.task.errors import ExceptionWrapper
from flowplane.task.fallback import BatchJob, EarlierAttempt
from tests.support.local_runs import write_flow
from tests.support.tasks import files_under, task, view

FLOW = """
import os
import signal

from flowplane import FlowSpec, catch, current, retry, step


class KillFlow(FlowSpec):
    @step
    def start(self):
        self.before = "kept"
        self.next(self.boom)

    @catch(var="failure")
    @retry(times=1, minutes_between_retries=0)
    @step
    def boom(self):
        open("RAN-%d" % current.retry_count, "w").write("user code ran")
        how = os.environ.get("BOOM")
        if how == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        if how == "raise":
            raise ValueError("boom on attempt %d" % current.retry_count)
        self.next(self.end)

    @step
    def end(self):
        self.seen = self.failure
"""

FLOW_NAME = "KillFlow"


@pytest.fixture()
def flow(tmp_path, monkeypatch) -> Path:
    monkeypatch.delenv("BOOM", raising=False)
    monkeypatch.delenv("AWS_BATCH_JOB_ID", raising=False)
    return write_flow(tmp_path, "kill_flow", FLOW)


def killed_attempt(flow: Path, root: Path, attempt: int, cwd: Path) -> subprocess.CompletedProcess:
    """Attempt `attempt` of boom as its own process, which SIGKILLs itself in user code."""
    env = {**os.environ, "BOOM": "kill"}
    argv = ["--run-id", "100", "--step", "boom", "--task-id", "1", "--retry-count", str(attempt),
            "--flow-file", str(flow), "--datastore-root", str(root), "--params-json", "{}"]
    return subprocess.run([sys.executable, "-m", "flowplane", "task", *argv], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_which_attempts_are_fallbacks():
    # @retry(times=1) + @catch: attempts 0 and 1 run user code, 2..4 are fallbacks, 4 is the last.
    assert [is_fallback(n, 1, True) for n in range(5)] == [False, False, True, True, True]
    assert attempts_before_failing(1, True) == 1 + FALLBACK_ATTEMPTS == 4
    # Without @catch there are no fallbacks: every attempt runs user code.
    assert not any(is_fallback(n, 1, False) for n in range(5)) and attempts_before_failing(1, False) == 1


def test_a_killed_attempt_is_caught_by_the_fallback_that_runs_no_user_code(root, flow, tmp_path, monkeypatch, capsys):
    assert task(flow, root, "start") == 0
    monkeypatch.setenv("BOOM", "raise")
    assert task(flow, root, "boom", retry=0) == 1  # @retry: an ordinary failure, another attempt follows
    proc = killed_attempt(flow, root, 1, tmp_path)
    assert proc.returncode == -9, proc.stderr
    run = view(root, FLOW_NAME)
    # What the killed attempt left: a start and nothing else.
    assert run.attempts("boom")[1].status == "running" and run.task("boom").status == "running"
    capsys.readouterr()

    assert task(flow, root, "boom", retry=2) == 0
    assert not (tmp_path / "RAN-2").exists()  # the fallback ran no user code
    err = capsys.readouterr().err
    assert "@catch caught an exception from KillFlow/100/boom/1" in err
    caught = run.data("boom")["failure"]
    assert isinstance(caught, ExceptionWrapper) and caught.type == "flowplane.task_errors.FailureHandledByCatch"
    assert "attempt 0 failed: ValueError: boom on attempt 0" in caught.message
    assert "attempt 1 ended without recording an outcome" in caught.message
    assert "fallback attempt 2" in caught.message
    # The killed attempt is a failed attempt now; the task succeeded on its fallback, the error kept.
    attempts = run.attempts("boom")
    assert [a.status for a in attempts] == ["failed", "failed", "succeeded"]
    assert attempts[1].error.type == "TaskFailed" and "attempt 1 ended without" in attempts[1].error.message
    assert attempts[1].started_at <= attempts[1].finished_at
    rec = run.task("boom")
    assert rec.status == "succeeded" and rec.final_attempt == 2 and rec.error.type.endswith("FailureHandledByCatch")
    # Inherited artifacts pass through the fallback; the flow goes on and sees the failure.
    assert run.data("boom")["before"] == "kept"
    assert task(flow, root, "end") == 0
    assert run.data("end")["seen"].message == caught.message


def test_the_fallback_names_what_batch_says_of_the_killed_job(root, flow, monkeypatch):
    assert task(flow, root, "start") == 0
    storage = LocalStorage(str(root))
    for n in (0, 1):
        records.write_attempt(storage, FLOW_NAME, "100", "boom", "1", records.AttemptRecord(
            attempt=n, started_at="2026-11-25T06:00:00.000+00:00", batch_job_id=f"job-{n}"))
    asked = []

    def describe_jobs(job_ids):
        asked.append(job_ids)
        return {
            "job-0": BatchJob.from_description({
                "jobId": "job-0", "status": "FAILED", "statusReason": "Essential container in task exited",
                "stoppedAt": 1795586400000,
                "container": {"exitCode": 137, "reason": "OutOfMemoryError: Container killed due to memory usage"},
            }),
            "job-1": BatchJob.from_description({
                "jobId": "job-1", "status": "FAILED", "statusReason": "Job attempt duration exceeded timeout",
                "attempts": [{"container": {"exitCode": 143}}],
            }),
        }

    monkeypatch.setattr(fallback, "batch_describe_jobs", describe_jobs)
    monkeypatch.setenv("AWS_BATCH_JOB_ID", "job-2")  # on Batch: Batch is asked
    assert task(flow, root, "boom", retry=2) == 0
    assert asked == [["job-0", "job-1"]]
    run = view(root, FLOW_NAME)
    message = run.data("boom")["failure"].message
    assert ("attempt 0 was killed by signal SIGKILL before recording an outcome (exit code 137; Batch: Essential "
            "container in task exited; OutOfMemoryError: Container killed due to memory usage)") in message
    assert ("attempt 1 was killed by signal SIGTERM before recording an outcome (exit code 143; Batch: Job "
            "attempt duration exceeded timeout)") in message
    first, second, third = run.attempts("boom")
    assert (first.status, first.exit_code, first.error.type) == ("failed", 137, "TaskKilled")
    assert first.finished_at == "2026-11-25T06:00:00.000+00:00" and first.batch_job_id == "job-0"
    assert (second.status, second.exit_code) == ("failed", 143)
    assert third.batch_job_id == "job-2" and third.status == "succeeded"


def test_batch_that_cannot_answer_leaves_the_records_to_tell(root, flow, monkeypatch, capsys):
    assert task(flow, root, "start") == 0
    storage = LocalStorage(str(root))
    for n in (0, 1):
        records.write_attempt(storage, FLOW_NAME, "100", "boom", "1",
                              records.AttemptRecord(attempt=n, batch_job_id=f"job-{n}"))

    def no_batch(service, endpoint_url=None):
        raise PermissionError("not authorized to perform batch:DescribeJobs")

    monkeypatch.setattr("flowplane.task.aws.client", no_batch)
    monkeypatch.setenv("AWS_BATCH_JOB_ID", "job-2")
    assert task(flow, root, "boom", retry=2) == 0
    assert "could not ask AWS Batch about jobs job-0, job-1: PermissionError" in capsys.readouterr().err
    message = view(root, FLOW_NAME).data("boom")["failure"].message
    assert "attempt 1 ended without recording an outcome" in message


def test_an_attempt_that_left_no_record_and_one_the_local_runtime_recorded(root, flow):
    assert task(flow, root, "start") == 0
    storage = LocalStorage(str(root))
    # Attempt 0 never got as far as its first record; the local runtime recorded attempt 1's death.
    records.write_attempt(storage, FLOW_NAME, "100", "boom", "1", records.AttemptRecord(
        attempt=1, status="failed", exit_code=-9,
        error=records.ErrorInfo(type="TaskKilled", message="the task process was killed by SIGKILL")))
    assert task(flow, root, "boom", retry=2) == 0
    message = view(root, FLOW_NAME).data("boom")["failure"].message
    assert "attempt 0 left no record: it ended before the task started" in message
    assert "attempt 1 failed: TaskKilled: the task process was killed by SIGKILL" in message
    # Nothing is invented for the attempt that left nothing.
    assert records.read_attempt(storage, FLOW_NAME, "100", "boom", "1", 0) is None


def test_the_last_attempt_of_user_code_still_runs_it_and_catches_what_it_raises(root, flow, tmp_path, monkeypatch):
    assert task(flow, root, "start") == 0
    monkeypatch.setenv("BOOM", "raise")
    assert task(flow, root, "boom", retry=1) == 0
    assert (tmp_path / "RAN-1").exists()
    caught = view(root, FLOW_NAME).data("boom")["failure"]
    assert (caught.type, caught.message) == ("ValueError", "boom on attempt 1")


def test_the_catch_variable_is_none_when_the_step_succeeds(root, flow):
    assert task(flow, root, "start") == 0
    assert task(flow, root, "boom", retry=0) == 0
    assert task(flow, root, "end") == 0
    run = view(root, FLOW_NAME)
    assert run.data("boom")["failure"] is None and run.data("end")["seen"] is None


def test_a_fallback_that_cannot_run_fails_until_the_last_then_the_task_fails(root, flow, capsys):
    # start never ran: the fallback cannot load boom's input, so it fails, naming it.
    last = attempts_before_failing(1, True)
    for attempt in range(2, last + 1):
        assert task(flow, root, "boom", retry=attempt) == 1
        err = capsys.readouterr().err
        assert "the input task KillFlow/100/start/1 has not run" in err
        status = view(root, FLOW_NAME).task("boom").status
        assert status == ("failed" if attempt == last else "running"), attempt
    rec = view(root, FLOW_NAME).task("boom")
    assert rec.final_attempt == last and "has not run" in rec.error.message


def test_a_bad_retry_count_for_a_fallback_changes_nothing(root, flow, capsys):
    assert task(flow, root, "boom", retry=-1) == 1
    assert "--retry-count must be 0 or more" in capsys.readouterr().err
    assert files_under(root) == []


def test_batch_job_descriptions_as_aws_documents_them():
    job = BatchJob.from_description({
        "jobId": "j", "status": "FAILED", "statusReason": "Essential container in task exited",
        "stoppedAt": 0, "container": {"exitCode": 3, "reason": None},
    })
    assert (job.exit_code, job.stopped_at) == (3, "1970-01-01T00:00:00.000+00:00")
    assert job.describe() == "exited with code 3 (Batch: Essential container in task exited)"
    assert BatchJob(status_reason="Terminated by user").describe() == "was stopped (Batch: Terminated by user)"
    assert BatchJob().describe() == "was stopped (Batch gave no reason)"
    # An exit code above 128 that is no signal stays an exit code.
    assert BatchJob(exit_code=200).describe() == "exited with code 200"
    assert EarlierAttempt(3, None).describe().startswith("attempt 3 left no record")
