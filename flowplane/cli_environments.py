"""@pypi/@conda on the command line: the flow's environments locked at `run` and `step-functions
create` (and, for `run`, built here) as `--environment` says, before anything runs or deploys."""

from __future__ import annotations

from typing import Any

from .cli_options import options_of


def lock_environments(fctx: Any, ctx: Any, build: bool) -> Any:
    """@pypi/@conda: the flow's environments locked (and, for `run`, built here), before anything
    runs or deploys; a refusal says what and ends the command."""
    import click

    from .environments.resolve import ResolutionError, build_local, lock_flow
    from .environments.uv import UvMissing

    options = options_of(ctx.find_root())
    what = "nothing ran" if build else "nothing was deployed"
    say = (lambda m: None) if options.quiet else (lambda m: click.echo(m, err=True))
    try:
        environments = lock_flow(fctx.graph, options.environment, say)
        if build:
            build_local(environments, say)
    except (ResolutionError, UvMissing) as e:
        raise click.ClickException(f"{e}; {what}") from None
    return environments
