"""`python flow.py step-functions ...`: deploy a flow to the control plane and drive its runs.

The flow CLI mounts the `step_functions` group with a `FlowContext` as
`ctx.obj`. The control plane does the compiling; this side evaluates the
deploy-time parameters, builds the manifest and the package, uploads them and
follows the deployment.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Optional

import click
from pydantic import ValidationError

from .api_client import ApiClient, ApiError
from .context import FlowContext
from .datastore.records import is_production_run_id, production_run_id
from .manifest import DeployOptions
from .package import PackageError, manifest_for, package_flow
from .projects import ProjectError
from .user_config import ConfigError

TOKEN_PREFIX = "production:"
TOKENS_DIR = os.path.join("~", ".flowplane", "tokens")
# ctx.meta key a caller (the flow CLI, a test) can set to choose the client.
API_CLIENT_KEY = "flowplane.api_client"
_STATUS_FLAGS = {
    "running": "RUNNING",
    "succeeded": "SUCCEEDED",
    "failed": "FAILED",
    "timed_out": "TIMED_OUT",
    "aborted": "ABORTED",
}


# --- plumbing -------------------------------------------------------------------------


def _flow(ctx: click.Context) -> FlowContext:
    flow = ctx.find_object(FlowContext)
    if flow is None:
        raise click.UsageError("step-functions must run inside a flow: python flow.py step-functions ...")
    return flow


def _client(ctx: click.Context) -> ApiClient:
    client = ctx.meta.get(API_CLIENT_KEY)
    if client is None:
        client = ctx.meta[API_CLIENT_KEY] = ApiClient()
    return client


def _name(ctx: click.Context, override: Optional[str] = None) -> str:
    """The deployment: `--name`, `<project>.<branch>.<Flow>` under @project, else the flow's name."""
    try:
        return _flow(ctx).deployment_name(override or ctx.meta.get("flowplane.sfn_name"))
    except ProjectError as e:
        raise click.UsageError(f"{e}; nothing was changed") from None


def _fail(e: Exception) -> click.ClickException:
    if isinstance(e, ApiError):
        return click.ClickException(e.describe())
    return click.ClickException(str(e))


def _console() -> Any:
    from rich.console import Console

    # Bound at call time so it writes wherever click's stdout is now.
    return Console(file=click.get_text_stream("stdout"), highlight=False, soft_wrap=True)


