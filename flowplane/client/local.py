"""The provider over the datastore layout (flowplane/datastore/layout.py).

Local runs and production tasks write the same keys, so one reader serves a
local folder and an S3 prefix alike. A run, step or task whose record is not
written yet (a task just starting) is skipped rather than guessed at.
"""

from __future__ import annotations

import re
from typing import Any, Iterator, Optional

from ..datastore import layout, records
from ..datastore.artifacts import ArtifactRef, ArtifactStore, read_index
from ..datastore.records import AttemptRecord, RunRecord, TaskRecord
from ..datastore.storage import NotFound as StorageNotFound
from ..datastore.storage import Storage
from .provider import FlowInfo, LogStream, StepInfo
from .times import sort_key

# Names that can be a flow, run, step or task id: never a path trick such as `..`.
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:\-]*$")


def _ok(*names: str) -> bool:
    return all(isinstance(n, str) and _NAME.match(n) and ".." not in n for n in names)


# A step's task records are read this many at a time as its tasks are iterated.
TASK_PAGE = 1000


def _index_order(task_id: str) -> Optional[tuple[list[int], str]]:
    """A task folder's place in foreach order (1.2 before 1.10); None for a name no task has."""
    try:
        return layout.indices_of(task_id), task_id
    except ValueError:
        return None


