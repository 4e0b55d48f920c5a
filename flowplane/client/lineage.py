"""A task's parents and children in a run, for Task.parent_tasks / child_tasks.

As Metaflow's client: from the run's graph (the `_graph_info` artifact every task
carries) and the task's foreach indices, with `flowplane.task.graph`, the same
functions the task and the scheduler use, so the Client API can never disagree
with what ran. The one thing the graph cannot say, how many items a foreach fanned
out to, is counted from the tasks the run recorded in the step after it.
"""

from __future__ import annotations

from typing import Any, Callable

from ..datastore import layout
from ..manifest import GraphSpec
from ..task.graph import TaskRef, children_of, parents_of

# The task ids a run recorded for a step.
ListTaskIds = Callable[[str], list[str]]


def graph_of(graph_info: Any) -> GraphSpec:
    return GraphSpec.model_validate(graph_info)


def _num_splits(graph: GraphSpec, list_task_ids: ListTaskIds) -> Callable[[TaskRef], int]:
    def count(split: TaskRef) -> int:
        body = graph[split.step].out_funcs[0]
        prefix = split.indices
        return sum(1 for t in list_task_ids(body) if layout.indices_of(t)[:-1] == prefix)

    return count


def parent_refs(graph: GraphSpec, step: str, task_id: str, list_task_ids: ListTaskIds) -> list[TaskRef]:
    """The tasks this one read its inputs from, in `inputs` order; none for start."""
    return [p.ref for p in parents_of(graph, step, task_id, _num_splits(graph, list_task_ids))]


def child_refs(graph: GraphSpec, step: str, task_id: str, list_task_ids: ListTaskIds) -> list[TaskRef]:
    """The tasks that read this one's outputs (a join once), those the run recorded; none for end."""
    recorded: dict[str, set[str]] = {}
    out = []
    for ref in children_of(graph, step, task_id, _num_splits(graph, list_task_ids)):
        have = recorded.setdefault(ref.step, set(list_task_ids(ref.step)))
        if ref.task_id in have and ref not in out:
            out.append(ref)
    return out
