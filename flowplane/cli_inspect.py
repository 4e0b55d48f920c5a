"""`python flow.py dump RUN/STEP[/TASK]` and `logs RUN/STEP[/TASK]`, as Metaflow's.

Both read through the Client API, so they show local and production runs alike.
As Metaflow's, they ignore namespaces (a pathspec names exactly one run); the
headers go to stderr (left out with --quiet), the artifacts and log lines to stdout.
"""

from __future__ import annotations

import pickle
from typing import Any, Iterator, Optional

import click

from .cli_options import options_of


class _TooLarge:
    """Stands for a value past --max-value-size (Metaflow's ArtifactTooLarge)."""

    def __str__(self) -> str:
        return "< artifact too large >"

    __repr__ = __str__


def _tasks(flow: str, input_path: str) -> Iterator[Any]:
    """The task, or every task of the step, `input_path` names."""
    from .client import Step, Task, namespace

    parts = input_path.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise click.UsageError("input_path should either be run_id/step_name or run_id/step_name/task_id")
    namespace(None)  # a pathspec names one run, whoever ran it
    try:
        if len(parts) == 3:
            yield Task(f"{flow}/{input_path}")
            return
        tasks = sorted(Step(f"{flow}/{input_path}"), key=lambda t: t.id)
    except Exception as e:  # NotFound, a control plane that cannot be reached: say which
        raise click.ClickException(f"{flow}/{input_path}: {e}") from None
    if not tasks:
        raise click.ClickException("No Tasks found at the given path -- either none exist or none have started yet")
    yield from tasks


def _header(ctx: click.Context, what: str, task: Any) -> None:
    if not options_of(ctx.find_root()).quiet:
        _, run_id, step, task_id = task.pathspec.split("/")
        click.secho(f"{what} of run_id={run_id} step={step} task_id={task_id}", fg="magenta", err=True)


@click.command(
    help="Get data artifacts of a task or all tasks in a step. "
    "The format for input-path is either <run_id>/<step_name> or <run_id>/<step_name>/<task_id>."
)
@click.argument("input-path")
@click.option("--private/--no-private", default=False, show_default=True, help="Show also private attributes.")
@click.option("--max-value-size", default=1000, show_default=True, type=int,
              help="Show only values that are smaller than this number. Set to 0 to see only keys.")
@click.option("--include", type=str, default="", help="Include only artifacts in the given comma-separated list.")
@click.option("--file", type=str, default=None, help="Serialize artifacts in the given file.")
@click.pass_context
def dump(ctx: click.Context, input_path: str, private: bool, max_value_size: int, include: str,
         file: Optional[str]) -> None:
    wanted = {t for t in include.split(",") if t}
    out: dict[str, dict[str, Any]] = {}
    for task in _tasks(ctx.obj.flow_name, input_path):
        _header(ctx, "Dumping output", task)
        values = _artifacts(task, private, None if file else max_value_size, wanted)
        if file is None:
            click.echo("\n".join(
                f"{name} [size: {size} type: {type_}] = {value}" for name, (size, type_, value) in sorted(values.items())
            ))
        else:
            out[task.pathspec] = {name: value for name, (_, _, value) in values.items()}
    if file is not None:
        with open(file, "wb") as f:
            pickle.dump(out, f, protocol=pickle.HIGHEST_PROTOCOL)
        if not options_of(ctx.find_root()).quiet:
            click.echo(f"Artifacts written to {file}", err=True)


def _artifacts(task: Any, private: bool, max_size: Optional[int], wanted: set[str]) -> dict[str, tuple[int, str, Any]]:
    """name -> (size, type, value or _TooLarge) as Metaflow's TaskDataStore.to_dict."""
    out = {}
    index = task._artifact_index()
    for name in index:
        if (wanted and name not in wanted) or (name.startswith("_") and not private):
            continue
        art = task._artifact(name)
        too_large = max_size is not None and (art.size == 0 or art.size > max_size)
        out[name] = (art.size, art.type, _TooLarge() if too_large else art.data)
    return out


class _LogsGroup(click.Group):
    """`logs PATH` is `logs show PATH`, as in Metaflow; `logs scrub` is refused, saying why."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["show", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_LogsGroup, help="Show the stdout/stderr of a task or all tasks in a step.")
def logs() -> None:
    pass


@logs.command(
    help="Show stdout/stderr produced by a task or all tasks in a step. "
    "The format for input-path is either <run_id>/<step_name> or <run_id>/<step_name>/<task_id>."
)
@click.argument("input-path")
@click.option("--stdout/--no-stdout", default=False, show_default=True, help="Show stdout of the task.")
@click.option("--stderr/--no-stderr", default=False, show_default=True, help="Show stderr of the task.")
@click.option("--both/--no-both", default=True, show_default=True, help="Show both stdout and stderr of the task.")
@click.option("--timestamps/--no-timestamps", default=False, show_default=True, help="Show timestamps.")
@click.option("--attempt", default=None, type=int, help="Attempt number of a task to show, defaults to the latest.")
@click.pass_context
def show(ctx: click.Context, input_path: str, stdout: bool, stderr: bool, both: bool, timestamps: bool,
         attempt: Optional[int]) -> None:
    streams = [s for s, on in (("stdout", stdout), ("stderr", stderr)) if on]
    if not streams and both:
        streams = ["stdout", "stderr"]
    quiet = options_of(ctx.find_root()).quiet
    for task in _tasks(ctx.obj.flow_name, input_path):
        if attempt is not None:
            from .client import Task

            try:
                task = Task(task.pathspec, attempt=attempt, _namespace_check=False)
            except Exception as e:
                raise click.ClickException(str(e)) from None
        _header(ctx, "Dumping logs", task)
        for stream in streams:
            if not quiet:
                click.secho(stream, bold=True, err=True)
            for when, line in task.loglines(stream):
                if timestamps and when is not None:
                    click.secho(when.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " ", nl=False)
                click.echo(line)


@logs.command(help="Not supported: logs are kept with the attempt they belong to.",
              context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def scrub() -> None:
    raise click.ClickException(
        "logs scrub is not supported: flowplane keeps each attempt's logs with its records; delete the run's "
        "folder in the datastore to remove a local run's logs"
    )
