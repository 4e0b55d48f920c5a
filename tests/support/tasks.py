"""`flowplane task` called in-process, and what it left in a local datastore (no tests here)."""

from __future__ import annotations

from pathlib import Path

from flowplane.datastore.storage import LocalStorage
from flowplane.task.command import main as task_main
from tests.support.local_runs import RunView


def task(flow: Path, root: Path, step: str, task_id: str = "1", retry: int = 0, params: str = "{}",
         run_id: str = "100", *extra: str) -> int:
    argv = ["--run-id", run_id, "--step", step, "--task-id", task_id, "--retry-count", str(retry),
            "--flow-file", str(flow), "--datastore-root", str(root), "--params-json", params, *extra]
    return task_main(argv)


def view(root: Path, flow: str) -> RunView:
    return RunView(LocalStorage(str(root)), flow, "100")


def files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []
