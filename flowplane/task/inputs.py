"""Gathering a task's inputs: the finished tasks it reads, and the FlowSpec built on them.

Which tasks those are follows from the graph and the task's own id (graph.py);
here their records, artifact indices and foreach cardinalities are read, each
once, and the step's FlowSpec is given what it inherits (or, for a join, its
`inputs`) and its place in the enclosing foreaches.

A join after a wide foreach has thousands of parents. On Batch each of them put
its final attempt and artifact index into the join-inputs table, which the join
queries a page at a time (flowplane/join_inputs.py: a few requests for 10,000
inputs, not 20,000). Whatever is not there (an index too big for an item, a run
begun before the table, a local run) comes from S3: the records, then the
artifact indices, each read in one `get_many` (concurrent), never one parent
after another, and checked in index order so the first parent at fault is the
one named. Their artifacts are read when the step asks (read_ahead.py).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Optional

from .. import job
from ..datastore import layout, records
from ..datastore.artifacts import ArtifactRef, ArtifactStore, TaskArtifacts, index_from_json, index_key
from ..datastore.storage import Storage
from ..step_inputs import ForeachFrame, Input, Inputs
from ..manifest import GraphSpec
from .errors import TaskSetupError
from .graph import GRAPH_INFO, TaskRef, closes_foreach, foreach_splits, parents_of
from .loader import LoadedFlow
from .persist import LoadTracker
from .read_ahead import ReadAhead

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
        node = self.graph[self.step]
        if node.type == "join":
            body_end = node.in_funcs[0] if closes_foreach(self.graph, node) else None
            sources = self.join_sources([p.ref for p in parents], body_end)
            inputs = Inputs([Input(p.ref.step, tracker.wrap(s), p.index) for p, s in zip(parents, sources)])
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

    def join_sources(self, refs: list[TaskRef], body_end: Optional[str] = None) -> list[TaskArtifacts]:
        """A join's inputs' artifacts, in the order of `refs`.

        `body_end` names the foreach body's last step when the join closes a foreach: its
        inputs are then first looked up in the join-inputs table, if the job has one.
        """
        blobs: dict[str, bytes] = {}
        found = self._queried_indices(body_end, blobs) if body_end is not None else {}
        rest = [r for r in refs if r not in found]
        keys = [layout.task_key(self.flow_name, self.run_id, r.step, r.task_id) for r in rest]
        for ref, data in zip(rest, self.storage.get_many(keys)):
            rec = None if data is None else records.TaskRecord.model_validate_json(data)
            self._records[ref] = self._checked(ref, rec)
        keys = [index_key(self.flow_name, self.run_id, r.step, r.task_id, self._final_attempt(r)) for r in rest]
        for ref, data in zip(rest, self.storage.get_many(keys)):
            found[ref] = self._found_index(ref, data)
        reader = ReadAhead(self.store, [found[r] for r in refs], blobs)
        for position, ref in enumerate(refs):
            self._sources[ref] = reader.source(position)
        return [self._sources[r] for r in refs]

    def _queried_indices(self, body_end: str, blobs: dict[str, bytes]) -> dict[TaskRef, dict[str, ArtifactRef]]:
        """The inputs the tasks ending the foreach body put in the join-inputs table, if there is one;
        the small blobs they carried are added to `blobs`."""
        table = os.environ.get(job.JOIN_INPUTS_TABLE)
        if not table:
            return {}
        from ..join_inputs import join_key, read_inputs
        from .aws import client

        prefix = layout.indices_of(self.task_id)
        found: dict[TaskRef, dict[str, ArtifactRef]] = {}
        for entry in read_inputs(table, join_key(self.flow_name, self.run_id, body_end, self.task_id), client("dynamodb")):
            found[TaskRef(body_end, layout.task_id_for([*prefix, entry.index]))] = index_from_json(entry.artifacts)
            blobs.update(entry.blobs)
        return found

    def task_record(self, ref: TaskRef) -> records.TaskRecord:
        rec = self._records.get(ref)
        if rec is None:
            found = records.read_task(self.storage, self.flow_name, self.run_id, ref.step, ref.task_id)
            rec = self._records[ref] = self._checked(ref, found)
        return rec

    def _checked(self, ref: TaskRef, rec: Optional[records.TaskRecord]) -> records.TaskRecord:
        if rec is None:
            raise TaskSetupError(f"the input task {self.flow_name}/{self.run_id}/{ref} has not run")
        if rec.status != "succeeded" or rec.final_attempt is None:
            raise TaskSetupError(
                f"the input task {self.flow_name}/{self.run_id}/{ref} has not succeeded (status {rec.status})"
            )
        return rec

    def _final_attempt(self, ref: TaskRef) -> int:
        return self.task_record(ref).final_attempt or 0

    def _found_index(self, ref: TaskRef, data: Optional[bytes]) -> dict[str, ArtifactRef]:
        if data is None:
            raise TaskSetupError(f"the input task {self.flow_name}/{self.run_id}/{ref} stored no artifacts")
        return index_from_json(data)

    def artifacts(self, ref: TaskRef) -> TaskArtifacts:
        source = self._sources.get(ref)
        if source is None:
            key = index_key(self.flow_name, self.run_id, ref.step, ref.task_id, self._final_attempt(ref))
            [data] = self.storage.get_many([key])
            source = self._sources[ref] = TaskArtifacts(self.store, self._found_index(ref, data))
        return source

    def num_splits(self, ref: TaskRef) -> int:
        attempt = self.task_record(ref).final_attempt or 0
        key = layout.attempt_key(self.flow_name, self.run_id, ref.step, ref.task_id, attempt, layout.FOREACH_RECORD)
        try:
            return int(json.loads(self.storage.get_bytes(key))["num_splits"])
        except (KeyError, ValueError, TypeError) as e:
            raise TaskSetupError(f"the foreach task {self.flow_name}/{self.run_id}/{ref} left no cardinality ({e})") from None
