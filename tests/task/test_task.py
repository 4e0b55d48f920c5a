"""`flowplane task`, called in-process: one attempt of one task, as the runtime and Batch start it."""

from __future__ import annotations

import os
import pickle

import pytest

from flowplane import current
from flowplane.datastore.artifacts import ArtifactStore
from flowplane.task.command import main as task_main
from flowplane.task.errors import ExceptionWrapper
from tests.support.local_runs import USER, write_flow
from tests.support.tasks import files_under, task, view

PARAMS = """
from flowplane import FlowSpec, Parameter, step

class ParamsFlow(FlowSpec):
    alpha = Parameter("alpha", default=0.01)
    info = Parameter("deployment-info", type=str, default="x")

    @step
    def start(self):
        print("alpha is %f" % self.alpha)
        self.numbers = list(range(10))
        self.label = "fixed"
        self.next(self.end)

    @step
    def end(self):
        print("label is", self.label)

if __name__ == "__main__":
    open("MAIN_FIRED", "w").write("the flow's __main__ block ran")
    ParamsFlow()
"""

FOREACH = """
from flowplane import FlowSpec, current, step

class EachFlow(FlowSpec):
    @step
    def start(self):
        self.items = ["a", "b", "c"]
        self.next(self.each, foreach="items")

    @step
    def each(self):
        self.got = self.input
        self.at = self.index
        self.stack = self.foreach_stack()
        self.who = (current.flow_name, current.run_id, current.step_name, current.task_id,
                    current.pathspec, current.retry_count, current.username, current.namespace,
                    current.is_production)
        self.next(self.join)

    @step
    def join(self, inputs):
        self.got = [(i.index, i.got) for i in inputs]
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_linear_flow_artifacts_logs_records(root, tmp_path, capsys):
    flow = write_flow(tmp_path, "params_flow", PARAMS)
    assert task(flow, root, "start", params='{"alpha": "0.5"}') == 0
    assert "alpha is 0.500000" in capsys.readouterr().out
    assert task(flow, root, "end", params='{"alpha": 0.5}') == 0
    run = view(root, "ParamsFlow")
    start = run.data("start")
    # Parameters are artifacts, converted to their types, under their attribute names (as Metaflow) and their own names.
    assert start["alpha"] == 0.5 and start["info"] == "x" == start["deployment-info"]
    assert start["numbers"] == list(range(10))
    assert run.log("start") == "alpha is 0.500000\n"
    assert run.log("end") == "label is fixed\n"
    assert run.task("end").status == "succeeded" and run.task("end").final_attempt == 0
    attempt = run.attempts("start")[0]
    assert attempt.status == "succeeded" and attempt.finished_at >= attempt.started_at
    # The module was imported under its own name: its __main__ block never ran.
    assert not (tmp_path / "MAIN_FIRED").exists()


def test_inherited_artifacts_are_stored_by_reference(root, tmp_path, monkeypatch):
    flow = write_flow(tmp_path, "params_ref", PARAMS)
    assert task(flow, root, "start") == 0
    saved = []
    original = ArtifactStore.save

    def spy(self, value):
        saved.append(value)
        return original(self, value)

    monkeypatch.setattr(ArtifactStore, "save", spy)
    assert task(flow, root, "end") == 0
    run = view(root, "ParamsFlow")
    assert run.index("end")["numbers"].sha == run.index("start")["numbers"].sha
    # `numbers` was never touched and `label` was read but is immutable: neither is pickled again.
    assert list(range(10)) not in saved and "fixed" not in saved


def test_foreach_input_index_stack_current_and_join_inputs(root, tmp_path):
    flow = write_flow(tmp_path, "each_flow", FOREACH)
    assert task(flow, root, "start") == 0
    for i in range(3):
        assert task(flow, root, "each", f"1.{i}") == 0
    assert task(flow, root, "join") == 0
    run = view(root, "EachFlow")
    assert run.foreach("start") == {"num_splits": 3}
    each = run.data("each", "1.2")
    assert each["got"] == "c" and each["at"] == 2
    assert each["stack"] == [(2, 3, "c")]
    assert each["who"] == ("EachFlow", "100", "each", "1.2", "EachFlow/100/each/1.2", 0, USER, f"user:{USER}", False)
    assert run.data("join")["got"] == [(0, "a"), (1, "b"), (2, "c")]
    assert run.task("each", "1.1").foreach_indices == [1]
    assert current.flow_name is None  # nothing left behind in the test process


def test_join_before_all_parents_finished_fails_naming_the_missing_input(root, tmp_path, capsys):
    flow = write_flow(tmp_path, "each_early", FOREACH)
    assert task(flow, root, "start") == 0
    assert task(flow, root, "each", "1.0") == 0
    capsys.readouterr()
    assert task(flow, root, "join") == 1
    err = capsys.readouterr().err
    assert "Task EachFlow/100/join/1 (attempt 0) failed" in err
    assert "the input task EachFlow/100/each/1.1 has not run" in err


@pytest.mark.parametrize(
    "step,task_id,extra,message",
    [
        ("nope", "1", [], "the flow has no step 'nope'"),
        ("each", "1", [], "task id '1' does not fit step 'each'"),
        ("start", "7", [], "not a flowplane task id: '7'"),
        ("start", "1", ["--with", "retry:tims=2"], "--with retry"),
    ],
)
def test_bad_task_arguments_fail_before_writing_anything(root, tmp_path, capsys, step, task_id, extra, message):
    flow = write_flow(tmp_path, "each_bad", FOREACH)
    assert task(flow, root, step, task_id, 0, "{}", "100", *extra) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"flowplane task 100/{step}/{task_id}: ") and message in err
    assert files_under(root) == []


def test_bad_parameters_fail_before_writing_anything(root, tmp_path, capsys):
    flow = write_flow(tmp_path, "params_bad", PARAMS)
    assert task(flow, root, "start", params='{"alpha": "abc"}') == 1
    assert "parameter 'alpha': 'abc' is not a valid float" in capsys.readouterr().err
    assert task(flow, root, "start", params='{"beta": 1, "gamma": 2}') == 1
    assert "unknown parameter(s) 'beta', 'gamma'" in capsys.readouterr().err
    assert task(flow, root, "start", params="[1]") == 1
    assert "--params-json must be a JSON object" in capsys.readouterr().err
    assert files_under(root) == []


def test_missing_flow_file_and_arguments(root, tmp_path, capsys):
    assert task(tmp_path / "nowhere.py", root, "start") == 1
    assert "cannot read the flow file" in capsys.readouterr().err
    assert task_main(["--step", "start", "--task-id", "1", "--flow-file", "x.py"]) == 1
    assert "missing --run-id" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        task_main(["--run-id", "1", "--flow-file", "a.py", "--package", "s3://b/k"])
    assert e.value.code == 2


TRANSITIONS = """
from flowplane import FlowSpec, step

