"""The local runtime, driven in-process (tasks are still forked, one process each)."""

from __future__ import annotations

import re
import time

import pytest

from flowplane.decorators import parse_with_option
from flowplane.runtime import SubprocessLauncher
from tests.support.local_runs import USER, RunView, max_overlap, run, write_flow


def intervals(r: RunView, step: str) -> list[tuple[str, str]]:
    out = []
    for tid in r.task_ids(step):
        for a in r.attempts(step, tid):
            out.append((a.started_at, a.finished_at))
    return out


SLOW_FOREACH = """
import os, time
from flowplane import FlowSpec, Parameter, step

class SlowEach(FlowSpec):
    workers = Parameter("workers", default=3)

    @step
    def start(self):
        self.items = list(range(7))
        os.makedirs("running"); os.makedirs("done")
        self.next(self.work, foreach="items")

    @step
    def work(self):
        # A pid log, and a barrier: wait until as many tasks run as the runtime allows
        # (or all the others are done), so the bound is reached whatever the load.
        mine = os.path.join("running", str(os.getpid()))
        open(mine, "w").close()
        seen = 0
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            running, done = len(os.listdir("running")), len(os.listdir("done"))
            seen = max(seen, running)
            if running >= self.workers or running + done == len(self.items):
                break
            time.sleep(0.01)
        time.sleep(0.05)
        seen = max(seen, len(os.listdir("running")))
        os.rename(mine, os.path.join("done", str(os.getpid())))
        self.seen = seen
        self.value = self.input * 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.value for i in inputs)
        self.most = max(i.seen for i in inputs)
        self.next(self.end)

    @step
    def end(self):
        pass
"""


@pytest.mark.parametrize("workers", [3, 1])
def test_max_workers_bounds_how_many_tasks_run_at_once(root, tmp_path, workers):
    res = run(write_flow(tmp_path, f"slow_each_{workers}", SLOW_FOREACH), root, params={"workers": workers},
              max_workers=workers)
    assert res.code == 0, res.out + res.err
    assert res.run.data("join")["total"] == 42
    assert len(res.run.task_ids("work")) == 7
    # The tasks' own pid log: the bound is reached and never passed.
    assert res.run.data("join")["most"] == workers
    # And the attempts' recorded start and finish times never overlap more.
    assert max_overlap(intervals(res.run, "work")) <= workers


PARAMS = """
from flowplane import FlowSpec, Parameter, current, step

class ParamsFlow(FlowSpec):
    alpha = Parameter("alpha", default=0.01)

    @step
    def start(self):
        print("alpha is %f" % self.alpha)
        self.who = dict(user=current.username, ns=current.namespace, run=current.run_id,
                        prod=current.is_production, tags=current.tags, path=current.pathspec)
        self.next(self.end)

    @step
    def end(self):
        import sys
        print("done, to stderr", file=sys.stderr)
"""


def test_run_record_progress_lines_and_current(root, tmp_path):
    res = run(write_flow(tmp_path, "params_flow", PARAMS), root, params={"alpha": 0.01}, tags=["nightly"])
    assert res.code == 0, res.out + res.err
    r = res.run
    rec = r.record
    assert rec.status == "succeeded" and rec.finished_at and rec.parameters == {"alpha": 0.01}
    assert rec.system_tags == [f"user:{USER}", "runtime:local"] and rec.tags == ["nightly"] and rec.user == USER
    assert r.data("end")["alpha"] == 0.01
    assert r.log("start") == "alpha is 0.010000\n"
    assert r.data("start")["who"] == dict(
        user=USER, ns=f"user:{USER}", run=r.run_id, prod=False, tags=[f"user:{USER}", "runtime:local", "nightly"],
        path=f"ParamsFlow/{r.run_id}/start/1",
    )
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}"
    assert re.search(rf"^{stamp} Workflow starting \(run-id {r.run_id}\):$", res.out, re.M)
    assert re.search(rf"^{stamp} \[{r.run_id}/start/1 \(pid \d+\)\] Task is starting\.$", res.out, re.M)
    assert re.search(rf"^{stamp} \[{r.run_id}/start/1 \(pid \d+\)\] alpha is 0\.010000$", res.out, re.M)
    assert re.search(rf"^{stamp} \[{r.run_id}/end/1 \(pid \d+\)\] done, to stderr$", res.err, re.M)
    assert res.out.rstrip().endswith("Done!")


