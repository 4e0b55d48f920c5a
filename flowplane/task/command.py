"""`flowplane task`: run one attempt of one task, locally or on AWS Batch.

    flowplane task --run-id R --step S --task-id T [--retry-count N]
                   (--flow-file PATH | --package s3://bucket/packages/<sha256>.tar.gz)
                   [--datastore-root ROOT] [--params-json JSON] [--tag T ...] [--with SPEC ...]
                   [--python-env ID]

The local runtime forks and calls `main` with these arguments; Batch runs the same
command. Values missing from the command line come from the job's environment
(flowplane/job.py). The task checks everything before it
writes anything (prepare.py), runs its attempt (attempt.py) and exits 0
(succeeded, or failed and caught by `@catch`) or 1.
"""

from __future__ import annotations

import os
import sys
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Optional

from .. import job
from .errors import TaskSetupError, type_name
from .outcome import EXIT_FAILED
from .prepare import prepare

if TYPE_CHECKING:
    import argparse


def build_parser() -> "argparse.ArgumentParser":
    import argparse

    env = os.environ.get
    p = argparse.ArgumentParser(prog="flowplane task", description="Run one attempt of one task of a flow.")
    p.add_argument("--run-id", default=env(job.RUN_ID))
    p.add_argument("--step", default=env(job.STEP))
    p.add_argument("--task-id", default=env(job.TASK_ID))
    p.add_argument("--retry-count", type=int, default=int(env(job.RETRY_COUNT) or 0))
    source = p.add_mutually_exclusive_group()
    source.add_argument("--flow-file")
    source.add_argument("--package", default=None)
    p.add_argument("--datastore-root", default=None)
    p.add_argument("--params-json", default=None)
    p.add_argument("--configs-json", default=None)
    # @project's branch of a local run (a deployed package's manifest says its own).
    p.add_argument("--project-branch", default=None)
    # The run a `resume` started from: current.origin_run_id.
    p.add_argument("--origin-run-id", default=None)
    p.add_argument("--tag", action="append", default=[], dest="tags")
    p.add_argument("--with", action="append", default=[], dest="with_specs", metavar="SPEC")
    # @pypi/@conda: the step's environment (the sha256 of its lock), entered before anything else.
    p.add_argument("--python-env", default=None)
    return p


_VALUE_OPTIONS = {
    "--run-id": "run_id",
    "--step": "step",
    "--task-id": "task_id",
    "--retry-count": "retry_count",
    "--flow-file": "flow_file",
    "--package": "package",
    "--datastore-root": "datastore_root",
    "--params-json": "params_json",
    "--configs-json": "configs_json",
    "--project-branch": "project_branch",
    "--python-env": "python_env",
    "--origin-run-id": "origin_run_id",
}
_LIST_OPTIONS = {"--tag": "tags", "--with": "with_specs"}


def _fast_parse(argv: list[str]) -> Optional[SimpleNamespace]:
    """The usual, well-formed command line without building an argparse parser.

    Every task pays for its argument parsing; argparse costs a few milliseconds
    (regexes, gettext lookups). Anything unusual returns None and goes to
    argparse, which gives the proper usage errors.
    """
    env = os.environ.get
    values: dict[str, Any] = {
        "run_id": env(job.RUN_ID), "step": env(job.STEP), "task_id": env(job.TASK_ID),
        "retry_count": env(job.RETRY_COUNT) or "0", "flow_file": None, "package": None,
        "datastore_root": None, "params_json": None, "configs_json": None, "project_branch": None, "python_env": None, "origin_run_id": None, "tags": [], "with_specs": [],
    }
    seen = set()
    it = iter(argv)
    for option in it:
        value = next(it, None)
        if value is None:
            return None
        if option in _VALUE_OPTIONS and option not in seen:
            seen.add(option)
            values[_VALUE_OPTIONS[option]] = value
        elif option in _LIST_OPTIONS:
            values[_LIST_OPTIONS[option]].append(value)
        else:
            return None
    if values["flow_file"] is not None and values["package"] is not None:
        return None  # argparse explains that they exclude each other
    try:
        values["retry_count"] = int(values["retry_count"])
    except ValueError:
        return None
    return SimpleNamespace(**values)


def main(argv: Optional[list[str]] = None) -> int:
    """The `flowplane task` command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _quick_exit()
    # A crash in native code (a segfault) then leaves the Python traceback on stderr,
    # which the scheduler keeps as the attempt's log (the task cannot store it itself).
    import faulthandler

    try:
        faulthandler.enable()
    except (OSError, ValueError):  # stderr is no file (the task run in-process by a test harness)
        pass
    args = _fast_parse(argv) or build_parser().parse_args(argv)
    if not args.flow_file and not args.package:
        args.package = os.environ.get(job.PACKAGE_URL)
    label = f"{args.run_id}/{args.step}/{args.task_id}"
    try:
        if args.python_env:
            _enter_environment(args, argv)
        task = prepare(args)
    except TaskSetupError as e:
        print(f"flowplane task {label}: {e}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as e:  # the datastore is unreachable, ...: still say which task
        import traceback

        print(f"flowplane task {label}: could not start: {type_name(e)}: {e}", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        return EXIT_FAILED
    return task.run()


def _enter_environment(args: Any, argv: list[str]) -> None:
    """Continue in the step's environment (an exec: returns only once inside it)."""
    import re

    if not re.fullmatch(r"[0-9a-f]{64}", args.python_env):
        raise TaskSetupError(f"--python-env {args.python_env[:80]!r} is not an environment's sha256")
    from ..environments.enter import enter

    enter(args.python_env, argv, args.package)


_exit_registered = False


def _quick_exit() -> None:
    """Let the process end without a last full garbage collection over every object.

    A task process exits right after its task; the interpreter's final collections
    walk every object botocore and pydantic left (~100 ms of a task process here).
    Freezing them once every other atexit handler has run (registered first, so it
    runs last; the step's handlers run as usual, and objects freed by reference
    counting are finalized as usual) skips that walk. What Python never promised at
    exit, __del__ of objects left in reference cycles, is what this gives up.
    """
    global _exit_registered
    if not _exit_registered:
        import atexit
        import gc

        _exit_registered = True
        atexit.register(gc.freeze)