class HopFlow(FlowSpec):
    @step
    def start(self):
        if self.go_b:
            self.next(self.b)
            return
        self.next(self.a)

    @step
    def a(self):
        self.next(self.end)

    @step
    def b(self):
        self.next(self.end)

    @step
    def end(self):
        pass

    go_b = True
"""


def test_a_transition_the_graph_does_not_have_fails_the_task(root, tmp_path, capsys):
    flow = write_flow(tmp_path, "hop_flow", TRANSITIONS)
    assert task(flow, root, "start") == 1
    err = capsys.readouterr().err
    assert "step 'start' called self.next(self.b) but the graph, read from the source, says self.next(self.a)" in err
    run = view(root, "HopFlow")
    assert run.task("start").status == "failed"
    assert run.attempts("start")[0].error.type == "flowplane.task_errors.TransitionError"


NO_NEXT = """
from flowplane import FlowSpec, step

class QuietFlow(FlowSpec):
    @step
    def start(self):
        self.x = 1
        if self.x:
            return
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def test_a_step_that_never_calls_next_fails(root, tmp_path, capsys):
    flow = write_flow(tmp_path, "quiet_flow", NO_NEXT)
    assert task(flow, root, "start") == 1
    assert "step 'start' finished without calling self.next(); the graph says self.next(self.end)" in capsys.readouterr().err


CATCH = """
from flowplane import FlowSpec, catch, retry, step, timeout

class CatchFlow(FlowSpec):
    @retry(times=1, minutes_between_retries=0)
    @catch(var="err")
    @step
    def start(self):
        self.before = "kept"
        raise ValueError("boom")
        self.next(self.end)

    @catch(print_exception=False)
    @timeout(seconds=1)
    @step
    def end(self):
        import time
        time.sleep(30)
"""


def test_catch_applies_on_the_last_attempt_only(root, tmp_path, capsys):
    flow = write_flow(tmp_path, "catch_flow", CATCH)
    run = view(root, "CatchFlow")
    # Attempt 0 of 2: @retry comes first, the task fails.
    assert task(flow, root, "start", retry=0) == 1
    assert run.task("start").status == "running"  # another attempt will follow
    assert "ValueError: boom" in capsys.readouterr().err
    # The last attempt: the exception is stored in `err` and the task succeeds.
    assert task(flow, root, "start", retry=1) == 0
    err = capsys.readouterr().err
    assert "@catch caught an exception from CatchFlow/100/start/1" in err and "ValueError: boom" in err
    data = run.data("start")
    assert data["before"] == "kept"
    caught = data["err"]
    assert isinstance(caught, ExceptionWrapper)
    assert (caught.type, caught.message, caught.exception) == ("ValueError", "boom", "boom")
    assert 'raise ValueError("boom")' in caught.traceback and "flowplane/task/" not in caught.traceback
    assert pickle.loads(pickle.dumps(caught)).message == "boom"
    assert run.task("start").status == "succeeded" and run.task("start").final_attempt == 1
    attempts = run.attempts("start")
    assert [a.status for a in attempts] == ["failed", "succeeded"]
    assert attempts[1].error.message == "boom"  # what was caught stays visible


