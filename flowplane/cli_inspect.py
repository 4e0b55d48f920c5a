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
@click.option("--attempt", default=None, type=click.IntRange(min=0),
              help="Attempt number of a task to show, defaults to the latest.")
@click.option("--follow", "-f", is_flag=True, default=False,
              help="Keep printing new lines while the task runs (a task path, one stream); stop when it ends.")
@click.option("--interval", default=1.0, type=click.FloatRange(min=0.05), show_default=True, hidden=True,
              help="Seconds between reads with --follow.")
@click.pass_context
def show(ctx: click.Context, input_path: str, stdout: bool, stderr: bool, both: bool, timestamps: bool,
         attempt: Optional[int], follow: bool, interval: float) -> None:
    streams = [s for s, on in (("stdout", stdout), ("stderr", stderr)) if on]
    if not streams and both:
        streams = ["stdout", "stderr"]
    quiet = options_of(ctx.find_root()).quiet
    if follow:
        if len(input_path.split("/")) != 3:
            raise click.UsageError("--follow takes one task: <run_id>/<step_name>/<task_id>")
        if len(streams) != 1:
            raise click.UsageError("--follow shows one stream: add --stdout or --stderr")
    for task in _tasks(ctx.obj.flow_name, input_path):
        task = _at_attempt(task, attempt)
        _header(ctx, "Dumping logs", task)
        if follow:
            _follow(task, streams[0], attempt, timestamps, interval)
            return
        for stream in streams:
            if not quiet:
                click.secho(stream, bold=True, err=True)
            _print_lines(task.loglines(stream), timestamps)


def _at_attempt(task: Any, attempt: Optional[int]) -> Any:
    if attempt is None:
        return task
    from .client import Task

    try:
        return Task(task.pathspec, attempt=attempt, _namespace_check=False)
    except Exception as e:
        raise click.ClickException(str(e)) from None


def _print_lines(lines: Iterator[tuple[Any, str]], timestamps: bool) -> None:
    for when, line in lines:
        if timestamps and when is not None:
            click.secho(when.astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " ", nl=False)
        click.echo(line)


def _follow(task: Any, stream: str, attempt: Optional[int], timestamps: bool, interval: float) -> None:
    """Print the stream's lines as they come, until the task (or the --attempt asked for) has ended.

    Each read is a fresh look through the Client API: a running production task's lines are
    CloudWatch's, its stored log once the attempt ends; lines already printed are skipped.
    A retry starts over with its own attempt's lines."""
    import time

    shown = 0
    while True:
        ended = _ended(task, attempt)
        lines = list(task.loglines(stream))
        _print_lines(iter(lines[shown:]), timestamps)
        shown = max(shown, len(lines))
        if ended:
            return
        time.sleep(interval)
        fresh = _at_attempt(_reread(task), attempt)
        if fresh.current_attempt != task.current_attempt:
            click.secho(f"attempt {fresh.current_attempt}", bold=True, err=True)
            shown = 0
        task = fresh


def _ended(task: Any, attempt: Optional[int]) -> bool:
    """The whole task ended (every retry spent), or the one attempt asked for did."""
    if attempt is None:
        return task._record.status in ("succeeded", "failed")
    rec = task._attempt_record()
    return rec is not None and rec.status in ("succeeded", "failed")


def _reread(task: Any) -> Any:
    from .client import Task

    return Task(task.pathspec, _namespace_check=False)


@logs.command(help="Not supported: logs are kept with the attempt they belong to.",
              context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
def scrub() -> None:
    raise click.ClickException(
        "logs scrub is not supported: flowplane keeps each attempt's logs with its records; delete the run's "
        "folder in the datastore to remove a local run's logs"
    )
