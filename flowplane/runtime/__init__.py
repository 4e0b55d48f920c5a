"""Running a flow on this machine: `python flow.py run`."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Optional

from ..context import FlowContext
from ..datastore import records
from ..datastore.storage import Storage, default_root, storage_for
from .launcher import EnvironmentLauncher, ForkLauncher, Launcher, SubprocessLauncher, TaskProcess, default_launcher
from .local import MAX_NUM_SPLITS, LocalRun, RunSettings
from .progress import Progress

if TYPE_CHECKING:
    from ..resume.clone import Cloner

__all__ = [
    "run_local",
    "preflight",
    "RunRefused",
    "new_run_id",
    "Launcher",
    "ForkLauncher",
    "SubprocessLauncher",
    "TaskProcess",
    "Progress",
]


def new_run_id(storage: Storage, flow: str) -> str:
    """A numeric, time-based run id (as Metaflow's local runs), unused in this datastore."""
    candidate = int(time.time() * 1_000_000)
    while storage.exists(f"{flow}/runs/{candidate}/{records.layout.RUN_RECORD}"):
        candidate += 1
    return str(candidate)


class RunRefused(Exception):
    """The flow cannot run as decorated; nothing was started or written."""


def preflight(graph: Any) -> list[str]:
    """What would make tasks fail at start-up, found before any task starts."""
    problems = []
    for node in graph.sorted_steps():
        if node.type == "foreach" and node.decorator("catch") is not None:
            problems.append(
                f"step {node.name!r}: @catch is not supported on a foreach split step (as in Metaflow); "
                "with --with catch, add @catch to the other steps instead"
            )
    return problems


def run_local(
    ctx: FlowContext,
    params: dict[str, Any],
    max_workers: int = 16,
    tags: Optional[list[str]] = None,
    run_id_file: Optional[str] = None,
    root: Optional[str] = None,
    launcher: Optional[Launcher] = None,
    progress: Optional[Progress] = None,
    max_num_splits: int = MAX_NUM_SPLITS,
    environments: Optional[Any] = None,
    cloner: Optional["Cloner"] = None,
) -> int:
    """Run every task of the flow; 0 when the run succeeded, 1 when it failed. `environments`
    (@pypi/@conda, locked and built by the caller) says which step's tasks run in which.

    With a `cloner` (`resume`), the tasks its origin run finished are cloned, not run."""
    if max_workers < 1:
        raise ValueError(f"max_workers must be at least 1, got {max_workers}")
    if max_num_splits < 1:
        raise ValueError(f"max_num_splits must be at least 1, got {max_num_splits}")
    graph = ctx.graph
    problems = preflight(graph)
    if problems:
        raise RunRefused("; ".join(problems))
    flow = graph.flow_name
    root = root or default_root()
    if not root.startswith("s3://"):
        root = os.path.abspath(root)
    storage = storage_for(root)
    progress = progress or Progress()
    launcher = launcher or default_launcher()
    tags = list(tags or [])
    # @project's branch, from the command line's --branch/--production (a ProjectError if invalid).
    project = ctx.project()
    if launcher.name == "fork":
        _warm_up(ctx)

    run_id = new_run_id(storage, flow)
    run = records.RunRecord(
        flow=flow,
        run_id=run_id,
        user=ctx.user,
        tags=tags,
        system_tags=[f"user:{ctx.user}", "runtime:local", *(project.tags() if project else [])],
        parameters=params,
        origin_run_id=cloner.origin.run_id if cloner is not None else None,
    )
    records.write_run(storage, run)
    if run_id_file:
        with open(run_id_file, "w", encoding="utf-8") as f:
            f.write(run_id)
    from .. import __version__

    progress.system(f"Flowplane {__version__} executing {flow} for user:{ctx.user}")
    if project is not None:
        progress.system(f"Project: {project.name}, Branch: {project.branch}")
    progress.system(f"Workflow starting (run-id {run_id}):")
    settings = RunSettings(run_id=run_id, root=root, max_workers=max_workers, tags=tags, params=params,
                           max_num_splits=max_num_splits, branch=project.branch if project else None,
                           step_environments=dict(environments.steps) if environments is not None else {},
                           origin_run_id=run.origin_run_id)
    env_launcher = EnvironmentLauncher(launcher) if settings.step_environments else None
    local = LocalRun(ctx, graph, settings, storage, env_launcher or launcher, progress, cloner)
    try:
        code = local.execute()
    except Exception:
        # Recorded as failed below; the traceback is for whoever fixes the runtime.
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        if env_launcher is not None:
            env_launcher.close()

    run.status = "succeeded" if code == 0 else "failed"
    run.finished_at = records.now_iso()
    if local.failed is not None:
        ref, error = local.failed
        run.failed_task = f"{flow}/{run_id}/{ref}" if ref is not None else None
        run.error = error
    records.write_run(storage, run)
    if code == 0:
        progress.system("Done!")
    else:
        progress.system("Workflow failed.")
        if local.failed is not None:
            ref, error = local.failed
            what = f"Task {flow}/{run_id}/{ref} failed" if ref is not None else "The run stopped"
            progress.detail(f"{what}: {error.type}: {error.message}")
    progress.flush()
    return code


def _warm_up(ctx: FlowContext) -> None:
    """Import and prepare in the runtime what every forked task would otherwise redo."""
    import gc

    from ..task import command  # the task's code path, imported once here
    from ..task.loader import load_flow_file

    load_flow_file(ctx.flow_file, configs=ctx.configs).context(list(ctx.with_decorators))
    command.build_parser()  # compiles (and caches) argparse's regexes, should a task need them
    # Objects that exist now are never collected: a child's garbage collector
    # then leaves the pages it shares with the runtime alone (copy-on-write).
    gc.freeze()
