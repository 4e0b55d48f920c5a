"""Task.parent_tasks / child_tasks, Task.loglines, and the logs of a task killed by a segfault."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tests.support.local_runs import USER, run, write_flow
from tests.support.run_layouts import isolate_client

NESTED = """
from flowplane import FlowSpec, step

class LineageFlow(FlowSpec):
    @step
    def start(self):
        self.xs = [1, 2]
        self.next(self.outer, foreach="xs")

    @step
    def outer(self):
        self.ys = ["a", "b", "c"]
        self.next(self.inner, foreach="ys")

    @step
    def inner(self):
        print("inner", self.input)
        print("second line")
        self.next(self.inner_join)

    @step
    def inner_join(self, inputs):
        self.next(self.fan)

    @step
    def fan(self):
        self.next(self.left, self.right)

    @step
    def left(self):
        self.next(self.branch_join)

    @step
    def right(self):
        self.next(self.branch_join)

    @step
    def branch_join(self, inputs):
        self.next(self.outer_join)

    @step
    def outer_join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


@pytest.fixture()
def lineage_run(root, tmp_path, monkeypatch):
    res = run(write_flow(tmp_path, "lineage_flow", NESTED), root)
    assert res.code == 0, res.out + res.err
    isolate_client(monkeypatch, str(root), user=USER)
    from flowplane import Flow

    return Flow("LineageFlow").latest_run


def _ids(tasks):
    return [t.pathspec.split("/", 2)[2] for t in tasks]


def test_parent_and_child_tasks_follow_the_runtime_dag(lineage_run):
    r = lineage_run
    start = r["start"].task
    assert _ids(start.parent_tasks) == []
    assert _ids(start.child_tasks) == ["outer/1.0", "outer/1.1"]
    assert _ids(r["outer"]["1.1"].child_tasks) == ["inner/1.1.0", "inner/1.1.1", "inner/1.1.2"]
    assert _ids(r["inner"]["1.1.2"].parent_tasks) == ["outer/1.1"]
    assert _ids(r["inner"]["1.1.2"].child_tasks) == ["inner_join/1.1"]
    assert _ids(r["inner_join"]["1.0"].parent_tasks) == ["inner/1.0.0", "inner/1.0.1", "inner/1.0.2"]
    assert _ids(r["inner_join"]["1.0"].child_tasks) == ["fan/1.0"]
    assert _ids(r["fan"]["1.0"].child_tasks) == ["left/1.0", "right/1.0"]
    assert _ids(r["branch_join"]["1.0"].parent_tasks) == ["left/1.0", "right/1.0"]
    assert _ids(r["outer_join"].task.parent_tasks) == ["branch_join/1.0", "branch_join/1.1"]
    assert _ids(r["outer_join"].task.child_tasks) == ["end/1"]
    assert _ids(r["end"].task.child_tasks) == [] and _ids(r["end"].task.parent_tasks) == ["outer_join/1"]
    # Pathspecs too, and the Tasks are full Client API objects.
    assert list(r["left"]["1.1"].parent_task_pathspecs) == [f"LineageFlow/{r.id}/fan/1.1"]
    assert next(iter(r["end"].task.parent_tasks)).successful


def test_loglines_give_each_line_with_the_time_it_was_written(lineage_run):
    task = lineage_run["inner"]["1.0.1"]
    lines = list(task.loglines("stdout"))
    assert [line for _, line in lines] == ["inner b", "second line"]
    created = task.created_at
    for when, _ in lines:
        assert isinstance(when, datetime) and when.tzinfo == timezone.utc
        assert abs((when - created).total_seconds()) < 120
    assert lines[0][0] <= lines[1][0]
    assert [line for _, line in task.loglines("stdout", as_unicode=False)] == [b"inner b", b"second line"]
    assert list(lineage_run["left"]["1.0"].loglines("stdout")) == []


SEGFAULT = """
import ctypes
from flowplane import FlowSpec, step

class CrashFlow(FlowSpec):
    @step
    def start(self):
        self.next(self.end)

    @step
    def end(self):
        print("Crash and burn!")
        ctypes.string_at(0)
"""


def test_a_segfaulting_task_keeps_what_it_printed_and_says_it_segfaulted(root, tmp_path, monkeypatch):
    # Metaflow's detect_segfault: stdout before the crash is kept, stderr names the segfault.
    res = run(write_flow(tmp_path, "crash_flow", SEGFAULT), root)
    assert res.code == 1
    isolate_client(monkeypatch, str(root), user=USER)
    from flowplane import Flow

    task = Flow("CrashFlow").latest_run["end"].task
    assert "Crash and burn!" in task.stdout
    assert "segmentation fault" in task.stderr.lower()
    assert "the task process was killed by SIGSEGV (segmentation fault)" in task.stderr
    assert "Fatal Python error: Segmentation fault" in task.stderr  # faulthandler's traceback
    assert not task.successful and "SIGSEGV" in str(task.exception)