SHAPES = """
from flowplane import FlowSpec, step

class ShapesFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        self.y = 0
        self.outer = ["a", "b"]
        self.next(self.left, self.right)

    @step
    def left(self):
        self.y = 1
        self.next(self.each, foreach="outer")

    @step
    def each(self):
        self.letter = self.input
        self.inner = [1, 2, 3]
        self.next(self.deep, foreach="inner")

    @step
    def deep(self):
        self.v = self.letter * self.input
        self.where = (self.index, [f[:2] for f in self.foreach_stack()])
        self.next(self.join_deep)

    @step
    def join_deep(self, inputs):
        self.vs = [i.v for i in inputs]
        self.merge_artifacts(inputs, include=["letter"])
        self.next(self.join_each)

    @step
    def join_each(self, inputs):
        self.words = {i.letter: i.vs for i in inputs}
        self.y = 1
        self.next(self.join)

    @step
    def right(self):
        self.y = 2
        self.next(self.join)

    @step
    def join(self, inputs):
        self.from_right = inputs.right.y
        self.words = inputs.join_each.words
        self.merge_artifacts(inputs, exclude=["y", "words"])
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_nested_foreach_inside_a_branch_with_merge_and_named_inputs(root, tmp_path):
    res = run(write_flow(tmp_path, "shapes_flow", SHAPES), root)
    assert res.code == 0, res.out + res.err
    r = res.run
    assert r.task_ids("deep") == [f"1.{i}.{j}" for i in range(2) for j in range(3)]
    assert r.data("deep", "1.1.2")["where"] == (2, [(1, 2), (2, 3)])
    end = r.data("end")
    assert end["words"] == {"a": ["a", "aa", "aaa"], "b": ["b", "bb", "bbb"]}
    assert end["from_right"] == 2 and end["x"] == 1 and "y" not in end
    assert r.foreach("left") == {"num_splits": 2} and r.foreach("each", "1.1") == {"num_splits": 3}
    assert "Foreach yields 2 child steps." in res.out


def test_merge_conflicts_fail_the_run_with_metaflows_message(root, tmp_path):
    src = SHAPES.replace('exclude=["y", "words"]', 'exclude=["words"]')
    res = run(write_flow(tmp_path, "conflict_flow", src), root)
    assert res.code == 1
    message = (
        "Step *join* cannot merge the following artifacts due to them having conflicting values:\n[y].\n"
        "To remedy this issue, be sure to explicitly set those artifacts (using self.<artifact_name> = ...) "
        "prior to calling merge_artifacts."
    )
    assert res.run.task("join").error.message == message
    assert f"Task ShapesFlow/{res.run.run_id}/join/1 failed: flowplane.flowspec.UnhandledInMergeArtifactsException: Step *join*" in res.out
    assert res.run.record.failed_task == f"ShapesFlow/{res.run.run_id}/join/1"


FLAKY = """
from flowplane import FlowSpec, current, retry, step

class FlakyFlow(FlowSpec):
    @retry(times=2, minutes_between_retries=0)
    @step
    def start(self):
        if current.retry_count < 2:
            raise RuntimeError("flaky on attempt %d" % current.retry_count)
        self.attempt = current.retry_count
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_retry_records_every_attempt_until_one_succeeds(root, tmp_path):
    res = run(write_flow(tmp_path, "flaky_flow", FLAKY), root)
    assert res.code == 0, res.out + res.err
    r = res.run
    attempts = r.attempts("start")
    assert [a.status for a in attempts] == ["failed", "failed", "succeeded"]
    assert attempts[0].error.message == "flaky on attempt 0" and attempts[1].error.message == "flaky on attempt 1"
    assert r.task("start").final_attempt == 2 and r.task("start").attempts == 3
    assert r.data("start")["attempt"] == 2
    assert "Task failed; retrying (attempt 2 of 3)." in res.out
    assert "Task is starting (retry 2)." in res.out


def test_local_retry_starts_at_once_whatever_minutes_between_retries(root, tmp_path):
    # Metaflow retries a local task at once; minutes_between_retries (2 by default) is
    # waited only on remote compute. The state machine keeps the wait (test_compiler).
    src = FLAKY.replace("@retry(times=2, minutes_between_retries=0)", "@retry(times=2, minutes_between_retries=5)")
    began = time.monotonic()
    res = run(write_flow(tmp_path, "flaky_slow_retry", src), root)
    assert res.code == 0, res.out + res.err
    assert time.monotonic() - began < 60  # three attempts, no five-minute waits
    assert [a.status for a in res.run.attempts("start")] == ["failed", "failed", "succeeded"]
    assert "Task failed; retrying (attempt 2 of 3)." in res.out