def _token_path(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    return os.path.join(os.path.expanduser(TOKENS_DIR), safe)


def load_token(name: str) -> Optional[str]:
    """The token this machine last deployed `name` with, as Metaflow keeps it."""
    try:
        with open(_token_path(name), encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None


def store_token(name: str, token: str) -> None:
    path = _token_path(name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(token)


# --- the group ------------------------------------------------------------------------


@click.group(name="step-functions", help="Deploy this flow to AWS Step Functions and manage its production runs.")
@click.option("--name", default=None, help="The state machine's name (the flow's name by default).")
@click.pass_context
def step_functions(ctx: click.Context, name: Optional[str]) -> None:
    _flow(ctx)
    if name:
        ctx.meta["flowplane.sfn_name"] = name


@step_functions.command(help="Deploy a new version of this flow to AWS Step Functions.")
@click.option("--max-workers", type=click.IntRange(1, 10000), default=100, show_default=True,
              help="How many foreach tasks may run at once.")
@click.option("--only-json", is_flag=True, help="Print the state machine the control plane would deploy; change nothing.")
@click.option("--authorize", default=None, help="The production token of the current deployment (another user's).")
@click.option("--new-token", is_flag=True, help="Start a new production namespace.")
@click.option("--allow-trigger-loop", is_flag=True,
              help="Deploy even if @trigger_on_finish closes a loop of flows starting each other (warned).")
@click.option("--tag", "tags", multiple=True, help="Tag every production run (repeatable).")
@click.option("--name", "name_option", default=None, help="The state machine's name (the flow's name by default).")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until the deployment is done.")
@click.option("--timeout", type=float, default=600, show_default=True, help="Seconds to wait for the deployment.")
@click.option("--notify-on-error", is_flag=True, help="Notify when a production run fails or times out.")
@click.option("--notify-on-success", is_flag=True, help="Notify when a production run succeeds.")
@click.option("--notify-slack-webhook-url", default=None, help="A Slack incoming webhook (stored as a secret).")
@click.option("--notify-sns-topic", default=None, help="An SNS topic ARN to publish notifications to.")
@click.pass_context
def create(
    ctx: click.Context,
    max_workers: int,
    only_json: bool,
    authorize: Optional[str],
    new_token: bool,
    allow_trigger_loop: bool,
    tags: tuple[str, ...],
    name_option: Optional[str],
    wait: bool,
    timeout: float,
    notify_on_error: bool,
    notify_on_success: bool,
    notify_slack_webhook_url: Optional[str],
    notify_sns_topic: Optional[str],
) -> None:
    flow = _flow(ctx)
    client = _client(ctx)
    notify = _notify_options(notify_on_error, notify_on_success, notify_slack_webhook_url, notify_sns_topic)
    if notify is not None and (only_json or not wait):
        raise click.UsageError("--notify-* options are set once the deployment is done: not with --only-json or --no-wait")
    _lint(flow)
    name = _name(ctx, name_option)
    explicit_name = name_option or ctx.meta.get("flowplane.sfn_name")
    project = flow.project()
    if authorize is None and not only_json:
        authorize = load_token(name)
    try:
        options = DeployOptions(
            max_workers=max_workers, tags=list(tags), name=explicit_name, authorize=authorize, new_token=new_token,
            allow_trigger_loop=allow_trigger_loop, branch=project.branch if project else None,
        )
    except ValidationError as e:
        # The control plane's own limits (flowplane/limits.py), said before anything is packaged.
        err = e.errors()[0]
        option = {"tags": "--tag", "max_workers": "--max-workers"}.get(str(err["loc"][0]), str(err["loc"][0]))
        raise click.UsageError(f"{option}: {err['msg'].removeprefix('Value error, ')}") from None
    from .cli_environments import lock_environments

    # @pypi/@conda: resolved here, once; the locks travel in the manifest.
    environments = lock_environments(flow, ctx, build=False)
    try:
        # Deploy-time parameters are evaluated here, once; included files go to the stage's datastore.
        manifest = manifest_for(
            flow, options, include=None if only_json else _include_sink(ctx, flow), environments=environments
        )
        package = package_flow(flow, manifest)
    except PackageError as e:
        raise click.ClickException(f"{e}; nothing was deployed") from None
    except (ApiError, ConfigError) as e:
        raise _fail(e) from None
    try:
        if only_json:
            answer = client.compile(package)
            click.echo(json.dumps(answer["state_machine"], indent=2))
            return
        console = _console()
        if project is not None:
            console.print(f"Project: [bold]{project.name}[/bold], Branch: [bold]{project.branch}[/bold]")
        console.print(f"Deploying [bold]{name}[/bold] to AWS Step Functions...")
        answer = client.upload_package(package, manifest)
        deployment_id = answer["deployment_id"]
        for warning in answer.get("warnings") or []:
            console.print(f"[yellow]Warning:[/yellow] {warning}")
        console.print(f"Package {package.sha256[:12]} ({package.size} bytes) uploaded; deployment {deployment_id}.")
        if not wait:
            console.print(f"Follow it with GET /deployments/{deployment_id}.")
            return
        record = _follow(console, client, deployment_id, timeout)
    except (ApiError, ConfigError, TimeoutError) as e:
        raise _fail(e) from None
    if record["status"] == "FAILED":
        raise click.ClickException(_describe_failure(record))
    store_token(name, record["production_token"])
    _print_deployed(console, flow, name, record)
    if notify is not None or _had_notifications(client, name):
        # As Argo's template: a deploy without --notify-* turns notifications off.
        body = {**(notify or {}), "user": flow.user, "authorize": authorize or record["production_token"]}
        try:
            answer = client.put_notifications(name, body)
        except (ApiError, ConfigError) as e:
            raise click.ClickException(f"deployed, but the notifications were not set: {_fail(e).message}") from None
        _print_notifications(console, answer)


def _notify_options(on_error: bool, on_success: bool, webhook: Optional[str], topic: Optional[str]) -> Optional[dict[str, Any]]:
    """The --notify-* flags as the control plane takes them; None when none is given. Checked
    before anything deploys (the control plane checks them again)."""
    if not (on_error or on_success or webhook or topic):
        return None
    if not (on_error or on_success):
        raise click.UsageError("--notify-slack-webhook-url/--notify-sns-topic need --notify-on-error and/or --notify-on-success")
    if not (webhook or topic):
        raise click.UsageError("--notify-on-error/--notify-on-success need --notify-slack-webhook-url or --notify-sns-topic")
    return {"on_error": on_error, "on_success": on_success, "slack_webhook_url": webhook, "sns_topic": topic}


def _had_notifications(client: ApiClient, name: str) -> bool:
    try:
        answer = client.notifications(name)
    except ApiError:
        return False
    return bool(answer.get("on_error") or answer.get("on_success"))


def _print_notifications(console: Any, answer: dict[str, Any]) -> None:
    when = [w for w, on in (("fails", answer["on_error"]), ("succeeds", answer["on_success"])) if on]
    if not when:
        console.print("Notifications: off.")
        return
    where = [w for w in ("Slack" if answer.get("slack_webhook") else None, answer.get("sns_topic")) if w]
    console.print(f"Notifications: when a production run {' or '.join(when)}, to {' and '.join(where)}.", markup=False)


def _include_sink(ctx: click.Context, flow: FlowContext) -> Any:
    """Where an IncludeFile's bytes go: the control plane's datastore, under the flow's class name."""
    client = _client(ctx)
    return lambda descriptor, data: client.put_include(flow.flow_name, descriptor.sha256, data)


def _lint(flow: FlowContext) -> None:
    from .lint import lint

    errors = lint(flow.source)
    if errors:
        lines = "\n".join(f"  {e}" for e in errors)
        raise click.ClickException(f"{flow.flow_name} has lint errors; nothing was deployed:\n{lines}")


def _follow(console: Any, client: ApiClient, deployment_id: str, timeout: float) -> dict[str, Any]:
    with console.status("Waiting for the control plane...") as status:

        def progress(record: dict[str, Any]) -> None:
            status.update(f"Deployment {deployment_id}: {record.get('status')} ({record.get('stage', '')})")

        return client.wait_for_deployment(deployment_id, timeout=timeout, on_progress=progress)


def _describe_failure(record: dict[str, Any]) -> str:
    error = record.get("error") or {}
    where = [f"{k} {error[k]}" for k in ("stage", "step", "field", "line") if error.get(k) not in (None, "")]
    text = f"deployment {record.get('deployment_id')} FAILED: {error.get('error', 'unknown error')}"
    if where:
        text += f" ({', '.join(where)})"
    for problem in error.get("problems") or []:
        text += f"\n  line {problem.get('line')}: {problem.get('message')}"
    return text + "\nThe previous production version, if any, is still the one running."


def _print_deployed(console: Any, flow: FlowContext, name: str, record: dict[str, Any]) -> None:
    token = record["production_token"]
    echo = console.print
    if record.get("version") == 1:
        echo(f"It seems this is the first time you are deploying [bold]{name}[/bold] to AWS Step Functions.")
    if record.get("token_minted"):
        echo("A new production token generated.")
    echo("")
    echo("The namespace of this production flow is")
    echo(f"    [green]{TOKEN_PREFIX}{token}[/green]")
    echo("To analyze results of this production flow add this line in your notebooks:")
    echo(f'    [green]namespace("{TOKEN_PREFIX}{token}")[/green]')
    echo("If you want to authorize other people to deploy new versions of this flow to AWS Step Functions, they need to call")
    echo(f"    [green]step-functions create --authorize {token}[/green]")
    echo("when deploying this flow to AWS Step Functions for the first time.")
    echo('See "Organizing Results" at https://docs.metaflow.org/ for more information about production tokens.')
    echo("")
    echo(
        f"State Machine [bold]{name}[/bold] for flow [bold]{flow.flow_name}[/bold] pushed to AWS Step Functions "
        f"successfully (version {record.get('version')})."
    )
    echo("")
    echo("What will trigger execution of the workflow:")
    graph = flow.graph
    said = False
    if graph.schedule is not None and graph.schedule.expression is not None:
        zone = graph.schedule.timezone or "UTC"
        echo(f"    This workflow triggers automatically via {graph.schedule.expression} ({zone}).")
        said = True
    for what, names, spec in (
        ("the event(s)", [e.name for e in graph.trigger.events] if graph.trigger else [], graph.trigger),
        ("a successful production run of", [f.qualified for f in graph.trigger_on_finish.within(flow.project()).flows]
         if graph.trigger_on_finish else [], graph.trigger_on_finish),
    ):
        if spec is not None:
            joined = (" or " if spec.any or len(names) == 1 else " and ").join(names)
            when = "each of" if spec.any and len(names) > 1 else "once each of" if len(names) > 1 else "on"
            echo(f"    This workflow triggers automatically {when} {what} {joined}"
                 + (" (publish: flowplane event publish NAME)." if what == "the event(s)" else "."))
            said = True
    if not said:
        echo("    No triggers defined. You need to launch this workflow manually.")


# --- trigger ------------------------------------------------------------------------


class _WithFlowParameters(click.Command):
    """A command that takes one `--<name>` option per parameter of the flow in ctx.obj."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        flow = ctx.find_object(FlowContext)
        if flow is None:
            return params
        taken = {opt for p in params for opt in getattr(p, "opts", [])}
        extra = []
        for i, spec in enumerate(flow.source.parameters):
            flag = f"--{spec.name}"
            if flag in taken:
                continue
            help_text = (spec.help or "") + f" [{spec.type}]"
            extra.append(click.Option([flag, f"fp_param_{i}"], default=None, help=help_text.strip()))
        # --help stays last, as click puts it.
        return params[:-1] + extra + params[-1:] if params and params[-1].name == "help" else params + extra


@step_functions.command(cls=_WithFlowParameters, help="Start a production run with the given parameters.")
@click.option("--run-id-file", default=None, type=click.Path(dir_okay=False, writable=True),
              help="Write the run id to this file.")
@click.pass_context
def trigger(ctx: click.Context, run_id_file: Optional[str], **values: Any) -> None:
    flow = _flow(ctx)
    name = _name(ctx)
    given = {}
    for key, value in values.items():
        if key.startswith("fp_param_") and value is not None:
            given[flow.source.parameters[int(key[len("fp_param_"):])].name] = value
    from .datastore.includes import IncludeError
    from .includefile import include_values

    try:
        # `--<include> PATH`: the file is read and uploaded here, and the run gets its descriptor.
        given = include_values(flow.parameters(), given, _include_sink(ctx, flow))
        answer = _client(ctx).trigger(name, given)
    except IncludeError as e:
        raise click.ClickException(f"{e}; nothing was triggered") from None
    except (ApiError, ConfigError) as e:
        raise _fail(e) from None
    run_id = answer["run_id"]
    if run_id_file:
        with open(run_id_file, "w", encoding="utf-8") as f:
            f.write(run_id)
    click.echo(f"Workflow {name} triggered on AWS Step Functions (run-id {run_id}).")
    click.echo(run_id)


# --- list-runs, delete, terminate ----------------------------------------------------------


@step_functions.command(name="list-runs", help="List production runs, newest first.")
@click.option("--running", is_flag=True, help="Only running runs.")
@click.option("--succeeded", is_flag=True, help="Only succeeded runs.")
@click.option("--failed", is_flag=True, help="Only failed runs.")
@click.option("--timed-out", is_flag=True, help="Only timed-out runs.")
@click.option("--aborted", is_flag=True, help="Only terminated runs.")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.pass_context
def list_runs(ctx: click.Context, limit: int, **flags: bool) -> None:
    name = _name(ctx)
    client = _client(ctx)
    statuses = [status for flag, status in _STATUS_FLAGS.items() if flags.get(flag)] or [None]
    runs: list[dict[str, Any]] = []
    try:
        for status in statuses:
            runs.extend(_runs_of_deployment(client, _flow(ctx).flow_name, name, status, limit))
    except (ApiError, ConfigError) as e:
        raise _fail(e) from None
    runs.sort(key=lambda r: r.get("started_at") or "", reverse=True)
    console = _console()
    graph = _flow(ctx).source.graph
    if graph.schedule is not None and graph.schedule.expression is not None:
        _print_schedule_state(console, client, name)
    if graph.trigger is not None or graph.trigger_on_finish is not None:
        try:
            _print_refused(console, name, client.refused_triggers(name))
        except ApiError as e:
            raise _fail(e) from None
    if not runs:
        which = " or ".join(s.lower() for s in statuses if s)
        console.print(f"No {which + ' ' if which else ''}runs of {name} on AWS Step Functions.")
        return
    console.print(_runs_table(f"Runs of {name} on AWS Step Functions", runs[:limit]))


def _runs_table(title: str, runs: list[dict[str, Any]]) -> Any:
    """A row per run: id, status, start and stop times."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title)
    for column in ("Run ID", "Status", "Started", "Finished"):
        table.add_column(column, no_wrap=column == "Run ID")
    cells = ([r["run_id"] for r in runs], [r["status"] for r in runs],
             [r.get("started_at") or "" for r in runs], [r.get("stopped_at") or "" for r in runs])
    # One cell per column, a line per run: rich lays out each cell at ~80 us, so 100 rows
    # of four took 30 ms. It prints the same table, as no line wraps (no_wrap crops one too
    # long for the terminal, as rich cropped these one-word cells), so lines stay in their rows.
    table.add_row(*(Text("\n".join(column), no_wrap=True) for column in cells))
    return table


def _print_schedule_state(console: Any, client: ApiClient, name: str) -> None:
    """A line saying whether the deployed schedule is paused (a flow not deployed yet: nothing)."""
    try:
        answer = client.schedule(name, 1)
    except ApiError as e:
        if e.status in (404, 409):
            return
        raise _fail(e) from None
    console.print(f"Schedule {answer['schedule']} ({answer['timezone']}): {paused_line(answer)}", markup=False)


def paused_line(answer: dict[str, Any]) -> str:
    """A schedule's state as GET /flows/{flow}/schedule gives it, in a few words."""
    if answer.get("paused"):
        return f"PAUSED since {answer.get('changed_at')} by {answer.get('changed_by')} (step-functions unpause)"
    return "active"


def _print_refused(console: Any, name: str, refused: list[dict[str, Any]], shown: int = 5) -> None:
    """Triggers that started no run because a payload value did not fit its parameter."""
    if not refused:
        return
    console.print(f"{len(refused)} trigger(s) of {name} refused, latest first:")
    for r in refused[:shown]:
        events = ", ".join(f"{c['name']} ({c['id']})" for c in r.get("causes") or [])
        console.print(f"  {r['at']}  {events}: {r['reason']}")


def _runs_of_deployment(
    client: ApiClient, flow: str, deployment: str, status: Optional[str], limit: int
) -> list[dict[str, Any]]:
    """Up to `limit` runs of one deployment, newest first.

    Runs are filed under the flow's class name (as the Client API shows them), whatever
    the deployment's `--name`; the control plane keeps the deployment's, a page at a
    time, so a page may come back short while more follow.
    """
    runs: list[dict[str, Any]] = []
    token: Optional[str] = None
    while len(runs) < limit:
        page = client.list_runs(flow, status, limit - len(runs), deployment=deployment, next_token=token)
        runs.extend(page["runs"])
        token = page.get("next_token")
        if not token:
            break
    return runs[:limit]


@step_functions.command(help="Delete the state machine and its schedule; the runs stay readable.")
@click.option("--authorize", default=None, help="The production token, when another user deployed the flow.")
@click.pass_context
def delete(ctx: click.Context, authorize: Optional[str]) -> None:
    flow = _flow(ctx)
    name = _name(ctx)
    try:
        _client(ctx).delete_flow(name, flow.user, authorize or load_token(name))
    except (ApiError, ConfigError) as e:
        raise _fail(e) from None
    click.echo(f"Deleting AWS Step Functions state machine {name}...")
    click.echo(f"Deleted {name}: its state machine and schedule are gone; its runs stay readable.")


@step_functions.command(help="Terminate a running production run.")
@click.argument("run_id")
@click.pass_context
def terminate(ctx: click.Context, run_id: str) -> None:
    name = _name(ctx)
    if not is_production_run_id(run_id):
        run_id = production_run_id(run_id)
    try:
        _client(ctx).terminate(name, run_id)
    except (ApiError, ConfigError) as e:
        raise _fail(e) from None
    click.echo(f"Terminated run {run_id} of {name}.")
