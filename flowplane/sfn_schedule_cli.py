"""`step-functions schedule | pause | unpause | backfill`: operating a deployment's schedule.

Everything goes through the control plane (routes in chalicelib/routes/schedules.py);
this side formats, and drives a backfill by asking the plane to advance it until
it is done (asking again after an interruption resumes it). flowplane/sfn_group.py
adds these commands to the `step-functions` group of flowplane/sfn_cli.py.
"""

from __future__ import annotations

import json
import time
from typing import Any, Optional

import click

from . import sfn_cli
from .api_client import ApiError
from .sfn_cli import paused_line
from .user_config import ConfigError


def _sfn() -> Any:
    """The group's helpers (the flow, its deployment name, the client, errors)."""
    return sfn_cli


@click.command(name="schedule", help="Show the production schedule: its zone, whether it is paused, "
               "the last scheduled runs and the next fire times.")
@click.option("--next", "next_count", type=click.IntRange(1, 100), default=5, show_default=True,
              help="How many upcoming fire times to show.")
@click.option("--after", default=None,
              help="Show the fire times after this time (ISO 8601; without an offset, in the schedule's zone).")
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@click.pass_context
def schedule(ctx: click.Context, next_count: int, after: Optional[str], as_json: bool) -> None:
    sfn = _sfn()
    name = sfn._name(ctx)
    try:
        answer = sfn._client(ctx).schedule(name, next_count, after)
    except (ApiError, ConfigError) as e:
        raise sfn._fail(e) from None
    if as_json:
        click.echo(json.dumps(answer, indent=2, sort_keys=True))
        return
    echo = click.echo
    echo(f"Schedule of {name}: {answer['schedule']} in {answer['timezone']}"
         + (" (EventBridge Scheduler)" if answer["kind"] == "scheduler" else " (EventBridge rule, UTC)"))
    echo(f"State: {paused_line(answer)}")
    echo(f"Next {len(answer['next'])} fire time(s):")
    for t in answer["next"]:
        echo(f"    {t}  ({local_time(t, answer['timezone'])})")
    if answer["last_runs"]:
        echo("Last scheduled runs:")
        for r in answer["last_runs"]:
            echo(f"    {r['scheduled_time']}  {r['status']:<10} {r['run_id']}")
    else:
        echo("No scheduled run yet.")


def local_time(iso_utc: str, zone_name: str) -> str:
    """An instant as the zone's wall clock, e.g. 2026-03-30 02:30 CEST."""
    from datetime import datetime

    from .schedule_times import zone

    t = datetime.fromisoformat(iso_utc.replace("Z", "+00:00")).astimezone(zone(zone_name))
    return t.strftime("%Y-%m-%d %H:%M %Z")


def _set_paused(ctx: click.Context, paused: bool, authorize: Optional[str]) -> None:
    sfn = _sfn()
    flow = sfn._flow(ctx)
    name = sfn._name(ctx)
    try:
        sfn._client(ctx).set_paused(name, paused, flow.user, authorize or sfn.load_token(name))
    except (ApiError, ConfigError) as e:
        raise sfn._fail(e) from None
    if paused:
        click.echo(f"Paused the schedule of {name}: it starts no run until `step-functions unpause` "
                   "(redeploying keeps it paused).")
    else:
        click.echo(f"Unpaused the schedule of {name}: it fires again from its next time.")


@click.command(help="Stop the production schedule firing (kept across redeploys).")
@click.option("--authorize", default=None, help="The production token, when another user deployed the flow.")
@click.pass_context
def pause(ctx: click.Context, authorize: Optional[str]) -> None:
    _set_paused(ctx, True, authorize)


@click.command(help="Let a paused production schedule fire again.")
@click.option("--authorize", default=None, help="The production token, when another user deployed the flow.")
@click.pass_context
def unpause(ctx: click.Context, authorize: Optional[str]) -> None:
    _set_paused(ctx, False, authorize)


@click.command(help="Start one production run per scheduled time from --start to --end (both included), "
               "each exactly once, however often it is asked.")
@click.option("--start", required=True, help="ISO 8601; without an offset, in the schedule's time zone.")
@click.option("--end", required=True, help="ISO 8601; without an offset, in the schedule's time zone.")
@click.option("--max-parallel", type=click.IntRange(1, 100), default=1, show_default=True,
              help="How many backfilled runs may run at once.")
@click.option("--yes", is_flag=True, help="Confirm a range of more than 1,000 runs.")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Keep starting runs until every time has one (else start the first ones and return).")
@click.option("--poll", type=float, default=5.0, show_default=True, help="Seconds between checks while waiting.")
@click.option("--authorize", default=None, help="The production token, when another user deployed the flow.")
@click.pass_context
def backfill(ctx: click.Context, start: str, end: str, max_parallel: int, yes: bool, wait: bool, poll: float,
             authorize: Optional[str]) -> None:
    sfn = _sfn()
    flow = sfn._flow(ctx)
    name = sfn._name(ctx)
    client = sfn._client(ctx)
    body = {"start": start, "end": end, "max_parallel": max_parallel, "yes": yes, "user": flow.user,
            "authorize": authorize or sfn.load_token(name)}
    try:
        answer = client.backfill(name, body)
        click.echo(f"Backfilling {name}: {answer['times']} scheduled time(s) from {answer['start']} to "
                   f"{answer['end']}, at most {max_parallel} at once.")
        _progress(answer)
        while wait and answer["status"] != "DONE":
            time.sleep(poll)
            answer = client.backfill(name, body)
            _progress(answer)
    except (ApiError, ConfigError) as e:
        raise sfn._fail(e) from None
    if answer["status"] == "DONE":
        click.echo(f"Done: every scheduled time from {answer['start']} to {answer['end']} has its run.")
    else:
        click.echo("Run the same command again to go on; times already started are not started twice.")


def _progress(answer: dict[str, Any]) -> None:
    for run_id in answer["started_now"]:
        click.echo(f"    started {run_id}")
    click.echo(f"  {answer['started']}/{answer['times']} started, {len(answer['in_flight'])} running.")


COMMANDS = (schedule, pause, unpause, backfill)