def test_timeout_inside_the_task_is_an_exception_catch_sees(root, tmp_path, capsys):
    flow = write_flow(tmp_path, "catch_timeout", CATCH)
    assert task(flow, root, "start", retry=1) == 0
    capsys.readouterr()
    assert task(flow, root, "end") == 0
    run = view(root, "CatchFlow")
    attempt = run.attempts("end")[0]
    assert attempt.error.type == "flowplane.task_errors.TaskTimeout"
    assert attempt.error.message == "step 'end' timed out after 1 s"
    assert "@catch caught" not in capsys.readouterr().err  # print_exception=False


UNPICKLABLE = """
import threading
from flowplane import FlowSpec, Parameter, step

class LockFlow(FlowSpec):
    p = Parameter("p", default=1)

    @step
    def start(self):
        self.lock = threading.Lock()
        self.next(self.end)

    @step
    def end(self):
        self.p = 3
"""


def test_artifacts_that_cannot_be_stored_and_assigned_parameters_fail_clearly(root, tmp_path, capsys):
    flow = write_flow(tmp_path, "lock_flow", UNPICKLABLE)
    assert task(flow, root, "start") == 1
    assert "the artifact 'lock' (lock) cannot be stored" in capsys.readouterr().err
    flow2 = write_flow(tmp_path, "lock_flow2", UNPICKLABLE.replace("threading.Lock()", "1"))
    assert task(flow2, root, "start") == 0
    assert task(flow2, root, "end") == 1
    assert "step 'end' assigned self.p, which is a Parameter; parameters are read-only" in capsys.readouterr().err


def test_user_code_exit_and_stderr_are_recorded(root, tmp_path, capsys):
    flow = write_flow(tmp_path, "exit_flow", """
        import sys
        from flowplane import FlowSpec, step

        class ExitFlow(FlowSpec):
            @step
            def start(self):
                print("to stderr", file=sys.stderr)
                sys.exit(3)
                self.next(self.end)

            @step
            def end(self):
                pass
    """)
    assert task(flow, root, "start") == 1
    run = view(root, "ExitFlow")
    assert run.log("start", stream="stderr").startswith("to stderr\n")
    assert "Task ExitFlow/100/start/1 (attempt 0) failed" in run.log("start", stream="stderr")
    assert run.attempts("start")[0].error.type == "SystemExit"
    assert os.getcwd() == str(tmp_path)


@pytest.mark.parametrize(
    "argv",
    [
        ["--run-id", "5", "--step", "s", "--task-id", "1.2", "--retry-count", "2", "--flow-file", "f.py",
         "--datastore-root", "/d", "--params-json", "{}", "--tag", "a", "--tag", "b", "--with", "retry"],
        ["--package", "s3://b/k", "--run-id", "5", "--step", "s", "--task-id", "1"],
        ["--run-id", "5"],
    ],
)
def test_the_fast_argument_parser_agrees_with_argparse(argv, monkeypatch):
    from flowplane.task.command import _fast_parse, build_parser

    monkeypatch.setenv("FLOWPLANE_STEP", "from-env")
    assert vars(_fast_parse(argv)) == vars(build_parser().parse_args(argv))


@pytest.mark.parametrize(
    "argv", [["--run-id"], ["--bogus", "1"], ["--run-id", "1", "--run-id", "2"], ["--retry-count", "x"],
             ["--flow-file", "a", "--package", "b"], ["--run-id=1"]],
)
def test_unusual_command_lines_go_to_argparse(argv):
    from flowplane.task.command import _fast_parse

    assert _fast_parse(argv) is None


def test_a_flow_file_without_a_main_guard_does_not_start_its_cli_in_a_task(root, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", [str(tmp_path / "unguarded.py"), "run"])
    flow = write_flow(tmp_path, "unguarded", PARAMS.split("if __name__")[0] + "ParamsFlow()\n")
    assert task(flow, root, "start") == 0
    assert "Workflow starting" not in capsys.readouterr().out
    assert view(root, "ParamsFlow").task("start").status == "succeeded"
