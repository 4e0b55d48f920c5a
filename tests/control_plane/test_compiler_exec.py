"""Compiled state machines executed by moto's Step Functions interpreter, jobs on moto's Batch.

Nothing runs the task here: Batch jobs succeed (or fail) at once, and the foreach
item lists the splitting tasks would write to S3 are seeded before the start.
What is checked is the orchestration: every state machine reaches SUCCEEDED,
each step submits the right number of jobs with the right task ids, the run's
parameters reach every task, and failures are retried, caught or fatal as the
AWS documentation describes (Retry/Catch in "Handling errors in Step Functions
workflows"), not merely as one moto run happened to behave.
"""

from __future__ import annotations

import datetime
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Optional

import boto3
import pytest
from moto import mock_aws
from moto.batch.utils import JobStatus
from moto.batch_simple.models import BatchSimpleBackend

from chalicelib.compiler import CompileSettings, compile_state_machine
from flowplane.foreach_items import items_body, items_key
from flowplane.manifest import Manifest
from flowplane.local.moto_patches import patched_moto_batch
from tests.support.compiler_shapes import SHAPES, SHARED, manifest_for, shape_manifest, shared_manifest
from tests.support.flow_sources import START_END, decorate, flow_class, flow_source

pytestmark = [pytest.mark.slow, pytest.mark.aws]

REGION = "us-east-1"
PACKAGE_URL = "s3://flowplane-packages/packages/0123abcd.tar.gz"
BUCKET, PREFIX = "flowplane-datastore", "root"
DATASTORE = f"s3://{BUCKET}/{PREFIX}"


@dataclass
class Run:
    status: str
    error: Optional[str]
    history: list[dict]
    # step -> Batch jobs per final status
    jobs: dict[str, Counter] = field(default_factory=dict)
    # every job submission, in order: (step, task id, retry count, environment)
    submissions: list[tuple[str, str, int, dict]] = field(default_factory=list)
    # (step, started, stopped) of every job, epoch milliseconds
    intervals: list[tuple[str, int, int]] = field(default_factory=list)

    def job_count(self, step: str) -> int:
        return sum(self.jobs.get(step, Counter()).values())

    def events(self, kind: str) -> list[dict]:
        return [e for e in self.history if e["type"] == kind]