def test_with_retry_attaches_retry_to_steps_without_one(root, tmp_path):
    src = FLAKY.replace("    @retry(times=2, minutes_between_retries=0)\n", "").replace("< 2", "< 1")
    res = run(write_flow(tmp_path, "flaky_with", src), root, with_=("retry:times=1,minutes_between_retries=0",))
    assert res.code == 0, res.out + res.err
    assert [a.status for a in res.run.attempts("start")] == ["failed", "succeeded"]
    res2 = run(write_flow(tmp_path / "again", "flaky_without", src), tmp_path / "ds2")
    assert res2.code == 1 and len(res2.run.attempts("start")) == 1


def test_retries_exhausted_fail_the_run_naming_the_task(root, tmp_path):
    src = FLAKY.replace("times=2", "times=1")
    res = run(write_flow(tmp_path, "flaky_out", src), root)
    assert res.code == 1
    r = res.run
    assert [a.status for a in r.attempts("start")] == ["failed", "failed"]
    task = r.task("start")
    assert task.status == "failed" and task.final_attempt == 1
    assert r.record.status == "failed" and r.record.error.message == "flaky on attempt 1"
    assert f"Task FlakyFlow/{r.run_id}/start/1 failed: RuntimeError: flaky on attempt 1" in res.out
    assert "Workflow failed." in res.out
    assert r.task_ids("end") == []  # nothing after the failure started


CATCH = """
from flowplane import FlowSpec, catch, step

class CatchFlow(FlowSpec):
    @catch(var="problem")
    @step
    def start(self):
        self.partial = 1
        1 / 0
        self.next(self.end)

    @step
    def end(self):
        self.seen = (self.problem.type, self.problem.message, self.partial)
"""


def test_catch_stores_the_exception_and_the_flow_goes_on(root, tmp_path):
    res = run(write_flow(tmp_path, "catch_flow", CATCH), root)
    assert res.code == 0, res.out + res.err
    assert res.run.data("end")["seen"] == ("ZeroDivisionError", "division by zero", 1)
    assert "@catch caught an exception from CatchFlow/" in res.err


HARD_KILLED_CATCH = """
import os, signal
from flowplane import FlowSpec, catch, retry, step

class KilledFlow(FlowSpec):
    @retry(times=1, minutes_between_retries=0)
    @catch(var="problem")
    @step
    def start(self):
        os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would: no exception to catch
        self.next(self.end)

    @step
    def end(self):
        self.seen = (self.problem.type, self.problem.message)
"""


def test_a_catch_step_killed_outright_ends_through_its_fallback_attempt(root, tmp_path):
    res = run(write_flow(tmp_path, "killed_flow", HARD_KILLED_CATCH), root)
    assert res.code == 0, res.out + res.err
    attempts = res.run.attempts("start")
    # @retry's two attempts of user code die; the first fallback attempt runs no user code.
    assert [a.status for a in attempts] == ["failed", "failed", "succeeded"]
    assert all(a.error.message == "the task process was killed by SIGKILL" for a in attempts[:2])
    kind, message = res.run.data("end")["seen"]
    assert kind == "flowplane.task_errors.FailureHandledByCatch"
    assert "attempt 0 failed: TaskKilled: the task process was killed by SIGKILL" in message
    assert "attempt 1 failed: TaskKilled" in message
    assert "Task failed; retrying (attempt 2 of 2)." in res.out
    assert "Task failed; @catch's fallback attempt 2 records how it died." in res.out
    assert res.run.task("start").final_attempt == 2


def test_a_step_without_catch_killed_outright_fails_the_run(root, tmp_path):
    src = HARD_KILLED_CATCH.replace('    @catch(var="problem")\n', "")
    res = run(write_flow(tmp_path, "killed_plain", src), root)
    assert res.code == 1
    assert [a.status for a in res.run.attempts("start")] == ["failed", "failed"]
    assert res.run.task("start").error.message == "the task process was killed by SIGKILL"


TIMEOUT = """
import signal, time
from flowplane import FlowSpec, retry, step, timeout

class SlowFlow(FlowSpec):
    @retry(times=1, minutes_between_retries=0)
    @timeout(seconds=1)
    @step
    def start(self):
        time.sleep(30)
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_timeout_fails_each_attempt_and_retry_applies(root, tmp_path):
    t0 = time.monotonic()
    res = run(write_flow(tmp_path, "slow_flow", TIMEOUT), root)
    assert res.code == 1
    assert time.monotonic() - t0 < 10
    attempts = res.run.attempts("start")
    assert [a.status for a in attempts] == ["failed", "failed"]
    assert all(a.error.message == "step 'start' timed out after 1 s" for a in attempts)


@pytest.mark.slow
def test_a_task_that_blocks_the_timeout_signal_is_killed_by_the_runtime(root, tmp_path):
    src = TIMEOUT.replace("        time.sleep(30)", "        signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])\n        time.sleep(30)")
    src = src.replace("times=1", "times=0")
    t0 = time.monotonic()
    res = run(write_flow(tmp_path, "stuck_flow", src), root)
    assert res.code == 1
    assert time.monotonic() - t0 < 10
    attempt = res.run.attempts("start")[0]
    assert attempt.status == "failed" and attempt.error.type == "TaskTimeout"
    assert attempt.error.message == "step 'start' timed out after 1 s (killed)"
    assert "Task timed out after 1 s; killing it." in res.err


FAILING_FOREACH = """
import time
from flowplane import FlowSpec, step

