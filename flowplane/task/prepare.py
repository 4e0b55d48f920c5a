"""Everything a task checks before it writes anything: a bad input changes nothing.

The flow (a file here, or a deployed package), the task id against the graph,
the step's environment and secrets, the datastore and the parameter values:
what `prepare` finds becomes the Task whose attempt then runs (attempt.py).
"""

from __future__ import annotations

import os
from typing import Any, Optional

from .. import job
from ..datastore import records
from ..datastore.storage import S3Storage, Storage, default_root, storage_for
from ..context import username
from ..projects import BRANCH_RE, ProjectError, ProjectInfo, resolve
from ..trigger_events import Trigger, scheduled_time_from_input
from .attempt import Task
from .errors import TaskSetupError
from .graph import TaskIdError, check_task_id
from .loader import LoadedFlow, fetch_package, flow_file_in, load_flow_file
from .params import from_json_option, given_values, resolve, specs_from_parameters, with_included_files


def prepare(args: Any) -> Task:
    """The task the command's arguments name, ready to run; a TaskSetupError says what is wrong."""
    missing = [f"--{n.replace('_', '-')}" for n in ("run_id", "step", "task_id") if not getattr(args, n)]
    if not args.flow_file and not args.package:
        missing.append("--flow-file or --package")
    if missing:
        raise TaskSetupError("missing " + ", ".join(missing))
    if args.retry_count < 0:
        raise TaskSetupError(f"--retry-count must be 0 or more, got {args.retry_count}")
    production = args.package is not None
    if production:
        package_dir, manifest = fetch_package(args.package)
        loaded = load_flow_file(flow_file_in(package_dir, manifest), manifest)
    else:
        manifest = None
        loaded = load_flow_file(args.flow_file, configs=_configs(getattr(args, "configs_json", None)))
    missing_configs = [c.name for c in loaded.source.configs if c.name not in loaded.configs]
    if missing_configs:
        raise TaskSetupError(
            f"no value for the config(s) {', '.join(map(repr, missing_configs))}: they are read when the run "
            "starts (or the flow is deployed) and given to every task (--configs-json)"
        )
    if manifest is not None:
        _check_environment(manifest, args.step, getattr(args, "python_env", None))
    with_specs = _with_specs(args.with_specs)
    _, graph = loaded.context(with_specs)
    try:
        indices = check_task_id(graph, args.step, args.task_id)
    except TaskIdError as e:
        raise TaskSetupError(str(e)) from None
    node = graph[args.step]
    if node.type == "foreach" and node.decorator("catch") is not None:
        raise TaskSetupError(f"step {node.name!r}: @catch is not supported on a foreach split step (as in Metaflow)")
    environment = node.decorator("environment")
    if environment is not None:
        # This process runs only this task: its environment is the step's, locally and on Batch
        # alike, for the step's code and whatever it starts.
        os.environ.update(environment.vars)
    secrets = node.decorator("secrets")
    if secrets is not None and secrets.sources:
        from .secrets import secret_environment

        # Read before anything is written, so an unknown secret fails the task cleanly.
        os.environ.update(secret_environment(secrets.sources))
    root = args.datastore_root or default_root()
    storage = _storage(root)
    param_specs = list(manifest.parameters) if manifest else specs_from_parameters(_flow_parameters(loaded))
    given = given_values(args.params_json, os.environ.get(job.EXECUTION_INPUT))
    if given is None:
        run = records.read_run(storage, graph.flow_name, args.run_id)
        given = dict(run.parameters) if run else {}
    params = resolve(param_specs, given)
    token = os.environ.get(job.PRODUCTION_TOKEN) or None
    production = production or token is not None
    return Task(
        loaded=loaded,
        graph=graph,
        node=node,
        run_id=args.run_id,
        task_id=args.task_id,
        indices=indices,
        attempt=args.retry_count,
        storage=storage,
        params=params,
        param_values=with_included_files(param_specs, params, storage, graph.flow_name),
        param_attrs={s.name: s.attribute for s in param_specs},
        param_names=parameter_names(loaded.source.configs, param_specs),
        tags=list(args.tags),
        production=production,
        token=token,
        manifest=manifest,
        project=_project(graph, manifest, getattr(args, "project_branch", None)),
        origin_run_id=getattr(args, "origin_run_id", None),
        # A local run ignores triggers, as in Metaflow: only a production execution's input says.
        trigger=Trigger.from_input(os.environ.get(job.EXECUTION_INPUT), upstream_run) if production else None,
        scheduled_time=scheduled_time_from_input(os.environ.get(job.EXECUTION_INPUT)) if production else None,
    )


def _check_environment(manifest: Any, step: str, given: Optional[str]) -> None:
    """A deployed step runs in the environment its manifest locked for it, and only there."""
    expected = manifest.environments.steps.get(step)
    if expected != given:
        said = f"--python-env {given[:12]}" if given else "no --python-env"
        wanted = f"its environment {expected[:12]}" if expected else "no environment"
        raise TaskSetupError(f"step {step!r} was started with {said}, but the package's manifest locks {wanted} for it")


def _project(graph: Any, manifest: Any, branch: Optional[str]) -> Optional[ProjectInfo]:
    """The task's @project branch: the deployed one (the manifest's), or the local run's."""
    spec = graph.project
    if spec is None:
        return None
    if manifest is not None and manifest.options.branch:
        branch = manifest.options.branch
    if branch:
        if not BRANCH_RE.match(branch):
            raise TaskSetupError(f"--project-branch {branch!r} is not a project branch (user.NAME, test.NAME, prod...)")
        return ProjectInfo(spec.name, branch, graph.flow_name)
    # A task started by hand, without the run's branch: the decorator's, else the user's.
    try:
        return resolve(spec.name, graph.flow_name, username(), decorator_branch=spec.branch,
                       decorator_production=spec.production)
    except ProjectError as e:
        raise TaskSetupError(str(e)) from None


def upstream_run(pathspec: str) -> Any:
    """`current.trigger.run`: the upstream run, read through the Client API as any run is."""
    from ..client import Run

    return Run(pathspec, _namespace_check=False)


def parameter_names(configs: list[Any], specs: list[Any]) -> list[str]:
    """current.parameter_names: Metaflow yields the configs, then the Parameters in dir() order."""
    return sorted(c.attribute for c in configs) + sorted(s.attribute for s in specs)


def _configs(text: Optional[str]) -> dict[str, Any]:
    """--configs-json: the Config values the local run read when it started."""
    return from_json_option(text, "--configs-json", "config values") if text else {}


def _storage(root: str) -> Storage:
    if root.startswith("s3://"):
        from .aws import s3

        # The package's client: one S3 client per task process.
        return S3Storage(root, client=s3())
    return storage_for(root)


def _with_specs(values: list[str]) -> list[Any]:
    from ..decorators import DecoratorArgumentError, parse_with_option

    try:
        return [parse_with_option(v) for v in values]
    except DecoratorArgumentError as e:
        raise TaskSetupError(str(e)) from None


def _flow_parameters(loaded: LoadedFlow) -> list[Any]:
    ctx, _ = loaded.context([])
    return ctx.parameters()
