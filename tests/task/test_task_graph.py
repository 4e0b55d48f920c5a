"""Which tasks feed a task and which it makes ready, derived from the graph and task ids."""

from __future__ import annotations

import pytest

from flowplane.graph import read_source_flow
from flowplane.task.graph import (
    Parent,
    TaskIdError,
    TaskRef,
    check_task_id,
    children_of,
    foreach_splits,
    parents_of,
)
from tests.support.flow_sources import FOREACH, FOREACH_IN_BRANCH, NESTED_FOREACH, flow_class, flow_source


def graph(steps: str):
    return read_source_flow(flow_source(flow_class(steps))).graph


def splits(counts: dict[TaskRef, int]):
    return lambda ref: counts[ref]


def test_nested_foreach_parents_and_children():
    g = graph(NESTED_FOREACH)
    n = splits({TaskRef("start", "1"): 2, TaskRef("middle", "1.0"): 3, TaskRef("middle", "1.1"): 3})
    assert children_of(g, "start", "1", n) == [TaskRef("middle", "1.0"), TaskRef("middle", "1.1")]
    assert children_of(g, "middle", "1.1", n) == [TaskRef("leaf", f"1.1.{k}") for k in range(3)]
    assert children_of(g, "leaf", "1.1.2", n) == [TaskRef("inner_join", "1.1")]
    assert children_of(g, "inner_join", "1.0", n) == [TaskRef("outer_join", "1")]
    assert parents_of(g, "leaf", "1.1.2", n) == [Parent(TaskRef("middle", "1.1"))]
    assert parents_of(g, "inner_join", "1.1", n) == [Parent(TaskRef("leaf", f"1.1.{k}"), k) for k in range(3)]
    assert parents_of(g, "outer_join", "1", n) == [Parent(TaskRef("inner_join", f"1.{k}"), k) for k in range(2)]
    assert parents_of(g, "end", "1", n) == [Parent(TaskRef("outer_join", "1"))]
    assert parents_of(g, "start", "1", n) == []
    assert foreach_splits(g, "leaf", "1.1.2") == [TaskRef("start", "1"), TaskRef("middle", "1.1")]
    assert foreach_splits(g, "inner_join", "1.1") == [TaskRef("start", "1")]
    assert foreach_splits(g, "end", "1") == []


def test_a_step_after_a_step_inside_a_foreach():
    g = graph(FOREACH)
    n = splits({TaskRef("start", "1"): 3})
    assert parents_of(g, "body2", "1.2", n) == [Parent(TaskRef("body", "1.2"))]
    assert children_of(g, "body", "1.2", n) == [TaskRef("body2", "1.2")]
    assert children_of(g, "body2", "1.2", n) == [TaskRef("join", "1")]
    assert parents_of(g, "join", "1", n) == [Parent(TaskRef("body2", f"1.{k}"), k) for k in range(3)]


def test_foreach_inside_a_branch():
    g = graph(FOREACH_IN_BRANCH)
    n = splits({TaskRef("fan", "1"): 3})
    assert children_of(g, "start", "1", n) == [TaskRef("fan", "1"), TaskRef("plain", "1")]
    assert children_of(g, "fan", "1", n) == [TaskRef("each", f"1.{k}") for k in range(3)]
    assert parents_of(g, "each", "1.2", n) == [Parent(TaskRef("fan", "1"))]
    assert children_of(g, "each", "1.2", n) == [TaskRef("fan_join", "1")]
    assert parents_of(g, "fan_join", "1", n) == [Parent(TaskRef("each", f"1.{k}"), k) for k in range(3)]
    assert children_of(g, "plain", "1", n) == [TaskRef("join", "1")]
    assert parents_of(g, "join", "1", n) == [Parent(TaskRef("fan_join", "1")), Parent(TaskRef("plain", "1"))]


@pytest.mark.parametrize(
    "step,task_id,message",
    [
        ("nope", "1", "the flow has no step 'nope'"),
        ("leaf", "1.0", "task id '1.0' does not fit step 'leaf': it runs inside 2 foreach(es)"),
        ("start", "1.0", "does not fit step 'start': it runs inside 0 foreach(es)"),
        ("middle", "2", "not a flowplane task id: '2'"),
        ("middle", "1.x", "not a flowplane task id: '1.x'"),
    ],
)
def test_task_ids_that_do_not_fit_the_step_are_refused(step, task_id, message):
    with pytest.raises(TaskIdError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_task_id(graph(NESTED_FOREACH), step, task_id)


def test_task_ids_that_fit():
    g = graph(NESTED_FOREACH)
    assert check_task_id(g, "leaf", "1.1.2") == [1, 2]
    assert check_task_id(g, "inner_join", "1.0") == [0]
    assert check_task_id(g, "end", "1") == []
