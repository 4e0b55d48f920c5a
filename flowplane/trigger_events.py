"""The event contract of triggered flows: what is published, what a finished run announces,
and what a triggered run knows of what started it.

Three parties share these shapes, so they are defined once here (a leaf module:
pydantic and event_types only, so the recorder's cold start pays for nothing more)
and imported by each: the SDK that publishes (`flowplane.integrations.Event`,
`flowplane event publish`), the control plane that puts events on the stack's bus and
starts flows from them (chalicelib/triggers/), and the task and Client API that read
`current.trigger` and `Run.trigger`.

On the bus (subscribe to them with an EventBridge rule on the stack's bus):
- a published event: source `flowplane.event`, detail-type its name, detail `PublishedEvent`;
- a production run that finished: source `flowplane.run`, detail-type `Flowplane Run Finished`,
  detail `RunFinished`. Every terminal status is announced at least once (a status change
  EventBridge delivers twice may be announced twice: dedupe by `trigger_id`), with the
  stage that ran it; `@trigger_on_finish` listens to SUCCEEDED of its own stage.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Callable, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from .event_types import EVENT_NAME_PATTERN
from .event_types import PUBLISHED_EVENT_SOURCE as EVENT_SOURCE
from .event_types import RUN_FINISHED_DETAIL_TYPE, RUN_FINISHED_SOURCE  # noqa: F401  (part of the contract)
# EventBridge takes entries of up to 256 KiB; the rest of the entry (source, name, id,
# time) is kept well under the difference.
MAX_PAYLOAD_BYTES = 200 * 1024
# What a triggered run's execution input carries (beside "Parameters").
EXECUTION_INPUT_KEY = "Trigger"
# A scheduled run's input (a schedule's tick, or a backfill of one) carries its scheduled time,
# ISO 8601 in UTC: `current.scheduled_time` in its tasks.
SCHEDULED_TIME_KEY = "ScheduledTime"


class _Shape(BaseModel):
    # Readers ignore fields a later version adds; writers write what is declared.
    model_config = ConfigDict(extra="ignore", frozen=True)


class PublishedEvent(_Shape):
    """The detail of a published event."""

    name: str = Field(pattern=EVENT_NAME_PATTERN)
    # Set by the publisher, or by the control plane when not given; a second delivery of the
    # same event (or a publish repeated with the same id) starts no second run.
    id: str = Field(min_length=1, max_length=128)
    timestamp: int  # seconds since the epoch, as Metaflow's events carry it
    payload: dict[str, Any] = Field(default_factory=dict)


class RunFinished(_Shape):
    """The detail of a production run's end."""

    flow: str
    run_id: str
    status: Literal["SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"]
    # The run's namespace (`production:<token>`): a downstream flow listens to its own namespace.
    namespace: Optional[str] = None
    deployment: Optional[str] = None
    # The stage's resource prefix: a stage's flows hear only its own runs' ends.
    stage: Optional[str] = None
    started_at: Optional[str] = None
    finished_at: Optional[str] = None
    # The stage whose recorder announced it (its resource prefix): stages sharing an account's
    # bus each start their own flows only from their own runs.
    stage: Optional[str] = None
    # @project: the deployment's project and branch, and `<project>.<branch>.<Flow>`; outside
    # a project, the flow's class name. `@trigger_on_finish` listens by this name.
    project: Optional[str] = None
    branch: Optional[str] = None
    project_flow_name: Optional[str] = None

    @property
    def upstream_name(self) -> str:
        """The name a downstream `@trigger_on_finish` knows this run's flow by."""
        return self.project_flow_name or self.flow

    @property
    def pathspec(self) -> str:
        return f"{self.flow}/{self.run_id}"

    @property
    def trigger_id(self) -> str:
        # A run ends once: however often its end is announced, it starts one downstream run.
        return f"run:{self.pathspec}"


