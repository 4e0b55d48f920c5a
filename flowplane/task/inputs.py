"""Gathering a task's inputs: the finished tasks it reads, and the FlowSpec built on them.

Which tasks those are follows from the graph and the task's own id (graph.py);
here their records, artifact indices and foreach cardinalities are read, each
once, and the step's FlowSpec is given what it inherits (or, for a join, its
`inputs`) and its place in the enclosing foreaches.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Optional

from ..datastore import layout, records
from ..datastore.artifacts import ArtifactRef, ArtifactStore, TaskArtifacts, read_index
from ..datastore.storage import Storage
from ..step_inputs import ForeachFrame, Input, Inputs
from ..manifest import GraphSpec
from .errors import TaskSetupError
from .graph import GRAPH_INFO, TaskRef, foreach_splits, parents_of
from .loader import LoadedFlow
from .persist import LoadTracker

if TYPE_CHECKING:  # annotations only: the runtime imports no FlowSpec (flowspec -> cli -> task)
    from ..flowspec import FlowSpec


class TaskInputs:
    """The inputs of one task of a run."""

    def __init__(self, storage: Storage, store: ArtifactStore, graph: GraphSpec, run_id: str, step: str, task_id: str):
        self.storage = storage
        self.store = store
        self.graph = graph
        self.flow_name = graph.flow_name
        self.run_id = run_id
        self.step = step
        self.task_id = task_id
        self._records: dict[TaskRef, records.TaskRecord] = {}
        self._sources: dict[TaskRef, TaskArtifacts] = {}

    def build_flow(
        self, loaded: LoadedFlow, param_values: dict[str, Any], indices: list[int], tracker: LoadTracker
    ) -> tuple[FlowSpec, Optional[Inputs]]:
        """The step's FlowSpec, and a join's `inputs`; what is loaded from them is reported to `tracker`."""
        flow = loaded.flow_cls(use_cli=False)
        d = flow.__dict__
        d["_flowplane_params"] = dict(param_values)
        d["_flowplane_configs"] = loaded.configs
        parents = parents_of(self.graph, self.step, self.task_id, self.num_splits)
        inputs = None
        if self.graph[self.step].type == "join":
            inputs = Inputs([Input(p.ref.step, tracker.wrap(self.artifacts(p.ref)), p.index) for p in parents])
        elif parents:
            d["_flowplane_inherited"] = tracker.wrap(self.artifacts(parents[0].ref))
        splits = foreach_splits(self.graph, self.step, self.task_id)
        # The values (self.input, foreach_stack()) are read through the flow when asked.
        d["_flowplane_foreach_stack"] = [
            ForeachFrame(step=s.step, index=i, num_splits=self.num_splits(s), var=self.graph[s.step].foreach_param)
            for s, i in zip(splits, indices)
        ]
        return flow, inputs

    def graph_info_ref(self) -> ArtifactRef:
        """The run's graph as an internal artifact (Metaflow's `_graph_info`), stored once per run.

        The Client API derives Task.parent_tasks / child_tasks from it, locally and in
        production alike. A task inherits its parent's copy; a join takes its first input's.
        """
        for parent in parents_of(self.graph, self.step, self.task_id, self.num_splits)[:1]:
            ref = self.artifacts(parent.ref).index.get(GRAPH_INFO)
            if ref is not None:
                return ref
        return self.store.save(self.graph.model_dump(mode="json"))

    def task_record(self, ref: TaskRef) -> records.TaskRecord:
        rec = self._records.get(ref)
        if rec is None:
            rec = records.read_task(self.storage, self.flow_name, self.run_id, ref.step, ref.task_id)
            if rec is None:
                raise TaskSetupError(f"the input task {self.flow_name}/{self.run_id}/{ref} has not run")
            if rec.status != "succeeded" or rec.final_attempt is None:
                raise TaskSetupError(
                    f"the input task {self.flow_name}/{self.run_id}/{ref} has not succeeded (status {rec.status})"
                )
            self._records[ref] = rec
        return rec

    def artifacts(self, ref: TaskRef) -> TaskArtifacts:
        source = self._sources.get(ref)
        if source is None:
            attempt = self.task_record(ref).final_attempt
            index = read_index(self.storage, self.flow_name, self.run_id, ref.step, ref.task_id, attempt or 0)
            if index is None:
                raise TaskSetupError(f"the input task {self.flow_name}/{self.run_id}/{ref} stored no artifacts")
            source = self._sources[ref] = TaskArtifacts(self.store, index)
        return source

    def num_splits(self, ref: TaskRef) -> int:
        attempt = self.task_record(ref).final_attempt or 0
        key = layout.attempt_key(self.flow_name, self.run_id, ref.step, ref.task_id, attempt, layout.FOREACH_RECORD)
        try:
            return int(json.loads(self.storage.get_bytes(key))["num_splits"])
        except (KeyError, ValueError, TypeError) as e:
            raise TaskSetupError(f"the foreach task {self.flow_name}/{self.run_id}/{ref} left no cardinality ({e})") from None
