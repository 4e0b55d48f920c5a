"""`python flow.py tag add|remove|replace|list --run-id R ...`, as Metaflow's tag commands.

The change itself is Run.add_tags / remove_tags / replace_tags (client/tagging.py
holds the rules: system tags cannot be removed, every tag checked first); this
module parses the command line and prints the run's tags afterwards, user tags
marked with `*` as Metaflow prints them bold.
"""

from __future__ import annotations

from typing import Any, Optional

import click

from .cli_options import options_of


def _run(ctx: click.Context, run_id: Optional[str], user_namespace: Optional[str]) -> Any:
    from .client import Flow, NamespaceMismatch, NotFound, Run, namespace
    from .context import username

    flow = ctx.obj.flow_name
    chosen = f"user:{username()}" if user_namespace is None else user_namespace
    namespace(chosen or None)
    try:
        latest = Flow(flow).latest_run
    except NamespaceMismatch:
        raise click.ClickException(
            f"No run found for {flow} in namespace {chosen}. You can switch the namespace using --namespace"
        ) from None
    except NotFound:
        raise click.ClickException(f"No run found for {flow}. Please run the flow before tagging.") from None
    if run_id is None:
        raise click.ClickException(
            f"Please specify a run-id using --run-id.\n{flow}'s latest run in namespace {chosen} has id "
            f"{latest.id if latest else '(none)'}."
        )
    try:
        return Run(f"{flow}/{run_id}")
    except (NotFound, NamespaceMismatch) as e:
        raise click.ClickException(str(e)) from None


def _show(ctx: click.Context, run: Any) -> None:
    if options_of(ctx.find_root()).quiet:
        click.echo(" ; ".join([run.pathspec, ",".join(sorted(run.system_tags)), ",".join(sorted(run.user_tags))]))
        return
    click.echo("Operation successful. New tags:", err=True)
    click.echo("\nSystem tags and *tags*; only *tags* can be modified")
    click.echo("--------------------------------------------------------\n")
    click.echo(_tag_line(run))


def _tag_line(run: Any) -> str:
    return "    ".join(sorted(run.system_tags) + [f"*{t}*" for t in sorted(run.user_tags)])


def _change(ctx: click.Context, run_id: Optional[str], user_namespace: Optional[str], remove: list[str],
            add: list[str]) -> None:
    from .client import TaggingError

    run = _run(ctx, run_id, user_namespace)
    try:
        run.replace_tags(remove, add)
    except TaggingError as e:
        raise click.ClickException(str(e)) from None
    _show(ctx, run)


_RUN_ID = click.option("--run-id", default=None, type=str, help="Run ID of the specific run to tag. [required]")
_NAMESPACE = click.option("--namespace", "user_namespace", default=None, type=str,
                          help="Change namespace from the default (your username) to the one specified.")


@click.group(help="Commands related to tagging runs.")
def tag() -> None:
    pass


@tag.command("add", help="Add tags to a run.")
@_RUN_ID
@_NAMESPACE
@click.argument("tags", required=True, type=str, nargs=-1)
@click.pass_context
def add(ctx: click.Context, run_id: Optional[str], user_namespace: Optional[str], tags: tuple[str, ...]) -> None:
    _change(ctx, run_id, user_namespace, [], list(tags))


@tag.command("remove", help="Remove tags from a run.")
@_RUN_ID
@_NAMESPACE
@click.argument("tags", required=True, type=str, nargs=-1)
@click.pass_context
def remove(ctx: click.Context, run_id: Optional[str], user_namespace: Optional[str], tags: tuple[str, ...]) -> None:
    _change(ctx, run_id, user_namespace, list(tags), [])


@tag.command("replace", help="Replace one or more tags of a run atomically. Removals are applied first, then additions.")
@_RUN_ID
@_NAMESPACE
@click.option("--add", "tags_to_add", multiple=True, help="Add this tag to a run.")
@click.option("--remove", "tags_to_remove", multiple=True, help="Remove this tag from a run.")
@click.pass_context
def replace(ctx: click.Context, run_id: Optional[str], user_namespace: Optional[str], tags_to_add: tuple[str, ...],
            tags_to_remove: tuple[str, ...]) -> None:
    if not tags_to_add and not tags_to_remove:
        raise click.ClickException("Specify at least one tag to add (--add) and one tag to remove (--remove)")
    if not tags_to_remove:
        raise click.ClickException("Specify at least one tag to remove; else please use tag add.")
    if not tags_to_add:
        raise click.ClickException("Specify at least one tag to add, else please use tag remove.")
    _change(ctx, run_id, user_namespace, list(tags_to_remove), list(tags_to_add))


@tag.command("list", help="List the tags of a run.")
@_RUN_ID
@_NAMESPACE
@click.pass_context
def list_(ctx: click.Context, run_id: Optional[str], user_namespace: Optional[str]) -> None:
    click.echo(_tag_line(_run(ctx, run_id, user_namespace)))