class TriggerCause(_Shape):
    """One event that started a run: a published event, or an upstream run's success."""

    type: Literal["event", "run"]
    name: str  # the event's name, or the upstream flow's
    id: str
    timestamp: int
    payload: dict[str, Any] = Field(default_factory=dict)
    # For type "run": the upstream run's pathspec (Flow/run_id).
    pathspec: Optional[str] = None

    @classmethod
    def from_published(cls, event: PublishedEvent) -> "TriggerCause":
        return cls(type="event", name=event.name, id=event.id, timestamp=event.timestamp, payload=event.payload)

    @classmethod
    def from_run(cls, finished: RunFinished, timestamp: int) -> "TriggerCause":
        return cls(type="run", name=finished.flow, id=finished.trigger_id, timestamp=timestamp,
                   pathspec=finished.pathspec,
                   payload=finished.model_dump(include={"flow", "run_id", "status", "namespace", "project",
                                                        "branch", "project_flow_name"}, exclude_none=True))

    @property
    def upstream_name(self) -> str:
        """For a run: its flow as `@trigger_on_finish` names it (`<project>.<branch>.<Flow>` inside
        a @project, else the class name); for an event, its name."""
        if self.type == "run":
            return str(self.payload.get("project_flow_name") or self.name)
        return self.name


def scheduled_time_from_input(raw_input: Optional[str]) -> Optional[datetime]:
    """A scheduled run's scheduled time (UTC) from its execution input; None for any other run."""
    try:
        doc = json.loads(raw_input or "{}")
        value = doc.get(SCHEDULED_TIME_KEY) if isinstance(doc, dict) else None
        if not isinstance(value, str):
            return None
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc)
    except (TypeError, ValueError):
        return None


def causes_from_input(raw_input: Optional[str]) -> list[TriggerCause]:
    """The causes in an execution input (a JSON document), or [] for a run nobody's event started."""
    try:
        doc = json.loads(raw_input or "{}")
    except (TypeError, ValueError):
        return []
    causes = doc.get(EXECUTION_INPUT_KEY) if isinstance(doc, dict) else None
    if not isinstance(causes, list):
        return []
    out = []
    for c in causes:
        try:
            out.append(TriggerCause.model_validate(c))
        except ValueError:
            continue  # a hand-started execution with a stray "Trigger": not ours to read
    return out


class TriggerEvent:
    """An event as `current.trigger.event` shows it (Metaflow's MetaflowEvent)."""

    def __init__(self, cause: TriggerCause) -> None:
        self.name = cause.name
        self.id = cause.id
        self.timestamp = cause.timestamp
        self.payload = dict(cause.payload)
        self.type = cause.type

    @property
    def time(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp, timezone.utc)

    def __repr__(self) -> str:
        return f"TriggerEvent(name={self.name!r}, id={self.id!r}, timestamp={self.timestamp})"


class Trigger:
    """What started a run: `current.trigger` in its tasks, `Run.trigger` in the Client API.

    `.event` / `.events` are the events (an upstream run's success is an event too, named
    after its flow); `.run` / `.runs` the upstream runs of `@trigger_on_finish`, as Client
    API `Run`s, so a chain of runs can be followed backwards. `trigger["FirstFlow"]` is
    that flow's run, `trigger["data_updated"]` that event, as in Metaflow.
    """

    def __init__(self, causes: list[TriggerCause], run_of: Callable[[str], Any]) -> None:
        self._causes = list(causes)
        # Reads an upstream run by its pathspec: the Client API's `Run`, which whoever builds the
        # trigger passes in (the contract imports nothing of the client, which imports it).
        self._run_of = run_of

    @classmethod
    def from_input(cls, raw_input: Optional[str], run_of: Callable[[str], Any]) -> Optional["Trigger"]:
        causes = causes_from_input(raw_input)
        return cls(causes, run_of) if causes else None

    def _upstream(self, cause: TriggerCause) -> Any:
        return self._run_of(cause.pathspec)

    @property
    def events(self) -> list[TriggerEvent]:
        return [TriggerEvent(c) for c in self._causes]

    @property
    def event(self) -> Optional[TriggerEvent]:
        events = self.events
        return events[0] if events else None

    @property
    def runs(self) -> list[Any]:
        return [self._upstream(c) for c in self._causes if c.type == "run" and c.pathspec]

    @property
    def run(self) -> Any:
        runs = self.runs
        return runs[0] if runs else None

    def __getitem__(self, key: str) -> Any:
        for c in self._causes:
            if key in (c.name, c.upstream_name):
                return self._upstream(c) if c.type == "run" and c.pathspec else TriggerEvent(c)
        raise KeyError(f"{key!r} did not trigger this run (it was: {', '.join(c.name for c in self._causes)})")

    def __iter__(self) -> Any:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self._causes)

    def __repr__(self) -> str:
        return f"Trigger({', '.join(repr(c.name) for c in self._causes)})"
