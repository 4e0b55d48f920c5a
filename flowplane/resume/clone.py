"""Cloning an origin task into the resumed run: records written, artifacts referenced.

`Cloner.prepare` reads, before the first task starts, every successful origin
task the plan may clone and their artifact indices, and brings their blobs into
the resumed run's datastore (blobs.py). The local scheduler then asks `clone`
for each task whose place and inputs allow it: three small records are written
(task, attempt, artifact index) and no process runs. A cloned task keeps its
origin's attempt number and times, names its origin (`TaskRecord.origin`), and
carries the resumed run's graph as `_graph_info`, so the tasks that run anew
after it see the current graph.
"""

from __future__ import annotations

import json
from typing import Optional

from ..datastore import artifacts, layout, records
from ..datastore.artifacts import ArtifactRef, ArtifactStore
from ..datastore.storage import Storage
from ..manifest import GraphSpec
from ..task.graph import GRAPH_INFO, TaskRef
from .blobs import copy_blobs
from .origin import OriginRun, read_indices
from .plan import ResumePlan


class Cloner:
    def __init__(self, storage: Storage, graph: GraphSpec, origin: OriginRun, plan: ResumePlan):
        self.storage = storage
        self.graph = graph
        self.origin = origin
        self.plan = plan
        self.flow = graph.flow_name
        self.indices: dict[TaskRef, dict[str, ArtifactRef]] = {}
        self.copied = 0  # blobs that had to be copied (the rest were referenced)
        self._graph_ref: Optional[ArtifactRef] = None

    def prepare(self) -> None:
        refs = sorted(r for r in self.origin.succeeded if r.step in self.plan.cloneable)
        self.indices = read_indices(self.origin, refs)
        shas = {ref.sha for index in self.indices.values() for name, ref in index.items() if name != GRAPH_INFO}
        self.copied = copy_blobs(self.storage, self.flow, shas, self.origin.provider)
        # The resumed run's own graph, stored once: its clones carry it instead of the origin's.
        self._graph_ref = ArtifactStore(self.storage, self.flow).save(self.graph.model_dump(mode="json"))

    def can_clone(self, ref: TaskRef) -> bool:
        if ref.step not in self.plan.cloneable or ref not in self.indices:
            return False
        node = self.graph[ref.step]
        # A split's width comes from its items' artifact (a private one is not stored): else it runs again.
        return node.type != "foreach" or node.foreach_param in self.indices[ref]

    def origin_of(self, ref: TaskRef) -> str:
        return self.origin.pathspec(ref)

    def clone(self, run_id: str, ref: TaskRef) -> int:
        """Write the clone of `ref` into `run_id`; the attempt number it is recorded under."""
        source = self.origin.succeeded[ref]
        attempt = source.final_attempt
        assert attempt is not None and self._graph_ref is not None, "prepare() first"
        index = {**self.indices[ref], GRAPH_INFO: self._graph_ref}
        step, task_id = ref.step, ref.task_id
        artifacts.write_index(self.storage, self.flow, run_id, step, task_id, attempt, index)
        node = self.graph[step]
        if node.type == "foreach":
            # As the split task itself writes it: its children and its join read it.
            items = ArtifactStore(self.storage, self.flow).load(index[node.foreach_param].sha)
            key = layout.attempt_key(self.flow, run_id, step, task_id, attempt, layout.FOREACH_RECORD)
            self.storage.put_bytes(key, json.dumps({"num_splits": len(items)}).encode())
        records.write_attempt(
            self.storage, self.flow, run_id, step, task_id,
            records.AttemptRecord(attempt=attempt, status="succeeded", started_at=source.created_at,
                                  finished_at=source.finished_at, exit_code=0),
        )
        records.write_task(
            self.storage,
            records.TaskRecord(
                flow=self.flow, run_id=run_id, step=step, task_id=task_id, status="succeeded",
                attempts=attempt + 1, final_attempt=attempt, foreach_indices=list(source.foreach_indices),
                created_at=source.created_at, finished_at=source.finished_at, origin=self.origin_of(ref),
            ),
        )
        return attempt
