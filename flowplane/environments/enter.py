"""Starting a task in its step's environment (`flowplane task ... --python-env ID`).

The task's first process (forked by the local runtime or the plane's zygote, or the
container's `flowplane task` on Batch) finds the environment (cache.py, bucket.py) and
replaces itself, by exec, with the environment's interpreter running the same command:
the same process, session and output pipes, so whatever supervises it sees one task.
Its PYTHONPATH is then only the SDK's folder (cache.sdk_path): nothing of the machine's
site-packages, PYTHONPATH or user site is importable in the step. The embedded plane
skips the first process once an environment exists, forking the task from a zygote
started in it (flowplane/local/batch.py, `task_environment`).
"""

from __future__ import annotations

import os
import sys
from typing import Optional

from ..task.errors import TaskSetupError
from . import cache

# Set in a task process that runs in its environment: which one.
INSIDE_ENV = "FLOWPLANE_PYTHON_ENV"


def inside(env_id: str) -> bool:
    return os.environ.get(INSIDE_ENV) == env_id


def task_environment(base: dict[str, str], path: str, env_id: str) -> dict[str, str]:
    """A task's process environment inside the environment at `path`, from `base`."""
    env = {k: v for k, v in base.items() if k not in ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONUSERBASE")}
    env.update({
        "PYTHONPATH": cache.sdk_path(),
        "PYTHONNOUSERSITE": "1",
        "VIRTUAL_ENV": path,
        INSIDE_ENV: env_id,
        "PATH": os.pathsep.join(p for p in (os.path.join(path, "bin"), base.get("PATH", "")) if p),
    })
    return env


def locate(env_id: str, package_url: Optional[str]) -> str:
    """The environment's folder on this machine: cached, or (production) fetched or built."""
    found = cache.ready_path(env_id)
    if found:
        return found
    if not package_url:
        raise TaskSetupError(
            f"environment {env_id[:12]} is not in {cache.envs_dir()}: `run` builds a local run's environments "
            "before its tasks start; run the flow again"
        )
    from ..task.loader import fetch_package

    _, manifest = fetch_package(package_url)
    found_lock = manifest.environments.locks.get(env_id)
    if found_lock is None:
        raise TaskSetupError(f"--python-env {env_id[:12]}: the package's manifest has no such environment")
    if not package_url.startswith("s3://"):
        try:
            return cache.build(env_id, found_lock)[0]
        except cache.EnvironmentBuildError as e:
            raise TaskSetupError(f"environment {env_id[:12]} cannot be built: {e}") from None
    from ..task.aws import s3
    from .bucket import EnvironmentFetchError, fetch_or_build

    bucket = package_url[5:].split("/", 1)[0]
    try:
        return fetch_or_build(s3(), bucket, env_id, found_lock, say=lambda m: print(m, file=sys.stderr, flush=True))
    except (EnvironmentFetchError, cache.EnvironmentBuildError) as e:
        raise TaskSetupError(f"the step's environment cannot be fetched: {e}") from None


def enter(env_id: str, argv: list[str], package_url: Optional[str]) -> None:
    """Run this task in its environment: returns only when already there, else execs."""
    if inside(env_id):
        return
    path = locate(env_id, package_url)
    python = cache.python_of(path)
    env = task_environment(dict(os.environ), path, env_id)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    try:
        os.execve(python, [python, "-m", "flowplane", "task", *argv], env)
    except OSError as e:
        raise TaskSetupError(f"cannot start the environment's interpreter {python}: {e}") from None