class LocalProvider:
    def __init__(self, storage: Storage):
        self.storage = storage
        self._stores: dict[str, ArtifactStore] = {}

    def describe(self) -> str:
        kind = "s3" if self.storage.root.startswith("s3://") else "local"
        return f"{kind}@{self.storage.root}"

    # --- flows -------------------------------------------------------------

    def _run_ids(self, flow: str) -> list[str]:
        return [r for r in self.storage.list_dir(f"{flow}/runs") if _ok(r)]

    def _runs(self, flow: str) -> list[RunRecord]:
        out = []
        for run_id in self._run_ids(flow):
            rec = records.read_run(self.storage, flow, run_id)
            if rec is not None:
                out.append(rec)
        return out

    def list_flows(self) -> list[FlowInfo]:
        out = []
        for name in self.storage.list_dir(""):
            if _ok(name):
                info = self.get_flow(name)
                if info is not None:
                    out.append(info)
        return out

    def get_flow(self, flow: str) -> Optional[FlowInfo]:
        if not _ok(flow):
            return None
        runs = self._runs(flow)
        if not runs:
            return None
        first = min(runs, key=lambda r: sort_key(r.created_at))
        return FlowInfo(name=flow, created_at=first.created_at)

    # --- runs --------------------------------------------------------------

    def list_runs(self, flow: str, namespace_tag: Optional[str] = None,
                  limit: Optional[int] = None) -> list[RunRecord]:
        if not _ok(flow):
            return []
        runs = self._runs(flow)
        if namespace_tag is not None:
            runs = [r for r in runs if namespace_tag in r.all_tags]
        runs.sort(key=lambda r: (sort_key(r.created_at), r.run_id), reverse=True)
        return runs if limit is None else runs[: max(0, int(limit))]

    def get_run(self, flow: str, run: str) -> Optional[RunRecord]:
        if not _ok(flow, run):
            return None
        return records.read_run(self.storage, flow, run)

    def set_user_tags(self, flow: str, run: str, tags: list[str]) -> RunRecord:
        """Replace the run's user tags (already checked by client/tagging.py); the record after."""
        rec = self.get_run(flow, run)
        if rec is None:
            from .exceptions import NotFound

            raise NotFound(f"Run('{flow}/{run}') does not exist (datastore {self.describe()})")
        rec.tags = list(tags)
        records.write_run(self.storage, rec)
        return rec

    # --- steps and tasks ---------------------------------------------------

    def list_steps(self, flow: str, run: str) -> list[StepInfo]:
        if not _ok(flow, run):
            return []
        out = []
        for name in self.storage.list_dir(layout.run_prefix(flow, run)):
            if name == layout.RUN_RECORD or not _ok(name):
                continue
            info = self.get_step(flow, run, name)
            if info is not None:
                out.append(info)
        return out

    def get_step(self, flow: str, run: str, step: str) -> Optional[StepInfo]:
        tasks = self.list_tasks(flow, run, step)
        if not tasks:
            return None
        first = min(tasks, key=lambda t: sort_key(t.created_at))
        return StepInfo(flow=flow, run_id=run, step=step, created_at=first.created_at, task_count=len(tasks))

    def list_tasks(self, flow: str, run: str, step: str) -> list[TaskRecord]:
        return list(self.iter_tasks(flow, run, step))

    def iter_tasks(self, flow: str, run: str, step: str) -> Iterator[TaskRecord]:
        """In foreach index order: the ids from one listing, the records a page at a time
        (concurrently on S3) as they are iterated."""
        if not _ok(flow, run, step):
            return
        names = self.storage.list_dir(f"{layout.run_prefix(flow, run)}/{step}")
        ids = [order[1] for order in sorted(filter(None, map(_index_order, names)))]
        for start in range(0, len(ids), TASK_PAGE):
            page = ids[start:start + TASK_PAGE]
            found = self.storage.get_many([layout.task_key(flow, run, step, t) for t in page])
            for data in found:
                if data is not None:
                    yield TaskRecord.model_validate_json(data)

    def get_task(self, flow: str, run: str, step: str, task: str) -> Optional[TaskRecord]:
        if not _ok(flow, run, step, task):
            return None
        return records.read_task(self.storage, flow, run, step, task)

    def list_attempts(self, flow: str, run: str, step: str, task: str) -> list[AttemptRecord]:
        if not _ok(flow, run, step, task):
            return []
        numbers = sorted(
            int(n) for n in self.storage.list_dir(layout.task_prefix(flow, run, step, task)) if n.isdigit()
        )
        out = []
        for n in numbers:
            rec = records.read_attempt(self.storage, flow, run, step, task, n)
            if rec is not None:
                out.append(rec)
        return out

    # --- artifacts and logs ------------------------------------------------

    def artifact_index(self, flow: str, run: str, step: str, task: str,
                       attempt: int) -> dict[str, ArtifactRef]:
        if not _ok(flow, run, step, task):
            return {}
        return read_index(self.storage, flow, run, step, task, int(attempt)) or {}

    def _store(self, flow: str) -> ArtifactStore:
        store = self._stores.get(flow)
        if store is None:
            store = self._stores[flow] = ArtifactStore(self.storage, flow)
        return store

    def load_artifact(self, flow: str, sha: str) -> Any:
        if not _ok(flow) or not re.fullmatch(r"[0-9a-f]{64}", sha or ""):
            raise KeyError(f"not an artifact address: {flow}/{sha}")
        return self._store(flow).load(sha)

    def log_times(self, flow: str, run: str, step: str, task: str, attempt: int,
                  stream: LogStream) -> Optional[list[float]]:
        """When each log line was written (epoch seconds); None if the task did not say."""
        if stream not in ("stdout", "stderr") or not _ok(flow, run, step, task):
            return None
        key = layout.attempt_key(flow, run, step, task, int(attempt), layout.log_times_name(f"{stream}.log"))
        try:
            text = self.storage.get_bytes(key).decode()
        except StorageNotFound:
            return None
        return [float(t) for t in text.split()]

    def logs(self, flow: str, run: str, step: str, task: str, attempt: int, stream: LogStream) -> str:
        if stream not in ("stdout", "stderr"):
            raise ValueError(f"a log stream is 'stdout' or 'stderr', got {stream!r}")
        if not _ok(flow, run, step, task):
            return ""
        log = f"{stream}.log"
        # A running local task has stored no log yet: the lines the runtime has read so far.
        for name in (log, layout.live_log_name(log)):
            key = layout.attempt_key(flow, run, step, task, int(attempt), name)
            try:
                return self.storage.get_bytes(key).decode("utf-8", errors="replace")
            except StorageNotFound:
                continue
        return ""

    def list_cards(self, flow: str, run: str, step: str, task: str, attempt: int) -> list[Any]:
        if not _ok(flow, run, step, task):
            return []
        from ..cards.store import stored_cards

        return stored_cards(self.storage, (flow, run, step, task, int(attempt)))
