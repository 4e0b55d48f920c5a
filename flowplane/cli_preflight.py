"""What a command that runs the flow checks and computes before anything runs: lint, parameters.

Shared by `run` (cli.py) and `resume` (cli_resume.py).
"""

from __future__ import annotations

from typing import Any, Optional


def resolve_parameters(fctx: Any, given: dict[str, Any], root: str) -> dict[str, Any]:
    """Every parameter's value: the one given (not None), else its default, computed here."""
    import click

    from .parameters import DeployTimeContext, ParameterError

    resolved: dict[str, Any] = {}
    for p in fctx.parameters():
        value = given.get(p.name)
        if value is None and p.has_default:
            dctx = DeployTimeContext(
                flow_name=fctx.flow_name, parameter_name=p.name, user_name=fctx.user,
                logger=lambda m: click.echo(m, err=True),
                ds_type="s3" if root.startswith("s3://") else "local", ds_root=root,
            )
            try:
                value = p.resolve_default(dctx)
            except ParameterError as e:
                raise click.ClickException(str(e)) from None
        resolved[p.name] = value
    return resolved


def lint_errors(fctx: Any) -> Optional[list[Any]]:
    """Lint's errors, or None when lint is not installed in this tree yet."""
    try:
        from .lint import lint
    except ImportError:
        return None
    return lint(fctx.source)


def lint_or_exit(fctx: Any) -> None:
    import click

    errors = lint_errors(fctx)
    if errors:
        lines = "\n".join(f"    {e}" for e in errors)
        click.echo(f"{fctx.flow_name} has {len(errors)} error(s); nothing ran:\n{lines}", err=True)
        click.get_current_context().exit(1)
