"""Helpers shared by the task and runtime tests: test flows on disk, running them locally
(in-process or as a user types it), reading runs back (no tests here).

Runs are read straight from the datastore layout (records and the artifact
store), the contract the task writes, so these tests do not depend on the
Client API; tests/e2e/test_client_local_runs.py checks the same runs through it.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Optional

from flowplane.datastore import layout, records
from flowplane.datastore.artifacts import ArtifactStore, read_index
from flowplane.datastore.storage import LocalStorage, Storage
from flowplane.decorators import parse_with_option
from flowplane.runtime import Progress, run_local
from flowplane.task.loader import load_flow_file

USER = "tester"


def write_flow(tmp_path: Path, name: str, body: str) -> Path:
    """A flow file `<name>.py` in its own folder (so module names never collide)."""
    folder = tmp_path / f"{name}_dir"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(body).lstrip())
    return path


class RunView:
    """What one run left in a datastore."""

    def __init__(self, storage: Storage, flow: str, run_id: str):
        self.storage = storage
        self.flow = flow
        self.run_id = run_id
        self.store = ArtifactStore(storage, flow)

    @classmethod
    def only(cls, root: Path, flow: str) -> "RunView":
        storage = LocalStorage(str(root))
        runs = storage.list_dir(f"{flow}/runs")
        assert len(runs) == 1, f"expected one run of {flow}, found {runs}"
        return cls(storage, flow, runs[0])

    @property
    def record(self) -> records.RunRecord:
        rec = records.read_run(self.storage, self.flow, self.run_id)
        assert rec is not None
        return rec

    def task_ids(self, step: str) -> list[str]:
        names = self.storage.list_dir(f"{layout.run_prefix(self.flow, self.run_id)}/{step}")
        return sorted(n for n in names if n[0].isdigit())

    def task(self, step: str, task_id: str = "1") -> records.TaskRecord:
        rec = records.read_task(self.storage, self.flow, self.run_id, step, task_id)
        assert rec is not None, f"no task record for {step}/{task_id}"
        return rec

    def attempts(self, step: str, task_id: str = "1") -> list[records.AttemptRecord]:
        out = []
        for i in range(100):
            rec = records.read_attempt(self.storage, self.flow, self.run_id, step, task_id, i)
            if rec is None:
                break
            out.append(rec)
        return out

    def index(self, step: str, task_id: str = "1", attempt: Optional[int] = None) -> dict:
        if attempt is None:
            attempt = self.task(step, task_id).final_attempt
        index = read_index(self.storage, self.flow, self.run_id, step, task_id, attempt)
        assert index is not None, f"no artifacts for {step}/{task_id} attempt {attempt}"
        return index

    def data(self, step: str, task_id: str = "1", attempt: Optional[int] = None) -> dict[str, Any]:
        return {n: self.store.load(r.sha) for n, r in self.index(step, task_id, attempt).items()}

    def log(self, step: str, task_id: str = "1", attempt: int = 0, stream: str = "stdout") -> str:
        key = layout.attempt_key(self.flow, self.run_id, step, task_id, attempt, f"{stream}.log")
        return self.storage.get_bytes(key).decode()

    def foreach(self, step: str, task_id: str = "1", attempt: int = 0) -> dict:
        key = layout.attempt_key(self.flow, self.run_id, step, task_id, attempt, layout.FOREACH_RECORD)
        return json.loads(self.storage.get_bytes(key))


class Result:
    def __init__(self, code: int, out: str, err: str, run: RunView):
        self.code, self.out, self.err, self.run = code, out, err, run


def run(path: Path, root: Path, params: dict[str, Any] | None = None, with_: tuple[str, ...] = (), **kw: Any) -> Result:
    """The flow run locally in-process (`run_local`, tasks still forked), what it printed and left."""
    ctx, _ = load_flow_file(str(path)).context([parse_with_option(w) for w in with_])
    out, err = io.StringIO(), io.StringIO()
    code = run_local(ctx, params or {}, root=str(root), progress=Progress(out, err), **kw)
    return Result(code, out.getvalue(), err.getvalue(), RunView.only(root, ctx.flow_name))


def run_env(root: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, "FLOWPLANE_DATASTORE_ROOT": str(root), "FLOWPLANE_USER": USER}
    env.update(extra)
    return env


def run_cli(flow_file: Path, root: Path, cwd: Path, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess:
    """`python FLOW ARGS...` as a user types it, in `cwd`, with the datastore at `root`."""
    return subprocess.run(
        [sys.executable, str(flow_file), *args],
        cwd=cwd,
        env=run_env(root, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def max_overlap(intervals: list[tuple[str, str]]) -> int:
    """The most intervals (ISO start, ISO finish) open at the same moment."""
    events = sorted([(s, 1) for s, _ in intervals] + [(f, -1) for _, f in intervals], key=lambda e: (e[0], e[1]))
    best = now = 0
    for _, delta in events:
        now += delta
        best = max(best, now)
    return best
