"""Firing EventBridge schedule rules and EventBridge Scheduler schedules, which moto stores but never fires.

Every enabled rule with a ScheduleExpression (`cron(...)` in AWS's six-field
syntax, or `rate(N unit)`) fires at its times: each target gets the
"Scheduled Event" AWS sends, through the target's InputTransformer or Input
when it has one. Every enabled Scheduler schedule fires at its times in its
`ScheduleExpressionTimezone` (flowplane/schedule_times.py, daylight-saving
changes as Scheduler documents them): its target gets its Input with
Scheduler's context attributes filled in. A target that is a Lambda function of the control plane
(`<app>-<stage>-<name>`, as Chalice names them) is its handler, called
in-process; other targets are skipped with a warning.

Time comes from a `Clock`, so tests move it by hand. A rule first seen at T
fires for its times after T. When the clock jumps over several times (a laptop
asleep), only the latest missed time fires, as a machine that was off would
not replay an hour of ticks; the skipped ones are logged.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Optional, Protocol

log = logging.getLogger("flowplane.local.scheduler")

_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


@dataclass
class ManualClock:
    """A clock that moves only when told (tests)."""

    current: datetime

    def now(self) -> datetime:
        return self.current

    def set(self, when: datetime) -> None:
        self.current = when.astimezone(timezone.utc)

    def advance(self, **delta: float) -> None:
        self.current += timedelta(**delta)


class ScheduleError(ValueError):
    """A schedule expression the local scheduler cannot read."""


def next_time(expression: str, after: datetime, anchor: Optional[datetime] = None,
              zone: Optional[str] = None) -> datetime:
    """The first time strictly after `after` at which `expression` fires (UTC), a cron in `zone`.

    A rate counts from `anchor` (when the rule was first seen), as EventBridge
    counts from the rule's creation.
    """
    after = after.astimezone(timezone.utc)
    if expression.startswith("cron(") and expression.endswith(")"):
        from flowplane.schedule_times import ScheduleTimeError, next_times

        try:
            found = next_times(expression, zone, after, 1)
        except ScheduleTimeError as e:
            raise ScheduleError(str(e)) from None
        if not found:
            raise ScheduleError(f"{expression!r} never fires again")
        return found[0]
    m = _RATE.match(expression.strip())
    if m:
        period = int(m[1]) * _UNIT_SECONDS[m[2].rstrip("s")]
        if period <= 0:
            raise ScheduleError(f"{expression!r}: a rate must be positive")
        start = (anchor or after).astimezone(timezone.utc)
        if after < start:
            return start + timedelta(seconds=period)
        n = int((after - start).total_seconds() // period) + 1
        return start + timedelta(seconds=n * period)
    raise ScheduleError(f"{expression!r} is neither cron(...) nor rate(N minutes|hours|days)")


def scheduled_event(rule_arn: str, when: datetime, region: str, account: str) -> dict[str, Any]:
    """What EventBridge sends for a schedule: the control plane's own model of it, at `when`."""
    # Imported here: chalicelib is importable once the plane has put its folder on sys.path.
    from chalicelib.aws_events import event_time, scheduled_event as aws_scheduled_event

    return aws_scheduled_event(rule_arn, event_time(when), region, account)


def target_input(target: dict[str, Any], event: dict[str, Any]) -> Any:
    """What a target receives for `event`: its InputTransformer's output, its Input, or the event."""
    if target.get("InputTransformer"):
        # The control plane's own model of EventBridge's template filling (JSON templates).
        from chalicelib.aws_events import apply_input_transformer

        return apply_input_transformer(target["InputTransformer"], event)
    if target.get("Input"):
        return json.loads(target["Input"])
    if target.get("InputPath"):
        value: Any = event
        for part in target["InputPath"].lstrip("$").strip(".").split("."):
            if part:
                value = value[part]
        return value
    return event


@dataclass
class Firing:
    rule: str
    time: datetime
    target: str
    result: Any = None
    error: Optional[str] = None
    skipped: int = 0  # earlier times of the rule the clock jumped over, not fired


@dataclass
class _Rule:
    expression: str
    seen_at: datetime
    last: datetime  # the end of the window already fired
    zone: Optional[str] = None  # a Scheduler schedule's ScheduleExpressionTimezone


# A Scheduler schedule's context attributes in its target's Input (what Scheduler fills in).
_SCHEDULER_CONTEXT = ("<aws.scheduler.scheduled-time>", "<aws.scheduler.schedule-arn>",
                      "<aws.scheduler.execution-id>", "<aws.scheduler.attempt-number>")
_ZONED = "scheduler:"  # the key prefix of a Scheduler schedule among the rules