class BoomFlow(FlowSpec):
    @step
    def start(self):
        self.items = [0, 1, 2]
        self.next(self.work, foreach="items")

    @step
    def work(self):
        if self.input == 0:
            raise ValueError("item zero is bad")
        time.sleep(30)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_a_failed_task_stops_the_run_and_the_tasks_still_running(root, tmp_path):
    t0 = time.monotonic()
    res = run(write_flow(tmp_path, "boom_flow", FAILING_FOREACH), root)
    assert res.code == 1
    assert time.monotonic() - t0 < 10, "running tasks were not stopped"
    r = res.run
    assert r.record.failed_task == f"BoomFlow/{r.run_id}/work/1.0"
    assert f"Task BoomFlow/{r.run_id}/work/1.0 failed: ValueError: item zero is bad" in res.out
    for tid in ("1.1", "1.2"):
        task = r.task("work", tid)
        assert task.status == "failed"
        assert task.error.message == f"stopped because BoomFlow/{r.run_id}/work/1.0 failed"
    assert r.task_ids("join") == []


def test_subprocess_launcher_gives_the_same_run(root, tmp_path, monkeypatch):
    res = run(write_flow(tmp_path, "params_sub", PARAMS), root, params={"alpha": 0.5}, launcher=SubprocessLauncher())
    assert res.code == 0, res.out + res.err
    assert res.run.data("end")["alpha"] == 0.5
    assert res.run.log("start") == "alpha is 0.500000\n"


LOUD = """
import sys
from flowplane import FlowSpec, step

class LoudFlow(FlowSpec):
    @step
    def start(self):
        for i in range(20000):
            print("line %05d %s" % (i, "x" * 40))
        sys.stdout.write("no newline at the end")
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_large_output_is_shown_and_logged_in_full(root, tmp_path):
    res = run(write_flow(tmp_path, "loud_flow", LOUD), root)
    assert res.code == 0, res.err
    shown = [line.split("] ", 1)[1] for line in res.out.splitlines() if "/start/1 (pid" in line]
    assert shown[1:20001] == ["line %05d %s" % (i, "x" * 40) for i in range(20000)]
    assert shown[20001] == "no newline at the end"
    log = res.run.log("start")
    assert log.count("\n") == 20000 and log.endswith("no newline at the end")


def test_a_task_that_cannot_be_started_fails_the_run_cleanly(root, tmp_path):
    from flowplane.runtime import ForkLauncher

    class NoMoreProcesses(ForkLauncher):
        calls = 0

        def launch(self, argv, close_in_child):
            NoMoreProcesses.calls += 1
            if NoMoreProcesses.calls > 1:
                raise BlockingIOError(11, "Resource temporarily unavailable")
            return super().launch(argv, close_in_child)

    res = run(write_flow(tmp_path, "no_fork", PARAMS), root, params={"alpha": 0.1}, launcher=NoMoreProcesses())
    assert res.code == 1
    r = res.run
    assert r.task("end").status == "failed"
    assert r.record.status == "failed" and r.record.failed_task == f"ParamsFlow/{r.run_id}/end/1"
    assert "the task could not be started: [Errno 11] Resource temporarily unavailable" in res.out


def test_a_runtime_failure_is_recorded_on_the_run(root, tmp_path, monkeypatch):
    from flowplane.runtime import local

    def broken(self, ref, attempt):
        raise RuntimeError("datastore vanished")

    monkeypatch.setattr(local.LocalRun, "_succeeded", broken)
    res = run(write_flow(tmp_path, "broken_rt", PARAMS), root, params={"alpha": 0.1})
    assert res.code == 1
    assert res.run.record.status == "failed"
    assert res.run.record.error.message == "the runtime failed: RuntimeError: datastore vanished"


@pytest.mark.parametrize(
    "text", ["retry", "retry:times=2,minutes_between_retries=0", "catch:var=oops,print_exception=false",
             "timeout:minutes=2", "resources:cpu=0.5,memory=1024,gpu=1"],
)
def test_with_decorators_reach_the_task_unchanged(text):
    from flowplane.runtime.local import with_option_text

    spec = parse_with_option(text)
    assert parse_with_option(with_option_text(spec)) == spec
