"""Which tasks feed a task, and which tasks a finished task makes possible.

Both the task (to find its inputs) and the local scheduler (to know when a
task is ready) derive this from the graph and the task id alone, so they can
never disagree; Step Functions derives the same shape from the compiled
state machine. Task ids carry the foreach indices (`layout.task_id_for`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from ..datastore import layout
from ..manifest import GraphSpec, StepSpec


class TaskIdError(ValueError):
    """A task id that cannot belong to the step it is given for."""


@dataclass(frozen=True, order=True)
class TaskRef:
    step: str
    task_id: str

    @property
    def indices(self) -> list[int]:
        return layout.indices_of(self.task_id)

    def __str__(self) -> str:
        return f"{self.step}/{self.task_id}"


@dataclass(frozen=True)
class Parent:
    ref: TaskRef
    # The position of this input in a foreach join (`inputs[i].index`); None otherwise.
    index: Optional[int] = None


# The internal artifact holding the run's graph (GraphSpec as JSON), as Metaflow's `_graph_info`.
GRAPH_INFO = "_graph_info"

# The number of items a foreach task fanned out to; raises if it is not known yet.
NumSplits = Callable[[TaskRef], int]


def closes_foreach(graph: GraphSpec, node: StepSpec) -> bool:
    """A join whose split (its last split parent) is a foreach."""
    return node.type == "join" and bool(node.split_parents) and graph[node.split_parents[-1]].type == "foreach"


def enclosing_foreaches(graph: GraphSpec, node: StepSpec) -> list[str]:
    """The foreach steps whose fan-out this step's tasks belong to, outermost first."""
    parents = list(node.split_parents)
    if node.type == "join" and parents:
        parents = parents[:-1]  # the split a join closes no longer encloses it
    return [p for p in parents if graph[p].type == "foreach"]


def check_task_id(graph: GraphSpec, step: str, task_id: str) -> list[int]:
    """The task's foreach indices, after checking the id fits the step."""
    if step not in graph:
        raise TaskIdError(f"the flow has no step {step!r} (steps: {', '.join(graph.steps)})")
    try:
        indices = layout.indices_of(task_id)
    except ValueError as e:
        raise TaskIdError(str(e)) from None
    depth = len(enclosing_foreaches(graph, graph[step]))
    if len(indices) != depth:
        raise TaskIdError(
            f"task id {task_id!r} does not fit step {step!r}: it runs inside {depth} foreach(es), "
            f"so its id has {depth} index(es) after the leading 1 (e.g. {layout.task_id_for([0] * depth)!r})"
        )
    return indices


def parents_of(graph: GraphSpec, step: str, task_id: str, num_splits: NumSplits) -> list[Parent]:
    """The tasks whose artifacts this task reads, in the order `inputs` lists them."""
    node = graph[step]
    indices = layout.indices_of(task_id)
    if not node.in_funcs:
        return []
    if node.type == "join":
        if closes_foreach(graph, node):
            split = TaskRef(node.split_parents[-1], task_id)
            body_end = node.in_funcs[0]
            n = num_splits(split)
            return [Parent(TaskRef(body_end, layout.task_id_for([*indices, i])), i) for i in range(n)]
        return [Parent(TaskRef(p, task_id)) for p in node.in_funcs]
    parent = graph[node.in_funcs[0]]
    if parent.type == "foreach":
        return [Parent(TaskRef(parent.name, layout.task_id_for(indices[:-1])))]
    return [Parent(TaskRef(parent.name, task_id))]


def children_of(graph: GraphSpec, step: str, task_id: str, num_splits: NumSplits) -> list[TaskRef]:
    """The tasks that take this task as one of their inputs (a join is listed once per parent)."""
    node = graph[step]
    indices = layout.indices_of(task_id)
    out: list[TaskRef] = []
    if node.type == "foreach":
        child = node.out_funcs[0]
        n = num_splits(TaskRef(step, task_id))
        return [TaskRef(child, layout.task_id_for([*indices, i])) for i in range(n)]
    for name in node.out_funcs:
        child = graph[name]
        if closes_foreach(graph, child):
            out.append(TaskRef(name, layout.task_id_for(indices[:-1])))
        else:
            out.append(TaskRef(name, task_id))
    return out


def foreach_splits(graph: GraphSpec, step: str, task_id: str) -> list[TaskRef]:
    """The foreach tasks that fanned out to this task, outermost first."""
    node = graph[step]
    indices = layout.indices_of(task_id)
    return [
        TaskRef(name, layout.task_id_for(indices[:depth]))
        for depth, name in enumerate(enclosing_foreaches(graph, node))
    ]