class Aws:
    def __init__(self) -> None:
        iam = boto3.client("iam", region_name=REGION)
        self.role = iam.create_role(RoleName="flowplane-sfn", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        self.batch = boto3.client("batch", region_name=REGION)
        ce = self.batch.create_compute_environment(
            computeEnvironmentName="flowplane-ce", type="UNMANAGED", state="ENABLED", serviceRole=self.role
        )["computeEnvironmentArn"]
        self.queue = self.batch.create_job_queue(
            jobQueueName="flowplane-queue",
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
        )["jobQueueArn"]
        jobdef = self.batch.register_job_definition(
            jobDefinitionName="flowplane-task",
            type="container",
            containerProperties={"image": "flowplane:latest", "vcpus": 1, "memory": 512},
        )["jobDefinitionArn"]
        self.s3 = boto3.client("s3", region_name=REGION)
        self.s3.create_bucket(Bucket=BUCKET)
        self.sfn = boto3.client("stepfunctions", region_name=REGION)
        # The queue by ARN, the job definition by name: Batch takes either.
        self.settings = CompileSettings(
            job_queue=self.queue,
            job_definition="flowplane-task",
            datastore_root=DATASTORE,
            region=REGION,
        )
        assert jobdef.endswith("job-definition/flowplane-task:1")
        self._machines = 0

    def run(
        self,
        manifest: Manifest,
        cardinalities: Optional[dict[tuple[str, str], int]] = None,
        execution_input: Optional[str] = '{"Parameters": "{}"}',
        name: str = "run1",
        timeout: float = 60,
    ) -> Run:
        """Compile, create a state machine, seed the item lists, run it once to the end.

        Once per mock session: moto 5.2.1 cannot start a second execution after one
        has run (getmoto/moto#10077: StartExecution deep-copies the state machine
        together with the finished execution's locks).
        """
        definition = compile_state_machine(manifest, PACKAGE_URL, self.settings)
        self._machines += 1
        arn = self.sfn.create_state_machine(
            name=f"{manifest.flow_name}-{self._machines}", definition=json.dumps(definition), roleArn=self.role
        )["stateMachineArn"]
        # What the splitting tasks would write, under the run id the execution will have.
        for (step, task_id), n in (cardinalities or {}).items():
            key = f"{PREFIX}/{items_key(manifest.flow_name, f'sfn-{name}', step, task_id)}"
            self.s3.put_object(Bucket=BUCKET, Key=key, Body=items_body(n))
        kwargs = {"stateMachineArn": arn, "name": name}
        if execution_input is not None:
            kwargs["input"] = execution_input
        execution = self.sfn.start_execution(**kwargs)["executionArn"]
        deadline = time.monotonic() + timeout
        while (desc := self.sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "execution did not finish"
            time.sleep(0.02)
        history = self.sfn.get_execution_history(executionArn=execution, maxResults=1000)["events"]
        run = Run(status=desc["status"], error=desc.get("error"), history=history)
        prefix = f"{manifest.flow_name}-"
        # Read from Batch, not from the execution's history: a foreach's tasks run in the
        # Distributed Map's child executions, whose events are not the parent's.
        jobs = []
        for status in ("SUCCEEDED", "FAILED"):
            for job in self.batch.list_jobs(jobQueue=self.queue, jobStatus=status)["jobSummaryList"]:
                assert job["jobName"].startswith(prefix)
                run.jobs.setdefault(job["jobName"][len(prefix) :], Counter())[status] += 1
                jobs.append(job["jobId"])
        described = [d for i in range(0, len(jobs), 100) for d in self.batch.describe_jobs(jobs=jobs[i : i + 100])["jobs"]]
        for job in sorted(described, key=lambda j: (j["createdAt"], j.get("startedAt", 0))):
            command = job["container"]["command"]
            # moto appends its MANAGED_BY_AWS marker in lower case (AWS adds it unseen).
            env = {e.get("Name", e.get("name")): e.get("Value", e.get("value")) for e in job["container"]["environment"]}
            assert command[:3] == ["flowplane", "task", "--step"]
            opts = dict(zip(command[2::2], command[3::2]))
            assert len(opts) * 2 == len(command) - 2, command
            run.submissions.append((opts["--step"], opts["--task-id"], int(opts["--retry-count"]), env))
            run.intervals.append((opts["--step"], job["startedAt"], job["stoppedAt"]))
        return run


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", raising=False)
    config = {"stepfunctions": {"execute_state_machine": True}, "batch": {"use_docker": False}}
    with mock_aws(config=config), patched_moto_batch():
        yield Aws()


def job_outcomes(monkeypatch, decide: Callable[[str], tuple[float, bool]]) -> None:
    """Make moto's docker-less Batch end each job as `decide(job_name)` says: (seconds running, succeeded).

    Test scaffolding, not a moto fix: MOTO_SIMPLE_BATCH_FAIL_AFTER fails every job
    of the process, and only synchronously inside SubmitJob.
    """

    def finish(self, include_start_attempt: bool, job) -> None:
        self.backend._jobs[job.job_id] = job
        job.job_started_at = datetime.datetime.now()
        job.log_stream_name = job._stream_name
        if include_start_attempt:
            job._start_attempt()
        seconds, ok = decide(job.job_name)
        if seconds:
            job.status = JobStatus.RUNNING
            timer = threading.Timer(seconds, job._mark_stopped, kwargs={"success": ok})
            timer.daemon = True
            timer.start()
        else:
            job._mark_stopped(success=ok)

    monkeypatch.setattr(BatchSimpleBackend, "_mark_job_as_finished", finish)


# --- every flow and every shape to SUCCEEDED --------------------------------------------


@pytest.mark.parametrize("filename", sorted(SHARED))
def test_shared_flow_runs_to_success(aws, filename):
    expected = SHARED[filename]
    run = aws.run(shared_manifest(filename, expected.max_workers), expected.cardinalities)
    assert (run.status, run.error) == ("SUCCEEDED", None)
    assert {step: dict(c) for step, c in run.jobs.items()} == {
        step: {"SUCCEEDED": n} for step, n in expected.jobs.items()
    }
    assert {env["FLOWPLANE_RUN_ID"] for *_, env in run.submissions} == {"sfn-run1"}


def test_foreach_flow_runs_ten_squares_with_their_own_task_ids(aws, monkeypatch):
    job_outcomes(monkeypatch, lambda name: (0.2, True))
    run = aws.run(shared_manifest("foreach_flow.py", max_workers=3), {("start", "1"): 10})
    assert run.status == "SUCCEEDED"
    assert run.job_count("square") == 10
    ids = Counter((step, task_id) for step, task_id, *_ in run.submissions)
    assert ids == Counter(
        {("start", "1"): 1, ("join", "1"): 1, ("end", "1"): 1, **{("square", f"1.{i}"): 1 for i in range(10)}}
    )
    # The join is submitted after the last square, the end after the join.
    order = [step for step, *_ in run.submissions]
    assert order.index("join") > max(i for i, s in enumerate(order) if s == "square")
    assert order[-1] == "end"
    env = run.submissions[0][3]
    assert env["FLOWPLANE_PACKAGE_URL"] == PACKAGE_URL and env["FLOWPLANE_DATASTORE_ROOT"] == DATASTORE
    assert "FLOWPLANE_FOREACH_TABLE" not in env
    # --max-workers 3: never more than three children (squares) at once, and more than one.
    assert 1 < max_concurrent_jobs(run, "square") <= 3
    # The parent's history does not grow with the items: they are child executions.
    assert not [e for e in run.history if e["type"].startswith("MapIteration")]


def max_concurrent_jobs(run: Run, step: str) -> int:
    edges = sorted(
        [(start, 1) for s, start, _ in run.intervals if s == step]
        + [(stop, -1) for s, _, stop in run.intervals if s == step]
    )
    active = peak = 0
    for _, change in edges:  # at a tie the stop (-1) sorts first
        active += change
        peak = max(peak, active)
    return peak


def test_wide_foreach_runs_every_item(aws, monkeypatch):
    # 100 items at MaxConcurrency 40: many children submit and poll at once
    # (what moto's Batch backend raced on, see flowplane/local/moto_patches.py, defect 3).
    job_outcomes(monkeypatch, lambda name: (0.2, True))
    run = aws.run(shared_manifest("foreach_flow.py", max_workers=40), {("start", "1"): 100})
    assert (run.status, run.error) == ("SUCCEEDED", None)
    squares = sorted(task_id for step, task_id, *_ in run.submissions if step == "square")
    assert squares == sorted(f"1.{i}" for i in range(100))
    assert 1 < max_concurrent_jobs(run, "square") <= 40
    # The three top-level tasks and the Map's few events, whatever the width (an
    # inline Map added about nine per item: 900 here).
    assert len(run.history) < 40
    assert not [e for e in run.history if "square" in json.dumps(e, default=str)]


@pytest.mark.parametrize("shape", SHAPES, ids=[s.name for s in SHAPES])
def test_shape_runs_to_success(aws, shape):
    run = aws.run(shape_manifest(shape), shape.cardinalities)
    assert (run.status, run.error) == ("SUCCEEDED", None)
    assert {step: dict(c) for step, c in run.jobs.items()} == {step: {"SUCCEEDED": n} for step, n in shape.jobs.items()}


def test_nested_foreach_task_ids(aws):
    shape = next(s for s in SHAPES if s.name == "nested_foreach")
    run = aws.run(shape_manifest(shape), shape.cardinalities)
    by_step: dict[str, set] = {}
    for step, task_id, *_ in run.submissions:
        by_step.setdefault(step, set()).add(task_id)
    assert by_step == {
        "start": {"1"},
        "middle": {"1.0", "1.1", "1.2"},
        "leaf": {f"1.{i}.{j}" for i in range(3) for j in range(2)},
        "inner_join": {"1.0", "1.1", "1.2"},
        "outer_join": {"1"},
        "end": {"1"},
    }


def test_missing_item_list_fails_the_run_at_the_foreach(aws):
    run = aws.run(shared_manifest("foreach_flow.py"), cardinalities={})
    assert run.status == "FAILED"
    assert run.job_count("square") == 0 and run.job_count("start") == 1
    failed = [e for e in run.history if e["type"] in ("TaskFailed", "ExecutionFailed")]
    assert failed, "no failure event"


# --- parameters ------------------------------------------------------------------------


def test_console_style_parameters_reach_every_task(aws):
    console_input = json.dumps({"Parameters": json.dumps({"alpha": 0.5})})
    run = aws.run(shared_manifest("parameter_flow.py"), execution_input=console_input, name="by-hand")
    assert run.status == "SUCCEEDED"
    assert len(run.submissions) == 2
    for step, task_id, retry, env in run.submissions:
        assert env["FLOWPLANE_RUN_ID"] == "sfn-by-hand"
        seen = json.loads(env["FLOWPLANE_EXECUTION_INPUT"])
        assert json.loads(seen["Parameters"]) == {"alpha": 0.5}


@pytest.mark.parametrize("execution_input", ['{"Comment": "Insert your JSON here"}', "{}", None])
def test_runs_without_parameters_key(aws, execution_input):
    run = aws.run(shared_manifest("parameter_flow.py"), execution_input=execution_input)
    assert run.status == "SUCCEEDED"
    for *_, env in run.submissions:
        # The task applies the deployed defaults; the input reaches it unchanged.
        assert json.loads(env["FLOWPLANE_EXECUTION_INPUT"]) == json.loads(execution_input or "{}")


def test_parameters_reach_tasks_inside_a_foreach(aws):
    run = aws.run(
        shared_manifest("foreach_flow.py"),
        {("start", "1"): 10},
        execution_input=json.dumps({"Parameters": json.dumps({"n": 3})}),
    )
    squares = [env for step, _, _, env in run.submissions if step == "square"]
    assert len(squares) == 10
    assert {json.loads(json.loads(e["FLOWPLANE_EXECUTION_INPUT"])["Parameters"])["n"] for e in squares} == {3}


# --- failures: @retry, @catch, @timeout ------------------------------------------------

RETRY_FLOW = flow_source(flow_class(
    decorate(START_END, "start", "@retry(times=2, minutes_between_retries=0)"), "RetryFlow"))


def _assert_retried_then_failed(run: Run) -> None:
    # AWS: MaxAttempts 2 means the first attempt and two retries, each its own job
    # and TaskFailed event; once spent, with no Catch, the execution fails with the
    # error of the last attempt, States.TaskFailed.
    assert (run.status, run.error) == ("FAILED", "States.TaskFailed")
    assert dict(run.jobs["start"]) == {"FAILED": 3}
    assert "end" not in run.jobs
    assert [(s, r) for s, _, r, _ in run.submissions] == [("start", 0), ("start", 1), ("start", 2)]
    failures = run.events("TaskFailed")
    assert [e["taskFailedEventDetails"]["error"] for e in failures] == ["States.TaskFailed"] * 3
    assert run.events("TaskTimedOut") == []
    # IntervalSeconds 1 (minutes_between_retries=0, clamped) between a failure and the next attempt.
    scheduled = run.events("TaskScheduled")
    for failed, again in zip(failures, scheduled[1:]):
        assert (again["timestamp"] - failed["timestamp"]).total_seconds() >= 0.9


def test_failing_jobs_are_retried_then_fail_the_execution(aws, monkeypatch):
    monkeypatch.setenv("MOTO_SIMPLE_BATCH_FAIL_AFTER", "0")
    _assert_retried_then_failed(aws.run(manifest_for(RETRY_FLOW)))


def test_jobs_that_run_a_while_then_fail_are_retried_as_on_aws(aws, monkeypatch):
    # The case moto got wrong (see flowplane/local/moto_patches.py, defect 2): the job is still
    # running at the first poll, and the second attempt came back as TaskTimedOut.
    job_outcomes(monkeypatch, lambda name: (0.3, False))
    _assert_retried_then_failed(aws.run(manifest_for(RETRY_FLOW)))


CATCH_FLOW = """from flowplane import FlowSpec, step, retry, catch

class CatchFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.flaky)

    @catch(var="failure")
    @retry(times=1, minutes_between_retries=0)
    @step
    def flaky(self):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_catch_lets_the_run_go_on_once_a_fallback_attempt_succeeds(aws, monkeypatch):
    # The attempt of user code and its @retry fail (killed: no task recorded); the first
    # fallback attempt (retry count 2) runs no user code and exits 0, so the run goes on.
    seen: Counter = Counter()

    def decide(name: str) -> tuple[float, bool]:
        seen[name] += 1
        return 0, not name.endswith("-flaky") or seen[name] > 2

    job_outcomes(monkeypatch, decide)
    run = aws.run(manifest_for(CATCH_FLOW))
    assert (run.status, run.error) == ("SUCCEEDED", None)
    assert dict(run.jobs["flaky"]) == {"FAILED": 2, "SUCCEEDED": 1}
    assert [r for s, _, r, _ in run.submissions if s == "flaky"] == [0, 1, 2]
    assert dict(run.jobs["end"]) == {"SUCCEEDED": 1}


def test_a_catch_step_whose_fallbacks_all_fail_fails_the_run_at_that_step(aws, monkeypatch):
    job_outcomes(monkeypatch, lambda name: (0, not name.endswith("-flaky")))
    run = aws.run(manifest_for(CATCH_FLOW))
    assert (run.status, run.error) == ("FAILED", "States.TaskFailed")
    # 1 attempt + 1 @retry + 3 fallback attempts (Metaflow's @catch), then no more.
    assert dict(run.jobs["flaky"]) == {"FAILED": 5}
    assert [r for s, _, r, _ in run.submissions if s == "flaky"] == [0, 1, 2, 3, 4]
    # No Catch moves past the step: `end` never starts to refuse its missing input.
    assert "end" not in run.jobs
    failed = run.events("ExecutionFailed")[0]["executionFailedEventDetails"]
    assert json.loads(failed["cause"])["JobName"] == "CatchFlow-flaky"


TIMEOUT_FLOW = flow_source(flow_class(
    decorate(START_END, "start", "@timeout(seconds=1)\n@retry(times=1, minutes_between_retries=0)"), "SlowFlow"))


def test_timeout_counts_the_tasks_time_not_the_queue_or_the_containers_start(aws, monkeypatch):
    # The job takes 3 s from submission (queued, starting, running) under @timeout(seconds=1):
    # the state does not time it, the task and Batch do (their clocks start with it).
    job_outcomes(monkeypatch, lambda name: (3, True))
    run = aws.run(manifest_for(TIMEOUT_FLOW))
    assert (run.status, run.error) == ("SUCCEEDED", None)
    assert [(s, r) for s, _, r, _ in run.submissions] == [("start", 0), ("end", 0)]
    assert run.events("TaskTimedOut") == []


def test_a_job_batch_stops_at_its_attempt_timeout_is_retried(aws, monkeypatch):
    # Batch ends an overstaying attempt as FAILED; @retry retries it like any failed job.
    job_outcomes(monkeypatch, lambda name: (0, not name.endswith("start")))
    run = aws.run(manifest_for(TIMEOUT_FLOW))
    assert (run.status, run.error) == ("FAILED", "States.TaskFailed")
    assert [(s, r) for s, _, r, _ in run.submissions] == [("start", 0), ("start", 1)]
    assert "end" not in run.jobs
