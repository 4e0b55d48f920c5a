"""Which tasks feed a task and which it makes ready, derived from the graph and task ids."""

from __future__ import annotations

import textwrap

import pytest

from flowplane.graph import read_source_flow
from flowplane.task_graph import (
    Parent,
    TaskIdError,
    TaskRef,
    check_task_id,
    children_of,
    foreach_splits,
    parents_of,
)

NESTED = """
from flowplane import FlowSpec, step

class Nested(FlowSpec):
    @step
    def start(self):
        self.outer = [1, 2]
        self.next(self.o, foreach="outer")

    @step
    def o(self):
        self.inner = [1, 2, 3]
        self.next(self.i, foreach="inner")

    @step
    def i(self):
        self.next(self.join_i)

    @step
    def join_i(self, inputs):
        self.next(self.join_o)

    @step
    def join_o(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
"""

BRANCHED = """
from flowplane import FlowSpec, step

class Branched(FlowSpec):
    @step
    def start(self):
        self.next(self.a, self.b)

    @step
    def a(self):
        self.items = [1, 2, 3]
        self.next(self.sq, foreach="items")

    @step
    def sq(self):
        self.next(self.sq2)

    @step
    def sq2(self):
        self.next(self.ja)

    @step
    def ja(self, inputs):
        self.next(self.join)

    @step
    def b(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass
"""


def graph(src: str):
    return read_source_flow(textwrap.dedent(src)).graph


def splits(counts: dict[TaskRef, int]):
    return lambda ref: counts[ref]


def test_nested_foreach_parents_and_children():
    g = graph(NESTED)
    n = splits({TaskRef("start", "1"): 2, TaskRef("o", "1.0"): 3, TaskRef("o", "1.1"): 3})
    assert children_of(g, "start", "1", n) == [TaskRef("o", "1.0"), TaskRef("o", "1.1")]
    assert children_of(g, "o", "1.1", n) == [TaskRef("i", f"1.1.{k}") for k in range(3)]
    assert children_of(g, "i", "1.1.2", n) == [TaskRef("join_i", "1.1")]
    assert children_of(g, "join_i", "1.0", n) == [TaskRef("join_o", "1")]
    assert parents_of(g, "i", "1.1.2", n) == [Parent(TaskRef("o", "1.1"))]
    assert parents_of(g, "join_i", "1.1", n) == [Parent(TaskRef("i", f"1.1.{k}"), k) for k in range(3)]
    assert parents_of(g, "join_o", "1", n) == [Parent(TaskRef("join_i", f"1.{k}"), k) for k in range(2)]
    assert parents_of(g, "end", "1", n) == [Parent(TaskRef("join_o", "1"))]
    assert parents_of(g, "start", "1", n) == []
    assert foreach_splits(g, "i", "1.1.2") == [TaskRef("start", "1"), TaskRef("o", "1.1")]
    assert foreach_splits(g, "join_i", "1.1") == [TaskRef("start", "1")]
    assert foreach_splits(g, "end", "1") == []


def test_foreach_inside_a_branch():
    g = graph(BRANCHED)
    n = splits({TaskRef("a", "1"): 3})
    assert children_of(g, "start", "1", n) == [TaskRef("a", "1"), TaskRef("b", "1")]
    assert children_of(g, "a", "1", n) == [TaskRef("sq", f"1.{k}") for k in range(3)]
    assert parents_of(g, "sq2", "1.2", n) == [Parent(TaskRef("sq", "1.2"))]
    assert children_of(g, "sq2", "1.2", n) == [TaskRef("ja", "1")]
    assert parents_of(g, "ja", "1", n) == [Parent(TaskRef("sq2", f"1.{k}"), k) for k in range(3)]
    assert children_of(g, "b", "1", n) == [TaskRef("join", "1")]
    assert parents_of(g, "join", "1", n) == [Parent(TaskRef("ja", "1")), Parent(TaskRef("b", "1"))]


@pytest.mark.parametrize(
    "step,task_id,message",
    [
        ("nope", "1", "the flow has no step 'nope'"),
        ("i", "1.0", "task id '1.0' does not fit step 'i': it runs inside 2 foreach(es)"),
        ("start", "1.0", "does not fit step 'start': it runs inside 0 foreach(es)"),
        ("o", "2", "not a flowplane task id: '2'"),
        ("o", "1.x", "not a flowplane task id: '1.x'"),
    ],
)
def test_task_ids_that_do_not_fit_the_step_are_refused(step, task_id, message):
    with pytest.raises(TaskIdError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_task_id(graph(NESTED), step, task_id)


def test_task_ids_that_fit():
    g = graph(NESTED)
    assert check_task_id(g, "i", "1.1.2") == [1, 2]
    assert check_task_id(g, "join_i", "1.0") == [0]
    assert check_task_id(g, "end", "1") == []
