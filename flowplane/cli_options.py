"""The top-level options a Metaflow user passes (`python flow.py --quiet --metadata local run`).

Each is accepted with Metaflow's meaning where flowplane has that meaning, or
refused with a message saying what flowplane does instead: never click's bare
"no such option". The choices are written once here; cli.py attaches them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Optional

# option -> (the values accepted, what to say for any other value)
_ACCEPTED: dict[str, tuple[tuple[str, ...], str]] = {
    "metadata": (
        ("local",),
        "local runs are recorded in the datastore (--metadata local); production runs are recorded by "
        "the control plane: deploy with `step-functions create`, and read both with the Client API "
        "(metadata('service@<url>') or FLOWPLANE_API_URL)",
    ),
    "environment": (
        ("local", "pypi", "conda"),
        "--environment local runs tasks in this Python environment (the image's on Batch); pypi and conda run "
        "each step in an environment locked from its @pypi/@conda decorators",
    ),
    "event-logger": (
        ("nullSidecarLogger",),
        "flowplane has no event-logger sidecars; task events go to EventBridge on Batch and to the "
        "datastore's records locally",
    ),
    "monitor": (
        ("nullSidecarMonitor",),
        "flowplane has no monitor sidecars; use the Client API or the control plane's metrics",
    ),
}


@dataclass(frozen=True)
class TopOptions:
    quiet: bool = False
    environment: str = "local"

    @property
    def isolated(self) -> bool:
        """--environment=pypi|conda: every step runs in a locked environment (Metaflow's meaning)."""
        return self.environment in ("pypi", "conda")


def refusal(option: str, value: str) -> Optional[str]:
    """Why `--option value` is refused, or None when it is accepted."""
    accepted, instead = _ACCEPTED[option]
    if value in accepted:
        return None
    return f"--{option} {value} is not supported: {instead}"


def datastore_root(datastore: Optional[str], root: Optional[str], current_root: str) -> Optional[str]:
    """The datastore root `--datastore` / `--datastore-root` ask for (None: unchanged), or ValueError."""
    if datastore not in (None, "local", "s3"):
        raise ValueError(
            f"--datastore {datastore} is not supported: the datastore is 'local' (a folder) or 's3' "
            "(FLOWPLANE_DATASTORE_ROOT=s3://bucket/prefix, or --datastore-root)"
        )
    chosen = root or current_root
    if datastore == "s3" and not chosen.startswith("s3://"):
        raise ValueError(
            "--datastore s3 needs an s3:// root: set FLOWPLANE_DATASTORE_ROOT=s3://bucket/prefix or pass "
            "--datastore-root s3://bucket/prefix"
        )
    if datastore == "local" and chosen.startswith("s3://"):
        raise ValueError(f"--datastore local with the S3 root {chosen}: pass --datastore-root PATH or --datastore s3")
    return root


def attach(group: Callable[..., Any]) -> Callable[..., Any]:
    """The options, on the flow's click group (applied as decorators are)."""
    import click

    def choice_check(option: str) -> Callable[[Any, Any, Optional[str]], Optional[str]]:
        def check(ctx: Any, param: Any, value: Optional[str]) -> Optional[str]:
            if value is not None:
                why = refusal(option, value)
                if why is not None:
                    raise click.BadParameter(why, ctx=ctx, param=param)
            return value

        return check

    options = [
        click.option("--quiet/--not-quiet", default=False, help="Leave out the runtime's own messages."),
        click.option(
            "--pylint/--no-pylint", default=True,
            help="Accepted for Metaflow: flowplane runs no pylint; its own lint (`check`) always runs.",
        ),
        click.option("--datastore", default=None, help="local or s3 (the root's kind must match)."),
        click.option("--datastore-root", default=None, help="Where artifacts and records go (FLOWPLANE_DATASTORE_ROOT)."),
        *(
            click.option(f"--{name}", default=None, callback=choice_check(name), help=f"Accepted: {', '.join(accepted)}.")
            for name, (accepted, _) in _ACCEPTED.items()
        ),
    ]
    for option in reversed(options):
        group = option(group)
    return group


def apply(
    ctx: Any, quiet: bool, datastore: Optional[str], datastore_root_value: Optional[str], environment: Optional[str] = None
) -> TopOptions:
    """Act on the options for the command that follows; kept in ctx.meta for it."""
    import click

    from .datastore.storage import default_root

    try:
        root = datastore_root(datastore, datastore_root_value, default_root())
    except ValueError as e:
        raise click.UsageError(str(e), ctx=ctx) from None
    if root is not None:
        # Every part (the runtime, its tasks, the Client API) reads the root from here.
        os.environ["FLOWPLANE_DATASTORE_ROOT"] = root
    opts = TopOptions(quiet=quiet, environment=environment or "local")
    ctx.meta["flowplane.options"] = opts
    return opts


def options_of(ctx: Any) -> TopOptions:
    return ctx.meta.get("flowplane.options") or TopOptions()
