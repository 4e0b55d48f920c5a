"""A run's DAG for the run page: one node per step, coloured by its tasks' statuses.

The shape comes from the run's graph (the `_graph_info` artifact its tasks store, as
Task.parent_tasks reads it); the statuses and counts from the task records the run
has. Before any task stored its graph, the steps recorded so far are shown unlinked.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Optional

from ..datastore.records import TaskRecord


@dataclass
class StepNode:
    name: str
    type: str  # the graph's step type (start, linear, split, foreach, join, end), "" if unknown
    tasks: int = 0
    done: int = 0
    running: int = 0  # pending tasks count as running: Batch has them
    failed: int = 0
    first_task: Optional[str] = None  # the task id a click on the node opens
    foreach_width: Optional[int] = None  # for a foreach step: how many tasks it fanned out to
    out: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.failed:
            return "failed"
        if self.running:
            return "running"
        if self.tasks and self.done == self.tasks:
            return "succeeded"
        return "not started"

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "status": self.status, "tasks": self.tasks,
                "done": self.done, "running": self.running, "failed": self.failed,
                "first_task": self.first_task, "foreach_width": self.foreach_width, "out": self.out}


def step_nodes(graph: Optional[Any], tasks_by_step: dict[str, list[TaskRecord]]) -> list[StepNode]:
    """Nodes in the graph's order (breadth-first from start); steps the graph lacks, after."""
    order = [s.name for s in graph.sorted_steps()] if graph is not None else []
    order += sorted(s for s in tasks_by_step if s not in order)
    nodes = []
    for name in order:
        spec = graph.steps.get(name) if graph is not None else None
        recs = tasks_by_step.get(name, [])
        counts = Counter(r.status for r in recs)
        node = StepNode(
            name=name,
            type=spec.type if spec is not None else "",
            tasks=len(recs),
            done=counts["succeeded"],
            running=counts["running"] + counts["pending"],
            failed=counts["failed"],
            first_task=_first(recs),
            out=[n for n in spec.out_funcs] if spec is not None else [],
        )
        nodes.append(node)
    by_name = {n.name: n for n in nodes}
    for node in nodes:
        if node.type == "foreach" and node.out:
            body = by_name.get(node.out[0])
            node.foreach_width = body.tasks if body is not None else None
    return nodes


def _first(recs: list[TaskRecord]) -> Optional[str]:
    """The failed task if any (what a person opens a step for), else the first in index order."""
    if not recs:
        return None
    failed = [r for r in recs if r.status == "failed"]
    chosen = min(failed or recs, key=lambda r: (r.foreach_indices, r.task_id))
    return chosen.task_id
