"""A task process started ahead of its job (the embedded plane's local Batch keeps one waiting).

Most of a `flowplane task` process's start-up is the same whatever its job:
importing flowplane (its pydantic models) and botocore, and reading botocore's data
(the endpoints, the S3 and EventBridge models). The local Batch starts the next
task's interpreter ahead of time with `python -m flowplane.task.warm`: it does that
work, then waits on stdin for one job, a JSON line with what a cold start would have
had (the arguments after `flowplane`, the environment, the folder), takes them on and
runs the command exactly as `python -m flowplane` does. One job per process: it exits
with its task, as a container does. If stdin closes first, it exits quietly.

Nothing here depends on the job: no client is made and no credential, region or
flow is read before the job's environment is in place.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

# What every task on the plane calls: S3 (package, datastore) and EventBridge (events).
PRELOADED_SERVICES = ("s3", "events")


def preload() -> None:
    """The job-independent part of a task's start-up."""
    import flowplane.task.command  # noqa: F401
    import flowplane.task.events  # noqa: F401

    from .aws import preload_models

    preload_models(PRELOADED_SERVICES)


def become(job: dict[str, Any]) -> list[str]:
    """Take on the job's environment, folder and stdin; its `flowplane` arguments."""
    os.environ.clear()
    os.environ.update(job["env"])
    os.chdir(job["cwd"])
    import tempfile

    tempfile.tempdir = None  # TMPDIR is the job's scratch folder now
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)  # as a cold start's stdin: nothing to read
    os.close(null)
    argv = [str(a) for a in job["argv"]]
    import flowplane

    sys.argv = [os.path.join(os.path.dirname(flowplane.__file__), "__main__.py"), *argv]
    return argv


def main() -> int:
    try:
        preload()
    except Exception:  # noqa: BLE001 - the job imports for itself then, and reports what fails
        pass
    line = sys.stdin.buffer.readline()
    if not line.strip():
        return 0
    argv = become(json.loads(line))
    from ..cli import main as flowplane_main

    return flowplane_main(argv)


if __name__ == "__main__":
    sys.exit(main())
