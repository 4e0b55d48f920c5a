"""Command lines: a flow's own (`python flow.py run|show|check|step-functions`) and `flowplane`.

click is imported only when a flow's command line is built: `flowplane task`,
which every task runs, parses its few options with argparse and stays lean.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import sys
from typing import Any, Callable, Optional

from . import cli_options
from .cli_preflight import lint_errors, lint_or_exit, resolve_parameters

# --- `flowplane` (the console script) --------------------------------------------


def _task(argv: list[str]) -> int:
    from .task.command import main as task_main

    return task_main(argv)


def _local(argv: list[str]) -> int:
    from .local.cli import main as local_main

    return local_main(argv)


def _event(argv: list[str]) -> int:
    from .event_cli import main as event_main

    return event_main(argv)


def _ui(argv: list[str]) -> int:
    from .ui.cli import main as ui_main

    return ui_main(argv)


# name -> (entry taking the remaining arguments and returning an exit code, one-line help)
COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "task": (_task, "run one attempt of one task of a flow (what `run` and AWS Batch start)"),
    "local": (_local, "run the control plane on this machine, on an embedded AWS (moto)"),
    "event": (_event, "publish an event that starts the flows triggered by it (`event publish NAME`)"),
    "ui": (_ui, "a read-only dashboard of flows and runs in the browser, on 127.0.0.1"),
}


def _usage() -> str:
    width = max(len(n) for n in COMMANDS)
    lines = [f"  {name:<{width}}  {help_}" for name, (_, help_) in sorted(COMMANDS.items())]
    return "usage: flowplane COMMAND [ARGS]...\n\ncommands:\n" + "\n".join(lines) + "\n"


def main(argv: Optional[list[str]] = None) -> int:
    """The `flowplane` console script (and `python -m flowplane`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(_usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from . import __version__

        print(f"flowplane {__version__}")
        return 0
    entry = COMMANDS.get(argv[0])
    if entry is None:
        sys.stderr.write(f"flowplane: unknown command {argv[0]!r}\n\n" + _usage())
        return 2
    return entry[0](argv[1:])


# --- a flow's command line -----------------------------------------------------------

# Commands another module provides, imported only when used.
LAZY_COMMANDS = {
    "step-functions": ("flowplane.sfn_group", "step_functions"),
    "card": ("flowplane.cards.cli", "card"),
    "dump": ("flowplane.cli_inspect", "dump"),
    "logs": ("flowplane.cli_inspect", "logs"),
    "tag": ("flowplane.cli_tag", "tag"),
    "resume": ("flowplane.cli_resume", "resume"),
}
RUN_OPTIONS = ("max-workers", "max-num-splits", "tag", "run-id-file")


def run_flow_cli(flow_cls: type, argv: list[str]) -> None:
    """`FlowSpec.__init__` calls this: run the command line of `flow_cls` and exit."""
    from .task.loader import importing_flow

    if importing_flow():
        # A flow file that calls MyFlow() without `if __name__ == "__main__"`, being
        # imported by a task: running its command line again would start another run.
        return
    group = build_flow_cli(flow_cls)
    prog = os.path.basename(argv[0]) if argv else flow_cls.__name__
    group.main(args=list(argv[1:]), prog_name=prog)


def build_flow_cli(flow_cls: type) -> Any:
    """The click group for one flow class: --with, run, show, check, step-functions."""
    import click

    from .context import FlowContext
    from .graph import FlowSourceError

    try:
        base = FlowContext.for_class(flow_cls)
    except (FlowSourceError, OSError, TypeError) as e:
        raise click.ClickException(f"cannot read the flow {flow_cls.__name__}: {e}") from None

    class FlowGroup(click.Group):
        def list_commands(self, ctx: click.Context) -> list[str]:
            return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

        def get_command(self, ctx: click.Context, name: str) -> Optional[click.Command]:
            if name in LAZY_COMMANDS:
                return _lazy_command(name, *LAZY_COMMANDS[name])
            return super().get_command(ctx, name)

    @click.group(cls=FlowGroup, help=_flow_help(base))
    @cli_options.attach
    @click.option(
        "--with",
        "with_specs",
        multiple=True,
        metavar="DECORATOR",
        callback=_parse_with,
        help="Attach a step decorator to every step without one, e.g. --with retry or --with retry:times=2.",
    )
    @click.option(
        "--config", "config_files", multiple=True, type=(str, str), metavar="NAME PATH",
        help="Read the Config NAME from the JSON file PATH (instead of its default).",
    )
    @click.option(
        "--config-value", "config_values", multiple=True, type=(str, str), metavar="NAME JSON",
        help="Give the Config NAME as JSON text.",
    )
    @click.option(
        "--branch", default=None, metavar="NAME",
        help="@project: run or deploy the branch test.NAME (prod.NAME with --production); "
        "the default is user.<your name>.",
    )
    @click.option("--production", is_flag=True, default=False,
                  help="@project: run or deploy the production branch (prod, or prod.NAME with --branch).")
    @click.pass_context
    def cli(ctx: click.Context, with_specs: list[Any], config_files: Any, config_values: Any, quiet: bool,
            datastore: Optional[str], datastore_root: Optional[str], branch: Optional[str], production: bool,
            **accepted: Any) -> None:
        # --pylint, --metadata, --environment, --event-logger, --monitor: checked by their callbacks.
        cli_options.apply(ctx, quiet, datastore, datastore_root, accepted.get("environment"))
        fctx = _with_configs(base, list(with_specs), config_files, config_values)
        # The branch is resolved by the command that needs it, after its lint.
        ctx.obj = dataclasses.replace(fctx, branch_option=branch, production_option=production)

    cli.add_command(_run_command(base))
    cli.add_command(_show_command())
    cli.add_command(_check_command())
    return cli


def _with_configs(base: Any, with_specs: list[Any], files: Any, values: Any) -> Any:
    """The flow's context with its Config values read here, before any command runs or deploys."""
    import click

    from .config import ConfigError, iter_sources, resolve_configs
    from .datastore.storage import default_root
    from .parameters import DeployTimeContext

    objects = base.config_objects()
    if not objects and not files and not values:
        return dataclasses.replace(base, with_decorators=with_specs, configs={})
    given = dict(iter_sources(files, values))
    root = default_root()

    def context(name: str) -> DeployTimeContext:
        return DeployTimeContext(
            flow_name=base.flow_name, parameter_name=name, user_name=base.user,
            logger=lambda m: click.echo(m, err=True),
            ds_type="s3" if root.startswith("s3://") else "local", ds_root=root,
        )

    try:
        configs = resolve_configs(objects, given, context)
    except ConfigError as e:
        raise click.ClickException(f"{e}; nothing ran or deployed") from None
    from .context import FlowContext

    return FlowContext.for_class(base.flow_cls, with_specs, configs)


def _flow_help(ctx: Any) -> str:
    doc = (ctx.source.graph.doc or "").strip()
    return f"{ctx.flow_name}: {doc}" if doc else f"Commands of the flow {ctx.flow_name}."


def _parse_with(ctx: Any, param: Any, values: tuple[str, ...]) -> list[Any]:
    import click

    from .decorators import DecoratorArgumentError, parse_with_option

    try:
        return [parse_with_option(v) for v in values]
    except DecoratorArgumentError as e:
        raise click.BadParameter(str(e), ctx=ctx, param=param) from None


def _lazy_command(name: str, module: str, attr: str) -> Any:
    import click

    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        reason = f"{type(e).__name__}: {e}"

    @click.command(
        name=name,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
        help=f"(not available: {reason})",
    )
    def unavailable() -> None:
        raise click.ClickException(f"{name} is not available in this installation ({reason})")

    return unavailable


# --- run ---------------------------------------------------------------------------


def _param_type(p: Any) -> Any:
    import click

    from .parameters import ParameterError, convert

    if p.type_name == "include":
        return click.Path(dir_okay=False)  # read (and checked) once every value is known

    class FlowParameterType(click.ParamType):
        name = {"json": "JSON", "str": "TEXT", "int": "INTEGER", "float": "FLOAT", "bool": "BOOLEAN"}[p.type_name]

        def convert(self, value: Any, param: Any, ctx: Any) -> Any:
            try:
                return convert(p.type_name, value, p.name)
            except ParameterError:
                self.fail(f"{value!r} is not a valid {p.type_name}", param, ctx)

    return FlowParameterType()


def _param_option(p: Any, dest: str) -> Any:
    import click

    if p.type_name == "include" and isinstance(p.default, str):
        shown: Any = p.default
    elif p.is_deploy_time:
        shown = "computed when the run starts"
    elif p.has_default:
        shown = json.dumps(p.default) if p.type_name == "json" else str(p.default)
    else:
        shown = False
    return click.Option(
        [f"--{p.name}", dest],
        type=_param_type(p),
        default=None,
        # Metaflow's click reads METAFLOW_RUN_<NAME> (auto_envvar_prefix); ours has a twin.
        # The command line wins over either, and FLOWPLANE_RUN_ over METAFLOW_RUN_.
        envvar=run_envvars(p.name),
        show_envvar=True,
        required=p.required and not p.has_default,
        help=p.help or f"Parameter {p.name}.",
        show_default=shown,
    )


def run_envvars(name: str) -> list[str]:
    """The environment variables that give a parameter's value to `run`, in precedence order."""
    suffix = name.upper().replace("-", "_")
    return [f"FLOWPLANE_RUN_{suffix}", f"METAFLOW_RUN_{suffix}"]


def _run_command(base: Any) -> Any:
    import click

    from .runtime.local import MAX_NUM_SPLITS

    params = base.parameters()
    dests = {f"param_{i}": p for i, p in enumerate(params)}
    clash = [p.name for p in params if p.name.replace("_", "-") in RUN_OPTIONS]

    def run(max_workers: int, max_num_splits: int, tag: tuple[str, ...], run_id_file: Optional[str],
            **values: Any) -> None:
        ctx = click.get_current_context()
        fctx = ctx.obj
        if clash:
            raise click.UsageError(f"parameter {clash[0]!r} has the name of a `run` option; rename the parameter")
        lint_or_exit(fctx)
        from .projects import ProjectError

        try:
            fctx.project()  # checked before anything runs; the runtime reads it again
        except ProjectError as e:
            raise click.UsageError(f"{e}; nothing ran") from None

        quiet = cli_options.options_of(ctx.find_root()).quiet
        from .cli_environments import lock_environments

        environments = lock_environments(fctx, ctx, build=True)

        from .datastore.storage import default_root

        root = default_root()
        resolved = resolve_parameters(fctx, {p.name: values.get(dest) for dest, p in dests.items()}, root)
        resolved = _include_files(fctx, list(dests.values()), resolved, root)
        from .runtime import Progress, RunRefused, run_local

        try:
            code = run_local(
                fctx, resolved, max_workers=max_workers, tags=list(tag), run_id_file=run_id_file, root=root,
                max_num_splits=max_num_splits, progress=Progress(quiet=quiet), environments=environments,
            )
        except RunRefused as e:
            raise click.ClickException(str(e)) from None
        ctx.exit(code)

    options = [
        click.Option(
            ["--max-workers"], type=click.IntRange(min=1), default=16, show_default=True,
            help="Run at most this many tasks at once.",
        ),
        click.Option(
            ["--max-num-splits"], type=click.IntRange(min=1), default=MAX_NUM_SPLITS, show_default=True,
            help="Fail a foreach that fans out to more tasks than this (a guard against mistakes, as Metaflow's).",
        ),
        click.Option(["--tag"], multiple=True, help="Add a tag to the run (repeatable)."),
        click.Option(
            ["--run-id-file"], type=click.Path(dir_okay=False), default=None,
            help="Write the run id to this file as soon as the run starts.",
        ),
        *(_param_option(p, dest) for dest, p in dests.items() if p.name not in clash),
    ]
    return click.Command("run", callback=run, params=options, help="Run the flow on this machine, each task in its own process.")


def _include_files(fctx: Any, params: list[Any], values: dict[str, Any], root: str) -> dict[str, Any]:
    """Read every IncludeFile's file into the run's datastore before anything runs."""
    import click

    from .datastore.includes import IncludeError, store_include
    from .datastore.storage import storage_for
    from .includefile import include_values

    storage = storage_for(root)
    try:
        return include_values(params, values, lambda d, data: store_include(storage, fctx.flow_name, d, data))
    except IncludeError as e:
        raise click.ClickException(f"{e}; nothing ran") from None


# --- show and check ---------------------------------------------------------------------


def _show_command() -> Any:
    import click

    @click.command(help="Print the flow's steps, their docstrings and transitions.")
    @click.pass_obj
    def show(fctx: Any) -> None:
        click.echo(render_graph(fctx.graph))

    return show


def render_graph(graph: Any) -> str:
    """The graph as Metaflow's `show` prints it."""
    out = []
    if graph.doc:
        out.append(graph.doc.strip())
    for node in graph.sorted_steps():
        out.append("")
        out.append(f"Step {node.name}")
        out.append("    " + (node.doc.strip().replace("\n", "\n    ") if node.doc else "?"))
        decorators = [f"@{d.kind}" for d in node.decorators]
        if decorators:
            out.append("    " + " ".join(decorators))
        if node.type != "end":
            targets = ", ".join(node.out_funcs)
            if node.type == "foreach":
                targets += f" (foreach {node.foreach_param})"
            out.append(f"    => {targets}")
    out.append("")
    return "\n".join(out)


def _check_command() -> Any:
    import click

    @click.command(help="Lint the flow; exit non-zero listing every error.")
    @click.pass_obj
    def check(fctx: Any) -> None:
        errors = lint_errors(fctx)
        if errors is None:
            raise click.ClickException("lint is not available in this installation")
        if errors:
            click.echo(f"{fctx.flow_name} has {len(errors)} error(s):", err=True)
            for e in errors:
                click.echo(f"    {e}", err=True)
            click.get_current_context().exit(1)
        click.echo(f"Validating {fctx.flow_name}...\n    The graph looks good!")

    return check
