"""When a triggered flow starts: the rule of "all of these events", kept order-free.

A flow with `@trigger(events=[a, b])` starts once each of `a` and `b` has arrived
since the last run it started (Metaflow's rule); with `@trigger_on_finish(flows=[...])`
each upstream flow's success is one more condition; a decorator with
`options={"any": True}` is one condition that any of its events meets.

EventBridge delivers at least once and in no particular order, and Lambdas run
side by side, so the partial state lives in DynamoDB and every decision is a pure
function of (state, event) written back under a version check:

- an event whose id was seen before is dropped (a duplicate delivery);
- per condition the newest event waits (by its timestamp, then id): several
  arrivals of `a` before `b` start one run, with the latest `a`;
- when every condition has an event, the decision is recorded *before* the run is
  started (`starting`: the run's name and causes), then
  the run is started under a name made from those ids, then the record is
  cleared. A crash anywhere in between leaves `starting` for the next delivery to
  finish, and Step Functions refuses a second execution of the same name: one
  run per set of events, whatever is delivered twice or out of order.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any, Optional

from flowplane.trigger_events import TriggerCause

# Ids seen are remembered this long (EventBridge retries a delivery for up to 24 hours), and
# at most this many per flow (the state is one DynamoDB item, at most 400 KB).
SEEN_ID_SECONDS = 2 * 24 * 3600
MAX_SEEN_IDS = 2000


@dataclass(frozen=True)
class Condition:
    """One thing a run waits for: any of `names` (an event's name, or `run:<Flow>`)."""

    key: str
    names: frozenset[str]


@dataclass
class State:
    # condition key -> the newest waiting cause
    waiting: dict[str, TriggerCause] = field(default_factory=dict)
    # cause id -> when it arrived (epoch seconds): each event counts once
    seen: dict[str, int] = field(default_factory=dict)
    # A run decided but perhaps not yet started: (execution name, causes).
    starting: Optional[tuple[str, list[TriggerCause]]] = None

    def to_item(self) -> dict[str, Any]:
        return {
            "waiting": {k: c.model_dump_json() for k, c in self.waiting.items()},
            "seen": dict(self.seen),
            "starting": (
                {"name": self.starting[0], "causes": [c.model_dump_json() for c in self.starting[1]]}
                if self.starting else None
            ),
        }

    @classmethod
    def from_item(cls, item: Optional[dict[str, Any]]) -> "State":
        if not item:
            return cls()
        starting = item.get("starting")
        return cls(
            waiting={k: TriggerCause.model_validate_json(v) for k, v in (item.get("waiting") or {}).items()},
            seen={k: int(v) for k, v in (item.get("seen") or {}).items()},
            starting=(
                (starting["name"], [TriggerCause.model_validate_json(c) for c in starting["causes"]])
                if starting else None
            ),
        )


def condition_name(cause: TriggerCause) -> str:
    return f"run:{cause.upstream_name}" if cause.type == "run" else cause.name


def execution_name(deployment: str, causes: list[TriggerCause]) -> str:
    """The same causes always name the same execution of the deployment (Step Functions refuses
    a second); shaped as a UUID like a run started by hand, so run ids read alike."""
    seed = "\n".join([deployment, *sorted(c.id for c in causes)])
    return str(uuid.UUID(hex=hashlib.sha256(seed.encode()).hexdigest()[:32]))


def offer(state: State, cause: TriggerCause, conditions: list[Condition], deployment: str,
          now: int) -> tuple[State, bool]:
    """The state after `cause` arrives, and whether it changed. A run to start is `state.starting`.

    Pure: the caller reads the state, calls this, and writes the result back only if nobody
    wrote in between (else reads again and calls again).
    """
    name = condition_name(cause)
    matching = [c for c in conditions if name in c.names]
    if not matching or cause.id in state.seen:
        return state, False
    # Every id offered is remembered, taken or not: a late duplicate of an event a newer one
    # replaced must not come back once the newer one is used.
    seen = {k: t for k, t in state.seen.items() if now - t < SEEN_ID_SECONDS}
    seen[cause.id] = now
    if len(seen) > MAX_SEEN_IDS:
        seen = dict(sorted(seen.items(), key=lambda kv: kv[1])[-MAX_SEEN_IDS:])
    waiting = dict(state.waiting)
    for condition in matching:
        held = waiting.get(condition.key)
        if held is None or (held.timestamp, held.id) < (cause.timestamp, cause.id):
            waiting[condition.key] = cause
    return _decide(State(waiting=waiting, seen=seen, starting=state.starting), conditions, deployment), True


def started(state: State, conditions: list[Condition], deployment: str) -> State:
    """The state once the run in `state.starting` exists; decides the next if its events wait."""
    return _decide(State(waiting=dict(state.waiting), seen=dict(state.seen)), conditions, deployment)


def _decide(state: State, conditions: list[Condition], deployment: str) -> State:
    if state.starting is not None or not conditions or not all(c.key in state.waiting for c in conditions):
        return state
    causes = _distinct(state.waiting[c.key] for c in conditions)
    return State(waiting={}, seen=dict(state.seen), starting=(execution_name(deployment, causes), causes))


def _distinct(causes: Any) -> list[TriggerCause]:
    seen: dict[str, TriggerCause] = {}
    for c in causes:
        seen.setdefault(c.id, c)
    return list(seen.values())


def conditions_of(trigger: Any, trigger_on_finish: Any) -> list[Condition]:
    """The conditions of a deployed flow's `@trigger` and `@trigger_on_finish` (manifest specs)."""
    out: list[Condition] = []
    for spec, names in (
        (trigger, [e.name for e in trigger.events] if trigger else []),
        (trigger_on_finish, [f"run:{f.qualified}" for f in trigger_on_finish.flows] if trigger_on_finish else []),
    ):
        if spec is None:
            continue
        if spec.any:
            out.append(Condition(key="any:" + ",".join(names), names=frozenset(names)))
        else:
            out.extend(Condition(key=n, names=frozenset([n])) for n in names)
    return out
