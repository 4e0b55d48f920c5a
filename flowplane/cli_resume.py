"""`python flow.py resume [--origin-run-id ID] [STEP]`: Metaflow's resume, from local and production runs.

A new local run, with the current code and the origin run's parameters: every
task the origin finished before the failure (or before STEP) is cloned from it
(flowplane/resume/), the rest run on this machine. Every refusal happens
before anything is written.
"""

from __future__ import annotations

from typing import Any, Optional

import click

from .cli_preflight import lint_or_exit, resolve_parameters
from .cli_options import options_of
from .runtime.local import MAX_NUM_SPLITS


@click.command(help="Resume a failed run (the latest in your namespace unless --origin-run-id names one): "
               "what succeeded before the failure, or before STEP, is cloned, the rest runs here.")
@click.argument("step", required=False)
@click.option("--origin-run-id", default=None,
              help="The run to resume: a local run id or a production run's sfn-... id.")
@click.option("--max-workers", type=click.IntRange(min=1), default=16, show_default=True,
              help="Run at most this many tasks at once.")
@click.option("--max-num-splits", type=click.IntRange(min=1), default=MAX_NUM_SPLITS, show_default=True,
              help="Fail a foreach that fans out to more tasks than this.")
@click.option("--tag", multiple=True, help="Add a tag to the new run (repeatable).")
@click.option("--run-id-file", type=click.Path(dir_okay=False), default=None,
              help="Write the new run's id to this file as soon as it starts.")
@click.pass_context
def resume(ctx: click.Context, step: Optional[str], origin_run_id: Optional[str], max_workers: int,
           max_num_splits: int, tag: tuple[str, ...], run_id_file: Optional[str]) -> None:
    fctx = ctx.obj
    lint_or_exit(fctx)
    from .datastore.storage import default_root, storage_for
    from .projects import ProjectError
    from .resume import Cloner, ResumeError, check_finished, find_origin, origin_parameters, plan_resume, read_origin
    from .runtime import Progress, RunRefused, run_local

    try:
        fctx.project()
    except ProjectError as e:
        raise click.UsageError(f"{e}; nothing ran") from None
    quiet = options_of(ctx.find_root()).quiet
    progress = Progress(quiet=quiet)
    from .cli_environments import lock_environments

    # @pypi/@conda: the steps that run again run in their locked environments, as under `run`.
    environments = lock_environments(fctx, ctx, build=True)
    root = default_root()
    try:
        record, provider = find_origin(fctx.flow_name, origin_run_id)
        check_finished(record)
        progress.system(f"Gathering what run {record.run_id} finished...")
        origin = read_origin(record, provider, list(fctx.graph.steps))
        plan = plan_resume(fctx.graph, origin.graph, record.run_id, origin.statuses, step)
        names = [p.name for p in fctx.parameters()]
        params = resolve_parameters(fctx, _known(origin_parameters(origin, names), names), root)
        cloner = Cloner(storage_for(root), fctx.graph, origin, plan)
        cloner.prepare()
    except ResumeError as e:
        raise click.ClickException(f"{e}; nothing ran") from None
    progress.system(
        f"Resuming run {record.run_id}: {len(cloner.indices)} finished task(s) to clone "
        f"({cloner.copied} artifact blob(s) copied, the rest referenced)"
        + (f", re-running from step {step!r}" if step else "")
    )
    try:
        code = run_local(fctx, params, max_workers=max_workers, tags=list(tag), run_id_file=run_id_file, root=root,
                         max_num_splits=max_num_splits, progress=progress, cloner=cloner,
                         environments=environments)
    except RunRefused as e:
        raise click.ClickException(str(e)) from None
    ctx.exit(code)


def _known(values: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """The origin's values of the parameters the current code still declares."""
    return {n: v for n, v in values.items() if n in names}