@dataclass
class Scheduler:
    """Fires the schedule rules of moto's EventBridge at their times."""

    events_client: Any
    invoke: Callable[[str, Any], Any]  # (handler name, payload) -> result
    function_prefix: str  # "<app>-<stage>-": a Lambda target's name minus this is its handler
    region: str
    account: str
    clock: Clock = field(default_factory=SystemClock)
    scheduler_client: Any = None  # EventBridge Scheduler (None: rules only)
    fired: list[Firing] = field(default_factory=list)
    _rules: dict[str, _Rule] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def tick(self) -> list[Firing]:
        """Fire every rule whose time has come since the last tick; what fired."""
        with self._lock:
            now = self.clock.now().astimezone(timezone.utc)
            due: list[tuple[dict[str, Any], datetime, int]] = []
            current = {}
            for rule in [*self._schedule_rules(), *self._zoned_schedules()]:
                name, expression, zone = rule["Name"], rule["ScheduleExpression"], rule.get("Zone")
                key = _ZONED + name if "Target" in rule else name
                known = self._rules.get(key)
                if known is None or known.expression != expression or known.zone != zone:
                    known = _Rule(expression, now, now, zone)
                current[key] = known
                try:
                    when, skipped = self._due(known, now)
                except ScheduleError as e:
                    log.warning("rule %s: %s; it never fires here", name, e)
                    continue
                if when is not None:
                    due.append((rule, when, skipped))
                known.last = now
            self._rules = current
            fired = []
            for rule, when, skipped in due:
                if "Target" in rule:
                    fired.append(self.deliver_zoned(rule, when, skipped))
                else:
                    fired.extend(self.deliver(rule["Name"], when, rule_arn=rule["Arn"], skipped=skipped))
            return fired

    def _due(self, rule: _Rule, now: datetime) -> tuple[Optional[datetime], int]:
        first = next_time(rule.expression, rule.last, rule.seen_at, rule.zone)
        if first > now:
            return None, 0
        latest, skipped = first, 0
        while True:
            nxt = next_time(rule.expression, latest, rule.seen_at, rule.zone)
            if nxt > now:
                break
            latest, skipped = nxt, skipped + 1
        if skipped:
            log.warning("the clock jumped over %d time(s) of %s; firing only %s", skipped, rule.expression, latest)
        return latest, skipped

    def deliver(self, rule: str, when: datetime, rule_arn: Optional[str] = None, skipped: int = 0) -> list[Firing]:
        """Deliver the rule's scheduled event for `when` to its targets (also: a duplicate delivery)."""
        if rule_arn is None:
            rule_arn = self.events_client.describe_rule(Name=rule)["Arn"]
        event = scheduled_event(rule_arn, when, self.region, self.account)
        targets = self.events_client.list_targets_by_rule(Rule=rule).get("Targets", [])
        out = []
        for target in targets:
            firing = Firing(rule, when, target["Arn"], skipped=skipped)
            handler = self._handler(target["Arn"])
            if handler is None:
                firing.error = f"target {target['Arn']} is not a function of this control plane"
                log.warning("rule %s: %s; skipped", rule, firing.error)
            else:
                try:
                    firing.result = self.invoke(handler, target_input(target, event))
                except Exception as e:  # a failing target must not stop the other rules
                    firing.error = f"{type(e).__name__}: {e}"
                    log.exception("rule %s: %s failed", rule, handler)
            self.fired.append(firing)
            out.append(firing)
        return out

    def deliver_zoned(self, schedule: dict[str, Any], when: datetime, skipped: int = 0) -> Firing:
        """Invoke a Scheduler schedule's target for `when`, its Input's context attributes filled in."""
        from flowplane.schedule_times import iso

        target = schedule["Target"]
        firing = Firing(schedule["Name"], when, target["Arn"], skipped=skipped)
        text = target.get("Input") or "{}"
        for attribute, value in zip(_SCHEDULER_CONTEXT, (iso(when), schedule["Arn"], f"local-{iso(when)}", "1")):
            text = text.replace(attribute, value)
        handler = self._handler(target["Arn"])
        if handler is None:
            firing.error = f"target {target['Arn']} is not a function of this control plane"
            log.warning("schedule %s: %s; skipped", schedule["Name"], firing.error)
        else:
            try:
                firing.result = self.invoke(handler, json.loads(text))
            except Exception as e:  # a failing target must not stop the other schedules
                firing.error = f"{type(e).__name__}: {e}"
                log.exception("schedule %s: %s failed", schedule["Name"], handler)
        self.fired.append(firing)
        return firing

    def _zoned_schedules(self) -> list[dict[str, Any]]:
        """Every enabled Scheduler schedule, whole (the listing leaves out the target)."""
        if self.scheduler_client is None:
            return []
        out, token = [], None
        while True:
            page = self.scheduler_client.list_schedules(State="ENABLED", **({"NextToken": token} if token else {}))
            for summary in page.get("Schedules", []):
                s = self.scheduler_client.get_schedule(Name=summary["Name"], GroupName=summary.get("GroupName", "default"))
                if s.get("State") == "ENABLED":
                    out.append({**s, "Zone": s.get("ScheduleExpressionTimezone") or "UTC"})
            token = page.get("NextToken")
            if not token:
                return out

    def _handler(self, arn: str) -> Optional[str]:
        parts = arn.split(":")
        if len(parts) >= 7 and parts[2] == "lambda" and parts[5] == "function":
            function = parts[6]
            if function.startswith(self.function_prefix):
                return function[len(self.function_prefix) :]
        return None

    def _schedule_rules(self) -> list[dict[str, Any]]:
        rules, token = [], None
        while True:
            page = self.events_client.list_rules(**({"NextToken": token} if token else {}))
            rules.extend(r for r in page.get("Rules", []) if r.get("ScheduleExpression") and r.get("State") == "ENABLED")
            token = page.get("NextToken")
            if not token:
                return rules
