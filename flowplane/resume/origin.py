"""The run `resume` starts from: found, checked, and its finished tasks read.

Read through the Client API's provider, so a local run (the datastore) and a
production run (the control plane: DynamoDB records, the S3 datastore behind
presigned URLs, on AWS or on the embedded plane) are resumed alike.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Optional

from ..datastore import layout
from ..datastore.artifacts import ArtifactRef, index_from_json
from ..datastore.records import RunRecord, TaskRecord, is_production_run_id
from ..manifest import GraphSpec
from ..task.graph import GRAPH_INFO, TaskRef
from .plan import ResumeError

# Artifact indices of a production origin are read this many at once (one request each).
READERS = 16


@dataclass
class OriginRun:
    record: RunRecord
    provider: Any  # the Client API provider that holds this run (local.py or service.py)
    graph: GraphSpec
    # Every task's status, by step (what plan_resume decides on).
    statuses: dict[str, list[str]]
    # The successful tasks, by place: what may be cloned.
    succeeded: dict[TaskRef, TaskRecord] = field(default_factory=dict)

    @property
    def run_id(self) -> str:
        return self.record.run_id

    def pathspec(self, ref: TaskRef) -> str:
        return f"{self.record.flow}/{self.record.run_id}/{ref.step}/{ref.task_id}"


def find_origin(flow: str, run_id: Optional[str]) -> tuple[RunRecord, Any]:
    """The origin's run record and the provider holding it; the latest run in the namespace by default."""
    from ..client import Flow, get_namespace
    from ..client.exceptions import ClientError
    from ..client.selection import get_provider

    provider = get_provider()
    if run_id is None:
        try:
            latest = Flow(flow).latest_run
        except ClientError as e:
            raise ResumeError(f"no run of {flow} to resume in namespace {get_namespace()!r} ({e}); "
                              "give one with --origin-run-id") from None
        if latest is None:
            raise ResumeError(f"no run of {flow} to resume in namespace {get_namespace()!r}; "
                              "give one with --origin-run-id")
        run_id = latest.id
    try:
        record = provider.get_run(flow, run_id)
    except ClientError as e:
        raise ResumeError(f"cannot read run {flow}/{run_id}: {e}") from None
    if record is None:
        other = _flow_with_run(provider, flow, run_id)
        if other is not None:
            raise ResumeError(f"run {run_id} is a run of {other}, not of {flow}")
        raise ResumeError(f"{flow} has no run {run_id!r} (looked in {provider.describe()})")
    source = getattr(provider, "provider_for_run", None)
    return record, (source(flow, run_id) if callable(source) else provider)


def _flow_with_run(provider: Any, flow: str, run_id: str) -> Optional[str]:
    """Another flow holding `run_id`, to say so (asked only once the run was not found)."""
    try:
        for info in provider.list_flows():
            if info.name != flow and provider.get_run(info.name, run_id) is not None:
                return info.name
    except Exception:  # the listing is a courtesy; not finding the run is the answer
        return None
    return None


def check_finished(record: RunRecord) -> None:
    if record.status == "running":
        stop = (f"`python flow.py step-functions terminate {record.run_id}`"
                if is_production_run_id(record.run_id) else "Ctrl-C in the terminal running it")
        raise ResumeError(
            f"run {record.flow}/{record.run_id} is still running (started {record.created_at}): "
            f"resume it once it has ended, or stop it ({stop})"
        )


def read_origin(record: RunRecord, provider: Any, steps: list[str]) -> OriginRun:
    """The status of every task of `steps` (the current graph's: no other can be cloned), the
    successful ones' records, and the graph the run ran. Each step's tasks are read once, a page
    at a time (over the datastore, listing a run's steps would read every task once more)."""
    flow, run_id = record.flow, record.run_id
    statuses: dict[str, list[str]] = {}
    succeeded: dict[TaskRef, TaskRecord] = {}
    for step in steps:
        for task in provider.iter_tasks(flow, run_id, step):
            statuses.setdefault(step, []).append(task.status)
            if task.status == "succeeded" and task.final_attempt is not None:
                succeeded[TaskRef(task.step, task.task_id)] = task
    return OriginRun(record, provider, _graph_of(provider, record, succeeded), statuses, succeeded)


def _graph_of(provider: Any, record: RunRecord, succeeded: dict[TaskRef, TaskRecord]) -> GraphSpec:
    """The graph the origin ran with: the `_graph_info` every task stores (Metaflow's too)."""
    from ..client.lineage import graph_of

    start = TaskRef("start", layout.task_id_for([]))
    rec = succeeded.get(start) or provider.get_task(record.flow, record.run_id, start.step, start.task_id)
    if rec is not None:
        attempt = rec.final_attempt if rec.final_attempt is not None else max(rec.attempts - 1, 0)
        index = provider.artifact_index(record.flow, record.run_id, "start", rec.task_id, attempt)
        if GRAPH_INFO in index:
            return graph_of(provider.load_artifact(record.flow, index[GRAPH_INFO].sha))
    raise ResumeError(
        f"run {record.flow}/{record.run_id} stored no graph (its start step left no artifacts): "
        "nothing in it can be cloned; run the flow anew"
    )


def read_indices(origin: OriginRun, refs: list[TaskRef]) -> dict[TaskRef, dict[str, ArtifactRef]]:
    """The artifact index of each task's final attempt: read at once where the storage can."""
    flow, run_id, provider = origin.record.flow, origin.run_id, origin.provider
    storage = getattr(provider, "storage", None)
    if storage is not None:
        keys = [
            layout.attempt_key(flow, run_id, r.step, r.task_id, _final(origin, r), layout.ARTIFACT_INDEX)
            for r in refs
        ]
        return {r: index_from_json(data) for r, data in zip(refs, storage.get_many(keys)) if data is not None}

    pages = getattr(provider, "step_artifact_indexes", None)
    if callable(pages):
        # The control plane: a page of a step's indices a request, not a request a task.
        wanted = {(r.step, r.task_id): _final(origin, r) for r in refs}
        found: dict[TaskRef, dict[str, ArtifactRef]] = {}
        for step in sorted({r.step for r in refs}):
            for task_id, attempt, index in pages(flow, run_id, step):
                if wanted.get((step, task_id)) == attempt and index:
                    found[TaskRef(step, task_id)] = index
        return found

    def one(ref: TaskRef) -> dict[str, ArtifactRef]:
        return provider.artifact_index(flow, run_id, ref.step, ref.task_id, _final(origin, ref))

    with ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="flowplane-resume") as pool:
        return {r: index for r, index in zip(refs, pool.map(one, refs)) if index}


def _final(origin: OriginRun, ref: TaskRef) -> int:
    attempt = origin.succeeded[ref].final_attempt
    assert attempt is not None
    return attempt


def origin_parameters(origin: OriginRun, names: list[str]) -> dict[str, Any]:
    """The values the origin ran with: its record's, else what its start task stored.

    A production run's record keeps the values its trigger gave; the defaults it ran
    with are artifacts of its start task (a failed start keeps them too)."""
    given = dict(origin.record.parameters)
    missing = [n for n in names if n not in given]
    if not missing:
        return given
    flow, run_id, provider = origin.record.flow, origin.run_id, origin.provider
    start = provider.get_task(flow, run_id, "start", layout.task_id_for([]))
    if start is None:
        return given
    attempt = start.final_attempt if start.final_attempt is not None else max(start.attempts - 1, 0)
    index = provider.artifact_index(flow, run_id, "start", start.task_id, attempt)
    for name in missing:
        if name in index:
            given[name] = provider.load_artifact(flow, index[name].sha)
    return given
